"""docs/scripts/border_sky_check.py: what a stamp's border median takes away on real fields."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("border_sky_check")


def test_the_border_median_is_the_one_the_models_subtract():
    """The script reads `sourceclf.sky.stamp_sky_rows`' border median, the sky the image
    networks subtract (`AsinhNormalise.border_sky`, whose torch median of an even count
    is the lower middle value: the two agree to a small share of the noise)."""
    import torch

    from sourceclf.models.margnet_cnn import AsinhNormalise
    from sourceclf.sky import STAMP_BORDER, stamp_sky_rows

    stamps = np.random.default_rng(0).normal(0.3, 0.05, (4, 5, 32, 32))
    quick = stamp_sky_rows(stamps, border=STAMP_BORDER)["r"][0]
    normalise = AsinhNormalise(5, sky_border=STAMP_BORDER)
    sky = normalise.border_sky(torch.as_tensor(stamps, dtype=torch.float32))[:, 2].numpy()
    np.testing.assert_allclose(quick, sky, atol=0.05 * 0.05)


def test_the_check_prints_each_band_of_a_field(script, shared_data, capsys):
    field = shared_data / "sdss_frame_004510-4-0030"
    if not field.is_dir():
        pytest.skip("field 4510-4-0030 is absent")
    script.main(["--data", str(field)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["field", "band", "n"]
    rows = [line.split() for line in lines[2:]]
    # one of the 90 clean sources' stamps reaches past a frame (flagged ``edge``): left out
    assert [r[:3] for r in rows] == [["004510-4-0030", "g", "89"], ["004510-4-0030", "r", "89"]]
    for row in rows:
        frame, background, annulus, border, clipped = map(float, row[3:8])
        # an uncrowded field: every measure within half a sky sigma of zero, and the
        # clipped border median no higher than the plain one
        assert all(abs(v) < 0.5 for v in (frame, background, annulus, border, clipped))
        assert clipped <= border


def test_a_folder_without_fields_is_a_one_line_error(script, tmp_path, capsys):
    with pytest.raises(SystemExit):
        script.main(["--data", str(tmp_path)])
    assert "no field with its five frames" in capsys.readouterr().err
