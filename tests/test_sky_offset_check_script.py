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


@pytest.fixture(scope="module")
def demo_field():
    from sourceclf.demo import demo_frames

    return demo_frames(n=30, random_state=0)


@pytest.mark.parametrize("model", ["margnet-cnn-sgq", "margnet-sgq", "margformer-sgq",
                                   "bayesian-margnet-sgq", "bayesian-margformer-sgq"])
def test_the_shipped_image_models_hold_a_sky_half_a_sigma_off(doc_script, demo_field, model):
    """Each stamp's border sky is subtracted before the networks (``sky_border``), and the
    catalog columns are measured less each stamp's median, so a sky a little off zero,
    far below the ``sky_not_subtracted`` flag, moves neither classes nor probabilities.
    Before the models subtracted it, a quarter of a sigma below zero turned most of
    ``margnet-cnn-sgq``'s galaxies into point sources.

    Rows flagged ``edge`` are left out for the models that read the catalog columns:
    their stamps' part beyond the frame is filled with 0, which the columns' fits read as
    pixels (a demo edge row moved 0.27 in probability); the networks themselves leave
    the fill alone, so the image-only CNN holds there too."""
    import warnings

    from sourceclf import classify

    script = doc_script("sky_offset_check")
    catalog, frames = demo_field
    probs = ["prob_galaxy", "prob_qso", "prob_star"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {k: classify(catalog["ra", "dec"], images=script.offset_frames(frames, k),
                           psf=script.DEMO_SEEING, model=model) for k in (-0.5, 0.0, 0.5)}
    drawn = out[0.0]
    rows = ~np.asarray(drawn["pred_class"].mask)
    if model != "margnet-cnn-sgq":
        rows &= np.char.find(np.asarray(drawn["pred_flag"], dtype=str), "edge") < 0
    assert rows.sum() >= 25
    for k in (-0.5, 0.5):
        change = np.abs([np.ma.filled(out[k][p], np.nan)[rows]
                         - np.ma.filled(drawn[p], np.nan)[rows] for p in probs])
        assert change.max() <= 0.05, (k, change.max())
        assert np.mean(np.asarray(out[k]["pred_class"])[rows]
                       == np.asarray(drawn["pred_class"])[rows]) >= 0.95
