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
