"""MargNet's catalog columns measured on images, by profile fits as SDSS measures them.

MargNet's catalog models (``margnet-sgq``, ``margformer-sgq`` and their
Bayesian variants) read 24 SDSS catalog columns next to the stamps: model
magnitudes, de Vaucouleurs radii, PSF widths, extinctions and colours.  This
module measures them on the images themselves, so that the same models serve
a catalog that holds only positions (`measure_columns`: full frames, used by
`sourceclf.classify` when the table lacks the columns) and the simulated
training stamps (`sourceclf.recipes.measured_columns`), with the same fits:

1. each source's stamp is cut from the band's frame, less its median
   (`source_stamps`);
2. each stamp is fitted at its source's sub-pixel position (the best of 25
   of a PSF matched filter: `~sourceclf.profile_fits.subpixel_offsets`, the
   templates moved there by `~sourceclf.profile_fits.templates_at`) by least squares
   with de Vaucouleurs profiles convolved with the band's PSF
   (`sourceclf.profile_fits`: `~sourceclf.profile_fits.profile_templates`,
   half-light radii `~sourceclf.profile_fits.PROFILE_RADII`, the
   radius 0 being the PSF itself), each together with a PSF at every
   neighbour and a constant sky (`sourceclf.neighbour_fits`: the neighbours
   are the stamp's other peaks and those the residual of a point-source fit
   shows; how much of the light at the source they bring is its
   ``blendedness_<b>``);
3. as in SDSS's catalog, ``deVRad_<b>`` is the radius of the band's best
   fit, the PSF flux that of the radius-0 fit, and the model magnitude of
   every band the flux of the r band's best profile fitted in that band, so
   that colours are measured through one profile (`columns_from_fits`;
   magnitudes are SDSS's asinh magnitudes, `luptitude`).

The simulated training stamps of the shipped models were measured without
their neighbours (exactly removed), or on half the rows after the segment
deblender `deblend_frame` (`detect_segments`, then every pixel of a segment
to its nearest peak), which `measure_columns` used before the neighbour
fits; a neighbour without a peak of its own stayed in the source's pixels.

The PSF templates are Moffat cores without the real PSF's wing, so point
sources come out about 0.1 mag faint, in the simulation and on real frames
alike; colours are unaffected.  The templates are drawn at SDSS's pixel
scale (`sourceclf.bands.SDSS_PIXEL_SCALE`) for simulated stamps
(`~sourceclf.profile_fits.fit_band`), at each frame's own (its WCS's) in
`measure_columns`, so that the PSF and the radii are the frame's in arcsec.
"""

import warnings
from typing import NamedTuple

import numpy as np
from astropy.table import Table

from .bands import BANDS, SDSS_PIXEL_SCALE
from .columns import ColumnFinder
from .frames import sky_positions
from .exceptions import InvalidInputError
from .profile_fits import PROFILE_RADII, fit_with_neighbours, profile_templates
from .field_psf import field_psfs
from .registration import register_frames
from .psf import CATALOG_PSF_SCALE, PSFMeasurement, sky_level
from .stamp_psf import fwhm_groups
from .utils._wcs import pixel_scale

__all__ = ["luptitude", "columns_from_fits", "detect_segments", "deblend_frame",
           "source_stamps", "BandStamps", "frame_stamps", "measure_columns",
           "measure_stamp_columns", "catalog_extinction",
           "STAMP_SIZE", "ASSUMED_BETA"]

#: Side (pixels) of the stamp each source is fitted on.
STAMP_SIZE = 32

#: Moffat index of a PSF given by its FWHM alone (as
#: `sourceclf.saturation.saturation_flags` assumes; the shared SDSS fields' PSFs have
#: 2.6-4.5).
ASSUMED_BETA = 3.5

#: SDSS asinh-magnitude softening per band (Lupton et al. 1999; SDSS DR docs).
_LUPTON_B = {"u": 1.4e-10, "g": 0.9e-10, "r": 1.2e-10, "i": 1.8e-10, "z": 7.4e-10}


