"""Five-band image cutouts in the one layout sourceclf's models use.

Everything that holds stamps of the sources in a table is turned by
`make_cutouts` into a float32 array of shape ``(n_rows, 5, size, size)``:
channels first, bands in ugriz order (`sourceclf.bands.BANDS`), one stamp per
table row and in the table's row order, plus one flag string per row.

Accepted inputs:

* an array of shape ``(N, 5, H, W)`` or ``(N, H, W, 5)`` (NumPy array, memory
  map, or anything `numpy.asarray` understands), with ``band_order`` naming the
  bands of its channels;
* a list with one entry per source: a sequence of five 2-D stamps
  (`~astropy.nddata.Cutout2D`, `~astropy.nddata.NDData` or arrays) in
  ``band_order``, or a dict ``{band: stamp}``;
* a dict with one entry per band, ``{band: stamps}``: an array of shape
  ``(N, H, W)`` (or a list of N 2-D stamps) per band, as a cutout service
  returns them band by band;
* a FITS file (path or `~astropy.io.fits.HDUList`) holding one 4-D image HDU of
  such stamps, or a ``.npy`` file;
* full frames with a WCS, one per band, plus a table of ``ra`` / ``dec``
  (`cutouts_from_frames`): each stamp is cut around the source's sky position
  with *that band's own* WCS, since SDSS frames of one field are not aligned
  between bands.

Pixel values are kept in the units they are given in (SDSS frames are in
nanomaggies); nothing is normalised here, models own their input scaling.

Flags
-----
``''``
    The stamp is complete.
``'edge'``
    The stamp reaches past the edge of the frame in at least one band; the
    missing pixels are filled with 0 (what
    ``Cutout2D(..., mode="partial", fill_value=0)`` does).
``'off_frame'``
    The source's position is not on the frame in at least one band, or the row
    has no finite position: the whole stamp (all bands) is 0.  Such rows are
    kept, never dropped.
``'nan_pixels'``
    Non-finite pixels were replaced by 0.
``'bad_pixels'``
    Pixels beyond `MAX_PIXEL_VALUE` in absolute value (corrupt data or wrong
    units) were replaced by 0; `sourceclf.classify` leaves such rows unclassified.

Several flags are joined with ``';'`` (``'edge;nan_pixels'``); ``'off_frame'``
always stands alone.
"""

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .bands import BANDS, by_band_name
from .exceptions import InvalidInputError
from .frames import frames_by_band, read_frame, sky_positions
from .utils._fits import hdu_data
from .utils._validation import check_positive_int

__all__ = ["CutoutResult", "make_cutouts", "cutouts_from_frames", "sources_on_frames",
           "FLAG_EDGE", "FLAG_OFF_FRAME", "FLAG_NAN_PIXELS", "FLAG_BAD_PIXELS", "FLAG_NO_DATA",
           "MAX_PIXEL_VALUE"]

#: Flag of a stamp that reaches past the edge of a frame (padded with 0).
FLAG_EDGE = "edge"
#: Flag of a source whose position is off a frame (stamp all 0).
FLAG_OFF_FRAME = "off_frame"
#: Flag of a stamp whose non-finite pixels were replaced by 0.
FLAG_NAN_PIXELS = "nan_pixels"
#: Flag of a stamp whose pixels beyond `MAX_PIXEL_VALUE` were replaced by 0.
FLAG_BAD_PIXELS = "bad_pixels"
#: Flag of a row (left unclassified by `sourceclf.classify`) whose stamp has a band
#: with no data: every pixel 0 or not finite (a frame's zero-filled no-data area, a
#: blank stamp).
FLAG_NO_DATA = "no_data"
#: Largest absolute pixel value taken as data: 1e20 nanomaggies in one pixel is
#: magnitude -27.5, brighter than the Sun, and beyond any detector's counts.
MAX_PIXEL_VALUE = 1e20

_LAYOUTS = ("channels_first", "channels_last")
# Rows converted at a time: bounds the temporary memory of big inputs.
_CHUNK = 4096


