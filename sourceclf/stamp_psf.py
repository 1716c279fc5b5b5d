"""The PSF of stamps given without their frames, measured on their own point sources.

Stamps cut from a frame show the frame's PSF in their point sources.
`stamps_psf` lays one band's stamps side by side, each less its median, into
one image (`stamp_mosaic`) and measures the PSF there with
`sourceclf.psf.measure_psf`, as on a frame: the isolated bright point sources
on the stellar locus, each fitted with a Moffat profile, and the median of
the point-source locus.  Each stamp's source lies at its centre, so that the
stamps' sources are as far apart as the stamps are wide, and a neighbour
within a stamp is as isolated as on the frame.  Only the stamps' own
sources are fitted (`STAMP_CENTRE_RADIUS`): a neighbour in a stamp's corner
may be cut by its border.  The mosaic is framed by sky noise of the stamps'
own level, as wide as the window a star is fitted on, so that the stamps of
the grid's outer ring are fitted as the inner ones are (without it, at a
wide PSF the window ran off the image there).  A band whose stamps show too
few point sources of their own is fitted at the stamps whose sources the other bands' stamps
showed to be point sources (`stamps_psf_at`, `band_psf_shapes`), as
`sourceclf.field_psf.field_band_psf` borrows a field's stars for a frame.
On the stamps of the clean bright sources of the shared SDSS fields,
natively and blurred, the r-band PSF's FWHM and Moffat index agree with
the frame's
(``docs/scripts/stamps_check.py`` prints both; ``tests/test_stamp_psf.py``
checks the calibObj stars of field 4510-4-0030).

Stamps from frames of different seeing give the median of their PSFs.  Where
each row's FWHM is known (the catalog's ``psffwhm_<b>``), `stamps_psf_shape`
measures the shape (Moffat index and elongation) on the stamps of each FWHM
(`fwhm_groups`) apart, so that the rows of a sharp frame do not take the
shape of a blurred one's.  `sourceclf.classify` reads the Moffat index of
the stamps for the image-only model and MargNet's columns measured on the
stamps, and their elongation to flag rows ``psf_elongated``
(`sourceclf.elongation`), as it does on frames.
"""

from typing import NamedTuple

import numpy as np

from .bands import BANDS, SDSS_PIXEL_SCALE
from .exceptions import InvalidInputError
from .field_psf import measure_psf_at, remembered_content
from .psf import fit_half_size, measure_psf

__all__ = ["stamp_mosaic", "stamps_psf", "stamps_psf_at", "stamps_psf_shape", "StampPSFShape",
           "stamps_moffat_index", "band_psf_shapes", "band_moffat_indices",
           "read_stamp_rows", "fwhm_groups",
           "MOSAIC_STAMPS", "STAMP_CENTRE_RADIUS", "PSF_FWHM_STEP", "SHAPE_GROUP_STAMPS"]

#: Stamps laid into a mosaic at most (evenly spaced over the rows beyond).
MOSAIC_STAMPS = 2500

#: Farthest a PSF star may lie from its stamp's centre (pixels) in `stamps_psf`:
#: each stamp's own source, centred on it, is fitted, not a neighbour in its
#: corner, which the stamp's border may cut and the next stamp's pixels
#: join (on the crowded field 005405-6-0099 blurred to 2.2", such fits read
#: ``1 - b/a`` of 0.20-0.28 where the frames' PSF has 0.03-0.05).
STAMP_CENTRE_RADIUS = 2.5

#: Grid (arcsec) on which a FWHM given per row is rounded (`fwhm_groups`), so
#: that the rows of one seeing are measured together: SDSS gives one
#: ``psffwhm`` per field and band, so a field's rows fall in one group.  A
#: FWHM is then off by at most 0.01" (under 1% of any seeing SDSS has).
PSF_FWHM_STEP = 0.02

#: Fewest stamps of one FWHM group whose point sources are measured for its
#: own PSF shape (`stamps_moffat_index`); fewer take the shape of all stamps.
SHAPE_GROUP_STAMPS = 30


