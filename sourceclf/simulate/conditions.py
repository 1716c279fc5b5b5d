"""Observing conditions of simulated SDSS fields: seeing, PSF shape and sky noise.

A network that judges a source's size against its PSF must see many PSFs in
training.  `draw_observing_conditions` draws, for each simulated *field*, one
set of conditions that every source of that field is rendered with, from the
ranges of `OBSERVING_CONDITIONS`.  Those ranges were measured on the five real
SDSS fields of ``../shared/data`` with `sourceclf.psf.measure_psf` and
`sourceclf.simulate.measure_sky_sigma` (r-band FWHM 0.82-1.27", u/r 1.03-1.50,
Moffat index 3-6, PSF 1 - b/a 0.01-0.15; see docs/images.rst), widened to
SDSS's own range of seeing (median r about 1.2-1.4" with a tail past 2")
using the catalog PSF widths of the 15,000 DR16 rows of
``sdss_dr16_faint_compact_sg.fits`` (r: 5/50/95% at 0.88/1.15/1.44" once
turned into a Moffat FWHM): seeing beyond the shared fields is drawn on
purpose, so that the models learn it rather than extrapolate to it.
"""

import numpy as np
from astropy.table import Table

from ..bands import BANDS
from ..psf import moffat_gamma
from ..utils._validation import check_positive_int, check_random_state

__all__ = ["OBSERVING_CONDITIONS", "SKY_WIDENING", "draw_observing_conditions", "psf_fwhm_ratio",
           "sky_sigma_range"]

#: The distributions `draw_observing_conditions` draws from.
#:
#: ``r_fwhm``
#:     r-band FWHM (arcsec) of the effective PSF: with probability
#:     ``1 - wide_fraction`` log-normal (``median``, ``sigma_ln``), else uniform
#:     over ``wide``; clipped to ``clip``.
#: ``band_ratio``
#:     FWHM of each band over r's: ``(median, sigma_ln)`` of a log-normal
#:     (the five fields: u/r 1.03-1.50, g/r 1.02-1.29, i/r 0.88-1.13, z/r
#:     0.95-1.28; DR16 catalog widths: 5-95% 1.01-1.41, 0.94-1.32, 0.83-1.05,
#:     0.82-1.16).
#: ``moffat_beta``
#:     Moffat index of the PSF's core per field and band, uniform over
#:     ``range``; for ``gaussian_fraction`` of the fields uniform over
#:     ``gaussian_like`` (near-Gaussian cores, as blurred frames have).
#: ``wing``
#:     The PSF's power-law wing, per field: a share of the light (uniform over
#:     ``fraction``) in a Moffat of index ``beta`` and ``scale`` times the
#:     core's FWHM.  The stars of field 4510-4-0030 (r 15.5-18) follow a
#:     Moffat core of index 4 with 10% of their light in a Moffat of index
#:     2.5 and three times its width out to 11 pixels; a single Moffat of the
#:     measured index 3.3 has 2-5 times too little light beyond 6 pixels.
#: ``ellipticity``
#:     PSF distortion ``(1 - q**2) / (1 + q**2)`` (GalSim's ``e``; axis
#:     ratio ``q``), uniform from 0 to this, one random position angle per
#:     field: 0.12 is ``1 - b/a`` = 0.11 (the shared fields measure 0.01-0.15
#:     per band; `sourceclf.elongation` flags rows beyond 0.25).
#: ``sky_sigma``
#:     Sky noise per band (nanomaggies per pixel), uniform over the range the
#:     five fields span, widened by 10% each way.
OBSERVING_CONDITIONS = {
    "r_fwhm": {"median": 1.2, "sigma_ln": 0.22, "wide_fraction": 0.35, "wide": (1.4, 2.5),
               "clip": (0.75, 2.5)},
    "band_ratio": {"u": (1.18, 0.10), "g": (1.08, 0.07), "r": (1.0, 0.0),
                   "i": (0.96, 0.07), "z": (1.02, 0.09)},
    "moffat_beta": {"range": (3.0, 6.0), "gaussian_fraction": 0.15,
                    "gaussian_like": (6.0, 12.0)},
    "wing": {"fraction": (0.04, 0.16), "scale": (2.5, 3.5), "beta": (2.2, 3.0)},
    "ellipticity": 0.12,
    "sky_sigma": {"u": (0.037, 0.056), "g": (0.015, 0.022), "r": (0.023, 0.035),
                  "i": (0.035, 0.071), "z": (0.178, 0.213)},
}


#: Factor by which the sky noise range of `OBSERVING_CONDITIONS` is widened
#: each way when fields are drawn.
SKY_WIDENING = 1.1


def sky_sigma_range(conditions=None):
    """The sky noise per pixel the simulated fields are drawn from, per band.

    Parameters
    ----------
    conditions : dict, optional
        As `OBSERVING_CONDITIONS` (the default).

    Returns
    -------
    sky_range : dict
        ``{band: (low, high)}`` in nanomaggies: the range of
        ``conditions['sky_sigma']`` widened by `SKY_WIDENING` each way, which
        the image models' cards keep as ``domain['sky_sigma']``.
    """
    c = OBSERVING_CONDITIONS if conditions is None else conditions
    return {b: (round(low / SKY_WIDENING, 4), round(high * SKY_WIDENING, 4))
            for b, (low, high) in c["sky_sigma"].items()}


