"""Full frames: one band's image with its celestial WCS, and where a table's rows lie.

`read_frame` reads a frame in any of the forms sourceclf accepts (a FITS path,
compressed too, an HDU or HDUList, NDData, a ``(data, wcs)`` pair) as a
float32 image and its celestial WCS, refusing a frame whose header names
another band than the one it is given for (SDSS's ``FILTER``);
`frames_by_band` checks a ``{band: frame}`` mapping; `sky_positions` reads a
table's RA and Dec in degrees.  `sourceclf.cutouts.cutouts_from_frames` cuts
the stamps.
"""

import os
import re
import warnings
from pathlib import Path

import numpy as np

from .bands import BANDS, SDSS_PIXEL_SCALE, by_band_name
from .catalog_units import angle_unit
from .columns import ColumnFinder, suggest_columns
from .exceptions import InvalidInputError, MissingColumnsError, SourceclfWarning
from .utils._fits import WARNINGS_LOCK, hdu_data, open_fits
from .utils._validation import check_image

__all__ = ["FLAG_PIXEL_SCALE", "PIXEL_SCALE_TOLERANCE", "filter_band", "frames_by_band",
           "pixel_scale_mismatch", "read_frame", "sky_positions"]

#: Flag of an image model's rows on frames whose pixels are not SDSS's 0.396".
FLAG_PIXEL_SCALE = "pixel_scale_mismatch"

#: Largest relative difference from `~sourceclf.bands.SDSS_PIXEL_SCALE` of a frame's
#: pixel scale that is not flagged: the image models' 32-pixel stamps hold a
#: fixed patch of sky, and a network reads sizes in pixels.
PIXEL_SCALE_TOLERANCE = 0.05


def _has_data(obj):
    """Whether ``obj`` has a ``data`` attribute, without reading an HDU's lazy data."""
    return hasattr(type(obj), "data") or "data" in getattr(obj, "__dict__", {})


#: FILTER values read as an SDSS band: ``r``, ``R``, ``r'``, ``SDSS r``, ``sdss_r``,
#: ``r_sdss``, ``r-band``... (the band is group 1 or 2).
_SDSS_FILTER = re.compile(r"^(?:sdss[\s_\-.]*([ugriz])'?|([ugriz])'?(?:[\s_\-.]*(?:sdss|band))?)$",
                          re.IGNORECASE)


def filter_band(value):
    """The SDSS band a header's ``FILTER`` value names (``'r'``, ``"SDSS r"``, ``"r'"``...),
    lower-case; None when it names none (``'F606W'``, ``'HSC-R'``, ``'V'``)."""
    found = _SDSS_FILTER.match(value.strip())
    return None if found is None else (found.group(1) or found.group(2)).lower()


def _header_filter(header):
    """A header's FILTER value ('' when it has none) and the SDSS band it names (None when
    it names none)."""
    value = header.get("FILTER") if header is not None else None
    name = value.strip() if isinstance(value, str) else ""
    return name, (filter_band(name) if name else None)


def _check_filter(header, bands, label):
    """Refuse a frame whose header's FILTER (SDSS frames have one) names an SDSS band other
    than ``bands``; warn when it names a filter that is not SDSS's."""
    name, band = _header_filter(header)
    if bands is None or not name:
        return
    if band is None:
        warnings.warn(f"{label} has FILTER = '{name}' in its header, not an SDSS band: the "
                      "image models were trained on SDSS u g r i z frames; it is read as the "
                      f"{' and '.join(bands)} frame, and the classes may be wrong",
                      SourceclfWarning, stacklevel=5)
    elif any(b != band for b in bands):
        given = " and ".join(bands)
        raise InvalidInputError(f"{label} has FILTER = '{name}' in its header: it is the "
                                f"{band} frame, given for band{'s' if len(bands) > 1 else ''} "
                                f"{given}")


def _wcs_from_header(header, label):
    from astropy.wcs import WCS, FITSFixedWarning

    with WARNINGS_LOCK, warnings.catch_warnings():
        # SDSS headers use the deprecated RADECSYS keyword, among other things.
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception as exc:  # astropy raises many types for broken headers
            raise InvalidInputError(f"{label} has an unreadable WCS: "
                                    f"{str(exc).splitlines()[0]}") from None
    return wcs


