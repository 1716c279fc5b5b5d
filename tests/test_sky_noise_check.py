"""docs/scripts/sky_noise_check.py, which scores the image models on noisier frames."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("sky_noise_check")


def test_noise_is_added_in_quadrature_to_reach_the_factor(script):
    rng = np.random.default_rng(0)
    sky = {"r": 0.03, "u": 0.05}
    frames = {b: (rng.normal(0.0, s, (400, 400)).astype(np.float32), f"wcs {b}")
              for b, s in sky.items()}
    noisy = script.noisier(frames, sky, 2.0, np.random.default_rng(1))
    for b, s in sky.items():
        assert np.std(noisy[b][0]) == pytest.approx(2.0 * s, rel=0.02)
        assert noisy[b][1] == f"wcs {b}" and noisy[b][0].dtype == np.float32
    same = script.noisier(frames, sky, 1.0, np.random.default_rng(1))
    np.testing.assert_array_equal(same["r"][0], frames["r"][0])
    with pytest.raises(ValueError, match="at least 1"):
        script.noisier(frames, sky, 0.5, np.random.default_rng(1))
