"""docs/scripts/conditions_check.py: the image models on noisier frames and elongated PSFs."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("conditions_check")


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


def test_a_round_star_is_drawn_out_along_x(script):
    from sourceclf.psf import moffat_profile

    yy, xx = np.mgrid[:61, :61].astype(float)
    star = moffat_profile(xx - 30, yy - 30, 3.0, 3.5).astype(np.float32)
    frames = {"r": (star, "wcs r")}
    out = script.elongated(frames, 2.0)["r"]
    assert out[1] == "wcs r" and out[0].dtype == np.float32
    image = out[0]
    assert image.sum() == pytest.approx(star.sum(), rel=1e-4)  # flux kept
    wide_x = np.sum(image[30] > image.max() / 2)
    wide_y = np.sum(image[:, 30] > image.max() / 2)
    assert wide_x > wide_y  # longer along x than along y
    assert script.elongated(frames, 0.0)["r"][0] is star
    with pytest.raises(ValueError, match="not be negative"):
        script.elongated(frames, -1.0)


def test_each_condition_changes_the_frames_and_names_its_step(script):
    from types import SimpleNamespace

    from sourceclf.bands import BANDS

    rng = np.random.default_rng(0)
    native = {b: (rng.normal(0.0, 0.02, (60, 60)).astype(np.float32), None) for b in BANDS}
    psf = {b: SimpleNamespace(sky_sigma=0.02) for b in BANDS}
    seen = {b: SimpleNamespace(sky_sigma=0.04, fwhm=1.5, ellipticity=0.1) for b in BANDS}
    seen["r"] = SimpleNamespace(sky_sigma=0.04, fwhm=1.5, ellipticity=0.25)
    seen["i"] = SimpleNamespace(sky_sigma=0.04, fwhm=1.5, ellipticity=0.31)
    assert set(script.CONDITIONS) == {"sky-noise", "psf-shape", "units", "sky-level"}
    step, steps = script.CONDITIONS["sky-noise"]
    frames, describe = step(native, psf, 2.0, rng)
    assert steps[0] == 1.0 and np.std(frames["r"][0]) > 1.5 * np.std(native["r"][0])
    assert describe(seen).startswith("sky noise x2 (r 0.0400 nanomaggies; ")
    assert describe(seen).endswith(" times the trained top)")
    step, steps = script.CONDITIONS["psf-shape"]
    frames, describe = step(native, psf, 1.6, rng)
    assert steps[0] == 0.0 and np.std(frames["r"][0]) < np.std(native["r"][0])
    assert describe(seen) == ('smoothed along x by 1.6 pixels (r FWHM 1.50", 1 - b/a 0.25; '
                              'largest i 0.31)')


def test_an_unknown_condition_is_refused(script, capsys):
    with pytest.raises(SystemExit):
        script.main(["seeing"])
    assert "invalid choice: 'seeing'" in capsys.readouterr().err


def test_frames_in_other_units_and_with_the_sky_left_in(script):
    from types import SimpleNamespace

    from sourceclf.bands import BANDS

    rng = np.random.default_rng(0)
    native = {b: (rng.normal(0.0, 0.02, (60, 60)).astype(np.float32), f"wcs {b}")
              for b in BANDS}
    scaled = script.rescaled(native, 200.0)
    np.testing.assert_allclose(scaled["r"][0], native["r"][0] * 200.0, rtol=1e-6)
    assert scaled["r"][1] == "wcs r" and scaled["r"][0].dtype == np.float32
    with pytest.raises(ValueError, match="positive"):
        script.rescaled(native, 0.0)
    lifted = script.with_sky(native, 0.6)
    assert np.median(lifted["g"][0]) == pytest.approx(0.6, abs=0.01)
    step, steps = script.CONDITIONS["sky-level"]
    frames, describe = step(native, None, 0.6, rng)
    assert steps == (0.0, 0.6)
    assert describe(SimpleNamespace()).startswith("sky of 0.6 nanomaggies left in (median up to")
    step, steps = script.CONDITIONS["units"]
    assert steps[0] == 1.0
    frames, describe = step(native, None, 200.0, rng)
    r_sky = SimpleNamespace(sky_sigma=4.0)
    assert describe({"r": r_sky}) == "pixels times 200 (r sky noise 4)"


def test_sky_flagged_share(script):
    from astropy.table import Table

    result = Table({"pred_flag": ["", "sky_out_of_range", "crowded;sky_not_subtracted", "edge"]})
    assert script.sky_flagged(result) == 0.5
    assert script.flagged_text(result) == ", 50% flagged sky_*"
    shaken = Table({"pred_flag": ["psf_elongated", "sky_out_of_range;psf_elongated", "", ""]})
    assert script.elongated_flagged(shaken) == 0.5
    assert script.flagged_text(shaken) == ", 25% flagged sky_*, 50% flagged psf_elongated"


def test_stamp_scores_classify_the_stamps_cut_from_the_frames(script):
    """``--stamps``: the CNN on the stamps given as cutouts=, with the share flagged sky_*."""
    pytest.importorskip("galsim")
    from types import SimpleNamespace

    from astropy.table import Table
    from astropy.wcs import WCS

    from sourceclf.bands import BANDS
    from sourceclf.cutouts import make_cutouts
    from sourceclf.demo import demo_frames

    catalog, hdus = demo_frames(n=8, random_state=0, flagged=False)
    frames = {b: (np.asarray(h.data, np.float32), WCS(h.header)) for b, h in hdus.items()}
    on = make_cutouts(table=catalog, images=frames).flags != "off_frame"
    sources = Table({"ra": catalog["ra"][on], "dec": catalog["dec"][on]})
    labels = np.where(np.arange(len(sources)) % 2, "point", "extended")
    seen = {b: SimpleNamespace(fwhm=1.2) for b in BANDS}
    line = script.stamp_scores(sources, frames, seen, labels)
    assert line.startswith("stamps: margnet-cnn-sgq 0.") and "flagged" not in line
    line = script.stamp_scores(sources, script.with_sky(frames, 0.6), seen, labels)
    assert line.endswith(", 100% flagged sky_*")
