"""The photometric bands sourceclf knows, in the order used everywhere inside the package."""

__all__ = ["BANDS", "SDSS_PIXEL_SCALE"]

#: SDSS bands in wavelength order; arrays inside sourceclf are channels-first in this order.
BANDS = ("u", "g", "r", "i", "z")

#: SDSS imaging pixel scale in arcsec per pixel.
SDSS_PIXEL_SCALE = 0.396