class CutoutResult(NamedTuple):
    """Stamps and per-row flags returned by `make_cutouts`.

    Attributes
    ----------
    data : `numpy.ndarray`
        float32, shape ``(n_rows, 5, size, size)``, bands in ugriz order.
    flags : `numpy.ndarray` of str
        ``''`` for a complete stamp, else ``'edge'``, ``'off_frame'``,
        ``'nan_pixels'``, ``'bad_pixels'`` or several of them joined by
        ``';'`` (see the module documentation).
    """

    data: np.ndarray
    flags: np.ndarray


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def _band_order(band_order):
    """Validate ``band_order``: each of ugriz exactly once, case-insensitive."""
    if isinstance(band_order, str):
        names = list(band_order)
    else:
        try:
            names = [str(b) for b in band_order]
        except TypeError:
            raise InvalidInputError(f"band_order must be a string like 'ugriz' or a "
                                    f"sequence of band names, got {band_order!r}") from None
    names = [b.strip().lower() for b in names]
    if sorted(names) != sorted(BANDS):
        raise InvalidInputError(f"band_order must name each of {', '.join(BANDS)} exactly "
                                f"once, got {band_order!r}")
    return names


def _join_flags(*parts):
    return ";".join(p for p in parts if p)


def _finalise(data, flags):
    """Replace non-finite and absurd pixels by 0 (flagging them) and pack the result."""
    flags = np.asarray(flags, dtype=object)
    for start in range(0, len(data), _CHUNK):
        block = data[start:start + _CHUNK]
        nonfinite = ~np.isfinite(block)
        extreme = np.abs(block) > MAX_PIXEL_VALUE  # False for NaN, True for inf
        extreme &= ~nonfinite
        for bad, flag in ((nonfinite, FLAG_NAN_PIXELS), (extreme, FLAG_BAD_PIXELS)):
            rows = np.flatnonzero(bad.any(axis=(1, 2, 3)))
            if rows.size:
                block[bad] = 0.0
            for r in rows:
                if flags[start + r] != FLAG_OFF_FRAME:
                    flags[start + r] = _join_flags(flags[start + r], flag)
    return CutoutResult(data=data, flags=np.array(flags.tolist() or [], dtype=str))


def _table_length(table):
    if table is None:
        return None
    try:
        return len(table)
    except TypeError:
        raise InvalidInputError(f"table must be an astropy Table, got "
                                f"{type(table).__name__}") from None


# ---------------------------------------------------------------------------
# Arrays of stamps
# ---------------------------------------------------------------------------

def _from_array(array, *, size, band_order, layout, what="cutouts"):
    """(N, 5, H, W) or (N, H, W, 5) array -> CutoutResult (float32, ugriz)."""
    try:
        arr = np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} cannot be read as an array: {exc}") from None
    if arr.dtype == object:
        raise InvalidInputError(f"{what} are ragged or not numeric (object array of shape "
                                f"{arr.shape}); every stamp must have the same shape")
    if arr.dtype.kind not in "fiub":
        raise InvalidInputError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 4:
        raise InvalidInputError(f"{what} must have 4 dimensions, (N, 5, H, W) or "
                                f"(N, H, W, 5), got shape {arr.shape}")
    shape = arr.shape
    n_bands = len(BANDS)
    first, last = arr.shape[1] == n_bands, arr.shape[3] == n_bands
    if layout is None:
        if first and last:
            raise InvalidInputError(
                f"{what} of shape {arr.shape} have 5 entries on both axis 1 and axis 3; "
                "pass layout='channels_first' or layout='channels_last'")
        if not (first or last):
            raise InvalidInputError(
                f"{what} of shape {arr.shape} have no axis of 5 bands; expected "
                "(N, 5, H, W) or (N, H, W, 5) with bands ugriz")
        layout = "channels_first" if first else "channels_last"
    elif layout not in _LAYOUTS:
        raise InvalidInputError(f"layout must be 'channels_first', 'channels_last' or None, "
                                f"got {layout!r}")
    if layout == "channels_last":
        arr = np.moveaxis(arr, 3, 1)
    if arr.shape[1] != n_bands:
        axis = 1 if layout == "channels_first" else 3
        raise InvalidInputError(f"{what} of shape {shape} have {arr.shape[1]} bands on axis "
                                f"{axis} ({layout}), expected 5 (ugriz)")
    if arr.shape[2:] != (size, size):
        raise InvalidInputError(_size_message(f"{what} of shape {shape}", arr.shape[2:], size))
    perm = [band_order.index(b) for b in BANDS]
    n = arr.shape[0]
    native32 = arr.dtype == np.float32 and arr.dtype.isnative
    if native32 and perm == list(range(n_bands)) and arr.flags.c_contiguous:
        # Already in the package's layout: no copy unless pixels must be fixed.
        fine = all((np.abs(arr[s:s + _CHUNK]) <= MAX_PIXEL_VALUE).all()
                   for s in range(0, n, _CHUNK))  # finite and not absurd
        if fine:
            return CutoutResult(data=arr, flags=np.full(n, "", dtype=str))
    data = np.empty((n, n_bands, size, size), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        data[start:start + _CHUNK] = arr[start:start + _CHUNK][:, perm]
    return _finalise(data, np.full(n, "", dtype=object))


def _plane(stamp, *, index, band, size):
    """One 2-D stamp (array, Cutout2D, NDData) as a float array of (size, size)."""
    data = getattr(stamp, "data", stamp)
    try:
        data = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"cutout {index} band '{band}' is not a numeric image "
                                f"({type(stamp).__name__})") from None
    if data.shape != (size, size):
        raise InvalidInputError(f"cutout {index} band '{band}' has shape {data.shape}, "
                                f"expected ({size}, {size})")
    return data


