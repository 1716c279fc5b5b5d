"""The PSF of stamps given without their frames, measured on their own point sources.

Stamps cut from a frame show the frame's PSF in their point sources.
`stamps_psf` lays one band's stamps side by side, each less its median, into
one image (`stamp_mosaic`) and measures the PSF there with
`sourceclf.psf.measure_psf`, as on a frame: the isolated bright point sources
on the stellar locus, each fitted with a Moffat profile, and the median of
the point-source locus.  Each stamp's source lies at its centre, so that the
stamps' sources are as far apart as the stamps are wide, and a neighbour
within a stamp is as isolated as on the frame.  On the stamps of the clean
bright sources of the shared SDSS fields, natively and blurred, the r-band
PSF's FWHM and Moffat index agree with the frame's
(``docs/scripts/stamps_check.py`` prints both; ``tests/test_stamp_psf.py``
checks the calibObj stars of field 4510-4-0030).

Stamps from frames of different seeing give the median of their PSFs.
"""

import numpy as np

from .bands import SDSS_PIXEL_SCALE
from .exceptions import InvalidInputError
from .psf import measure_psf

__all__ = ["stamp_mosaic", "stamps_psf", "MOSAIC_STAMPS"]

#: Stamps laid into a mosaic at most (evenly spaced over the rows beyond).
MOSAIC_STAMPS = 2500


def stamp_mosaic(stamps):
    """One band's stamps side by side in a square grid, each less its median.

    Parameters
    ----------
    stamps : array-like
        Shape ``(N, H, W)``.  Non-finite pixels become 0 (the sky).

    Returns
    -------
    mosaic : `numpy.ndarray`
        ``float32`` image of ``ceil(sqrt(N))`` stamps a side, zero where the
        grid has no stamp.

    Examples
    --------
    >>> import numpy as np
    >>> stamp_mosaic(np.ones((5, 32, 32))).shape
    (96, 96)
    """
    stamps = np.asarray(stamps, dtype=np.float32)
    if stamps.ndim != 3 or not len(stamps):
        raise InvalidInputError(f"stamps of shape {stamps.shape}: expected (N, H, W), N > 0")
    n, h, w = stamps.shape
    side = int(np.ceil(np.sqrt(n)))
    clean = np.where(np.isfinite(stamps), stamps, np.float32(0.0))
    clean -= np.median(clean, axis=(1, 2), keepdims=True)
    grid = np.zeros((side * side, h, w), dtype=np.float32)
    grid[:n] = clean
    return grid.reshape(side, side, h, w).transpose(0, 2, 1, 3).reshape(side * h, side * w)


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
        Of the mosaic (`stamp_mosaic`); its ``stars`` are pixel positions on it.

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
    return measure_psf(stamp_mosaic(stamps), pixel_scale=pixel_scale, fwhm_guess=fwhm_guess,
                       min_stars=min_stars, label=label)
