"""Small helpers on a frame's WCS."""

import numpy as np

__all__ = ["pixel_scale"]


def pixel_scale(wcs):
    """Arcsec per pixel of a WCS's celestial axes (the mean of the two).

    Parameters
    ----------
    wcs : `~astropy.wcs.WCS`

    Returns
    -------
    scale : float
    """
    from astropy.wcs.utils import proj_plane_pixel_scales

    return float(np.mean(proj_plane_pixel_scales(wcs.celestial))) * 3600.0
