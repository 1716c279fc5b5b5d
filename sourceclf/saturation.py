"""Rows bright enough that their cores may be saturated.

Saturated stars are not measured: SDSS replaces saturated pixels by an
interpolation, so the corrected frame no longer shows where it saturated,
and the level at which point sources stop looking stellar depends on the
field (29k-42k counts above the sky on the shared fields).  Instead,
`saturation_flags` flags rows bright enough that a point source of their
flux, seen through their PSF, would peak above the lowest saturation level
seen on those fields (`SATURATION_LEVEL`): their cores may be interpolated.
The interpolation itself removes flux, so a star whose core was replaced
over a wide area can keep too little flux to be flagged (on field
4510-4-0030 the flag catches 4 of the 5 stars brighter than r = 14.7, and
no fainter one).
"""

import numpy as np

from .bands import BANDS, SDSS_PIXEL_SCALE
from .psf import moffat_gamma

__all__ = ["saturation_flags", "FLAG_SATURATED", "SATURATION_LEVEL"]

#: ``pred_flag`` reason: a point source of the stamp's flux, seen through its
#: PSF, would peak above the band's `SATURATION_LEVEL`: its core may be
#: saturated and interpolated (SDSS frames), unlike anything the image models
#: learnt from.
FLAG_SATURATED = "saturated"

#: Pixel level (nanomaggies) above which SDSS frames may saturate, per band:
#: the lowest level at which saturated stars were seen on the five shared
#: fields (g 120, r 157, i 239, z 967 nanomaggies; u: 35,000 counts, never
#: seen saturated), rounded down.
SATURATION_LEVEL = {"u": 340.0, "g": 120.0, "r": 150.0, "i": 230.0, "z": 950.0}


def saturation_flags(stamps, fwhm, *, pixel_scale=SDSS_PIXEL_SCALE, beta=3.5,
                     level=None):
    """Which rows are bright enough for a saturated core.

    The flux of each stamp within three FWHM of its centre, if it were a
    point source (a Moffat of index ``beta`` and the row's FWHM), would peak
    at ``flux * (beta - 1) / (pi * alpha**2)`` per pixel; a row is flagged
    when that peak exceeds the band's saturation level in any band.

    Parameters
    ----------
    stamps : `numpy.ndarray`
        Shape (n, 5, size, size), nanomaggies, bands in ugriz order.
    fwhm : dict
        ``{band: array}`` of PSF FWHMs (arcsec) per row, NaN where unknown
        (such bands are not judged).
    pixel_scale : float
        Arcsec per pixel.
    beta : float
        Moffat index of the point source.
    level : dict, optional
        Saturation level per band, nanomaggies per pixel (default
        `SATURATION_LEVEL`).

    Returns
    -------
    saturated : `numpy.ndarray` of bool
    """
    level = SATURATION_LEVEL if level is None else level
    stamps = np.asarray(stamps)
    n, _, size, _ = stamps.shape
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    radius = np.hypot(xx, yy)
    out = np.zeros(n, dtype=bool)
    for k, band in enumerate(BANDS):
        width = np.asarray(fwhm[band], dtype=np.float64) / pixel_scale  # pixels
        known = np.isfinite(width) & (width > 0)
        if not known.any():
            continue
        flux = np.zeros(n)
        for w in np.unique(np.round(width[known], 1)):
            rows = np.flatnonzero(known & (np.round(width, 1) == w))
            inside = radius <= 3 * w
            flux[rows] = np.nansum(stamps[rows, k][:, inside], axis=1)
        alpha = moffat_gamma(width, beta)
        with np.errstate(invalid="ignore", divide="ignore"):
            peak = flux * (beta - 1) / (np.pi * alpha ** 2)
        out |= known & (peak > level[band])
    return out
