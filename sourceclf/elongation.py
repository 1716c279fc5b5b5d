"""Rows seen through a PSF more elongated than the image models were checked on.

The simulated fields the image models were trained on draw their PSF's
elongation up to a distortion of 0.12 (``OBSERVING_CONDITIONS['ellipticity']``
in `sourceclf.simulate.conditions`), an axis ratio of 0.886: ``1 - b/a`` up to
0.11.  The five shared SDSS fields measure ``1 - b/a`` of 0.01-0.15 per band
(`sourceclf.psf.PSFMeasurement.ellipticity`: the median over a frame's PSF
stars of ``1 - b/a`` from Gaussian-weighted second moments, which the noise
of a round PSF already raises to about 0.02).  Wind shake and tracking errors
elongate an SDSS PSF further, and the circular Moffat a PSF's FWHM is measured
with then depends on which stars are fitted (docs/images.rst, "PSF shape").

``docs/scripts/conditions_check.py psf-shape`` smooths the frames of the three
uncrowded shared fields along one axis.  Up to ``1 - b/a`` of 0.21-0.22 in r
the models' scores move by no more than their standard error; beyond
`ELONGATION_LIMIT` the rows are flagged ``psf_elongated`` (they are still
classified): the models were neither trained nor checked there.

`sourceclf.classify` knows a band's elongation where the PSF is measured: on
the frames, given as a `~sourceclf.psf.PSFMeasurement`, or on stamps given
without frames, on their own point sources
(`sourceclf.stamp_psf.stamps_psf_shape`).
"""

import numpy as np

from .bands import BANDS

__all__ = ["FLAG_PSF_ELONGATED", "ELONGATION_LIMIT", "elongation_flags"]

#: ``pred_flag`` reason: the PSF of a band of the row's frames is more elongated
#: than `ELONGATION_LIMIT`.
FLAG_PSF_ELONGATED = "psf_elongated"

#: Largest ``1 - b/a`` of a band's PSF (`sourceclf.psf.PSFMeasurement.ellipticity`)
#: before its rows are flagged: above the shared fields' 0.22 that the checks
#: reached with the models holding, and twice the training range's 0.11.
ELONGATION_LIMIT = 0.25


def elongation_flags(ellipticity, *, limit=ELONGATION_LIMIT):
    """Which rows' PSF is more elongated than ``limit`` in some band.

    Parameters
    ----------
    ellipticity : dict
        ``{band: array}`` of each row's PSF ``1 - b/a`` per band, NaN where
        unknown (never flagged).
    limit : float
        Largest ``1 - b/a`` not flagged.

    Returns
    -------
    elongated : `numpy.ndarray` of bool
        Some band's known ``1 - b/a`` exceeds ``limit``.

    Examples
    --------
    >>> import numpy as np
    >>> elongation_flags({"r": np.array([0.05, 0.31, np.nan]), "g": np.array([0.1, 0.1, 0.4])})
    array([False,  True,  True])
    """
    n = len(next(iter(ellipticity.values()))) if ellipticity else 0
    out = np.zeros(n, dtype=bool)
    for band in BANDS:
        if band in ellipticity:
            values = np.asarray(ellipticity[band], dtype=float)
            with np.errstate(invalid="ignore"):
                out |= np.isfinite(values) & (values > limit)
    return out
