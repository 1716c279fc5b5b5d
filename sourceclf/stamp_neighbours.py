"""The image models' stamps less their neighbours' fitted light.

The shipped image models learnt on stamps that hold at most two
neighbours; on a crowded frame a stamp holds three to ten, and the
image-only CNN calls many galaxies there point sources and the reverse.
Before a stamp reaches an image model, each of its neighbours is therefore
fitted as a PSF (`sourceclf.neighbour_fits.without_neighbours`: the peaks of
the PSF-smoothed stamp away from the source, their positions refined, and
neighbours merged with the source found in the residual of its point-source
fit, as the catalog columns' fits find them) and that fitted light is
subtracted, leaving the source, the sky and whatever no fitted neighbour
accounts for.  The fit that sets the neighbours' fluxes models the source
too, so that a neighbour does not take the source's own light: as a
constant sky plus the point source and wider Moffat profiles of the same
index (`SOURCE_WIDTHS`), any mixture of which the fit chooses, round about
the source (a galaxy's wings are round there; a neighbour is not).  A
neighbour is modelled as a point source: an extended neighbour's light
beyond its PSF stays.

This is done in NumPy, without GalSim, so that a core install classifies
stamps as one with every extra does.

It serves the models that see a source through its stamps alone (the
image-only ``margnet-cnn-sgq``, whose features are the PSF): on the crowded
real fields it lifts their calls, and the sets calibrated on their rows
cover as before or better.  The models that also read MargNet's catalog
columns get those measured with the neighbours fitted already
(`sourceclf.photometry.measure_columns`); given stamps less their
neighbours too, they called the crowded fields' sources no better and
grew surer of them, so that their prediction sets, calibrated on stamps
as cut, covered fewer of them.  They see the stamps as cut
(`subtracts_neighbours`; docs: images, "The image-only CNN sees each stamp
less its neighbours").
"""

import warnings

import numpy as np

from .bands import BANDS, SDSS_PIXEL_SCALE
from .exceptions import InvalidInputError
from .features import get_feature_set
from .neighbour_fits import without_neighbours
from .profile_fits import subpixel_offsets
from .psf import moffat_profile

__all__ = ["SOURCE_WIDTHS", "DEFAULT_BETA", "subtracts_neighbours", "neighbour_light",
           "subtract_neighbours", "stamp_sky_sigma"]

#: The source's profiles in the fit that sets its neighbours' fluxes: Moffat
#: profiles of the PSF's index, of these multiples of its FWHM (1: the PSF).
SOURCE_WIDTHS = (1.0, 1.5, 2.5, 4.0)

#: The Moffat index of a band whose PSF gives none (that of
#: `sourceclf.photometry.ASSUMED_BETA`).
DEFAULT_BETA = 3.5


def subtracts_neighbours(feature_set, option="auto"):
    """Whether an image model sees its stamps less their neighbours' fitted light.

    Parameters
    ----------
    feature_set : str or None
        The image model's feature set (None: it reads the stamps alone).
    option : bool or 'auto'
        `sourceclf.classify`'s ``subtract_neighbours``: True or False for
        every image model; ``'auto'`` for those that see a source through its
        stamps alone (no feature set, or the PSF's:
        `~sourceclf.features.FeatureSet.reads_image_psf`), not for those reading
        catalog columns, measured with the neighbours fitted already.

    Returns
    -------
    bool

    Raises
    ------
    InvalidInputError
        If ``option`` is not True, False or ``'auto'``.
    """
    if isinstance(option, (bool, np.bool_)):
        return bool(option)
    if not (isinstance(option, str) and option == "auto"):
        raise InvalidInputError(f"subtract_neighbours must be True, False or 'auto', got "
                                f"{option!r}")
    return feature_set is None or get_feature_set(feature_set).reads_image_psf


def stamp_sky_sigma(images):
    """The sky noise per pixel of each stamp: the normalised median absolute deviation of its
    pixels, sigma-clipped at 3 sigma (5 passes at most: a crowded stamp's sources would
    widen it), by `astropy.stats.sigma_clipped_stats`.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Stamps of one band.

    Returns
    -------
    sigma : `numpy.ndarray`, shape (n,)
        NaN for a stamp without a finite pixel.
    """
    from astropy.stats import sigma_clipped_stats
    from astropy.utils.exceptions import AstropyUserWarning

    images = np.asarray(images, dtype=np.float64)
    if not images.size:
        return np.empty(len(images))
    with warnings.catch_warnings():  # a stamp without a finite pixel: NaN, said by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", AstropyUserWarning)  # non-finite pixels: left out
        sigma = sigma_clipped_stats(images, sigma=3.0, maxiters=5, stdfunc="mad_std",
                                    axis=(1, 2))[2]
    return np.asarray(sigma, dtype=np.float64)


