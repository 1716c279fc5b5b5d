"""Frames unlike SDSS corrected frames (other units, sky left in, other pixels) are flagged."""

import json
import warnings

import numpy as np
import pytest

from sourceclf.bands import BANDS
from sourceclf.exceptions import FrameSkyWarning, StampSkyWarning
from sourceclf.models.registry import MODEL_DIR
from sourceclf.sky import (FLAG_SKY_NOT_SUBTRACTED, FLAG_SKY_OUT_OF_RANGE, SKY_DEPTH_FACTOR,
                           SKY_NOISE_FACTOR, frame_sky, sky_flags, sky_message, stamp_sky)

TRAINED = {b: (0.02, 0.04) for b in BANDS}


def _frames(sigma=0.03, level=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return {b: (rng.normal(level, sigma, (200, 200)).astype(np.float32), None) for b in BANDS}


def test_frame_sky_measures_each_frame_once_and_nan_where_it_cannot():
    frames = _frames(sigma=0.03, level=0.01)
    frames["z"] = frames["i"]  # one frame given for two bands
    sky = frame_sky(frames)
    for b in BANDS:
        assert sky[b][0] == pytest.approx(0.01, abs=0.002)
        assert sky[b][1] == pytest.approx(0.03, rel=0.05)
    assert sky["z"] == sky["i"]
    frames["u"] = (np.zeros((200, 200), np.float32), None)  # no noise: not measurable
    assert np.isnan(frame_sky(frames)["u"]).all()


def test_sky_flags_name_the_bands_outside_the_trained_sky():
    sky = {b: (0.0, 0.03) for b in BANDS}
    assert sky_flags(sky, TRAINED) == {FLAG_SKY_OUT_OF_RANGE: [], FLAG_SKY_NOT_SUBTRACTED: []}
    # inside the factors: not flagged (up to 1.5 times was checked to hold)
    sky = {**sky, "g": (0.0, 0.04 * SKY_NOISE_FACTOR * 0.99),
           "i": (0.0, 0.02 / SKY_DEPTH_FACTOR * 1.01)}
    assert sky_flags(sky, TRAINED)[FLAG_SKY_OUT_OF_RANGE] == []
    sky = {**sky, "g": (0.0, 0.04 * SKY_NOISE_FACTOR * 1.01),
           "i": (0.0, 0.02 / SKY_DEPTH_FACTOR * 0.99)}
    assert sky_flags(sky, TRAINED)[FLAG_SKY_OUT_OF_RANGE] == ["g", "i"]
    counts = {b: (1120.0 if b == "r" else 0.0, 200 * 0.03) for b in BANDS}  # raw counts
    found = sky_flags(counts, TRAINED)
    assert found[FLAG_SKY_OUT_OF_RANGE] == list(BANDS)
    assert found[FLAG_SKY_NOT_SUBTRACTED] == ["r"]
    janskys = {b: (0.0, 3.631e-6 * 0.03) for b in BANDS}
    assert sky_flags(janskys, TRAINED)[FLAG_SKY_OUT_OF_RANGE] == list(BANDS)
    sky_left = {b: (0.6, 0.03) for b in BANDS}
    assert sky_flags(sky_left, TRAINED) == {FLAG_SKY_OUT_OF_RANGE: [],
                                            FLAG_SKY_NOT_SUBTRACTED: list(BANDS)}
    unknown = {b: (np.nan, np.nan) for b in BANDS}
    assert sky_flags(unknown, TRAINED) == {FLAG_SKY_OUT_OF_RANGE: [],
                                           FLAG_SKY_NOT_SUBTRACTED: []}


def test_sky_message_says_what_was_measured_and_what_was_expected():
    sky = {b: (0.0, 0.03) for b in BANDS}
    sky["r"] = (1120.0, 6.0)
    text = sky_message(sky, TRAINED, sky_flags(sky, TRAINED))
    assert "\n" not in text
    assert "nanomaggies, sky-subtracted" in text
    assert "r 6 (trained 0.02-0.04)" in text and "sky median r 1.12e+03 (187 sigma)" in text
    assert "the rows on them are flagged 'sky_out_of_range' and 'sky_not_subtracted'" in text
    assert sky_message({b: (0.0, 0.03) for b in BANDS}, TRAINED,
                       {FLAG_SKY_OUT_OF_RANGE: [], FLAG_SKY_NOT_SUBTRACTED: []}) == ""


def test_the_image_cards_keep_the_simulated_sky_range():
    from sourceclf.simulate import sky_sigma_range

    expected = {b: list(r) for b, r in sky_sigma_range().items()}
    for name in ("margnet-cnn-sgq", "margnet-sgq", "margformer-sgq", "bayesian-margnet-sgq",
                 "bayesian-margformer-sgq"):
        card = json.loads((MODEL_DIR / name / "card.json").read_text())
        assert card["domain"]["sky_sigma"] == expected, name
        assert "sky_out_of_range" in card["domain"]["description"]


@pytest.fixture(scope="module")
def demo():
    pytest.importorskip("galsim")
    from sourceclf.demo import demo_frames

    catalog, frames = demo_frames(n=8, random_state=0, flagged=False)
    return catalog["ra", "dec"], {b: (hdu.data, hdu.header) for b, hdu in frames.items()}


def _classify(positions, frames, model="margnet-cnn-sgq"):
    from astropy.wcs import WCS

    from sourceclf import classify

    images = {b: (np.asarray(data, np.float32), WCS(header))
              for b, (data, header) in frames.items()}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = classify(positions, images=images, psf=1.2, model=model)
    texts = [str(w.message) for w in record if issubclass(w.category, FrameSkyWarning)]
    return out, texts


def _flagged(out, flag):
    return np.array([flag in str(f).split(";") for f in out["pred_flag"]])


def test_frames_in_nanomaggies_are_not_flagged(demo):
    out, texts = _classify(*demo)
    assert texts == []
    assert not _flagged(out, FLAG_SKY_OUT_OF_RANGE).any()
    assert not _flagged(out, FLAG_SKY_NOT_SUBTRACTED).any()


@pytest.mark.parametrize("scale", [200.0, 3.631e-6])  # about raw counts; janskys
def test_frames_in_other_units_are_flagged_with_one_warning(demo, scale):
    positions, frames = demo
    out, texts = _classify(positions, {b: (d * scale, h) for b, (d, h) in frames.items()})
    assert len(texts) == 1 and "sky noise per pixel" in texts[0]
    assert _flagged(out, FLAG_SKY_OUT_OF_RANGE).all()
    assert not out["pred_class"].mask.any()  # still classified, as other flagged rows


def test_a_sky_left_in_is_flagged_and_does_not_make_the_frame_crowded(demo):
    positions, frames = demo
    out, texts = _classify(positions, {b: (d + 0.6, h) for b, (d, h) in frames.items()})
    assert len(texts) == 1 and "sky median" in texts[0]
    assert _flagged(out, FLAG_SKY_NOT_SUBTRACTED).all()
    assert not _flagged(out, FLAG_SKY_OUT_OF_RANGE).any()
    clean, _ = _classify(*demo)
    # the coverage is measured above the sky left in: as on the sky-subtracted frames
    assert float(np.ma.median(out["frame_coverage"])) == pytest.approx(
        float(np.ma.median(clean["frame_coverage"])), abs=0.01)


def test_frames_of_another_pixel_scale_are_flagged(demo):
    """2x2-binned frames (0.792"/pixel, their WCS consistent) went through silently."""
    from astropy.wcs import WCS

    from sourceclf import classify
    from sourceclf.frames import FLAG_PIXEL_SCALE, pixel_scale_mismatch

    positions, frames = demo
    binned = {}
    for b, (data, header) in frames.items():
        ny, nx = (s // 2 * 2 for s in data.shape)
        small = data[:ny, :nx].reshape(ny // 2, 2, nx // 2, 2).sum(axis=(1, 3))
        wcs = WCS(header)[::2, ::2]
        binned[b] = (small.astype(np.float32), wcs)
    assert set(pixel_scale_mismatch(binned)) == set(BANDS)
    same = {b: (np.asarray(d, np.float32), WCS(h)) for b, (d, h) in frames.items()}
    assert pixel_scale_mismatch(same) == {}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = classify(positions, images=binned, psf=1.2, model="margnet-cnn-sgq")
    texts = [str(w.message) for w in record if FLAG_PIXEL_SCALE in str(w.message)]
    assert len(texts) == 1 and 'r 0.792"' in texts[0]
    on = out["pred_flag"] != "off_frame"
    assert on.any() and _flagged(out[on], FLAG_PIXEL_SCALE).all()


def test_stamp_sky_reads_the_borders_and_is_not_moved_by_a_few_large_galaxies():
    rng = np.random.default_rng(3)
    stamps = rng.normal(0.01, 0.03, (40, 5, 32, 32))
    yy, xx = np.mgrid[:32, :32]
    stamps[:5] += 5.0 * np.exp(-np.hypot(yy - 15.5, xx - 15.5) / 6.0)  # light to the border
    sky = stamp_sky(stamps)
    for b in BANDS:
        assert sky[b][0] == pytest.approx(0.01, abs=0.003)
        assert sky[b][1] == pytest.approx(0.03, rel=0.1)
    assert stamp_sky(stamps, rows=[0, 1, 2])["r"][0] > 0.1  # only the large galaxies
    assert np.isnan(stamp_sky(np.ones((3, 5, 32, 32)))["r"]).all()  # no noise
    assert np.isnan(stamp_sky(stamps, rows=[])["g"]).all()
    assert np.isnan(stamp_sky(np.zeros((3, 5, 6, 6)))["g"]).all()  # no pixel inside a border


def test_sky_message_names_stamps_when_stamps_were_measured():
    sky = {b: (0.6, 0.03) for b in BANDS}
    text = sky_message(sky, TRAINED, sky_flags(sky, TRAINED), "stamps")
    assert text.startswith("the stamps (their borders' sky) do not look like SDSS corrected")
    assert "the stamps' rows are flagged 'sky_not_subtracted'" in text


@pytest.fixture(scope="module")
def demo_stamps(demo):
    """The demo frames' stamps of the sources on them, cut as classify cuts them."""
    from astropy.wcs import WCS

    from sourceclf.cutouts import make_cutouts

    positions, frames = demo
    images = {b: (np.asarray(data, np.float32), WCS(header))
              for b, (data, header) in frames.items()}
    cut = make_cutouts(table=positions, images=images)
    on = cut.flags != "off_frame"
    return positions[on], cut.data[on]


def _classify_stamps(positions, stamps):
    from sourceclf import classify

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = classify(positions, cutouts=stamps, psf=1.2, model="margnet-cnn-sgq")
    texts = [str(w.message) for w in record if issubclass(w.category, FrameSkyWarning)]
    assert all(issubclass(w.category, StampSkyWarning) for w in record
               if issubclass(w.category, FrameSkyWarning))
    return out, texts


def test_stamps_in_nanomaggies_are_not_flagged(demo_stamps):
    out, texts = _classify_stamps(*demo_stamps)
    assert texts == []
    assert not _flagged(out, FLAG_SKY_OUT_OF_RANGE).any()
    assert not _flagged(out, FLAG_SKY_NOT_SUBTRACTED).any()


@pytest.mark.parametrize("change, flag", [
    (lambda s: s * 200.0, FLAG_SKY_OUT_OF_RANGE),     # about raw counts
    (lambda s: s * 3.631e-6, FLAG_SKY_OUT_OF_RANGE),  # janskys
    (lambda s: s + 0.6, FLAG_SKY_NOT_SUBTRACTED),     # a dark sky left in
])
def test_stamps_given_directly_are_judged_by_their_borders_sky(demo_stamps, change, flag):
    """Stamps without frames went through in any units before, without a flag."""
    positions, stamps = demo_stamps
    out, texts = _classify_stamps(positions, change(stamps))
    assert len(texts) == 1 and texts[0].startswith("the stamps (their borders' sky)")
    assert _flagged(out, flag).all()
    assert not out["pred_class"].mask.any()


@pytest.mark.parametrize("change, flag, far", [
    (lambda s, rng: s + rng.normal(0.0, 0.3, s.shape), FLAG_SKY_OUT_OF_RANGE, False),  # noisier
    (lambda s, rng: s * 200.0, FLAG_SKY_OUT_OF_RANGE, True),                            # counts
    (lambda s, rng: s * 3.631e-6, FLAG_SKY_OUT_OF_RANGE, True),                       # janskys
    (lambda s, rng: s + 0.6, FLAG_SKY_NOT_SUBTRACTED, False),                      # sky left in
])
def test_stamps_of_frames_of_different_skies_are_flagged_one_by_one(
        demo_stamps, change, flag, far):
    """Stamps of several frames in one call were judged by the median of their skies: a
    third of them from a noisier frame, or in other units, went through unflagged."""
    positions, stamps = demo_stamps
    rng = np.random.default_rng(0)
    odd = np.zeros(len(stamps), dtype=bool)
    odd[::3] = True
    mixed = stamps.copy()
    mixed[odd] = change(stamps[odd], rng).astype(np.float32)
    out, texts = _classify_stamps(positions, mixed)
    assert len(texts) == 1 and "stamps cut from frames of different skies?" in texts[0], texts
    assert _flagged(out[odd], flag).all()
    assert not _flagged(out[~odd], FLAG_SKY_OUT_OF_RANGE).any()
    assert not _flagged(out[~odd], FLAG_SKY_NOT_SUBTRACTED).any()
    from astropy.table import vstack

    # One stamp in twenty: flagged only when in other units (a noisier sky or one left
    # in looks like a bright galaxy's light in the border, not another frame)
    few = np.concatenate([stamps] * 5)
    changed = np.arange(len(few)) % 20 == 0
    few[changed] = change(few[changed], rng).astype(np.float32)
    out, texts = _classify_stamps(vstack([positions] * 5), few)
    if far:
        assert len(texts) == 1 and "stamps in other units?" in texts[0], texts
        np.testing.assert_array_equal(_flagged(out, flag), changed)
    else:
        assert texts == [] and not _flagged(out, flag).any()


def test_stamp_sky_rows_measures_each_stamp_and_clips_neighbours_before_flagging():
    from sourceclf.sky import sky_row_flags, stamp_sky_rows

    rng = np.random.default_rng(4)
    stamps = rng.normal(0.0, 0.03, (30, 5, 32, 32)).astype(np.float32)
    stamps[:10] *= 5.0  # five times the noise: flagged
    stamps[20:25, :, :, :5] += 1.0  # neighbours' light over a third of the border
    stamps[20:25, :, :2, :] += 1.0
    judged = np.arange(1, 30)
    rows = stamp_sky_rows(stamps, rows=judged)
    assert np.isnan(rows["r"][1][0]) and rows["r"][1][15] == pytest.approx(0.03, rel=0.15)
    assert (rows["r"][1][20:25] > 0.1).all()  # the quick measure takes the light for noise
    clipped = stamp_sky_rows(stamps, rows=judged, clip=True)  # every row measured clipped
    assert np.isnan(clipped["r"][1][0])
    np.testing.assert_allclose(clipped["r"][1][11:30], 0.03, rtol=0.2)
    found = sky_row_flags(stamps, judged, TRAINED)  # not once measured again with clipping
    expected = (np.arange(30) < 10) & (np.arange(30) > 0)  # row 0 was not measured
    np.testing.assert_array_equal(found[FLAG_SKY_OUT_OF_RANGE], expected)
    unclipped = sky_row_flags(stamps, judged, TRAINED, clip=False)[FLAG_SKY_OUT_OF_RANGE]
    np.testing.assert_array_equal(unclipped, expected | (np.arange(30) // 5 == 4))
    assert not found[FLAG_SKY_NOT_SUBTRACTED].any()
    assert np.isnan(stamp_sky_rows(np.ones((3, 5, 32, 32)))["g"][1]).all()  # no noise


def test_a_lone_odd_stamp_is_flagged_only_far_from_any_sdss_sky(monkeypatch):
    from sourceclf import sky
    from sourceclf.sky import STAMP_FAR_DEPTH_FACTOR, STAMP_FAR_FACTOR, odd_stamp_flags

    measured = []
    clipped_sky = sky._clipped_sky

    def counted(stamps, rows, band, border):
        measured.extend((band, int(row)) for row in rows)
        return clipped_sky(stamps, rows, band, border)

    monkeypatch.setattr(sky, "_clipped_sky", counted)

    rng = np.random.default_rng(5)
    stamps = rng.normal(0.0, 0.03, (60, 5, 32, 32))
    high, low = TRAINED["r"][1], TRAINED["r"][0]
    stamps[0, 2] *= 0.8 * STAMP_FAR_FACTOR * high / 0.03  # odd, but within the far limit
    stamps[1, 2] *= 1.2 * STAMP_FAR_FACTOR * high / 0.03  # beyond it: other units
    stamps[2, 2] *= 0.5 * low / STAMP_FAR_DEPTH_FACTOR / 0.03  # far below: other units
    stamps[3, 2] += 1.0  # sky left in, one stamp: like a bright source's light
    found, message = odd_stamp_flags(stamps, np.arange(60), TRAINED)  # 4 of 60 odd
    assert np.flatnonzero(found[FLAG_SKY_OUT_OF_RANGE]).tolist() == [1, 2]
    # Judged twice (trained limits, then the far ones), each row's sky measured once.
    assert measured and len(measured) == len(set(measured))
    assert not found[FLAG_SKY_NOT_SUBTRACTED].any()
    assert "stamps in other units?" in message
    # the same four as over a tenth of a call: stamps of several frames, all flagged
    found, message = odd_stamp_flags(stamps, np.arange(35), TRAINED)
    assert np.flatnonzero(found[FLAG_SKY_OUT_OF_RANGE]).tolist() == [0, 1, 2]
    assert np.flatnonzero(found[FLAG_SKY_NOT_SUBTRACTED]).tolist() == [3]
    assert "frames of different skies?" in message
    assert odd_stamp_flags(stamps[4:], np.arange(56), TRAINED)[1] == ""


def test_blank_stamps_and_stamps_in_a_no_data_area_are_not_classified(demo_stamps):
    """All-zero (or all-NaN) stamps were called STAR with confidence and no flag."""
    from sourceclf import classify
    from sourceclf.cutouts import FLAG_EDGE, FLAG_NO_DATA

    positions, stamps = demo_stamps
    stamps = stamps.copy()
    stamps[0] = 0.0
    stamps[1, 2] = np.nan  # one band without data
    stamps[2, :, :12] = 0.0  # reaching into a zero-filled area
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = classify(positions, cutouts=stamps, psf=1.2, model="margnet-cnn-sgq")
    assert out["pred_class"].mask[:2].all() and not out["pred_class"].mask[2:].any()
    assert _flagged(out[:2], FLAG_NO_DATA).all()
    assert _flagged(out[2:3], FLAG_EDGE).all() and not _flagged(out[3:], FLAG_NO_DATA).any()
