"""docs/scripts/sky_offset_check.py: frames moved by a share of their sky noise, and scored."""

import numpy as np
import pytest
from astropy.io import fits

pytest.importorskip("galsim")


def test_offset_frames_move_each_band_by_its_own_sky_noise_and_leave_the_frames(doc_script):
    from sourceclf.psf import sky_level

    script = doc_script("sky_offset_check")
    rng = np.random.default_rng(0)
    frames = {b: fits.PrimaryHDU(rng.normal(0.0, sigma, (64, 64)).astype(np.float32))
              for b, sigma in (("g", 0.02), ("r", 0.05))}
    before = {b: hdu.data.copy() for b, hdu in frames.items()}
    moved = script.offset_frames(frames, -0.5)
    for b, hdu in frames.items():
        np.testing.assert_array_equal(hdu.data, before[b])  # not modified
        sigma = sky_level(before[b], b)[1]
        np.testing.assert_allclose(moved[b].data - before[b], -0.5 * sigma, rtol=1e-4)


def test_scores_count_stars_and_quasars_as_point_like_and_leave_unclassified_rows_out(
        doc_script):
    script = doc_script("sky_offset_check")
    pred = ["STAR", "QSO", "GALAXY", "GALAXY", "STAR", ""]
    truth = ["STAR", "STAR", "QSO", "GALAXY", "GALAXY", "GALAXY"]
    point, extended, balanced = script.scores(pred, truth)  # check_fields.score's, to 0.001
    assert point == pytest.approx(2 / 3, abs=1e-3)  # the QSO called GALAXY is a miss
    assert extended == pytest.approx(1 / 2, abs=1e-3)  # the unclassified row is left out
    assert balanced == pytest.approx((2 / 3 + 1 / 2) / 2, abs=1e-3)


def test_the_script_prints_a_row_per_model_and_offset(doc_script, capsys):
    script = doc_script("sky_offset_check")
    script.main(["--n", "8", "--seeds", "0", "--r-max", "99", "--offsets=0,-0.5",
                 "--models", "margnet-cnn-sgq"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("demo frames, 8 sources x seeds 0, 8 with r < 99.0")
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [("margnet-cnn-sgq", "+0.00"),
                                            ("margnet-cnn-sgq", "-0.50")]
    assert float(rows[0][-1]) == 0.0  # the frames as drawn against themselves
    assert all(0.0 <= float(v) <= 1.0 for r in rows for v in r[2:6])