def stamp_mosaic(stamps, *, border=0):
    """One band's stamps side by side in a square grid, each less its median.

    Parameters
    ----------
    stamps : array-like
        Shape ``(N, H, W)``.  Non-finite pixels become 0 (the sky).
    border : int
        Pixels of sky noise around the grid: Gaussian, of the stamps' own
        noise (`~astropy.stats.mad_std` of their pixels), drawn with a fixed
        seed, so that the fit window around a source in the grid's outer
        ring stays on the image, as for a source in its inner places.

    Returns
    -------
    mosaic : `numpy.ndarray`
        ``float32`` image of ``ceil(sqrt(N))`` stamps a side (plus ``border``
        on every side), zero where the grid has no stamp.

    Examples
    --------
    >>> import numpy as np
    >>> stamp_mosaic(np.ones((5, 32, 32))).shape
    (96, 96)
    >>> stamp_mosaic(np.ones((5, 32, 32)), border=10).shape
    (116, 116)
    """
    from astropy.stats import mad_std

    stamps = np.asarray(stamps, dtype=np.float32)
    if stamps.ndim != 3 or not len(stamps):
        raise InvalidInputError(f"stamps of shape {stamps.shape}: expected (N, H, W), N > 0")
    n, h, w = stamps.shape
    side = _grid_side(n)
    clean = np.where(np.isfinite(stamps), stamps, np.float32(0.0))
    clean -= np.median(clean, axis=(1, 2), keepdims=True)
    grid = np.zeros((side * side, h, w), dtype=np.float32)
    grid[:n] = clean
    mosaic = grid.reshape(side, side, h, w).transpose(0, 2, 1, 3).reshape(side * h, side * w)
    if border <= 0:
        return mosaic
    framed = np.random.default_rng(0).normal(  # clean is finite: so is its noise
        0.0, float(mad_std(clean)), (side * h + 2 * border, side * w + 2 * border))
    framed = framed.astype(np.float32)
    framed[border:-border, border:-border] = mosaic
    return framed


def _mosaic_border(fwhm_guess, pixel_scale):
    """`stamp_mosaic`'s ``border`` for a PSF of about ``fwhm_guess`` arcsec: the half side of
    the window `sourceclf.psf.measure_psf` fits a star of twice that FWHM on, so that an
    outer stamp's source is fitted as the inner ones are."""
    return fit_half_size(2.0 * float(fwhm_guess) / float(pixel_scale))


def _grid_side(n):
    """Stamps a side of the square grid `stamp_mosaic` lays ``n`` stamps in."""
    return int(np.ceil(np.sqrt(n)))


