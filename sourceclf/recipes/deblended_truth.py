"""The truth's extent measured with each source's neighbours fitted and removed.

`~sourceclf.recipes.extent_truth.frame_truth` measures ``m_psf -
m_aperture`` on each source's own segment of the frame: pixels of other
segments are replaced by the source's PSF model, but a neighbour inside the
segment, or the wings of one outside it, stay in the aperture and make a
point source look extended.  On crowded frames that is common, and the
truth's blend tests drop only part of such sources.

`deblended_extent` measures the same extent on a copy of the frame from
which each source's neighbours have been fitted and subtracted, as
crowded-field PSF photometry (DAOPHOT's ALLSTAR, photutils'
``IterativePSFPhotometry``) removes a group's other stars before measuring
one:

1. a window of `WINDOW` PSF FWHM about the source (it holds the aperture
   and the background annulus of
   `~sourceclf.recipes.extent_truth.psf_aperture_fluxes`);
2. its neighbours found as the profile fits of the columns find them
   (`sourceclf.neighbour_fits.without_neighbours`: peaks of the PSF-smoothed
   window above the detection threshold, and asymmetric peaks of the
   residual of a point-source fit, a neighbour merged with the source);
3. a constant, the PSF and a wider Moffat profile (`WIDE` FWHM, so that a
   galaxy's outer light is not given to its neighbours) at the source, and a
   PSF at each neighbour, fitted together by linear least squares; the
   neighbours' fitted PSFs are subtracted from the window;
4. the extent of the cleaned window measured as the truth measures it, and
   zeroed on the truth's PSF stars.

Neighbours are modelled as point sources: an extended neighbour's light
beyond its PSF stays.  The neighbour search is the one the columns of the
models reading MargNet's features use, so a neighbour it misses misleads
both; the sources drawn into the frames
(``docs/scripts/deblended_truth.py``) judge this truth where the answer is
known.
"""

import numpy as np

from ..exceptions import InvalidInputError
from ..neighbour_fits import without_neighbours
from ..psf import moffat_profile
from ..utils._wcs import pixel_scale
from .extent_truth import BACKGROUND, extent_zero, psf_aperture_fluxes, truth_positions

__all__ = ["WINDOW", "WIDE", "deblended_fluxes", "deblended_extent"]

#: Half-side of the window fitted about each source, PSF FWHM (the outer
#: radius of `~sourceclf.recipes.extent_truth.psf_aperture_fluxes`' background
#: annulus, `~sourceclf.recipes.extent_truth.BACKGROUND`).
WINDOW = BACKGROUND[1]

#: FWHM of the wider Moffat profile fitted at the source with its PSF, in PSF
#: FWHM: it takes a galaxy's light beyond the PSF, which the neighbours' PSFs
#: would otherwise absorb.
WIDE = 2.5


def deblended_fluxes(data, x, y, fwhm, beta, sky_sigma):
    """PSF and aperture fluxes of sources once their neighbours are subtracted.

    Parameters
    ----------
    data : array-like
        Sky-subtracted 2-D frame.
    x, y : array-like
        Source positions (pixels).
    fwhm, beta : float
        The frame's Moffat PSF: FWHM in pixels and index.
    sky_sigma : float
        The frame's sky noise per pixel (the neighbours' detection threshold).

    Returns
    -------
    fluxes : dict of `numpy.ndarray`
        As `~sourceclf.recipes.extent_truth.psf_aperture_fluxes` returns them,
        measured on each source's cleaned window (``masked`` is 0), and
        ``n_neighbours``, the neighbours subtracted; NaN fluxes (and 0
        neighbours) for sources too near the edge.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise InvalidInputError(f"deblended_fluxes: data must be 2-D, got shape {data.shape}")
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if x.shape != y.shape:
        raise InvalidInputError(f"deblended_fluxes: {x.size} x positions but {y.size} y")
    pad = int(np.ceil(WINDOW * fwhm)) + 3  # psf_aperture_fluxes' window and a margin
    side = 2 * pad + 1
    yy, xx = np.mgrid[:side, :side].astype(float)
    ny, nx = data.shape
    keys = ("psf", "aperture", "peak", "masked", "background")
    out = {k: np.full(x.size, np.nan) for k in keys}
    out["n_neighbours"] = np.zeros(x.size, dtype=int)
    for i in range(x.size):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            continue
        ix, iy = int(round(x[i])), int(round(y[i]))
        if ix - pad < 0 or iy - pad < 0 or ix + pad >= nx or iy + pad >= ny:
            continue
        window = data[iy - pad:iy + pad + 1, ix - pad:ix + pad + 1]
        cx, cy = pad + x[i] - ix, pad + y[i] - iy
        point = moffat_profile(xx - cx, yy - cy, fwhm, beta).ravel()
        _, _, neighbours = next(without_neighbours(window[None], point[None], fwhm, beta,
                                                   sky_sigma))
        if len(neighbours):
            wide = moffat_profile(xx - cx, yy - cy, WIDE * fwhm, beta).ravel()
            design = np.column_stack([np.ones(side * side), point, wide, neighbours.T])
            fitted = np.linalg.lstsq(design, window.ravel(), rcond=None)[0]
            window = window - (neighbours.T @ fitted[3:]).reshape(side, side)
        fluxes = psf_aperture_fluxes(window, [cx], [cy], fwhm, beta)
        for k in keys:
            out[k][i] = fluxes[k][0]
        out["n_neighbours"][i] = len(neighbours)
    return out


def deblended_extent(data, wcs, psf, truth):
    """``m_psf - m_aperture`` of `frame_truth`'s sources, their neighbours subtracted.

    Measured at each row's ``ra``/``dec`` on ``data`` (the frame the truth
    was built on, or another frame of the field) with `deblended_fluxes`,
    and zeroed on the rows flagged ``psf_star`` by a plane over the frame
    (`~sourceclf.recipes.extent_truth.extent_zero`), as
    `~sourceclf.recipes.extent_truth.frame_truth` zeroes its own; above
    `~sourceclf.recipes.extent_truth.EXTENT_POINT` a source is extended.

    Parameters
    ----------
    data : array-like
        Sky-subtracted r-band frame.
    wcs : `~astropy.wcs.WCS`
        Its WCS.
    psf : `~sourceclf.psf.PSFMeasurement`
        Its PSF (`sourceclf.psf.measure_psf`).
    truth : `~astropy.table.Table`
        Rows with ``ra``, ``dec`` (degrees) and ``psf_star``
        (`~sourceclf.recipes.extent_truth.frame_truth`).

    Returns
    -------
    extent : `numpy.ndarray`
        Magnitudes; NaN near the edge.

    Raises
    ------
    InvalidInputError
        If ``truth`` lacks a column, or has no ``psf_star`` row.
    """
    x, y, stars = truth_positions(truth, wcs, caller="deblended_extent")
    fluxes = deblended_fluxes(data, x, y, psf.fwhm / pixel_scale(wcs), psf.beta,
                              psf.sky_sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        extent = -2.5 * np.log10(fluxes["psf"] / fluxes["aperture"])
    return extent - extent_zero(extent, x, y, stars)