def read_frame(frame, *, label=None, bands=None):
    """Read one full image and its celestial WCS.

    Parameters
    ----------
    frame : str, path-like, HDU, `~astropy.io.fits.HDUList`, `~astropy.nddata.NDData` or tuple
        A FITS file (compressed ``.fits.bz2`` / ``.fits.gz`` too), an image
        HDU, an HDUList (its first 2-D image HDU with a celestial WCS, else its
        first 2-D image HDU, is used), an NDData with a
        ``wcs``, or a ``(data, wcs)`` pair where ``wcs`` is a
        `~astropy.wcs.WCS` or a FITS header.
    label : str, optional
        How to name the frame in error messages.
    bands : sequence of str, optional
        The bands it is given for: a frame whose header names another band
        in ``FILTER`` (as SDSS frames do) is refused.

    Returns
    -------
    data : `numpy.ndarray`
        The 2-D image as float32 (in its own units; SDSS frames are in
        nanomaggies).
    wcs : `~astropy.wcs.WCS`
        Its celestial WCS.

    Raises
    ------
    InvalidInputError
        If the file cannot be read, the image is not 2-D or holds no data
        (every pixel zero or not finite), there is no celestial WCS, or its
        ``FILTER`` is not one of ``bands``.
    """
    from astropy.io import fits
    from astropy.nddata import NDData
    from astropy.wcs import WCS

    if label is None:
        label = f"frame '{frame}'" if isinstance(frame, (str, os.PathLike)) else "frame"
    if isinstance(frame, (str, os.PathLike)):
        path = Path(frame)
        if not path.is_file():
            raise InvalidInputError(f"{label}: file '{path}' does not exist")
        if str(path) not in label:
            label = f"{label} ('{path}')"
        with open_fits(path, label) as hdul:
            return read_frame(hdul, label=label, bands=bands)
    if isinstance(frame, fits.HDUList):
        images = [h for h in frame if getattr(h, "is_image", False)
                  and h.header.get("NAXIS", 0) >= 2]
        if not images:
            raise InvalidInputError(f"{label} holds no image HDU")
        # The first image with a sky WCS: a thumbnail or mask may come before the science one.
        placed = [h for h in images if str(h.header.get("CTYPE1", "")).upper().startswith(
            ("RA", "GLON", "ELON"))]
        return read_frame((placed or images)[0], label=label, bands=bands)
    if isinstance(frame, tuple):
        if len(frame) != 2:
            raise InvalidInputError(f"{label} must be a (data, wcs) pair, got a tuple of "
                                    f"{len(frame)}")
        data, wcs = frame
        if isinstance(wcs, fits.Header):
            _check_filter(wcs, bands, label)
            wcs = _wcs_from_header(wcs, label)
    elif isinstance(frame, NDData) and frame.wcs is not None:  # NDData, CCDData
        data, wcs = frame.data, frame.wcs
        _check_filter(getattr(frame, "meta", None), bands, label)
    elif hasattr(frame, "header") and _has_data(frame):  # an HDU, CCDData without wcs
        _check_filter(frame.header, bands, label)
        data, wcs = hdu_data(frame, label), None
        if data is None:
            raise InvalidInputError(f"{label} has no data")
        shape = np.shape(data)
        if len(shape) != 2:
            raise InvalidInputError(f"{label} must be a 2-D image, got shape {shape}")
        wcs = _wcs_from_header(frame.header, label)
    elif isinstance(frame, NDData):  # without a WCS: NDData(data, wcs=WCS(header)) places it
        raise InvalidInputError(f"{label} is an {type(frame).__name__} without a WCS (its .wcs "
                                "is None): give it one, as NDData(data, wcs=WCS(header)), to "
                                "cut stamps at each row's ra/dec")
    else:
        raise InvalidInputError(f"{label} must be a FITS path, an HDU, an HDUList, NDData or "
                                f"a (data, wcs) pair, got {type(frame).__name__}")
    data = check_image(data, label)
    if not np.any(np.isfinite(data) & (data != 0)):
        raise InvalidInputError(f"{label} holds no data: every pixel is zero or not finite")
    if wcs is None or not isinstance(wcs, WCS):
        raise InvalidInputError(f"{label} has no WCS (got {type(wcs).__name__})")
    if not wcs.has_celestial or wcs.naxis != 2:
        raise InvalidInputError(f"{label} has no celestial WCS in its header "
                                "(CTYPE1/2 such as RA---TAN, DEC--TAN)")
    return data, wcs


def _sky_coordinates(table):
    """ICRS RA and Dec in degrees of the table's one `~astropy.coordinates.SkyCoord`
    column, or None if it has none (or several)."""
    from astropy.coordinates import SkyCoord

    found = [n for n in table.colnames if isinstance(table[n], SkyCoord)]
    if len(found) != 1:
        return None
    coords = table[found[0]]
    try:
        icrs = coords.icrs
    except Exception as exc:  # astropy raises several types (no obstime for AltAz...)
        raise InvalidInputError(f"column '{found[0]}' holds coordinates that cannot be "
                                f"turned into ICRS RA and Dec: {str(exc).splitlines()[0]}"
                                ) from None
    return np.array(icrs.ra.deg, dtype=np.float64), np.array(icrs.dec.deg, dtype=np.float64)