def draw_observing_conditions(n_fields, *, random_state=None, conditions=None):
    """Draw the observing conditions of ``n_fields`` simulated fields.

    Parameters
    ----------
    n_fields : int
        Number of fields.
    random_state : None, int or `numpy.random.Generator`
        Seed.
    conditions : dict, optional
        Distributions in the layout of `OBSERVING_CONDITIONS` (the default).

    Returns
    -------
    fields : `~astropy.table.Table`
        One row per field: ``field`` (0 ... n_fields - 1), ``psf_fwhm_<b>``
        (arcsec, FWHM of the effective PSF, core and wing together, as
        `sourceclf.psf.measure_psf` measures it), ``psf_core_fwhm_<b>``
        (FWHM of the core Moffat that gives it), ``psf_beta_<b>`` (the core's
        Moffat index), ``psf_wing_fraction``, ``psf_wing_scale`` and
        ``psf_wing_beta`` (see `OBSERVING_CONDITIONS`), ``psf_e`` and
        ``psf_angle`` (ellipticity and its position angle, degrees) and
        ``sky_sigma_<b>`` (nanomaggies per pixel).

    Examples
    --------
    >>> from sourceclf.simulate import draw_observing_conditions
    >>> fields = draw_observing_conditions(500, random_state=0)
    >>> bool(0.75 <= fields["psf_fwhm_r"].min() and fields["psf_fwhm_r"].max() <= 2.5)
    True
    """
    n = check_positive_int(n_fields, "n_fields")
    rng = check_random_state(random_state)
    c = OBSERVING_CONDITIONS if conditions is None else conditions
    seeing = c["r_fwhm"]
    r = seeing["median"] * np.exp(rng.normal(0.0, seeing["sigma_ln"], n))
    wide = rng.random(n) < seeing["wide_fraction"]
    r[wide] = rng.uniform(*seeing["wide"], int(wide.sum()))
    r = np.clip(r, *seeing["clip"])
    fields = Table({"field": np.arange(n)})
    for b in BANDS:
        median, sigma = c["band_ratio"][b]
        fields[f"psf_fwhm_{b}"] = r * median * np.exp(rng.normal(0.0, sigma, n))
        fields[f"psf_fwhm_{b}"].unit = "arcsec"
    beta = c["moffat_beta"]
    gaussian_like = rng.random(n) < beta["gaussian_fraction"]
    for b in BANDS:
        fields[f"psf_beta_{b}"] = np.where(gaussian_like,
                                           rng.uniform(*beta["gaussian_like"], n),
                                           rng.uniform(*beta["range"], n))
    wing = c["wing"]
    fields["psf_wing_fraction"] = rng.uniform(*wing["fraction"], n)
    fields["psf_wing_scale"] = rng.uniform(*wing["scale"], n)
    fields["psf_wing_beta"] = rng.uniform(*wing["beta"], n)
    for b in BANDS:
        ratio = [psf_fwhm_ratio(beta, (f, k, w)) for beta, f, k, w in
                 zip(fields[f"psf_beta_{b}"], fields["psf_wing_fraction"],
                     fields["psf_wing_scale"], fields["psf_wing_beta"])]
        fields[f"psf_core_fwhm_{b}"] = np.asarray(fields[f"psf_fwhm_{b}"]) / np.array(ratio)
        fields[f"psf_core_fwhm_{b}"].unit = "arcsec"
    fields["psf_e"] = rng.uniform(0.0, c["ellipticity"], n)
    fields["psf_angle"] = rng.uniform(0.0, 180.0, n)
    fields["psf_angle"].unit = "deg"
    for b in BANDS:
        low, high = c["sky_sigma"][b]
        fields[f"sky_sigma_{b}"] = rng.uniform(low / SKY_WIDENING, high * SKY_WIDENING, n)
    return fields


#: Points of the radius grid of `psf_fwhm_ratio` (0 to 2 core FWHMs), and the
#: step of its coarse pass.
_RATIO_GRID, _RATIO_STEP = 20001, 100


def _moffat(radius, fwhm, beta):
    alpha = moffat_gamma(fwhm, beta)
    return (beta - 1.0) / (np.pi * alpha ** 2) * (1.0 + (radius / alpha) ** 2) ** -beta


def psf_fwhm_ratio(beta, wing=None):
    """FWHM of a Moffat core plus wing over the FWHM of its core.

    Parameters
    ----------
    beta : float
        Moffat index of the core.
    wing : tuple, optional
        ``(fraction, scale, beta)`` of the wing (as
        `sourceclf.simulate.render_stamps` takes it); None for none.

    Returns
    -------
    ratio : float
        1 without a wing; above 1 with one (the wing lowers the core's peak
        more than its half-maximum radius).

    Examples
    --------
    >>> from sourceclf.simulate import psf_fwhm_ratio
    >>> psf_fwhm_ratio(3.5)
    1.0
    >>> round(psf_fwhm_ratio(4.0, (0.1, 3.0, 2.5)), 3)
    1.007
    """
    if not wing or wing[0] <= 0:
        return 1.0
    fraction, scale, wing_beta = wing

    def profile(radius):
        return ((1 - fraction) * _moffat(radius, 1.0, beta)
                + fraction * _moffat(radius, scale, wing_beta))

    # The first radius of a fine grid (in units of the core's FWHM) where the
    # profile, which falls monotonically, is at or below half its peak: found
    # on every 100th point of the grid, then among the 100 before it, which
    # gives the grid's answer for 1% of the profile evaluations.
    radius = np.linspace(0.0, 2.0, _RATIO_GRID)
    half_peak = profile(radius[:1])[0] / 2
    coarse = np.flatnonzero(profile(radius[::_RATIO_STEP]) <= half_peak)[0] * _RATIO_STEP
    fine = radius[coarse - _RATIO_STEP + 1:coarse + 1]
    return float(2 * fine[np.flatnonzero(profile(fine) <= half_peak)[0]])