def _stamp_centres(places, n, shape, border=0):
    """Pixel positions, on the mosaic of ``n`` stamps of ``shape`` ``(H, W)`` framed by
    ``border``, of the centres of the stamps laid at ``places`` (`stamp_mosaic`'s order)."""
    side, (h, w) = _grid_side(n), shape
    places = np.asarray(places)
    return (border + (places % side) * w + (w - 1) / 2,
            border + (places // side) * h + (h - 1) / 2)


def _grid_place(x, y, n, shape, border):
    """For positions on the mosaic of ``n`` stamps of ``shape`` ``(H, W)`` framed by
    ``border`` (`stamp_mosaic`), the place of the stamp each lies on (`stamp_mosaic`'s
    order; -1 on the frame of noise) and its offset ``(dx, dy)`` from that stamp's centre."""
    side, (h, w) = _grid_side(n), shape
    x = np.asarray(x, float) - border
    y = np.asarray(y, float) - border
    on_grid = (x >= 0) & (y >= 0) & (x < side * w) & (y < side * h)
    place = np.where(on_grid, (y // h) * side + x // w, -1).astype(int)
    return place, x % w - (w - 1) / 2, y % h - (h - 1) / 2


def _read_mask(rows, n):
    """``rows`` (bool or indices; None: all) as a bool mask over ``n`` stamps."""
    read = np.zeros(n, dtype=bool)
    read[slice(None) if rows is None else np.asarray(rows)] = True
    return read


def stamps_psf(stamps, *, pixel_scale=SDSS_PIXEL_SCALE, fwhm_guess=1.0, min_stars=5,
               label="stamps"):
    """The PSF of one band's stamps, measured on their point sources.

    Parameters
    ----------
    stamps : array-like
        Shape ``(N, H, W)``, each centred on its source, in any flux unit.
        At most `MOSAIC_STAMPS` of them are read (evenly spaced).
    pixel_scale : float
        Arcsec per pixel.
    fwhm_guess : float
        Rough FWHM (arcsec) to start the star finder with.
    min_stars : int
        Fewest point sources accepted.
    label : str
        Name of the stamps in error messages.

    Returns
    -------
    psf : `sourceclf.psf.PSFMeasurement`
        Of the mosaic (`stamp_mosaic`, framed by sky noise as wide as the fit
        window of a star twice ``fwhm_guess`` wide, so that the grid's outer
        stamps are fitted too); its ``stars`` are pixel positions on it.
        While a `sourceclf.field_psf.psf_memo` is open, the same stamps are
        measured once (`sourceclf.field_psf.remembered_content`, by the
        mosaic's bytes), and a failure is kept as well.

    Raises
    ------
    InvalidInputError
        If fewer than ``min_stars`` isolated point sources of good S/N are
        found (as `sourceclf.psf.measure_psf`).

    Examples
    --------
    >>> import numpy as np
    >>> from sourceclf.psf import moffat_profile
    >>> rng = np.random.default_rng(2)
    >>> yy, xx = np.mgrid[:32, :32] - 16.0
    >>> star = 2000.0 * moffat_profile(xx, yy, 3.0, 3.5)   # FWHM 3 pixels
    >>> stamps = star + rng.normal(0.0, 1.0, (30, 32, 32))
    >>> psf = stamps_psf(stamps, pixel_scale=1.0, fwhm_guess=3.0)
    >>> round(psf.fwhm, 1), round(psf.beta, 1)
    (3.0, 3.5)
    """
    stamps = np.asarray(stamps)
    if stamps.ndim == 3 and len(stamps) > MOSAIC_STAMPS:
        stamps = stamps[np.linspace(0, len(stamps) - 1, MOSAIC_STAMPS).astype(int)]
    border = _mosaic_border(fwhm_guess, pixel_scale)
    mosaic = stamp_mosaic(stamps, border=border)

    def centred(x, y):  # each stamp's own source, not a neighbour its border cuts
        place, dx, dy = _grid_place(x, y, len(stamps), stamps.shape[1:], border)
        return (place >= 0) & (np.hypot(dx, dy) <= STAMP_CENTRE_RADIUS)

    return _measured_once(
        (mosaic,), ("stamps_psf", float(pixel_scale), float(fwhm_guess), int(min_stars), label),
        lambda: measure_psf(mosaic, pixel_scale=pixel_scale, fwhm_guess=fwhm_guess,
                            min_stars=min_stars, label=label, where=centred))


def _measured_once(arrays, tag, measure):
    """``measure()``, once per content of ``arrays`` and ``tag`` while a
    `sourceclf.field_psf.psf_memo` is open (`sourceclf.field_psf.remembered_content`); the
    `InvalidInputError` it raises is kept too, and raised again: the next step would fail
    the same way."""
    def kept():
        try:
            return measure(), None
        except InvalidInputError as exc:
            return None, exc.with_traceback(None)  # not its frames' arrays, while kept

    psf, error = remembered_content(arrays, tag, kept)
    if error is not None:
        raise error
    return psf


def fwhm_groups(fwhm, step=PSF_FWHM_STEP):
    """Each row's FWHM rounded to a grid of ``step`` (NaN stays NaN).

    Examples
    --------
    >>> fwhm_groups([0.991, 1.004, 1.935, float("nan")]).round(2).tolist()
    [1.0, 1.0, 1.94, nan]
    """
    return np.round(np.asarray(fwhm, dtype=float) / step) * step


class StampPSFShape(NamedTuple):
    """The PSF's shape per row of one band's stamps (`stamps_psf_shape`)."""

    #: Moffat index per row (NaN where none could be measured).
    beta: np.ndarray
    #: ``1 - b/a`` per row (`sourceclf.psf.PSFMeasurement.ellipticity`; NaN likewise).
    ellipticity: np.ndarray
    #: Per row, ``'own'`` (its FWHM group's), ``'all'`` (all the stamps'),
    #: ``'borrowed'`` (`band_psf_shapes`: on the stamps whose sources other bands'
    #: stamps showed to be point sources) or ``''`` (none).
    source: np.ndarray
    #: Per row, whether its stamp's source was fitted as a PSF star.
    stars: np.ndarray


def stamps_psf_shape(stamps, fwhm, *, rows=None, pixel_scale=SDSS_PIXEL_SCALE,
                     min_stamps=SHAPE_GROUP_STAMPS, label="stamps"):
    """The shape of each row's PSF (Moffat index, elongation), measured on stamps of its FWHM.

    The stamps of each FWHM group (`fwhm_groups`) holding at least
    ``min_stamps`` of them are measured apart (`stamps_psf`); the other rows
    take the shape measured on all the stamps, and where that cannot be
    measured either (too few point sources) they get NaN.  While a
    `sourceclf.field_psf.psf_memo` is open, the same stamps are measured
    once (`stamps_psf`): MargNet's columns measured on the stamps and the
    image model's inputs read one measurement.

    Parameters
    ----------
    stamps : array-like
        One band's stamps, shape ``(N, H, W)``, each centred on its source.
    fwhm : float or array-like
        The PSF's FWHM (arcsec): one for all rows, or one per row (NaN where
        unknown: such a row is not measured, and gets the shape of all).
    rows : array-like of bool or int, optional
        The stamps read to measure the shapes (say, those neither padded
        nor holding a hole, `sourceclf.cutouts.make_cutouts`' unflagged
        rows); default all.  Every row still gets a shape: a group's, when
        at least ``min_stamps`` of its stamps are read, else that of all the
        stamps read.
    pixel_scale : float
        Arcsec per pixel.
    min_stamps : int
        Fewest stamps of a group measured apart.
    label : str
        Name of the stamps in messages.

    Returns
    -------
    shape : `StampPSFShape`
        ``beta``, ``ellipticity``, ``source`` and ``stars`` per row.

    Examples
    --------
Stamps of two seeings, a round PSF of FWHM 3 pixels and one of 5 pixels
stretched along x to an axis ratio of 0.7 (which the Gaussian-weighted moments
of `sourceclf.psf.PSFMeasurement.ellipticity` read as ``1 - b/a`` of 0.17,
the measure `sourceclf.elongation.ELONGATION_LIMIT` is set in):

    >>> import numpy as np
    >>> from sourceclf.psf import moffat_profile
    >>> yy, xx = np.mgrid[:32, :32] - 16.0
    >>> noise = np.random.default_rng(3).normal(0.0, 1.0, (60, 32, 32))
    >>> round_ = 2000.0 * moffat_profile(xx, yy, 3.0, 2.5)
    >>> stretched = 2000.0 * moffat_profile(xx * 0.7, yy, 5.0, 6.0)
    >>> stamps = np.concatenate([round_ + noise[:30], stretched + noise[30:]])
    >>> shape = stamps_psf_shape(stamps, np.repeat([3.0, 5.0], 30), pixel_scale=1.0)
    >>> float(shape.beta[0].round(1)), shape.ellipticity[[0, -1]].round(2).tolist()
    (2.5, [0.0, 0.17])
    """
    stamps = np.asarray(stamps)
    n = len(stamps)
    fwhm = np.broadcast_to(np.asarray(fwhm, dtype=float), (n,))
    read = _read_mask(rows, n)  # the stamps measured
    groups = fwhm_groups(fwhm)
    beta, ellipticity = np.full(n, np.nan), np.full(n, np.nan)
    source = np.full(n, "", dtype="<U8")
    stars = np.zeros(n, dtype=bool)
    known = np.isfinite(groups)
    values = np.unique(groups[known])
    for value in values:
        members = known & (groups == value)
        if (members & read).sum() < min_stamps or len(values) == 1:
            continue  # one group is measured as all the stamps, below
        laid = _laid(members & read)
        try:
            seen = stamps_psf(stamps[laid], pixel_scale=pixel_scale, fwhm_guess=value,
                              label=label)
        except InvalidInputError:
            continue
        beta[members], ellipticity[members], source[members] = seen.beta, seen.ellipticity, "own"
        stars[_fitted_rows(seen, laid, stamps.shape[1:], value, pixel_scale)] = True
    rest = source == ""
    if rest.any() and known.any():
        laid = _laid(read)
        guess = float(np.median(fwhm[known]))
        try:
            every = stamps_psf(stamps[laid], pixel_scale=pixel_scale, fwhm_guess=guess,
                               label=label)
        except InvalidInputError:
            return StampPSFShape(beta, ellipticity, source, stars)
        beta[rest], ellipticity[rest] = every.beta, every.ellipticity
        source[rest] = np.where(known[rest] & (len(values) == 1), "own", "all")
        stars[_fitted_rows(every, laid, stamps.shape[1:], guess, pixel_scale)] = True
    return StampPSFShape(beta, ellipticity, source, stars)


def _fitted_rows(psf, laid, shape, fwhm_guess, pixel_scale):
    """The rows (of ``laid``, the stamps laid into the mosaic) whose sources ``psf``, the
    mosaic's `stamps_psf` with ``fwhm_guess`` and ``pixel_scale`` (which set the mosaic's
    border, `_mosaic_border`), fitted as PSF stars; ``shape``: a stamp's ``(H, W)``."""
    border = _mosaic_border(fwhm_guess, pixel_scale)
    place = _grid_place(psf.stars["x"], psf.stars["y"], len(laid), shape, border)[0]
    return laid[place[(place >= 0) & (place < len(laid))]]


def stamps_psf_at(stamps, rows, *, pixel_scale=SDSS_PIXEL_SCALE, fwhm_guess=1.0,
                  label="stamps"):
    """The PSF of one band's stamps, fitted on the sources of given stamps.

    What `sourceclf.field_psf.borrowed_band_psf` does for a frame: the stamps
    (at most `MOSAIC_STAMPS`, evenly spaced) are laid into a mosaic as
    `stamps_psf` lays them, and `sourceclf.field_psf.measure_psf_at` fits the
    sources at the centres of the stamps ``rows`` names (say, those another
    band's stamps showed to be point sources), those above its S/N floor.
    Measured once while a `sourceclf.field_psf.psf_memo` is open.

    Parameters
    ----------
    stamps : array-like
        Shape ``(N, H, W)``, each centred on its source.
    rows : array-like of bool
        Per stamp, whether its source is fitted.
    pixel_scale : float
        Arcsec per pixel.
    fwhm_guess : float
        Rough FWHM (arcsec).
    label : str
        Name of the stamps in error messages.

    Returns
    -------
    psf : `sourceclf.psf.PSFMeasurement`

    Raises
    ------
    InvalidInputError
        If fewer than five of those sources give a fit on the point-source locus.
    """
    stamps, rows = np.asarray(stamps), np.asarray(rows, dtype=bool)
    if rows.shape != stamps.shape[:1]:
        raise InvalidInputError(f"stamps_psf_at: {rows.size} rows named for "
                                f"{len(stamps)} stamps")
    laid = _laid(np.ones(len(stamps), dtype=bool))
    border = _mosaic_border(fwhm_guess, pixel_scale)
    mosaic = stamp_mosaic(stamps[laid], border=border)
    x, y = _stamp_centres(np.flatnonzero(rows[laid]), len(laid), stamps.shape[1:], border)

    return _measured_once(
        (mosaic, x, y), ("stamps_psf_at", float(pixel_scale), float(fwhm_guess), label),
        lambda: measure_psf_at(mosaic, x, y, pixel_scale=pixel_scale, fwhm_guess=fwhm_guess,
                               label=label))


def _laid(rows):
    """The indices of the stamps `stamps_psf` lays into its mosaic, of those ``rows`` (bool)
    names: at most `MOSAIC_STAMPS`, evenly spaced (only those are copied)."""
    index = np.flatnonzero(rows)
    if len(index) > MOSAIC_STAMPS:
        index = index[np.linspace(0, len(index) - 1, MOSAIC_STAMPS).astype(int)]
    return index


def stamps_moffat_index(stamps, fwhm, *, rows=None, pixel_scale=SDSS_PIXEL_SCALE,
                        min_stamps=SHAPE_GROUP_STAMPS, label="stamps"):
    """The Moffat index of each row's PSF, measured on stamps of its own FWHM.

    `stamps_psf_shape`'s ``beta`` and ``source`` (its parameters).

    Returns
    -------
    beta : `numpy.ndarray`
        Index per row (NaN where none could be measured).
    source : `numpy.ndarray`
        Per row, ``'own'`` (its group's), ``'all'`` (all stamps') or ``''``.

    Examples
    --------
Stamps of two seeings, a FWHM of 3 and 5 pixels, Moffat indices 2.5 and 6:

    >>> import numpy as np
    >>> from sourceclf.psf import moffat_profile
    >>> yy, xx = np.mgrid[:32, :32] - 16.0
    >>> noise = np.random.default_rng(3).normal(0.0, 1.0, (60, 32, 32))
    >>> sharp, wide = (2000.0 * moffat_profile(xx, yy, f, b) for f, b in ((3.0, 2.5), (5.0, 6.0)))
    >>> stamps = np.concatenate([sharp + noise[:30], wide + noise[30:]])
    >>> beta, source = stamps_moffat_index(stamps, np.repeat([3.0, 5.0], 30), pixel_scale=1.0)
    >>> beta[[0, -1]].round(1).tolist(), source[[0, -1]].tolist()
    ([2.5, 6.1], ['own', 'own'])
    """
    shape = stamps_psf_shape(stamps, fwhm, rows=rows, pixel_scale=pixel_scale,
                             min_stamps=min_stamps, label=label)
    return shape.beta, shape.source


def read_stamp_rows(clean):
    """The stamps whose shared estimates (sky noise, Moffat index) are read: those
    `sourceclf.cutouts.make_cutouts` left unflagged (``clean``: bool per row), or all of
    them when every stamp is flagged."""
    clean = np.asarray(clean, dtype=bool)
    return np.flatnonzero(clean) if clean.any() else np.arange(len(clean))


def band_psf_shapes(stamps, fwhm, *, rows=None, bands=BANDS):
    """`stamps_psf_shape` of each band of 5-band stamps, borrowing stars between bands.

    Where a band's stamps show too few point sources of their own (SDSS's
    shallow u, or any band of a crowded field at bad seeing), the rows left
    without a shape are measured on that band's stamps of the sources the
    other bands' stamps showed to be point sources (`stamps_psf_at`; as
    `sourceclf.field_psf.field_band_psf` borrows stars for a frame), their
    ``source`` ``'borrowed'``.

    Parameters
    ----------
    stamps : array-like
        Stamps of shape ``(N, 5, H, W)``, bands in `~sourceclf.bands.BANDS` order.
    fwhm : dict
        ``{band: FWHM}`` (arcsec): one for all rows or one per row.
    rows : array-like, optional
        The stamps read (`read_stamp_rows`); default all.
    bands : sequence of str
        The bands measured (the others lend no stars).

    Returns
    -------
    shapes : dict
        ``{band: StampPSFShape}``.
    """
    stamps = np.asarray(stamps)
    shapes = {band: stamps_psf_shape(stamps[:, BANDS.index(band)], fwhm[band], rows=rows,
                                     label=f"the stamps of band '{band}'")
              for band in bands}
    read = _read_mask(rows, len(stamps))
    for band, shape in shapes.items():
        width = np.broadcast_to(np.asarray(fwhm[band], dtype=float), (len(stamps),))
        lacking = (shape.source == "") & np.isfinite(width)
        donors = np.any([other.stars for b, other in shapes.items() if b != band], axis=0) \
            if len(shapes) > 1 else np.zeros(len(stamps), dtype=bool)
        if not lacking.any() or not (donors & read).any():
            continue
        laid = _laid(read)  # only those stamps are copied
        try:
            seen = stamps_psf_at(stamps[laid, BANDS.index(band)], donors[laid],
                                 fwhm_guess=float(np.median(width[lacking])),
                                 label=f"the stamps of band '{band}'")
        except InvalidInputError:
            continue
        shape.beta[lacking], shape.ellipticity[lacking] = seen.beta, seen.ellipticity
        shape.source[lacking] = "borrowed"
    return shapes


def band_moffat_indices(stamps, fwhm, *, rows=None):
    """`stamps_moffat_index` of each band of 5-band stamps (`band_psf_shapes`, every band,
    whose parameters these are).

    Returns
    -------
    beta, source : dict
        ``{band: index per row}`` and ``{band: where each came from}``, as
        `StampPSFShape` gives them (``'borrowed'`` too).
    """
    shapes = band_psf_shapes(stamps, fwhm, rows=rows)
    return ({band: s.beta for band, s in shapes.items()},
            {band: s.source for band, s in shapes.items()})