def _size_message(what, shape, size):
    """The error for stamps of another size than the models read."""
    hint = (f"; cut the central {size}x{size} pixels of stamps at SDSS's pixel scale (0.396\")"
            if min(shape) > size else "")
    return (f"{what} have stamps of {shape[0]}x{shape[1]} pixels, expected {size}x{size}"
            f"{hint}, or give the frames (images=) for sourceclf to cut")


def _from_band_dict(stamps, *, size):
    """``{band: (N, H, W) stamps}`` -> CutoutResult."""
    by_band = by_band_name(stamps, "cutouts")
    planes = {}
    for b in BANDS:
        value = by_band[b]
        if isinstance(value, (list, tuple)):
            value = [_plane(stamp, index=i, band=b, size=size) for i, stamp in enumerate(value)]
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise InvalidInputError(f"cutouts band '{b}' is not a numeric array of stamps "
                                    f"({type(value).__name__})") from None
        if arr.ndim != 3:
            raise InvalidInputError(f"cutouts band '{b}' has shape {arr.shape}; each band "
                                    "needs an array of stamps (N, H, W)")
        if arr.shape[1:] != (size, size):
            raise InvalidInputError(_size_message(f"the band '{b}' cutouts of shape {arr.shape}",
                                                  arr.shape[1:], size))
        planes[b] = arr
    counts = {b: len(arr) for b, arr in planes.items()}
    if len(set(counts.values())) > 1:
        raise InvalidInputError("cutouts has a different number of stamps per band ("
                                + ", ".join(f"{b} {k}" for b, k in counts.items())
                                + "); give one stamp per source in every band")
    data = np.stack([planes[b] for b in BANDS], axis=1)
    return _finalise(data, np.full(len(data), "", dtype=object))


def _from_list(items, *, size, band_order):
    """A list of per-source band sequences or dicts -> CutoutResult."""
    n = len(items)
    if n and all(isinstance(it, np.ndarray) and it.ndim == 3 for it in items):
        return None  # a list of (5, H, W) arrays: stack it as an array
    data = np.empty((n, len(BANDS), size, size), dtype=np.float32)
    for i, item in enumerate(items):
        if isinstance(item, dict):
            by_band = by_band_name(item, f"cutout {i}")
            for k, b in enumerate(BANDS):
                data[i, k] = _plane(by_band[b], index=i, band=b, size=size)
        else:
            if isinstance(item, np.ndarray) and item.ndim != 1:
                raise InvalidInputError(f"cutout {i} is an array of shape {item.shape}; "
                                        "per-source arrays must be (5, H, W) or (H, W, 5), "
                                        "all of them")
            if isinstance(item, (str, bytes)) or not hasattr(item, "__len__"):
                raise InvalidInputError(f"cutout {i} must be a sequence of 5 stamps or a "
                                        f"dict {{band: stamp}}, got {type(item).__name__}")
            if len(item) != len(BANDS):
                raise InvalidInputError(f"cutout {i} has {len(item)} bands, expected 5 "
                                        f"(in band_order {''.join(band_order)})")
            for stamp, b in zip(item, band_order):
                data[i, BANDS.index(b)] = _plane(stamp, index=i, band=b, size=size)
    return _finalise(data, np.full(n, "", dtype=object))


