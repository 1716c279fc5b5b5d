"""SDSS-like simulated catalogs and 5-band stamps, for training, tests and demos.

Five parts:

* measuring real frames: `measure_sky_sigma` (robust pixel noise),
  `fit_stamp_psf` (a 2-D Moffat fit to each star stamp; a whole frame's PSF
  is `sourceclf.psf.measure_psf`'s) and
  `measure_frame_properties` (both, per band, for a field's frames and a list
  of its stars).  The defaults of the simulator, `SDSS_BAND_DEFAULTS`, are the
  numbers they give for SDSS field 4510-4-0030 (see below);
* `render_stamps`: one ``(5, size, size)`` stamp in nanomaggies for every row
  of a catalog with MargNet's columns, drawn with GalSim (point sources for
  stars and quasars, de Vaucouleurs or Sersic profiles for galaxies, convolved
  with a Moffat or Kolmogorov PSF of the row's ``psffwhm_<b>``), with sky and
  source noise as measured on the real frames;
* `simulate_catalog`: a catalog of stars, galaxies and quasars with MargNet's
  columns, drawn from simple parametric distributions or resampled from a real
  table;
* `draw_observing_conditions`: seeing, PSF shape and sky noise of simulated
  fields, drawn from the ranges measured on real SDSS fields
  (`OBSERVING_CONDITIONS`), so that image models are trained across
  observing conditions;
* `degrade_seeing` and `degrade_frames`: real frames (or stamps) blurred to a
  worse seeing with their sky noise kept, to test image models at seeing the
  real frames do not have; ``kernel=`` says how the PSF widens (nearly
  Gaussian, the atmosphere's Kolmogorov profile, or the native Moffat's shape).

The measured numbers (field 4510-4-0030, run 4510, camcol 4, field 30; SDSS
DR17 corrected frames; PSF from Moffat fits to the calibObj photometric stars
with PSFFLUX between 20 and 2000 nanomaggies in the band and a peak S/N of at
least 20; sky noise: sigma-clipped MAD-based sigma of the frame's pixels):

====  ========  ======  ========  ======  ======  ==========  ==========  =========
band  PSF FWHM  Moffat  calibObj  psf     stars   sky sigma   sky level   nmgy per
      (arcsec)  beta    PSF_FWHM  scale   fitted  (nmgy/pix)  (nmgy/pix)  electron
====  ========  ======  ========  ======  ======  ==========  ==========  =========
u     1.009     3.68    1.137     0.888   9       0.0443      0.153       0.0128
g     1.007     3.73    1.098     0.917   16      0.0150      0.211       0.00107
r     0.972     3.32    1.070     0.908   22      0.0233      0.478       0.00114
i     0.856     3.03    0.974     0.879   35      0.0353      0.728       0.00171
z     0.924     3.40    0.996     0.928   41      0.179       2.02        0.0158
====  ========  ======  ========  ======  ======  ==========  ==========  =========

(See `SDSS_BAND_DEFAULTS` for the exact values; they are checked against the
real frames by the test suite.)  SDSS's catalog PSF widths (``psffwhm_<b>``,
calibObj ``PSF_FWHM``) are effective widths of a double-Gaussian-plus-wings
model, about 10% larger than the FWHM of the PSF's core; `render_stamps`
multiplies them by ``psf_scale`` so that simulated stars have the core width of
real ones.
"""

from ..bands import EXTINCTION_RATIO
from .catalogs import simulate_catalog
from .conditions import (OBSERVING_CONDITIONS, draw_observing_conditions, psf_fwhm_ratio,
                         sky_sigma_range)
from .degrade import degrade_frames, degrade_seeing
from .measurement import fit_stamp_psf, measure_frame_properties, measure_sky_sigma
from .rendering import render_stamps
from .sdss_imaging import SDSS_BAND_DEFAULTS, nanomaggies

__all__ = ["SDSS_BAND_DEFAULTS", "EXTINCTION_RATIO", "nanomaggies", "measure_sky_sigma",
           "fit_stamp_psf", "measure_frame_properties", "render_stamps", "simulate_catalog",
           "degrade_seeing", "degrade_frames", "OBSERVING_CONDITIONS",
           "draw_observing_conditions", "psf_fwhm_ratio", "sky_sigma_range"]
