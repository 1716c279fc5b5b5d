"""The photometric bands sourceclf knows and the constants derived from them.

Every constant here is defined once; other modules import it from here.
"""

__all__ = ["BANDS", "SDSS_PIXEL_SCALE", "COLOURS", "MARGNET_FEATURES", "EXTINCTION_RATIO"]

#: SDSS bands in wavelength order; arrays inside sourceclf are channels-first in this order.
BANDS = ("u", "g", "r", "i", "z")

#: SDSS imaging pixel scale in arcsec per pixel.
SDSS_PIXEL_SCALE = 0.396

#: Observed colours of adjacent bands, named ``<a>_<b>``: ``u_g``, ``g_r``, ``r_i``, ``i_z``.
COLOURS = tuple(f"{a}_{b}" for a, b in zip(BANDS[:-1], BANDS[1:]))

#: MargNet's 24 features in the order of the published ``dnnx`` arrays:
#: dered, deVRad, psffwhm, extinction for u, then g, r, i, z; then the observed
#: model colours u_g, g_r, r_i, i_z.
MARGNET_FEATURES = tuple(f"{kind}_{b}" for b in BANDS
                         for kind in ("dered", "deVRad", "psffwhm", "extinction")) + COLOURS

#: Extinction in each band relative to r: A_b / E(B-V) of Schlafly &
#: Finkbeiner (2011) for SDSS, 4.239, 3.303, 2.285, 1.698, 1.263, over r's.
EXTINCTION_RATIO = {"u": 4.239 / 2.285, "g": 3.303 / 2.285, "r": 1.0,
                    "i": 1.698 / 2.285, "z": 1.263 / 2.285}
