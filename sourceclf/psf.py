"""The point spread function of a frame, measured from its own stars.

Image models judge a source's size against the PSF it is seen through, so the
PSF of every band must be known.  `measure_psf` measures it on one frame
(a 2-D image, sky-subtracted as SDSS corrected frames are):

1. the sky noise: a sigma-clipped, MAD-based standard deviation of the frame's
   pixels (every second pixel in each direction);
2. point sources: one `~photutils.detection.DAOStarFinder` pass at 5 sigma;
   kept are those with no other detection within ``isolation`` pixels, away
   from the edge, with an aperture S/N above ``snr_min``, on the stellar locus
   of DAOFind's sharpness (within 3 robust sigma of the median of these
   bright isolated sources) and round;
3. a circular 2-D Moffat plus a constant (`astropy.modeling`) fitted to each
   of the ``max_stars`` brightest of them;
4. the point-source locus in the fitted FWHM (`point_source_locus`: the
   median of the fits, or their densest, narrower concentration when more
   compact galaxies than stars were fitted): fits more than 2 robust sigma wider or
   4 narrower than it are dropped (galaxies, blends, and saturated stars,
   which SDSS interpolates over and so look wider and flatter); the result
   is the median of the rest.

When the first fits find a FWHM far from the finder's guess, the search is
repeated once with the fitted width (a frame of 2" seeing is not found well
with a 1" kernel).

The FWHM is that of the effective (pixel-convolved) PSF, as a Moffat fitted to
the pixels gives it, in arcsec.  SDSS's catalog PSF width (``psffwhm_<b>``,
calibObj ``PSF_FWHM``) describes a double Gaussian with wings and is about 10%
larger; `CATALOG_PSF_SCALE` converts it.

Saturated stars are not measured (`sourceclf.saturation` flags the rows whose
cores may be).
"""

import warnings
from typing import NamedTuple

import numpy as np

from .bands import BANDS, SDSS_PIXEL_SCALE
from .exceptions import InvalidInputError, PSFMeasurementError
from .utils._validation import check_image

__all__ = ["PSFMeasurement", "CATALOG_PSF_SCALE", "SEEING_TOLERANCE", "FLAG_PSF_UNKNOWN",
           "FLAG_SEEING_OUT_OF_RANGE", "moffat_fwhm", "moffat_gamma", "moffat_profile",
           "find_psf_stars", "aperture_snr", "point_source_locus", "LOCUS_WINDOW",
           "psf_from_fits", "sky_level", "sky_subtracted", "fit_moffat", "fit_half_size",
           "fit_psf_stars", "GUESS_TOLERANCE", "measure_psf", "seeing_flags"]

#: Moffat FWHM of the effective PSF over SDSS's catalog PSF width
#: (``psffwhm_<b>``), per band: medians over the calibObj stars of field
#: 4510-4-0030 (the ``psf_scale`` of `sourceclf.simulate.SDSS_BAND_DEFAULTS`).
CATALOG_PSF_SCALE = {"u": 0.888, "g": 0.917, "r": 0.908, "i": 0.879, "z": 0.928}

#: Relative margin around a model's trained PSF range before a row is flagged
#: ``seeing_out_of_range``: the precision of a measured FWHM.  Fits to the
#: stars of one frame scatter by 2-5% (0.02-0.05"), the median of them and an
#: effective PSF (photutils ``EPSFBuilder``) agree to 1.3% on the shared SDSS
#: fields, and SDSS's catalog width converts to it (`CATALOG_PSF_SCALE`) only
#: to +-3% between bands: a narrower margin would flag seeing the model was
#: trained on for measurement noise.
SEEING_TOLERANCE = 0.05

#: ``pred_flag`` reason: the PSF of the row's stamps was not given and could
#: not be measured.
FLAG_PSF_UNKNOWN = "psf_unknown"
#: ``pred_flag`` reason: the PSF FWHM of a band is outside the range the image
#: model was trained on (by more than `SEEING_TOLERANCE`).
FLAG_SEEING_OUT_OF_RANGE = "seeing_out_of_range"


