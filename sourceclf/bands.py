"""The photometric bands sourceclf knows and the constants derived from them.

Every constant here is defined once; other modules import it from here, and
`by_band_name` reads any ``{band: value}`` argument (frames, stamps, PSFs).
"""

from .exceptions import InvalidInputError

__all__ = ["BANDS", "SDSS_PIXEL_SCALE", "COLOURS", "MARGNET_FEATURES", "EXTINCTION_COEFFICIENTS",
           "EXTINCTION_RATIO", "by_band_name"]

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


def by_band_name(mapping, what):
    """The values of a mapping keyed by band name, keyed by `BANDS`.

    Parameters
    ----------
    mapping : dict
        ``{band: value}`` for each of u, g, r, i, z; keys match whatever their
        case and surrounding spaces (``'R '`` is r).
    what : str
        The argument's name, for the error messages (``'images'``, ``'psf'``).

    Returns
    -------
    by_band : dict
        ``{band: value}`` in the order of `BANDS`, the values as given.

    Raises
    ------
    InvalidInputError
        One line naming ``what``: not a mapping, an unknown band, a band named
        twice (``'r'`` and ``'R'``) or a band missing.

    Examples
    --------
    >>> from sourceclf.bands import by_band_name
    >>> by_band_name({"Z": 5, "u": 1, "g": 2, "r": 3, " i": 4}, "psf")
    {'u': 1, 'g': 2, 'r': 3, 'i': 4, 'z': 5}
    """
    if not hasattr(mapping, "items"):
        raise InvalidInputError(f"{what} must be a dict {{band: ...}} for bands "
                                f"{', '.join(BANDS)}, got {type(mapping).__name__}")
    named = {}
    for key, value in mapping.items():
        name = str(key).strip().lower()
        if name not in BANDS:
            raise InvalidInputError(f"{what} has an unknown band {key!r}; bands are "
                                    f"{', '.join(BANDS)}")
        if name in named:
            raise InvalidInputError(f"{what} names band '{name}' twice")
        named[name] = value
    missing = [b for b in BANDS if b not in named]
    if missing:
        raise InvalidInputError(f"{what} lacks band(s) {', '.join(missing)}; all of "
                                f"{', '.join(BANDS)} are needed")
    return {b: named[b] for b in BANDS}