def _source_profiles(size, fwhm_pix, beta, dx, dy):
    """The source's profiles (`SOURCE_WIDTHS`) at ``(dx, dy)`` from the stamp centre,
    shape (len(SOURCE_WIDTHS), size * size), the point source first, each of unit sum on
    the stamp."""
    yy, xx = np.mgrid[:size, :size].astype(float) - (size - 1) / 2.0
    profiles = np.stack([moffat_profile(xx - dx, yy - dy, width * fwhm_pix, beta).ravel()
                         for width in SOURCE_WIDTHS])
    return profiles / profiles.sum(axis=1, keepdims=True)


def neighbour_light(images, fwhm, beta, sky_sigma, *, present=None,
                    pixel_scale=SDSS_PIXEL_SCALE):
    """The light each stamp's neighbours put in it, fitted as PSFs.

    Parameters
    ----------
    images : array-like, shape (n, size, size)
        Stamps of one band, seen through one PSF, each source within half a
        pixel of the centre (as `sourceclf.cutouts` cuts them).  Their sky
        need not be subtracted: it is fitted.
    fwhm : float
        The PSF's FWHM, arcsec.
    beta : float
        Its Moffat index.
    sky_sigma : array-like, shape (n,) or float
        Each stamp's sky noise per pixel, in the stamps' unit (it sets which
        peaks are neighbours: `sourceclf.neighbour_fits.NEIGHBOUR_THRESHOLD`).
    present : array-like of bool, shape (n, size, size), optional
        The pixels that hold a measurement (default: the finite ones); the
        others weigh nothing.
    pixel_scale : float
        Arcsec per pixel.

    Returns
    -------
    light : `numpy.ndarray`, shape (n, size, size)
        The neighbours' fitted PSFs (0 where a stamp has none, and on the
        pixels not ``present``).
    count : `numpy.ndarray` of int, shape (n,)
        The neighbours fitted in each stamp.
    """
    images = np.asarray(images, dtype=np.float64)
    present = np.isfinite(images) if present is None else np.asarray(present, dtype=bool)
    n, size, _ = images.shape
    sky_sigma = np.broadcast_to(np.asarray(sky_sigma, dtype=np.float64), (n,))
    light = np.zeros_like(images)
    count = np.zeros(n, dtype=int)
    usable = np.isfinite(sky_sigma) & (sky_sigma > 0) & present.any(axis=(1, 2))
    if not usable.any() or not (np.isfinite(fwhm) and fwhm > 0):
        return light, count
    fwhm_pix = float(fwhm) / pixel_scale
    data = np.where(present, images, 0.0)
    # the stamp less its median: the source's position as the columns' fits find it
    level = np.array([np.median(d[p]) if p.any() else 0.0 for d, p in zip(data, present)])
    data = np.where(present, data - level[:, None, None], 0.0)
    offsets = subpixel_offsets(data, fwhm_pix, beta)
    for (dx, dy), at in _groups(offsets, np.flatnonzero(usable)):
        profiles = _source_profiles(size, fwhm_pix, beta, dx, dy)
        for (sigma,), rows in _groups(sky_sigma[:, None], at):
            fits = without_neighbours(data[rows], profiles, fwhm_pix, beta, sigma, (dx, dy),
                                      present[rows])
            _fit_light(data, present, profiles, rows, fits, light, count)
    return light, count


def _fit_light(data, present, profiles, rows, fits, light, count):
    """Fill ``light`` and ``count`` of ``rows`` from their `without_neighbours` ``fits``:
    the neighbours' PSFs fitted with the sky and the source's ``profiles``."""
    size = data.shape[-1]
    for i, (_, _, neighbours) in zip(rows, fits):
        if not len(neighbours):
            continue
        weight = present[i].ravel().astype(np.float64)
        design = np.column_stack([weight, (profiles * weight).T, neighbours.T])
        fitted = np.linalg.lstsq(design, data[i].ravel(), rcond=None)[0]
        light[i] = (neighbours.T @ fitted[1 + len(SOURCE_WIDTHS):]).reshape(size, size)
        count[i] = len(neighbours)