def luptitude(flux, band):
    """SDSS asinh magnitude of a flux in nanomaggies (finite for fluxes <= 0 too)."""
    b = _LUPTON_B[band]
    return -2.5 / np.log(10) * (np.arcsinh(np.asarray(flux, float) * 1e-9 / (2 * b)) + np.log(b))


def detect_segments(data, fwhm, sky_sigma):
    """Sources of a frame: its segmentation image.

    The detection of `~sourceclf.recipes.extent_truth.frame_truth` and of
    `deblend_frame`.

    Parameters
    ----------
    data : array-like
        Sky-subtracted 2-D frame.
    fwhm : float
        FWHM of its PSF, pixels (the frame is smoothed by a Gaussian of it).
    sky_sigma : float
        Sky noise per pixel: pixels of the smoothed frame above twice it, in
        groups of 8 or more, are sources.

    Returns
    -------
    smooth : `numpy.ndarray`
        The smoothed frame (float32).
    segments : `~photutils.segmentation.SegmentationImage` or None
        None where nothing is detected.

    Raises
    ------
    InvalidInputError
        Without photutils (the ``images`` extra).
    """
    from scipy.ndimage import gaussian_filter

    try:
        from photutils.segmentation import detect_sources
        from photutils.utils.exceptions import NoDetectionsWarning
    except ImportError:
        raise InvalidInputError("finding the sources of a frame needs photutils: "
                                "pip install 'sourceclf[images]'") from None
    smooth = gaussian_filter(np.asarray(data, dtype=np.float32), fwhm / 2.3548)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)  # None says so
        return smooth, detect_sources(smooth, 2.0 * sky_sigma, n_pixels=8)


def columns_from_fits(table, fluxes, best, psffwhm, extinction=None, *, radii=PROFILE_RADII,
                      blendedness=None, unmodelled=None):
    """Set MargNet's columns from profile fits (in place).

    Parameters
    ----------
    table : `~astropy.table.Table`
        Rows to set ``dered_<b>``, ``deVRad_<b>``, ``psffwhm_<b>``,
        ``extinction_<b>``, ``psf_flux_<b>`` and ``u_g g_r r_i i_z`` in.
    fluxes : array-like, shape (n, 5, k)
        Fitted flux (nanomaggies) of each of the ``k`` profiles, per band
        (`~sourceclf.profile_fits.fit_profiles`).
    best : array-like of int, shape (n, 5)
        Each band's best profile.
    psffwhm : array-like, shape (n, 5)
        SDSS catalog PSF width per band, arcsec.
    extinction : array-like, shape (n, 5), optional
        Galactic extinction per band, mag (default 0: no correction).
    radii : sequence of float
        The profiles' half-light radii, arcsec.
    blendedness : array-like, shape (n, 5), optional
        Per band, the share of the light at the source that its neighbours
        put there (`~sourceclf.profile_fits.fit_with_neighbours`); given, set as
        ``blendedness_<b>``.
    unmodelled : array-like, shape (n, 5), optional
        Per band, the light the fits leave around the source over its own
        there (`sourceclf.unmodelled_light.unmodelled_light`); given, set as
        ``unmodelled_<b>``.

    Returns
    -------
    table : `~astropy.table.Table`
        ``deVRad_<b>``: the radius of the band's best profile;
        ``dered_<b>``: the SDSS asinh magnitude of the flux of the r band's
        best profile in that band, minus the extinction; colours of the
        observed (not extinction-corrected) magnitudes, as MargNet's are;
        ``psf_flux_<b>``: the point-source fit's flux.
    """
    fluxes = np.asarray(fluxes, dtype=np.float64)
    best = np.asarray(best, dtype=int)
    psffwhm = np.asarray(psffwhm, dtype=np.float64)
    n = len(fluxes)
    extinction = np.zeros((n, len(BANDS))) if extinction is None else np.asarray(extinction,
                                                                                 float)
    radii = np.asarray(radii, dtype=np.float64)
    r_profile = best[:, BANDS.index("r")]
    mags = {}
    for k, b in enumerate(BANDS):
        mags[b] = luptitude(fluxes[np.arange(n), k, r_profile], b)
        table[f"dered_{b}"] = mags[b] - extinction[:, k]
        table[f"dered_{b}"].unit = "mag"
        table[f"deVRad_{b}"] = radii[best[:, k]]
        table[f"deVRad_{b}"].unit = "arcsec"
        table[f"psffwhm_{b}"] = psffwhm[:, k]
        table[f"psffwhm_{b}"].unit = "arcsec"
        table[f"extinction_{b}"] = extinction[:, k]
        table[f"extinction_{b}"].unit = "mag"
        table[f"psf_flux_{b}"] = fluxes[:, k, 0]
        if blendedness is not None:
            table[f"blendedness_{b}"] = np.asarray(blendedness, dtype=np.float64)[:, k]
        if unmodelled is not None:
            table[f"unmodelled_{b}"] = np.asarray(unmodelled, dtype=np.float64)[:, k]
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        table[f"{a}_{b}"] = mags[a] - mags[b]
        table[f"{a}_{b}"].unit = "mag"
    return table