def sky_positions(table, ra_column="ra", dec_column="dec"):
    """RA and Dec in degrees (float64, NaN where missing) from a table's columns.

    Without both columns, a table holding one `~astropy.coordinates.SkyCoord`
    column (a `~astropy.table.QTable`'s ``coord``, say) gives its positions,
    transformed to ICRS.

    Raises `~sourceclf.exceptions.MissingColumnsError` if a column is missing
    (suggesting the ``columns=`` mapping when the table has a column other
    catalogs use, such as ``RAJ2000``),
    `~sourceclf.exceptions.InvalidInputError` if one does not hold one number
    per row.
    """
    from astropy import units as u

    finder = ColumnFinder(table)
    names = [finder.find(ra_column), finder.find(dec_column)]
    missing = [want for want, got in zip((ra_column, dec_column), names) if got is None]
    coords = _sky_coordinates(table) if len(missing) == 2 else None
    if coords is not None:
        return _without_bad(*coords)
    if missing:
        hint = suggest_columns(table, missing)
        if any(f"--column {m}=" not in hint for m in missing):
            hint = "; ".join(filter(None, [hint, "have: " + ", ".join(table.colnames)]))
        raise MissingColumnsError(f"table lacks column(s) {', '.join(missing)} needed to cut "
                                  f"stamps from frames; {hint}")
    out = []
    for name in names:
        col = table[name]
        unit = getattr(col, "unit", None)
        mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else None
        raw = np.asarray(getattr(col, "value", np.ma.getdata(col)))
        if raw.ndim == 1 and raw.dtype.kind in "USO" and len(raw):
            raise InvalidInputError(f"column '{name}' holds text ('{raw[0]}'), not degrees: "
                                    "convert sexagesimal positions first, e.g. with astropy's "
                                    "SkyCoord(ra, dec, unit=('hourangle', 'deg'))")
        if raw.ndim != 1 or raw.dtype.kind not in "fiu":
            raise InvalidInputError(f"column '{name}' must hold one number per row, got "
                                    f"dtype {raw.dtype} and shape {raw.shape}")
        values = raw.astype(np.float64)
        if unit is not None and unit != u.dimensionless_unscaled:
            angle = angle_unit(unit)
            if angle is None:
                raise InvalidInputError(f"column '{name}' has unit '{unit}', which is not an "
                                        "angle (give degrees)")
            values = (values * angle).to_value(u.deg)
        if mask is not None and mask.shape == values.shape:
            values[mask] = np.nan
        out.append(values)
    return _without_bad(*out)


def _without_bad(ra, dec):
    """NaN for both coordinates of a row where either is not finite or Dec is past a pole."""
    bad = ~np.isfinite(ra) | ~np.isfinite(dec) | (np.abs(dec) > 90)
    ra[bad] = np.nan
    dec[bad] = np.nan
    return ra, dec


def frames_by_band(images):
    """The frames of a ``{band: frame}`` mapping, keyed by lower-case band name.

    Parameters
    ----------
    images : dict
        ``{band: frame}`` for each of u, g, r, i, z; keys are matched
        case-insensitively and ignoring surrounding spaces.  The frames are
        returned as they are (see `read_frame` for what they may be).

    Returns
    -------
    by_band : dict
        ``{band: frame}`` with the keys of `~sourceclf.bands.BANDS`.

    Raises
    ------
    InvalidInputError
        If ``images`` is not a mapping, names an unknown band or a band
        twice, lacks a band, or gives one frame (one file, object or data
        array) for two bands.
    """
    by_band = by_band_name(images, "images")
    seen = {}
    for band in BANDS:
        key = _frame_identity(by_band[band])
        if key in seen:
            said = _filter_said(by_band[band])
            raise InvalidInputError(f"images gives the same frame for bands {seen[key]} and "
                                    f"{band}" + (f" (its FILTER says {said})" if said else "")
                                    + ": each band needs its own")
        seen[key] = band
    return {band: by_band[band] for band in BANDS}


def _filter_said(frame):
    """The band a frame's header names in FILTER, read for an error message: a file's
    primary header, an HDU's own; '' when there is none or it cannot be read."""
    header = getattr(frame, "header", None)
    if isinstance(frame, (str, os.PathLike)):
        try:
            from astropy.io import fits

            header = fits.getheader(frame)
        except (OSError, ValueError, TypeError):  # only the message is at stake
            return ""
    band = _header_filter(header)[1]
    return f"'{band}'" if band else ""


def _frame_identity(frame):
    """What makes two bands' frames one: a file's resolved path, else the data array of
    a ``(data, wcs)`` pair, else the object itself (an HDU, NDData...)."""
    if isinstance(frame, (str, os.PathLike)):
        return ("path", str(Path(frame).resolve()))
    if isinstance(frame, (tuple, list)) and frame:
        return ("object", id(frame[0]))
    return ("object", id(frame))


def pixel_scale_mismatch(frames, *, tolerance=PIXEL_SCALE_TOLERANCE):
    """The bands whose frame's pixel scale is not SDSS's, with that scale.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}`` (`sourceclf.inputs.read_frames`).
    tolerance : float
        `PIXEL_SCALE_TOLERANCE`.

    Returns
    -------
    scales : dict
        ``{band: arcsec per pixel}`` of the frames more than ``tolerance``
        (relative) from `~sourceclf.bands.SDSS_PIXEL_SCALE`; empty when all
        are SDSS's.
    """
    from .utils._wcs import pixel_scale

    scales = {b: pixel_scale(frames[b][1]) for b in BANDS}
    return {b: s for b, s in scales.items() if abs(s / SDSS_PIXEL_SCALE - 1.0) > tolerance}