def _groups(keys, rows):
    """``(key, rows)`` for each distinct row of ``keys`` (shape (n, k)) among ``rows``, in
    one sort (a catalog's every row may be a group of its own)."""
    if not len(rows):
        return
    unique, which = np.unique(keys[rows], axis=0, return_inverse=True)
    which = which.ravel()
    order = np.argsort(which, kind="stable")
    for key, members in zip(unique, np.split(rows[order], np.cumsum(np.bincount(which))[:-1])):
        yield tuple(float(v) for v in key), members


def subtract_neighbours(stamps, fwhm, beta=None, sky_sigma=None, *, rows=None,
                        present=None, pixel_scale=SDSS_PIXEL_SCALE):
    """5-band stamps less their neighbours' fitted light (`neighbour_light`), band by band.

    Parameters
    ----------
    stamps : array-like, shape (n, 5, size, size)
        The stamps, bands u g r i z.
    fwhm : dict
        ``{band: array (n,)}``: each row's PSF FWHM per band, arcsec (NaN:
        unknown, and the band's stamp is left as it is).
    beta : dict, optional
        ``{band: array (n,) or float}``: the PSF's Moffat index (NaN or a
        band missing: `DEFAULT_BETA`).
    sky_sigma : dict, optional
        ``{band: array (n,) or float}``: the sky noise per pixel; a band
        missing, or NaN, is measured on the stamp (`stamp_sky_sigma`).
    rows : array-like of bool, shape (n,), optional
        The rows to clean (default: all); the others are returned as given.
    present : array-like of bool or 'nonzero', optional
        The pixels that hold a measurement, shape (n, size, size) or (n, 5,
        size, size) (default: the finite ones); ``'nonzero'``: those not
        exactly 0 (`sourceclf.cutouts` fills a stamp's part beyond a frame's
        edge with 0), found band by band without an array of the stamps' size.
    pixel_scale : float
        Arcsec per pixel.

    Returns
    -------
    cleaned : `numpy.ndarray`, shape (n, 5, size, size)
        A copy of ``stamps`` (their dtype) less the fitted light.
    count : `numpy.ndarray` of int, shape (n,)
        The neighbours fitted in each row's r-band stamp.
    """
    stamps = np.asarray(stamps)
    n = len(stamps)
    cleaned = stamps.copy()
    count = np.zeros(n, dtype=int)
    rows = np.ones(n, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    nonzero = isinstance(present, str) and present == "nonzero"
    if present is not None and not nonzero:
        present = np.asarray(present, dtype=bool)
        if present.ndim == 3:
            present = np.repeat(present[:, None], stamps.shape[1], axis=1)

    def measured(group, k):  # the pixels of these rows' band-k stamps that hold a measurement
        if present is None:
            return None
        return stamps[group, k] != 0 if nonzero else present[group, k]

    for k, band in enumerate(BANDS):
        width = np.asarray(fwhm[band], dtype=np.float64).reshape(n)
        index = np.broadcast_to(np.asarray((beta or {}).get(band, np.nan), np.float64), (n,))
        index = np.where(np.isfinite(index), index, DEFAULT_BETA)
        noise = np.broadcast_to(np.asarray((sky_sigma or {}).get(band, np.nan), np.float64),
                                (n,)).copy()
        todo = rows & np.isfinite(width) & (width > 0)
        unknown = todo & ~np.isfinite(noise)
        if unknown.any():
            where = np.flatnonzero(unknown)
            seen = measured(where, k)
            noise[unknown] = stamp_sky_sigma(stamps[where, k] if seen is None
                                             else np.where(seen, stamps[where, k], np.nan))
        # one fit per PSF: the rows of each FWHM and index (to 0.01) together
        keys = np.round(np.column_stack([width, index]), 2)
        for (width_key, index_key), group in _groups(keys, np.flatnonzero(todo)):
            light, fitted = neighbour_light(
                stamps[group, k], width_key, index_key, noise[group],
                present=measured(group, k),
                pixel_scale=pixel_scale)
            cleaned[group, k] = stamps[group, k] - light.astype(stamps.dtype)
            if band == "r":
                count[group] = fitted
    return cleaned, count
