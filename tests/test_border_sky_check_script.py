"""docs/scripts/border_sky_check.py: what a stamp's border median takes away on real fields."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("border_sky_check")


def test_border_pixels_are_those_the_models_take_the_sky_from(script):
    import torch

    from sourceclf.models.margnet_cnn import AsinhNormalise

    stamps = np.random.default_rng(0).normal(0.3, 0.05, (4, 32, 32))
    pixels = script.border_pixels(stamps, 3)
    assert pixels.shape == (4, 32 * 32 - 26 * 26)
    normalise = AsinhNormalise(1, sky_border=3)
    sky = normalise.border_sky(torch.as_tensor(stamps[:, None], dtype=torch.float32))[:, 0]
    # torch's median of an even count is the lower of the two middle values
    np.testing.assert_allclose(sky, np.sort(pixels, axis=1)[:, pixels.shape[1] // 2 - 1],
                               atol=1e-6)


def test_a_clipped_median_leaves_a_neighbour_out_and_keeps_a_smooth_background(script):
    rng = np.random.default_rng(1)
    sigma = 0.02
    pixels = rng.normal(0.1, sigma, (2, 500))
    pixels[0, :200] += 1.0  # a bright neighbour's pixels, 40% of the border
    clipped = script.clipped_median(pixels, sigma)
    plain = np.median(pixels, axis=1)
    assert plain[0] > 0.1 + 0.5 * sigma  # the neighbour raises the plain median
    np.testing.assert_allclose(clipped, 0.1, atol=0.2 * sigma)
    assert clipped[1] == pytest.approx(plain[1], abs=0.1 * sigma)  # nothing to clip


def test_the_check_prints_each_band_of_a_field(script, shared_data, capsys):
    field = shared_data / "sdss_frame_004510-4-0030"
    if not field.is_dir():
        pytest.skip("field 4510-4-0030 is absent")
    script.main(["--data", str(field)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["field", "band", "n"]
    rows = [line.split() for line in lines[2:]]
    assert [r[:3] for r in rows] == [["004510-4-0030", "g", "90"], ["004510-4-0030", "r", "90"]]
    for row in rows:
        frame, background, annulus, border, clipped = map(float, row[3:8])
        # an uncrowded field: every measure within half a sky sigma of zero, and the
        # clipped border median no higher than the plain one
        assert all(abs(v) < 0.5 for v in (frame, background, annulus, border, clipped))
        assert clipped <= border