class PSFMeasurement(NamedTuple):
    """The PSF of one frame, as `measure_psf` returns it.

    Attributes
    ----------
    fwhm : float
        FWHM of the effective PSF, arcsec (median of the stars' Moffat fits).
    fwhm_std : float
        Robust scatter of the stars' FWHMs, arcsec.
    beta : float
        Median Moffat index.
    ellipticity : float
        Median ``1 - b/a`` from Gaussian-weighted second moments.
    n_stars : int
        Number of stars the values come from.
    sky_sigma : float
        Sky noise per pixel, in the frame's unit.
    stars : `~astropy.table.Table`
        The stars' fits: ``x``, ``y`` (pixels), ``fwhm`` (arcsec), ``beta``,
        ``ellipticity``, ``snr``.
    stars_from : tuple of str
        Empty when the stars were found on the frame itself; else the bands
        whose PSF stars were fitted on it, because its own were too few
        (`sourceclf.field_psf.field_band_psf`).
    """

    fwhm: float
    fwhm_std: float
    beta: float
    ellipticity: float
    n_stars: int
    sky_sigma: float
    stars: object
    stars_from: tuple = ()


def moffat_fwhm(gamma, beta):
    """FWHM of a Moffat profile ``(1 + r**2 / gamma**2) ** -beta``.

    Parameters
    ----------
    gamma : float or array-like
        Core width.
    beta : float or array-like
        Moffat index (> 1).

    Returns
    -------
    fwhm : float or `numpy.ndarray`
        In the unit of ``gamma``.
    """
    return 2.0 * np.asarray(gamma) * np.sqrt(2.0 ** (1.0 / np.asarray(beta)) - 1.0)


def moffat_gamma(fwhm, beta):
    """Core width ``gamma`` of a Moffat profile of a given FWHM (inverse of `moffat_fwhm`).

    Parameters
    ----------
    fwhm : float or array-like
        Full width at half maximum.
    beta : float or array-like
        Moffat index (> 1).

    Returns
    -------
    gamma : float or `numpy.ndarray`
        In the unit of ``fwhm``.

    Examples
    --------
    >>> from sourceclf.psf import moffat_fwhm, moffat_gamma
    >>> round(float(moffat_fwhm(moffat_gamma(3.0, 3.5), 3.5)), 12)
    3.0
    """
    return np.asarray(fwhm) / (2.0 * np.sqrt(2.0 ** (1.0 / np.asarray(beta)) - 1.0))


def moffat_profile(dx, dy, fwhm, beta):
    """A unit-flux circular Moffat profile at offsets ``(dx, dy)`` from its centre.

    Parameters
    ----------
    dx, dy : float or array-like
        Offsets from the centre, in the unit of ``fwhm`` (e.g. pixels).
    fwhm : float
        Full width at half maximum.
    beta : float
        Moffat index (> 1).

    Returns
    -------
    value : float or `numpy.ndarray`
        ``(beta - 1) / (pi gamma^2) (1 + r^2 / gamma^2) ** -beta``, whose
        integral over the plane is 1 (``gamma``: `moffat_gamma`).

    Examples
    --------
    >>> import numpy as np
    >>> from sourceclf.psf import moffat_profile
    >>> yy, xx = np.mgrid[-60:61, -60:61]
    >>> round(float(moffat_profile(xx, yy, 3.0, 3.5).sum()), 3)
    1.0
    """
    gamma = moffat_gamma(fwhm, beta)
    return ((beta - 1.0) / (np.pi * gamma ** 2)
            * (1.0 + (np.asarray(dx) ** 2 + np.asarray(dy) ** 2) / gamma ** 2) ** -beta)


