"""docs/scripts/stamp_sky_rows.py: stamps judged one by one by their borders' sky."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("stamp_sky_rows")


def test_flagged_picks_the_stamps_of_a_noisier_frame(script):
    from sourceclf.bands import BANDS

    rng = np.random.default_rng(2)
    stamps = rng.normal(0.0, 0.03, (12, 5, 32, 32)).astype(np.float32)
    stamps[:4] *= 4.0
    trained = {b: (0.02, 0.04) for b in BANDS}
    odd = script.flagged(stamps, np.arange(1, 12), trained)
    np.testing.assert_array_equal(odd, (np.arange(12) < 4) & (np.arange(12) > 0))