# ---------------------------------------------------------------------------
# Files of stamps
# ---------------------------------------------------------------------------

def _stamps_hdu(hdul, label):
    """The first HDU of an HDUList whose data are 4-D."""
    for hdu in hdul:
        if getattr(hdu, "is_image", False) and hdu.header.get("NAXIS", 0) == 4:
            return hdu
    shapes = [getattr(h.data, "shape", None) for h in hdul if getattr(h, "is_image", False)]
    raise InvalidInputError(f"{label} holds no 4-D image HDU of stamps (N, 5, H, W) or "
                            f"(N, H, W, 5); image shapes found: {shapes}")


def _from_file(path, *, size, band_order, layout):
    from astropy.io import fits

    path = Path(path)
    label = f"cutouts file '{path}'"
    if not path.is_file():
        raise InvalidInputError(f"{label} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read {label} as .npy: {exc}") from None
        return _from_array(arr, size=size, band_order=band_order, layout=layout, what=label)
    try:
        # Not utils._fits.open_fits: a compressed cube of many stamps would be held in
        # memory twice (the decompressed bytes and the array read from them).
        hdul = fits.open(path)  # memory-mapped unless scaled (BSCALE/BZERO)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read {label} as FITS: {exc}") from None
    with hdul:
        hdu = _stamps_hdu(hdul, label)
        result = _from_array(hdu_data(hdu, label), size=size, band_order=band_order,
                             layout=layout, what=label)
        if np.may_share_memory(result.data, hdu.data):
            # FITS data are big-endian, so this copy is normally made already;
            # never hand out a view of a file that is being closed.
            result = result._replace(data=np.array(result.data))
    return result


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------

def _pixels(wcs, ra, dec):
    """Pixel (x, y), 0-based, of sky positions in one frame; NaN where not defined."""
    from astropy.coordinates import SkyCoord
    from astropy.wcs import NoConvergence
    from astropy.wcs.utils import skycoord_to_pixel

    x = np.full(ra.shape, np.nan)
    y = np.full(ra.shape, np.nan)
    ok = np.isfinite(ra)
    if not ok.any():
        return x, y
    coords = SkyCoord(ra[ok], dec[ok], unit="deg", frame="icrs")
    with np.errstate(invalid="ignore", divide="ignore"):
        try:
            px, py = skycoord_to_pixel(coords, wcs, origin=0, mode="all")
        except NoConvergence:  # far outside a distorted frame: the linear part suffices
            px, py = skycoord_to_pixel(coords, wcs, origin=0, mode="wcs")
    x[ok], y[ok] = px, py
    return x, y


def _on_frame(x, y, shape):
    """Whether each pixel position lies on a frame of ``shape``: -0.5 <= x < nx - 0.5."""
    ny, nx = shape
    finite = np.isfinite(x) & np.isfinite(y)
    on = finite.copy()
    on[finite] = ((x[finite] >= -0.5) & (x[finite] < nx - 0.5)
                  & (y[finite] >= -0.5) & (y[finite] < ny - 0.5))
    return on


def sources_on_frames(table, images, *, ra_column="ra", dec_column="dec"):
    """How many of a table's sources lie on each band's frame.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With ``ra`` / ``dec`` (degrees, or any angle unit).
    images : dict
        ``{band: frame}``, as `cutouts_from_frames` takes them.
    ra_column, dec_column : str
        Position columns.

    Returns
    -------
    counts : dict
        ``{band: number of rows on that band's frame}``.
    """
    by_band = frames_by_band(images)
    ra, dec = sky_positions(table, ra_column, dec_column)
    counts = {}
    for band in BANDS:
        frame, wcs = read_frame(by_band[band], label=f"frame of band '{band}'", bands=[band])
        counts[band] = int(_on_frame(*_pixels(wcs, ra, dec), frame.shape).sum())
    return counts