def sky_level(data, label="the image"):
    """Median and noise per pixel of a frame's sky (sigma-clipped, MAD-based, every 2nd pixel).

    Pixels exactly zero are left out when they are more than 1% of the frame
    (a zero-filled area without data, as coadds and mosaics have).

    Parameters
    ----------
    data : `numpy.ndarray`
        2-D frame.
    label : str
        How to name it in error messages.

    Returns
    -------
    median, sigma : float

    Raises
    ------
    InvalidInputError
        For a frame with too few finite pixels or without noise.
    """
    from astropy.stats import sigma_clipped_stats

    sub = data[::2, ::2]
    sub = sub[np.isfinite(sub)]
    nonzero = sub[sub != 0]
    if 100 <= nonzero.size < 0.99 * sub.size:  # a zero-filled no-data area is not sky
        sub = nonzero
    if sub.size < 100:
        raise InvalidInputError(f"{label} has too few finite pixels to measure a PSF")
    _, median, sigma = sigma_clipped_stats(sub, sigma=3.0, maxiters=5, stdfunc="mad_std")
    if not sigma > 0:
        raise InvalidInputError(f"{label} has no sky noise (a constant image?); cannot find "
                                "stars to measure its PSF")
    return float(median), float(sigma)


def find_psf_stars(data, sky_sigma, *, fwhm_guess=2.5, snr_min=50.0, isolation=12.0,
                   edge=15):
    """Isolated, bright point sources of a frame, to measure its PSF on.

    Parameters
    ----------
    data : `numpy.ndarray`
        Sky-subtracted 2-D image.
    sky_sigma : float
        Sky noise per pixel.
    fwhm_guess : float
        FWHM (pixels) of the finder's kernel.
    snr_min : float
        Smallest S/N in an aperture of radius 1.5 ``fwhm_guess``.
    isolation : float
        Smallest distance (pixels) to any other detection.
    edge : int
        Border (pixels) left out.

    Returns
    -------
    stars : `~astropy.table.Table`
        ``x``, ``y`` (pixels) and ``snr``, brightest first (possibly empty).
    """
    from astropy.table import Table
    from scipy.spatial import cKDTree

    try:
        from photutils.detection import DAOStarFinder
    except ImportError:
        raise InvalidInputError("measuring the PSF of frames needs photutils: "
                                "pip install 'sourceclf[images]' (or give psf=)") from None

    finder = DAOStarFinder(threshold=5.0 * sky_sigma, fwhm=fwhm_guess,
                           sharpness_range=(-5, 5), roundness_range=(-5, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = finder(data)
    empty = Table({"x": np.zeros(0), "y": np.zeros(0), "snr": np.zeros(0)})
    if found is None or len(found) < 2:
        return empty
    xname = "x_centroid" if "x_centroid" in found.colnames else "xcentroid"
    x = np.asarray(found[xname], float)
    y = np.asarray(found[xname.replace("x", "y", 1)], float)
    nearest = cKDTree(np.c_[x, y]).query(np.c_[x, y], k=2)[0][:, 1]
    snr, inside = aperture_snr(data, sky_sigma, x, y, fwhm_guess, edge=edge)
    keep = inside & (nearest > isolation) & (snr > snr_min)
    keep &= np.abs(np.asarray(found["roundness1"], float)) < 0.5
    sharp = np.asarray(found["sharpness"], float)
    if keep.sum() > 5:  # the stellar locus: the narrow sequence of sharpness
        med = np.median(sharp[keep])
        mad = 1.4826 * np.median(np.abs(sharp[keep] - med))
        keep &= np.abs(sharp - med) < 3.0 * max(mad, 0.02)
    order = np.flatnonzero(keep)[np.argsort(-snr[keep])]
    return Table({"x": x[order], "y": y[order], "snr": snr[order]})


def aperture_snr(data, sky_sigma, x, y, fwhm, *, edge=15):
    """S/N of point sources in an aperture of radius 1.5 ``fwhm``, as PSF stars are chosen.

    Parameters
    ----------
    data : `numpy.ndarray`
        Sky-subtracted 2-D image.
    sky_sigma : float
        Sky noise per pixel.
    x, y : array-like
        Positions (pixels).
    fwhm : float
        FWHM (pixels) setting the aperture.
    edge : int
        Border (pixels) left out.

    Returns
    -------
    snr : `numpy.ndarray`
        The aperture's flux over the sky noise in it (0 outside).
    inside : `numpy.ndarray` of bool
        The positions whose aperture lies on the image, ``edge`` pixels in.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ny, nx = data.shape
    radius = 1.5 * fwhm
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = dx ** 2 + dy ** 2 <= radius ** 2
    ix, iy = np.round(x).astype(int), np.round(y).astype(int)
    inside = (ix >= max(edge, r)) & (ix < nx - max(edge, r)) \
        & (iy >= max(edge, r)) & (iy < ny - max(edge, r))
    flux = np.zeros(len(x))
    flux[inside] = data[iy[inside, None] + dy[disc][None], ix[inside, None] + dx[disc][None]].sum(1)
    return flux / (sky_sigma * np.sqrt(disc.sum())), inside


def _moments_ellipticity(stamp, x0, y0, sigma):
    """``1 - b/a`` from Gaussian-weighted second moments of a stamp."""
    yy, xx = np.indices(stamp.shape, dtype=float)
    dx, dy = xx - x0, yy - y0
    w = np.exp(-0.5 * (dx ** 2 + dy ** 2) / sigma ** 2) * stamp
    total = w.sum()
    if not total > 0:
        return np.nan
    qxx, qyy, qxy = (w * dx * dx).sum() / total, (w * dy * dy).sum() / total, \
        (w * dx * dy).sum() / total
    half = np.sqrt(((qxx - qyy) / 2) ** 2 + qxy ** 2)
    major, minor = (qxx + qyy) / 2 + half, (qxx + qyy) / 2 - half
    return float(1.0 - np.sqrt(minor / major)) if minor > 0 else np.nan


def fit_moffat(data, x, y, *, half=12):
    """Fit a circular 2-D Moffat plus a constant to each star of a frame.

    Parameters
    ----------
    data : `numpy.ndarray`
        Sky-subtracted 2-D image.
    x, y : array-like
        Star positions (pixels).
    half : int
        Half side of the fitted stamps (``2 * half + 1`` pixels).

    Each fit starts from the star's own width (the diameter of the disc as
    large as its pixels above half the peak): from a start far too narrow a
    blurred, Gaussian-like star can slide to the Moffat index's bound.

    Returns
    -------
    fits : `~astropy.table.Table`
        ``x``, ``y``, ``fwhm`` (pixels), ``beta``, ``ellipticity`` and ``ok``
        (converged, centred, sane values) per star.
    """
    from astropy.modeling import fitting, models
    from astropy.table import Table

    fitter = fitting.LevMarLSQFitter()
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    beta0 = 3.5
    cols = {k: [] for k in ("x", "y", "fwhm", "beta", "ellipticity", "ok")}
    for xs, ys in zip(np.asarray(x, float), np.asarray(y, float)):
        ix, iy = int(round(xs)), int(round(ys))
        stamp = np.asarray(data[max(iy - half, 0):iy + half + 1,
                                max(ix - half, 0):ix + half + 1], dtype=float)
        rec = dict(x=xs, y=ys, fwhm=np.nan, beta=np.nan, ellipticity=np.nan, ok=False)
        if stamp.shape == yy.shape and np.isfinite(stamp).all():
            width = 2.0 * np.sqrt(max((stamp > 0.5 * stamp.max()).sum(), 1) / np.pi)
            gamma0 = float(moffat_gamma(width, beta0))
            model = (models.Moffat2D(amplitude=stamp.max(), x_0=xs - ix, y_0=ys - iy,
                                     gamma=gamma0, alpha=beta0,
                                     bounds={"gamma": (0.2, 30.0), "alpha": (1.05, 20.0)})
                     + models.Const2D(0.0))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = fitter(model, xx, yy, stamp, maxiter=300)
            core = fit[0]
            fwhm = float(moffat_fwhm(abs(core.gamma.value), core.alpha.value))
            ok = bool(np.isfinite(fwhm) and 0.5 < fwhm < half and core.amplitude.value > 0
                      and abs(core.x_0.value) < 2 and abs(core.y_0.value) < 2
                      and 1.2 < core.alpha.value < 19.9)
            rec.update(x=ix + core.x_0.value, y=iy + core.y_0.value, fwhm=fwhm,
                       beta=float(core.alpha.value), ok=ok,
                       ellipticity=_moments_ellipticity(
                           stamp - fit[1].amplitude.value, core.x_0.value + half,
                           core.y_0.value + half, 1.2 * max(fwhm, 1.0) / 2.355))
        for k, v in rec.items():
            cols[k].append(v)
    return Table(cols, dtype=[float, float, float, float, float, bool])


#: `measure_psf` finds and fits the stars again with their own width when their
#: median FWHM is off the first guess by more than this fraction.
GUESS_TOLERANCE = 0.3


def fit_half_size(fwhm_pixels):
    """Half side (pixels) of the stamp `measure_psf` fits a star of this FWHM on.

    Parameters
    ----------
    fwhm_pixels : float
        The FWHM the stars are searched with (pixels).

    Returns
    -------
    half : int
        3.5 FWHMs, at least 10 pixels (`fit_moffat`'s ``half``).
    """
    return max(10, int(np.ceil(3.5 * fwhm_pixels)))


def measure_psf(image, *, pixel_scale=SDSS_PIXEL_SCALE, fwhm_guess=1.0, min_stars=5,
                max_stars=40, snr_min=50.0, label="image", where=None):
    """Measure the PSF of a frame from its own stars.

    See the module documentation for the steps.

    Parameters
    ----------
    image : array-like
        Sky-subtracted 2-D frame (SDSS corrected frames are), in any flux unit.
    pixel_scale : float
        Arcsec per pixel.
    fwhm_guess : float
        Rough FWHM (arcsec) to start the star finder with.
    min_stars : int
        Fewest stars accepted.
    max_stars : int
        Stars fitted at most (the brightest).
    snr_min : float
        Smallest S/N of a PSF star.
    label : str
        Name of the image in error messages (e.g. ``"frame of band 'r'"``).
    where : callable, optional
        ``where(x, y)``, with the found stars' pixel positions, returns which
        may be fitted (bool per star): say, those at the centres of stamps
        laid side by side (`sourceclf.stamp_psf.stamps_psf`).

    Returns
    -------
    psf : `PSFMeasurement`

    Raises
    ------
    InvalidInputError
        If the image is not a 2-D numeric image, has no sky noise, or shows
        fewer than ``min_stars`` isolated point sources of good S/N.

    Examples
    --------
    >>> import numpy as np
    >>> from sourceclf.psf import measure_psf
    >>> rng = np.random.default_rng(1)
    >>> yy, xx = np.mgrid[:300, :300]
    >>> image = rng.normal(0.0, 1.0, (300, 300))
    >>> for x, y in rng.uniform(25, 275, (12, 2)):   # Moffat stars: FWHM 3 px, beta 3.5
    ...     image += 3000 * (1 + ((xx - x) ** 2 + (yy - y) ** 2) / 3.205 ** 2) ** -3.5
    >>> psf = measure_psf(image, pixel_scale=1.0, min_stars=3)
    >>> round(psf.fwhm, 2), round(psf.beta, 1)
    (3.0, 3.5)
    """
    data, sigma = sky_subtracted(image, label)

    def candidates(fwhm):
        stars = find_psf_stars(data, sigma, fwhm_guess=fwhm, snr_min=snr_min,
                               isolation=max(12.0, 4.0 * fwhm))
        if where is not None:
            stars = stars[np.asarray(where(np.asarray(stars["x"]), np.asarray(stars["y"])),
                                     dtype=bool)]
        return stars["x"], stars["y"], stars["snr"]

    fits = fit_psf_stars(data, candidates, fwhm_guess / pixel_scale, max_stars=max_stars,
                         min_stars=min_stars)
    return psf_from_fits(fits, sigma, pixel_scale=pixel_scale, min_stars=min_stars,
                         label=label,
                         fitted=f"isolated point sources with S/N > {snr_min:g} found")


def sky_subtracted(image, label="image"):
    """A frame checked, its sky level subtracted and its NaNs set to 0, and its sky noise.

    Parameters
    ----------
    image : array-like
        A 2-D frame.
    label : str
        Name of the image in error messages.

    Returns
    -------
    data : `numpy.ndarray` of float32
        The frame less its sky level (`sky_level`).
    sky_sigma : float
        Its sky noise per pixel.

    Raises
    ------
    InvalidInputError
        If it is not a 2-D numeric image or has no sky noise.
    """
    data = check_image(image, label)
    median, sigma = sky_level(data, label)
    return np.where(np.isfinite(data), data - median, 0.0).astype(np.float32), sigma


def fit_psf_stars(data, candidates, fwhm_guess, *, max_stars=40, min_stars=5):
    """Moffat fits of a frame's PSF stars, searched again at the frame's own width if need be.

    Steps 2-3 of `measure_psf`, for any way of choosing the stars: the
    ``max_stars`` brightest candidates are fitted (`fit_moffat`); when the
    point-source locus of the fits (`point_source_locus`) lies further than
    `GUESS_TOLERANCE` from ``fwhm_guess``, the candidates are chosen and
    fitted once more with the locus as the guess.

    Parameters
    ----------
    data : `numpy.ndarray`
        Sky-subtracted frame (`sky_subtracted`).
    candidates : callable
        ``candidates(fwhm)``, with a FWHM in pixels, returns ``(x, y, snr)``:
        the candidate stars' positions and S/N, brightest first.
    fwhm_guess : float
        The FWHM (pixels) of the first search.
    max_stars, min_stars : int
        Most stars fitted; fewest the locus must keep (`point_source_locus`).

    Returns
    -------
    fits : `~astropy.table.Table`
        `fit_moffat`'s, with the candidates' ``snr``; its ``ok`` may hold
        fewer than ``min_stars`` converged fits (the caller says why).
    """
    guess = float(fwhm_guess)
    for attempt in range(2):
        x, y, snr = (np.asarray(v, dtype=float) for v in candidates(guess))
        fits = fit_moffat(data, x[:max_stars], y[:max_stars], half=fit_half_size(guess))
        fits["snr"] = snr[:max_stars]
        ok = np.asarray(fits["ok"], dtype=bool)
        fwhm = np.asarray(fits["fwhm"])
        locus = point_source_locus(fwhm[ok], min_stars=min_stars)[0] if ok.any() else guess
        if attempt == 0 and abs(locus / guess - 1.0) > GUESS_TOLERANCE:
            guess = locus  # search again with a kernel of the frame's own width
            continue
        return fits


#: Half-width of the window (a fraction of the FWHM) within which
#: `point_source_locus` looks for the densest concentration of fitted FWHMs,
#: and how far from it the median of the fits may lie.  The fits of one
#: frame's stars scatter by 2-5%.
LOCUS_WINDOW = 0.03

#: Fewest fits a window must hold to be a concentration at all.
_LOCUS_MIN_WINDOW = 3


def point_source_locus(fwhm, *, min_stars=5):
    """Centre and robust width of the point-source locus among stars' fitted FWHMs.

    The point sources of a frame share one FWHM, the narrowest of its
    sources; among the candidates a finder calls point-like there may also be
    compact galaxies, wider.  The centre is the median of the fits, unless
    more galaxies than stars are among them (at worse seeing, high
    latitude): then the densest window of relative half-width
    `LOCUS_WINDOW` (the narrowest of equally dense ones) lies more than
    `LOCUS_WINDOW` *below* the median, and the locus is found from that
    window instead, clipped again to 2 robust widths above and 4 below.  A
    denser window above the median is not a locus (nothing is narrower than
    the PSF), nor a window of fewer than three fits, nor one whose clipped
    locus keeps fewer than ``min_stars``: there the median stands.

    Parameters
    ----------
    fwhm : array-like
        The FWHMs of the converged fits.
    min_stars : int
        Fewest fits the locus found from a window must keep to be taken.

    Returns
    -------
    centre, width : float
        The width is 1.4826 times the median absolute deviation from the
        centre, at least 3% of it.
    """
    values = np.sort(np.asarray(fwhm, dtype=float))
    centre = float(np.median(values))
    width = max(1.4826 * np.median(np.abs(values - centre)), 0.03 * centre)
    ends = np.searchsorted(values, values * (1.0 + 2.0 * LOCUS_WINDOW), side="right")
    counts = ends - np.arange(len(values))
    first = int(np.argmax(counts))
    densest = float(np.median(values[first:ends[first]]))
    if counts[first] < _LOCUS_MIN_WINDOW or densest >= centre * (1.0 - LOCUS_WINDOW):
        return centre, width
    locus, spread = densest, LOCUS_WINDOW * densest
    for _ in range(10):
        near = values[(values < locus + 2.0 * spread) & (values > locus - 4.0 * spread)]
        new = float(np.median(near))
        spread = max(1.4826 * np.median(np.abs(near - new)), 0.03 * new)
        if new == locus:
            break
        locus = new
    kept = np.sum((values < locus + 2.0 * spread) & (values > locus - 4.0 * spread))
    return (locus, spread) if kept >= min_stars else (centre, width)


def psf_from_fits(fits, sky_sigma, *, pixel_scale=SDSS_PIXEL_SCALE, min_stars=5,
                  label="image", fitted="stars fitted"):
    """The PSF from stars' Moffat fits: the medians of those on the point-source locus.

    Step 4 of `measure_psf`: fits more than 2 robust widths wider or 4
    narrower than the point-source locus (`point_source_locus`) of the
    converged ones are dropped.

    Parameters
    ----------
    fits : `~astropy.table.Table`
        `fit_moffat`'s fits (FWHM in pixels) and ``snr``.
    sky_sigma : float
        Sky noise per pixel, kept in the result.
    pixel_scale : float
        Arcsec per pixel.
    min_stars : int
        Fewest stars accepted on the locus.
    label : str
        Name of the image in error messages.
    fitted : str
        What the converged fits are, in the error when they are too few
        (``"<n> <fitted>, <min_stars> needed"``): how the caller chose the
        stars.

    Returns
    -------
    psf : `PSFMeasurement`

    Raises
    ------
    PSFMeasurementError
        If fewer than ``min_stars`` fits converged, or lie on the locus.
    """
    ok = np.asarray(fits["ok"])
    fwhm = np.asarray(fits["fwhm"])
    if ok.sum() < min_stars:
        raise PSFMeasurementError(label, f"{int(ok.sum())} {fitted}, {min_stars} needed")
    med, spread = point_source_locus(fwhm[ok], min_stars=min_stars)
    keep = ok & (fwhm < med + 2.0 * spread) & (fwhm > med - 4.0 * spread)
    if keep.sum() < min_stars:
        raise PSFMeasurementError(label, f"only {int(keep.sum())} stars on the point-source "
                                         f"locus, {min_stars} needed")
    stars = fits[keep]
    stars["fwhm"] *= pixel_scale
    del stars["ok"]
    fw = np.asarray(stars["fwhm"])
    return PSFMeasurement(
        fwhm=float(np.median(fw)),
        fwhm_std=float(1.4826 * np.median(np.abs(fw - np.median(fw)))),
        beta=float(np.median(stars["beta"])),
        ellipticity=float(np.nanmedian(stars["ellipticity"])),
        n_stars=int(len(stars)), sky_sigma=sky_sigma, stars=stars)


def seeing_flags(fwhm, psf_range, *, tolerance=SEEING_TOLERANCE):
    """Which rows' PSF lies outside an image model's trained range.

    Parameters
    ----------
    fwhm : dict
        ``{band: array}`` of PSF FWHMs (arcsec) per row, NaN where unknown.
    psf_range : dict
        ``{band: (low, high)}``, arcsec: the model card's
        ``domain['psf_fwhm']``.
    tolerance : float
        Relative margin: a FWHM counts as out of range below
        ``low * (1 - tolerance)`` or above ``high * (1 + tolerance)``.

    Returns
    -------
    out_of_range : `numpy.ndarray` of bool
        Some band's known FWHM is out of range.
    unknown : `numpy.ndarray` of bool
        Some band of ``psf_range`` has no known FWHM.
    """
    n = len(next(iter(fwhm.values()))) if fwhm else 0
    out = np.zeros(n, dtype=bool)
    unknown = np.zeros(n, dtype=bool)
    for band in BANDS:
        if band not in psf_range:
            continue
        low, high = psf_range[band]
        values = np.asarray(fwhm.get(band, np.full(n, np.nan)), dtype=float)
        known = np.isfinite(values)
        unknown |= ~known
        with np.errstate(invalid="ignore"):
            out |= known & ((values < low * (1 - tolerance)) | (values > high * (1 + tolerance)))
    return out, unknown