def deblend_frame(data, fwhm, sky_sigma, x, y):
    """Deblended segments of a band's frame and each source's own one.

    Sources are detected with `detect_segments`; each segment is then split
    between its peaks (local maxima of the smoothed frame), every pixel going
    to the nearest: a simple deblender (photutils' ``deblend_sources`` needs
    scikit-image, which sourceclf does not depend on).  A source's own part is
    that of the peak nearest to it.

    Parameters
    ----------
    data : array-like
        Sky-subtracted 2-D frame.
    fwhm : float
        FWHM of its PSF, pixels.
    sky_sigma : float
        Its sky noise per pixel.
    x, y : array-like
        The sources' positions, pixels.

    Returns
    -------
    parts : `numpy.ndarray` of int or None
        The frame's pixels labelled by deblended source (0: sky); None when
        nothing is detected.
    labels : `numpy.ndarray` of int or None
        Each source's own label in ``parts``.
    """
    from scipy.ndimage import maximum_filter
    from scipy.spatial import cKDTree

    smooth, segm = detect_segments(data, fwhm, sky_sigma)
    if segm is None:
        return None, None
    inside = segm.data > 0
    peak_y, peak_x = np.nonzero((maximum_filter(smooth, size=3) == smooth) & inside)
    tree = cKDTree(np.c_[peak_x, peak_y])
    parts = np.zeros(segm.data.shape, dtype=np.int32)
    pix_y, pix_x = np.nonzero(inside)
    parts[pix_y, pix_x] = tree.query(np.c_[pix_x, pix_y])[1] + 1
    return parts, tree.query(np.c_[x, y])[1] + 1


def source_stamps(data, x, y, parts=None, labels=None, size=STAMP_SIZE, beyond=0.0):
    """Each source's stamp, background-subtracted, other sources' pixels set to 0.

    Parameters
    ----------
    data : array-like
        Sky-subtracted 2-D frame.
    x, y : array-like
        The sources' positions, pixels; each stamp's centre lies within half
        a pixel of its source (`~sourceclf.profile_fits.subpixel_offsets` then finds it).
    parts, labels : `numpy.ndarray`, optional
        `deblend_frame`'s output.  Without them the stamps keep every pixel
        and lose their median.
    size : int
        Stamp side, pixels (even).
    beyond : float
        The value of the pixels beyond the frame's edge: 0, or NaN (missing:
        `measure_columns` gives them no weight in its fits, and the
        background is then the median of the pixels on the frame).

    Returns
    -------
    stamps : `numpy.ndarray`, shape (n, size, size)
        ``beyond`` beyond the frame's edge; the background is the median of the
        stamp's sky pixels (of the whole stamp where fewer than 20), non-finite
        pixels left out.
    """
    half = size // 2
    pad = np.pad(np.asarray(data, float), half + 1, constant_values=beyond)
    own_pad = np.pad(parts, half + 1) if parts is not None else None
    fx, fy = np.floor(x).astype(int) + half + 1, np.floor(y).astype(int) + half + 1
    out = np.zeros((len(x), size, size))
    for i in range(len(x)):
        window = (slice(fy[i] - half + 1, fy[i] + half + 1),
                  slice(fx[i] - half + 1, fx[i] + half + 1))
        stamp = pad[window]
        if own_pad is None:
            out[i] = stamp - _median(stamp)
            continue
        seg = own_pad[window]
        sky = stamp[seg == 0]
        stamp = stamp - (_median(sky) if np.isfinite(sky).sum() >= 20 else _median(stamp))
        out[i] = np.where((seg == 0) | (seg == labels[i]), stamp, 0.0)
    return out