def cutouts_from_frames(table, images, size=32, *, ra_column="ra", dec_column="dec"):
    """Cut 5-band stamps around the table's sources from full frames.

    Each band is cut with its own WCS at the source's sky position, exactly as
    ``Cutout2D(frame, SkyCoord(ra, dec), size, wcs=wcs, mode="partial",
    fill_value=0)`` would (same pixel rounding), but for all sources of a frame
    at once: each frame is read once, and thousands of sources take well under
    a second.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The sources, with right ascension and declination columns (ICRS; plain
        numbers are degrees, Quantity or unit-ful columns are converted).
        Column names are matched case-insensitively.
    images : dict
        ``{band: frame}`` for each of u, g, r, i, z (case-insensitive keys);
        each frame anything `sourceclf.frames.read_frame` accepts: a path, an HDU, an HDUList,
        NDData or a ``(data, wcs)`` pair.
    size : int
        Side of the square stamps in pixels.
    ra_column, dec_column : str
        Names of the position columns.

    Returns
    -------
    result : `CutoutResult`
        ``data`` of shape ``(len(table), 5, size, size)``, in the table's row
        order, and ``flags``: ``'edge'`` for stamps reaching past a frame's
        edge (the missing pixels are 0), ``'off_frame'`` for sources not on a
        frame or without a finite position (all-zero stamp), ``'nan_pixels'``
        and ``'bad_pixels'`` where non-finite or absurd pixels were replaced
        by 0.  No row is dropped.

    Raises
    ------
    InvalidInputError
        If a band is missing, a frame is not a 2-D image or has no celestial
        WCS.
    MissingColumnsError
        If the table lacks the position columns.
    """
    size = check_positive_int(size, "size")
    by_band = frames_by_band(images)
    ra, dec = sky_positions(table, ra_column, dec_column)
    n = len(ra)
    data = np.zeros((n, len(BANDS), size, size), dtype=np.float32)
    off = ~np.isfinite(ra)
    edge = np.zeros(n, dtype=bool)
    for k, band in enumerate(BANDS):
        frame, wcs = read_frame(by_band[band], label=f"frame of band '{band}'", bands=[band])
        ny, nx = frame.shape
        x, y = _pixels(wcs, ra, dec)
        on = _on_frame(x, y, frame.shape)
        off |= ~on
        rows = np.flatnonzero(on)
        if rows.size == 0:
            continue
        # Cutout2D / overlap_slices: first pixel = ceil(position - size / 2).
        x0 = np.ceil(x[rows] - size / 2.0).astype(np.int64)
        y0 = np.ceil(y[rows] - size / 2.0).astype(np.int64)
        edge[rows] |= (x0 < 0) | (y0 < 0) | (x0 + size > nx) | (y0 + size > ny)
        padded = np.zeros((ny + 2 * size, nx + 2 * size), dtype=np.float32)
        padded[size:size + ny, size:size + nx] = frame
        # windows[j, i] is the size x size stamp whose first pixel is (j, i) of
        # the padded frame: a view, so picking N of them copies only N stamps.
        windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
        for start in range(0, rows.size, _CHUNK):
            sl = slice(start, start + _CHUNK)
            data[rows[sl], k] = windows[y0[sl] + size, x0[sl] + size]
        del windows, padded
    data[off] = 0.0
    flags = np.full(n, "", dtype=object)
    flags[edge] = FLAG_EDGE
    flags[off] = FLAG_OFF_FRAME
    return _finalise(data, flags)


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------

