"""The profile templates and their fits (sourceclf.profile_fits)."""

import numpy as np
import pytest
from astropy.table import Table

from sourceclf.bands import BANDS
from sourceclf.psf import moffat_profile

pytest.importorskip("galsim")


def test_the_profiles_of_a_psf_are_drawn_once():
    """profile_templates keeps what it drew: the same PSF, stamp size and scale again is
    not drawn again (the chunks of a catalog, the models of one check), each caller gets
    its own writeable copy, and the fits give the same columns."""
    from sourceclf.photometry import measure_stamp_columns
    from sourceclf.profile_fits import _drawn_templates, profile_templates

    _drawn_templates.cache_clear()
    first = profile_templates(1.3, 3.1, size=24)
    first[:] = 0.0  # the caller's copy
    again = profile_templates(1.3, 3.1, size=24)
    assert _drawn_templates.cache_info()[:2] == (1, 1)
    assert again.flags.writeable and again[0].sum() == pytest.approx(1.0, abs=0.01)
    profile_templates(1.3, 3.2, size=24), profile_templates(1.3, 3.1, size=26)
    assert _drawn_templates.cache_info()[:3] == (1, 3, 3)

    yy, xx = np.mgrid[:32, :32] - 15.5
    star = 50.0 * moffat_profile(xx, yy, 1.2 / 0.396, 3.5)
    stamps = star[None, None] + np.random.default_rng(0).normal(0, 0.01, (3, 5, 32, 32))
    table, psf, sky = Table({"id": [1, 2, 3]}), {b: 1.2 for b in BANDS}, {b: 0.01 for b in BANDS}
    fresh = measure_stamp_columns(table, stamps, psf, sky)
    drawn = _drawn_templates.cache_info()[1]
    kept = measure_stamp_columns(table, stamps, psf, sky)
    assert _drawn_templates.cache_info()[1] == drawn  # nothing drawn the second time
    for name in ("dered_r", "deVRad_r", "u_g"):
        np.testing.assert_array_equal(kept[name], fresh[name])


def test_fitting_moved_templates_is_fitting_centred_stamps():
    """fit_band moves the templates to each source (templates_at): on stamps that hold their
    source alone, the fits that centring the stamps gives (the training columns' way)."""
    import galsim

    from sourceclf.profile_fits import (PROFILE_RADII, centre_stamps, fit_band, fit_profiles,
                                        profile_templates, subpixel_offsets, templates_at)

    fwhm, beta, rng = 1.3, 3.2, np.random.default_rng(3)
    psf = galsim.Moffat(beta=beta, fwhm=fwhm)
    images, offsets = [], []
    for k in range(12):
        offset = tuple(rng.choice([-0.5, -0.25, 0.0, 0.25, 0.5], size=2))
        radius = PROFILE_RADII[k]
        obj = psf if radius == 0 else galsim.Convolve(
            galsim.DeVaucouleurs(half_light_radius=radius), psf)
        image = obj.withFlux(800.0).drawImage(nx=32, ny=32, scale=0.396, method="no_pixel",
                                              offset=offset).array
        images.append(image + rng.normal(0.0, 0.5, image.shape))
        offsets.append(offset)
    images = np.array(images)
    np.testing.assert_array_equal(subpixel_offsets(images, fwhm / 0.396, beta), offsets)
    templates = profile_templates(fwhm, beta)
    flux, best = fit_band(images, fwhm, beta)
    centred_flux, centred_best = fit_profiles(centre_stamps(images, fwhm / 0.396, beta), templates)
    np.testing.assert_array_equal(best, centred_best)
    np.testing.assert_allclose(flux, centred_flux, rtol=1e-9, atol=1e-9)
    # A moved template is the profile drawn at the offset (to its aliasing: 0.3% of the peak).
    drawn = psf.drawImage(nx=32, ny=32, scale=0.396, method="no_pixel", offset=(0.25, -0.5))
    np.testing.assert_allclose(templates_at(templates, 0.25, -0.5)[0], drawn.array.ravel(),
                               atol=5e-3 * drawn.array.max())
