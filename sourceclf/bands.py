"""The photometric bands sourceclf knows and the constants derived from them.

Every constant here is defined once; other modules import it from here.
"""

__all__ = ["BANDS", "SDSS_PIXEL_SCALE", "COLOURS", "MARGNET_FEATURES", "EXTINCTION_COEFFICIENTS",
           "EXTINCTION_RATIO"]

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

#: Extinction per unit colour excess, A_b / E(B-V), of Schlafly & Finkbeiner
#: (2011, table 6, R_V = 3.1) for SDSS: SDSS's ``extinction_<b>`` is these times
#: the Schlegel, Finkbeiner & Davis (1998) E(B-V) at the source (the calibObj
#: stars of field 004510-4-0030 have exactly their ratios).
EXTINCTION_COEFFICIENTS = {"u": 4.239, "g": 3.303, "r": 2.285, "i": 1.698, "z": 1.263}

#: Extinction in each band relative to r (`EXTINCTION_COEFFICIENTS` over r's).
EXTINCTION_RATIO = {b: a / EXTINCTION_COEFFICIENTS["r"] for b, a in EXTINCTION_COEFFICIENTS.items()}
