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

    Rows flagged ``edge`` are held too: the part of their stamps beyond the frame holds no
    measurement, which the networks leave alone and the columns' fits give no weight
    (read as pixels of 0, it moved a demo edge row's probabilities by 0.27).  The test
    checks that the demo has such rows, classified."""
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
    edge = np.char.find(np.asarray(drawn["pred_flag"], dtype=str), "edge") >= 0
    assert rows.sum() >= 25 and (rows & edge).any()
    for k in (-0.5, 0.5):
        change = np.abs([np.ma.filled(out[k][p], np.nan)[rows]
                         - np.ma.filled(drawn[p], np.nan)[rows] for p in probs])
        assert change.max() <= 0.05, (k, change.max())
        assert np.mean(np.asarray(out[k]["pred_class"])[rows]
                       == np.asarray(drawn["pred_class"])[rows]) >= 0.95


def test_edge_rows_are_the_positions_whose_stamps_reach_past_a_frame(doc_script):
    """source_stamps' 32-pixel window of a source at pixel x runs from floor(x) - 15 to
    floor(x) + 16: a source 15 pixels from the frame's first pixel stays inside."""
    from astropy.wcs import WCS

    from sourceclf.bands import BANDS

    script = doc_script("sky_offset_check")
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix = [150.0, 2.0], [1.0, 1.0]  # pixel (0, 0) at crval
    wcs.wcs.cdelt = [-0.396 / 3600, 0.396 / 3600]
    frames = {b: (np.zeros((100, 120), np.float32), wcs) for b in BANDS}
    psf = {b: 1.2 for b in BANDS}  # a FWHM alone: not registered (nothing to register on)
    x = np.array([14.6, 15.2, 60.0, 60.0, 103.6, 104.3])
    y = np.array([50.0, 50.0, 83.6, 84.3, 50.0, 50.0])
    ra, dec = wcs.pixel_to_world_values(x, y)
    reach = script.edge_rows(frames, psf, ra, dec)
    np.testing.assert_array_equal(reach, [True, False, False, True, False, True])


def test_the_fields_check_prints_each_models_changes_at_the_edge(doc_script, shared_data,
                                                                 capsys):
    """On field 4510-4-0030 one clean source's stamp reaches past a frame (an extended
    source), and neither it nor the other source drawn for comparison moves with half a sky
    sigma; both are called GALAXY, as the truth has them."""
    script = doc_script("sky_offset_check")
    field = shared_data / "sdss_frame_004510-4-0030"
    if not field.is_dir():
        pytest.skip("field 4510-4-0030 is absent")
    script.main(["--fields", str(field), "--offsets=-0.5,0.5", "--models", "margformer-sgq"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["field", "model", "rows"]
    assert lines[1].endswith("hits at the frames as they are: edge point 0/0, extended 1/1; "
                             "inside point 0/0, extended 1/1")
    rows = [line.split() for line in lines[2:6]]
    assert [(r[2], r[3], r[4]) for r in rows] == [("edge", "1", "-0.50"), ("inside", "1", "-0.50"),
                                                  ("edge", "1", "+0.50"), ("inside", "1", "+0.50")]
    assert all(float(r[6]) < 0.01 and float(r[7]) == 0.0 for r in rows)
    assert lines[6].startswith("004510-4-0030  edge row r = 19.")
    assert lines[6].endswith(", extended: margformer-sgq GALAXY") and len(lines) == 7


def test_fields_from_a_folder_without_fields_is_a_one_line_error(doc_script, tmp_path, capsys):
    script = doc_script("sky_offset_check")
    with pytest.raises(SystemExit):
        script.main(["--fields", str(tmp_path)])
    assert "no field with its five frames" in capsys.readouterr().err