class BandStamps(NamedTuple):
    """One band's stamps of a list of sky positions (`frame_stamps`)."""

    #: The band.
    band: str
    #: Its frame's pixels, registered on the r frame's stars.
    data: np.ndarray
    #: Its WCS, registered (`sourceclf.registration.register_frames`).
    wcs: object
    #: Which positions lie on the frame (finite, within its pixels), shape (n,).
    inside: np.ndarray
    #: The stamps of the positions ``inside``, shape (inside.sum(), size, size).
    stamps: np.ndarray
    #: The frame's pixel scale, arcsec per pixel.
    scale: float


def frame_stamps(frames, psf, ra, dec, *, bands=BANDS, size=STAMP_SIZE):
    """Each band's stamps of sky positions, as `measure_columns` cuts and fits them.

    Parameters
    ----------
    frames : dict
        ``{band: (data, wcs)}``, sky-subtracted, the r band among them.
    psf : dict
        ``{band: PSFMeasurement or FWHM}``, as
        `sourceclf.registration.register_frames` takes it.
    ra, dec : array-like
        The positions, degrees (NaN: none).
    bands : sequence of str
        The bands cut, in this order.
    size : int
        Stamp side, pixels.

    Yields
    ------
    `BandStamps`
        Per band, on the frames registered on the r frame's stars: the
        stamps of the positions that lie on the band's frame
        (`source_stamps`, less their median, NaN beyond the frame's edge,
        where the fits give them no weight).
    """
    ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
    seen = np.isfinite(ra) & np.isfinite(dec)
    registered = register_frames(frames, psf)  # each band on the r frame's stars
    for b in bands:
        data, wcs = registered[b]
        x, y = np.full(len(ra), np.nan), np.full(len(ra), np.nan)
        x[seen], y[seen] = wcs.world_to_pixel_values(ra[seen], dec[seen])
        ny, nx = np.shape(data)
        inside = seen & (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
        yield BandStamps(b, data, wcs, inside,
                         source_stamps(data, x[inside], y[inside], size=size, beyond=np.nan),
                         pixel_scale(wcs))


def _median(pixels):
    """The median of the finite ``pixels`` (0 where there are none)."""
    finite = pixels[np.isfinite(pixels)]
    return float(np.median(finite)) if finite.size else 0.0


def catalog_extinction(table):
    """The extinction `measure_columns` corrects a catalog's measured magnitudes by.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog.

    Returns
    -------
    extinction : `numpy.ndarray`, shape (n, 5), or None
        Each band's ``extinction_<b>``, or its colour excess ``ebv`` times the
        band's coefficient (`sourceclf.columns.ColumnFinder.extinction`), NaN
        as 0; None when a band has neither (no correction).
    """
    finder = ColumnFinder(table)
    extinction = [finder.extinction(b) for b in BANDS]
    if any(e is None for e in extinction):
        return None
    return np.nan_to_num(np.column_stack(extinction))


def measure_columns(table, frames, psf=None, *, ra_column="ra", dec_column="dec"):
    """MargNet's 24 catalog columns measured on full frames.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog, with each source's position.  Its ``extinction_<b>``
        columns, when it has all five, or else its colour excess ``ebv``,
        correct the magnitudes (`catalog_extinction`; else none:
        ``extinction_<b>`` is 0 and ``dered_<b>`` is the observed magnitude).
    frames : dict
        ``{band: (data, wcs)}`` for u g r i z, sky-subtracted, in nanomaggies
        (as `sourceclf.frames.read_frame` returns SDSS corrected frames).
        Each band is measured where its frame shows the r frame's stars
        (`sourceclf.registration.register_frames`, unless ``psf`` gives the r
        band a FWHM alone).
    psf : dict, optional
        ``{band: PSFMeasurement}`` (`sourceclf.psf.measure_psf`), or
        ``{band: FWHM}`` (arcsec: a Moffat of index `ASSUMED_BETA`, the sky
        noise measured on the frame); measured on each frame when not given
        (`sourceclf.field_psf.field_psfs`: on its own stars, or the
        other bands' where it holds too few; once per frame while a
        `sourceclf.field_psf.psf_memo` is open).
    ra_column, dec_column : str
        The position columns (degrees, or any angle unit).

    Returns
    -------
    measured : `~astropy.table.Table`
        A copy of ``table`` with ``dered_<b>``, ``deVRad_<b>``, ``psffwhm_<b>``
        (the measured FWHM divided by `sourceclf.psf.CATALOG_PSF_SCALE`, as
        SDSS's catalog gives it), ``extinction_<b>``, ``u_g g_r r_i i_z`` and
        ``psf_flux_<b>``, ``blendedness_<b>`` (`columns_from_fits`; the
        share of the light at the source that its neighbours put there,
        `sourceclf.neighbour_fits.blendedness`) and ``unmodelled_<b>`` (the
        light the fits leave around the source over its own there,
        `sourceclf.unmodelled_light.unmodelled_light`); NaN for a source whose
        position is missing or off a frame.
    psf : dict
        ``{band: PSFMeasurement}`` used.

    Raises
    ------
    InvalidInputError
        If a band's frame is missing or its PSF cannot be measured.
    MissingColumnsError
        If the table has no position columns.
    """
    missing = [b for b in BANDS if b not in frames]
    if missing:
        raise InvalidInputError(f"measure_columns: no frame of band(s) {', '.join(missing)}")
    ra, dec = sky_positions(table, ra_column, dec_column)
    psf = dict(psf or {})
    n = len(table)
    fluxes, best, width, blend, unmodelled = _no_fits(n)
    psf.update(field_psfs(frames, [b for b in BANDS if b not in psf]))
    for k, cut in enumerate(frame_stamps(frames, psf, ra, dec)):
        b = cut.band
        if not isinstance(psf[b], PSFMeasurement):
            psf[b] = PSFMeasurement(float(psf[b]), np.nan, ASSUMED_BETA, np.nan, 0,
                                    sky_level(cut.data, f"the frame of band '{b}'")[1], None)
        width[:, k] = psf[b].fwhm / CATALOG_PSF_SCALE[b]
        if not cut.inside.any():
            continue
        # At the frame's own pixel scale, as field_band_psf measured the FWHM.
        (fluxes[cut.inside, k], best[cut.inside, k], blend[cut.inside, k],
         unmodelled[cut.inside, k]) = _fit_through_psf(cut.stamps, psf[b].fwhm, psf[b].beta,
                                                       psf[b].sky_sigma, cut.scale)
    return _with_columns(table, fluxes, best, width, blend, unmodelled), psf


def _fit_through_psf(stamps, fwhm, beta, sky_sigma, scale):
    """`~sourceclf.profile_fits.fit_with_neighbours` of one band's stamps (less their sky),
    each fitted at its source's sub-pixel position, through a Moffat
    PSF of ``fwhm`` (arcsec) and index ``beta`` at ``scale`` arcsec per pixel: the fluxes,
    best radius, blendedness and unmodelled light."""
    fwhm_pix = fwhm / scale
    fluxes, best, _, blend, unmodelled = fit_with_neighbours(
        stamps, profile_templates(fwhm, beta, size=stamps.shape[-1], pixel_scale=scale),
        fwhm_pix, beta, sky_sigma, return_unmodelled=True)
    return fluxes, best, blend, unmodelled


def _no_fits(n):
    """The fits of ``n`` sources before any: ``fluxes`` (NaN), ``best`` radius, PSF
    ``width``, ``blend`` and ``unmodelled`` (NaN), as `measure_columns` fills them band by
    band."""
    return (np.full((n, len(BANDS), len(PROFILE_RADII)), np.nan),
            np.zeros((n, len(BANDS)), dtype=int), np.empty((n, len(BANDS))),
            np.full((n, len(BANDS)), np.nan), np.full((n, len(BANDS)), np.nan))


def _with_columns(table, fluxes, best, width, blend, unmodelled):
    """A copy of ``table`` with the columns of the fits (`columns_from_fits`); a source not
    fitted in every band has no radius either (its magnitudes are NaN already)."""
    out = Table(table, copy=True)
    columns_from_fits(out, fluxes, best, width, catalog_extinction(table), blendedness=blend,
                      unmodelled=unmodelled)
    off = ~np.isfinite(fluxes[:, :, 0]).all(axis=1)
    for b in BANDS:
        out[f"deVRad_{b}"][off] = np.nan
    return out


def measure_stamp_columns(table, stamps, psf, sky_sigma, *, beta=None,
                          pixel_scale=SDSS_PIXEL_SCALE):
    """MargNet's 24 catalog columns measured on stamps given without their frames.

    The fits of `measure_columns`, on each row's own stamp (less its median)
    instead of a stamp cut from a frame: for a catalog of positions given with
    cutouts (`sourceclf.classify`'s ``cutouts=`` with ``psf=`` or the table's
    ``psffwhm_<b>``), so that the models reading MargNet's columns can
    classify it.  Pixels that hold no measurement, non-finite or exactly 0
    (`sourceclf.cutouts.make_cutouts` fills a stamp's part beyond a frame's
    edge, and its non-finite pixels, with 0), weigh nothing in the fits nor
    in the stamp's median, as the image networks leave them alone
    (`sourceclf.models.AsinhNormalise`).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog, one row per stamp (its ``extinction_<b>`` or ``ebv``
        columns correct the magnitudes, as in `measure_columns`).
    stamps : `numpy.ndarray`
        Shape ``(N, 5, H, W)``, ugriz, in nanomaggies
        (`sourceclf.cutouts.make_cutouts`), each centred on its source.
    psf : dict
        Per band, the PSF's FWHM (arcsec): one value for every row, one per
        row (an array of N; NaN where unknown, which leaves the row's
        columns NaN), or a `~sourceclf.psf.PSFMeasurement` (its FWHM and
        Moffat index).  Rows given their own FWHM are fitted in groups whose
        FWHM is rounded to `sourceclf.stamp_psf.PSF_FWHM_STEP`
        (`~sourceclf.stamp_psf.fwhm_groups`: each group's profiles are drawn
        once); the ``psffwhm_<b>`` columns keep each row's own.
    sky_sigma : dict
        ``{band: sky noise per pixel}`` (`sourceclf.sky.stamp_sky`), which
        sets the threshold of the neighbours' peaks.
    beta : dict, optional
        ``{band: Moffat index}`` of the PSFs given by their FWHM: one value,
        or one per row (`sourceclf.stamp_psf.stamps_moffat_index`);
        `ASSUMED_BETA` for a band not in it and a row where it is NaN.
    pixel_scale : float
        Arcsec per pixel of the stamps (SDSS's by default).

    Returns
    -------
    measured : `~astropy.table.Table`
        A copy of ``table`` with the columns of `measure_columns`; NaN for a
        row whose stamp's central 2 x 2 pixels hold no measurement in a band
        (a source off its frame), or whose FWHM is unknown.

    Raises
    ------
    InvalidInputError
        If the stamps are not ``(N, 5, H, W)`` for the table's N rows, or a
        band's PSF or sky noise is missing or not positive.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import Table
    >>> from sourceclf.photometry import measure_stamp_columns
    >>> from sourceclf.psf import moffat_profile
    >>> yy, xx = np.mgrid[:32, :32] - 15.5
    >>> star = 50.0 * moffat_profile(xx, yy, 1.2 / 0.396, 3.5)  # a point source, r about 18
    >>> stamps = star[None, None] + np.random.default_rng(0).normal(0, 0.01, (1, 5, 32, 32))
    >>> out = measure_stamp_columns(Table({"id": [1]}), stamps, {b: 1.2 for b in "ugriz"},
    ...                             {b: 0.01 for b in "ugriz"})
    >>> float(out["deVRad_r"][0]) < 0.2
    True
    """
    stamps = np.asarray(stamps)  # each band is fitted in float64 in turn, as on frames
    n = len(table)
    if stamps.ndim != 4 or stamps.shape[:2] != (n, len(BANDS)):
        raise InvalidInputError(f"measure_stamp_columns: stamps of shape {stamps.shape}, "
                                f"expected ({n}, 5, H, W) for a table of {n} rows")
    fluxes, best, width, blend, unmodelled = _no_fits(n)
    for k, b in enumerate(BANDS):
        fwhm, index, per_row = _band_fwhm(psf, beta, b, n)
        noise = float(sky_sigma.get(b, np.nan)) if hasattr(sky_sigma, "get") else np.nan
        if not noise > 0:
            raise InvalidInputError(f"measure_stamp_columns: band '{b}' needs a positive sky "
                                    f"noise, got {noise!r}")
        width[:, k] = fwhm / CATALOG_PSF_SCALE[b]
        missing = ~np.isfinite(stamps[:, k]) | (stamps[:, k] == 0)
        h, w = missing.shape[1:]
        centre = missing[:, (h - 1) // 2:h // 2 + 1, (w - 1) // 2:w // 2 + 1].any(axis=(1, 2))
        good = ~centre & np.isfinite(fwhm)
        # One FWHM for all rows is fitted as given; rows of their own in groups.
        rows = np.flatnonzero(good)
        if not len(rows):
            continue
        psfs = np.stack([fwhm_groups(fwhm) if per_row else fwhm, index])[:, rows]
        groups, which = np.unique(psfs, axis=1, return_inverse=True)
        for g, (group_fwhm, group_beta) in enumerate(groups.T):
            members = rows[which.ravel() == g]
            band = np.where(missing[members], np.nan, stamps[members, k].astype(float))
            band -= np.nanmedian(band, axis=(1, 2), keepdims=True)  # as source_stamps does
            (fluxes[members, k], best[members, k], blend[members, k],
             unmodelled[members, k]) = _fit_through_psf(band, group_fwhm, group_beta, noise,
                                                        pixel_scale)
    return _with_columns(table, fluxes, best, width, blend, unmodelled)


def _band_fwhm(psf, beta, band, n):
    """One band's PSF for `measure_stamp_columns`: the FWHM and Moffat index of each of
    the ``n`` rows (FWHM in arcsec, NaN where unknown), and whether the rows have their own
    FWHM."""
    given = psf.get(band) if hasattr(psf, "get") else None
    if isinstance(given, PSFMeasurement):
        given, index = given.fwhm, given.beta
    else:
        index = (beta or {}).get(band, ASSUMED_BETA)
    try:
        fwhm = np.broadcast_to(np.asarray(given, dtype=float), (n,))
        index = np.broadcast_to(np.asarray(index, dtype=float), (n,))
    except (TypeError, ValueError):
        raise InvalidInputError(f"measure_stamp_columns: band '{band}' needs a PSF FWHM and "
                                f"Moffat index for one or each of {n} rows") from None
    per_row = np.ndim(given) > 0
    if given is None or (fwhm <= 0).any() or not (per_row or np.isfinite(fwhm).all()):
        got = f"{np.nanmin(fwhm):g} in a row" if per_row else repr(given)
        raise InvalidInputError(f"measure_stamp_columns: band '{band}' needs a positive PSF "
                                f"FWHM, got {got}")
    return fwhm, np.where(np.isfinite(index), index, ASSUMED_BETA), per_row
