"""sourceclf.magnitudes: a band's numbers as magnitudes (clean_column's cases are in
test_columns.py)."""

import numpy as np
import pytest
from astropy import units as u

from sourceclf.exceptions import InvalidInputError
from sourceclf.magnitudes import check_plain_magnitudes, magnitudes_in


def test_fluxes_become_ab_magnitudes_and_no_flux_is_missing():
    out = magnitudes_in(np.array([1.0, 100.0, 0.0, -3.0]), u.nmgy, "column 'r'", "nmgy")
    np.testing.assert_allclose(out[:2], [22.5, 17.5])
    assert np.isnan(out[2:]).all()
    mags = np.array([18.0, np.nan])
    assert magnitudes_in(mags, None, "column 'r'", None) is mags
    with pytest.raises(InvalidInputError, match="column 'r' has unit 'arcsec', which is "
                                                "neither a magnitude nor a flux density"):
        magnitudes_in(mags, u.arcsec, "column 'r'", "arcsec")


def test_plain_fluxes_are_refused_and_magnitudes_pass():
    rng = np.random.default_rng(0)
    check_plain_magnitudes(rng.uniform(14, 22, 500), "column 'r'", "r")
    with pytest.raises(InvalidInputError, match=r"^column 'r' has no unit .*its values span "
                                                r".*--unit r=nmgy"):
        check_plain_magnitudes(10 ** rng.uniform(0, 3, 500), "column 'r'", "r")
