"""Per-band properties of SDSS imaging, and SDSS's flux unit.

The numbers of `SDSS_BAND_DEFAULTS` were measured with
`~sourceclf.simulate.measure_frame_properties` on SDSS field 4510-4-0030 (see
`sourceclf.simulate`); the simulator uses them where a catalog does not say
otherwise.
"""

import numpy as np

__all__ = ["SDSS_BAND_DEFAULTS", "nanomaggies"]

#: Per-band properties of SDSS imaging measured on field 4510-4-0030 with
#: `measure_frame_properties` (see `sourceclf.simulate`):
#:
#: ``psf_fwhm``
#:     FWHM (arcsec) of the effective (pixel-convolved) PSF: median of 2-D
#:     Moffat fits to star stamps.
#: ``moffat_beta``
#:     Median Moffat index of the same fits.
#: ``catalog_psf_fwhm``
#:     Median SDSS ``PSF_FWHM`` (calibObj) of the same stars.
#: ``psf_scale``
#:     ``psf_fwhm / catalog_psf_fwhm``: turns an SDSS catalog PSF width
#:     (``psffwhm_<b>``) into the FWHM of the Moffat that looks like it.
#: ``sky_sigma``
#:     Pixel noise of the sky-subtracted frame, nanomaggies per pixel.
#: ``sky_level``
#:     The sky that was subtracted, nanomaggies per pixel.
#: ``nmgy_per_electron``
#:     ``sky_sigma**2 / sky_level``: nanomaggies per detected electron as if
#:     all sky noise were photon noise.  It slightly overstates source photon
#:     noise where read noise and dark current matter (u and z).
SDSS_BAND_DEFAULTS = {
    "u": {"psf_fwhm": 1.009, "moffat_beta": 3.68, "catalog_psf_fwhm": 1.137,
          "psf_scale": 0.888, "sky_sigma": 0.0443, "sky_level": 0.153,
          "nmgy_per_electron": 0.0128},
    "g": {"psf_fwhm": 1.007, "moffat_beta": 3.73, "catalog_psf_fwhm": 1.098,
          "psf_scale": 0.917, "sky_sigma": 0.0150, "sky_level": 0.211,
          "nmgy_per_electron": 0.00107},
    "r": {"psf_fwhm": 0.972, "moffat_beta": 3.32, "catalog_psf_fwhm": 1.070,
          "psf_scale": 0.908, "sky_sigma": 0.0233, "sky_level": 0.478,
          "nmgy_per_electron": 0.00114},
    "i": {"psf_fwhm": 0.856, "moffat_beta": 3.03, "catalog_psf_fwhm": 0.974,
          "psf_scale": 0.879, "sky_sigma": 0.0353, "sky_level": 0.728,
          "nmgy_per_electron": 0.00171},
    "z": {"psf_fwhm": 0.924, "moffat_beta": 3.40, "catalog_psf_fwhm": 0.996,
          "psf_scale": 0.928, "sky_sigma": 0.179, "sky_level": 2.02,
          "nmgy_per_electron": 0.0158},
}


def nanomaggies(mag):
    """Flux in nanomaggies of an SDSS (AB) magnitude.

    Parameters
    ----------
    mag : float or array-like
        Magnitudes.

    Returns
    -------
    flux : float or `numpy.ndarray`
        ``10 ** (-0.4 * (mag - 22.5))``.

    Examples
    --------
    >>> from sourceclf.simulate import nanomaggies
    >>> float(nanomaggies(22.5))
    1.0
    """
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - 22.5))