def make_cutouts(cutouts=None, *, table=None, images=None, size=32, band_order="ugriz",
                 layout=None, ra_column="ra", dec_column="dec"):
    """Bring 5-band stamps in any supported form into sourceclf's layout.

    Parameters
    ----------
    cutouts : array-like, list, str, path-like or `~astropy.io.fits.HDUList`, optional
        The stamps, one per table row:

        * an array of shape ``(N, 5, H, W)`` or ``(N, H, W, 5)``;
        * a list of N entries, each a sequence of five 2-D stamps
          (`~astropy.nddata.Cutout2D`, NDData or arrays) in ``band_order``,
          or a dict ``{band: stamp}``;
        * a dict ``{band: stamps}`` for all of ugriz, each an array of
          shape ``(N, H, W)`` or a list of N 2-D stamps;
        * a FITS file or HDUList with one 4-D image HDU of such stamps (the
          first 4-D HDU is used), or a ``.npy`` file.

        Give either ``cutouts`` or ``images``.
    table : `~astropy.table.Table`, optional
        The catalog the stamps belong to.  Needed with ``images`` (for the
        positions); with ``cutouts`` its length is checked against N.
    images : dict, optional
        Full frames ``{band: frame}`` for all of ugriz, each a path, HDU,
        HDUList, NDData or ``(data, wcs)`` pair; stamps are cut around each
        row's ``ra``/``dec`` with each band's own WCS (see
        `cutouts_from_frames`).
    size : int
        Stamp side in pixels; array and file stamps must be ``size x size``.
    band_order : str or sequence of str
        The bands of the input channels (or of each per-source sequence), in
        order, e.g. ``'grizu'`` or ``['g', 'r', 'i', 'z', 'u']``.  The
        output is always in ugriz order.  Ignored for dicts and frames, whose
        bands are named.
    layout : {'channels_first', 'channels_last', None}
        Axis of the bands in array input: axis 1 (``'channels_first'``) or
        axis 3 (``'channels_last'``).  None infers it from the axis of length
        5, and asks for it when both axes 1 and 3 have length 5.
    ra_column, dec_column : str
        Position columns of ``table`` (case-insensitive), used with
        ``images``.

    Returns
    -------
    result : `CutoutResult`
        ``data``: float32 array of shape ``(N, 5, size, size)``, channels
        first in ugriz order, in the units given (nothing is normalised).
        When the input already is a C-ordered, native float32 channels-first
        ugriz array with no pixel beyond `MAX_PIXEL_VALUE` (nor non-finite),
        ``data`` *is* that array (no copy; for a
        ``.npy`` file, a read-only memory map of it); otherwise it is new and
        the input is never modified.
        ``flags``: one string per row, ``''`` when fine, else ``'edge'``,
        ``'off_frame'``, ``'nan_pixels'``, ``'bad_pixels'`` (see the module
        documentation).

    Raises
    ------
    InvalidInputError
        For stamps of the wrong shape or band count, an ambiguous layout, a
        bad ``band_order``, frames without a WCS, missing bands, or a number
        of stamps that differs from the table's length.

    Examples
    --------
    >>> import numpy as np
    >>> from sourceclf.cutouts import make_cutouts
    >>> stamps = np.ones((3, 32, 32, 5), dtype=np.float32)   # channels last
    >>> result = make_cutouts(stamps)
    >>> result.data.shape, result.flags.tolist()
    ((3, 5, 32, 32), ['', '', ''])
    """
    from astropy.io import fits

    size = check_positive_int(size, "size")
    if cutouts is not None and images is not None:
        raise InvalidInputError("give either cutouts or images (frames), not both")
    if cutouts is None and images is None:
        raise InvalidInputError("no cutouts: give cutouts (array, list or FITS file) or "
                                "images (frames per band) with a table of ra/dec")
    n_table = _table_length(table)
    if images is not None:
        if table is None:
            raise InvalidInputError("images (frames) need a table with ra and dec columns to "
                                    "cut stamps at")
        return cutouts_from_frames(table, images, size, ra_column=ra_column,
                                   dec_column=dec_column)

    order = _band_order(band_order)
    if isinstance(cutouts, CutoutResult):  # e.g. from an earlier call: keep its flags
        result = _from_array(cutouts.data, size=size, band_order=list(BANDS),
                             layout="channels_first")
        merged = [old if not new or new in old.split(";") else _join_flags(old, new)
                  for old, new in zip(np.asarray(cutouts.flags, dtype=str), result.flags)]
        result = result._replace(flags=np.array(merged, dtype=str))
    elif isinstance(cutouts, (str, os.PathLike)):
        result = _from_file(cutouts, size=size, band_order=order, layout=layout)
    elif isinstance(cutouts, fits.HDUList):
        hdu = _stamps_hdu(cutouts, "cutouts HDUList")
        result = _from_array(hdu.data, size=size, band_order=order, layout=layout)
    elif getattr(cutouts, "is_image", False):  # a single image HDU
        result = _from_array(cutouts.data, size=size, band_order=order, layout=layout)
    elif isinstance(cutouts, dict):
        result = _from_band_dict(cutouts, size=size)
    elif isinstance(cutouts, (list, tuple)):
        result = _from_list(cutouts, size=size, band_order=order)
        if result is None:
            result = _from_array(np.stack(cutouts), size=size, band_order=order,
                                 layout=layout)
    else:
        result = _from_array(cutouts, size=size, band_order=order, layout=layout)
    if n_table is not None and len(result.data) != n_table:
        raise InvalidInputError(f"{len(result.data)} cutouts for a table of {n_table} rows; "
                                "give one stamp per row")
    return result
