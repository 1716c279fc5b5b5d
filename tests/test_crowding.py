"""Crowding: neighbours counted in stamps, the domain limit and the ``crowded`` flag."""

import re
import warnings

import numpy as np
import pytest

from sourceclf.bands import BANDS
from sourceclf.crowding import (FLAG_CROWDED, count_neighbours, crowding_flags,
                                neighbour_limit)
from sourceclf.exceptions import (CrowdedFrameWarning, FrameSkyWarning, InvalidInputError,
                                  SourceclfWarning)


def _stamps(positions_per_stamp, *, size=32, flux=300.0, sigma=1.5, seed=0):
    """One-band stamps: unit sky noise plus Gaussian sources at the given positions."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = rng.normal(0.0, 1.0, (len(positions_per_stamp), size, size))
    for stamp, positions in zip(out, positions_per_stamp):
        for x, y in positions:
            stamp += flux * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return out.astype(np.float32)


CENTRE = (15.5, 15.5)


def test_count_neighbours_counts_the_other_sources():
    stamps = _stamps([[CENTRE], [CENTRE, (5, 5)], [CENTRE, (4, 26), (27, 6), (26, 27)],
                      [(5, 5), (26, 26)], []])
    assert count_neighbours(stamps).tolist() == [0, 1, 3, 2, 0]


def test_count_neighbours_ignores_faint_bumps_and_the_source_itself():
    # A neighbour at 2 sigma is noise, not a source; one 3 pixels off centre is the source.
    faint = _stamps([[CENTRE, (6, 6)]], flux=2.0)
    near = _stamps([[CENTRE, (18.5, 15.5)]], flux=300.0)
    assert count_neighbours(faint).tolist() == [0]
    assert count_neighbours(near).tolist() == [0]


def test_count_neighbours_reads_the_r_band_of_five_band_stamps():
    crowded = _stamps([[CENTRE, (4, 4), (27, 27), (4, 27)]])[0]
    lone = _stamps([[CENTRE]])[0]
    stamps = np.stack([lone] * 5)[None].repeat(2, axis=0)
    stamps[0, BANDS.index("r")] = crowded
    assert count_neighbours(stamps).tolist() == [3, 0]
    assert count_neighbours(stamps, band="g").tolist() == [0, 0]


def test_count_neighbours_survives_blank_and_bad_stamps():
    stamps = _stamps([[CENTRE, (5, 5)], [CENTRE]])
    stamps[1] = np.nan
    assert count_neighbours(stamps).tolist() == [1, 0]
    assert count_neighbours(np.zeros((2, 32, 32))).tolist() == [0, 0]


@pytest.mark.parametrize("shape, band, match", [
    ((2, 3, 32, 32), "r", r"stamps of shape \(2, 3, 32, 32\)"),
    ((32, 32), "r", r"stamps of shape \(32, 32\)"),
    ((2, 5, 32, 32), "y", "band must be one of u, g, r, i, z"),
])
def test_count_neighbours_refuses_bad_input(shape, band, match):
    with pytest.raises(InvalidInputError, match=match):
        count_neighbours(np.zeros(shape), band=band)


def test_neighbour_limit_and_flags():
    counts = np.r_[np.zeros(90, int), np.ones(9, int), [5]]
    assert neighbour_limit(counts) == 1          # 99% of the stamps have at most one
    assert neighbour_limit(counts, quantile=1.0) == 5
    with pytest.raises(InvalidInputError, match="no training stamps"):
        neighbour_limit([])
    stamps = _stamps([[CENTRE], [CENTRE, (5, 5)], [CENTRE, (5, 5), (26, 26)]])
    assert crowding_flags(stamps, 1).tolist() == [False, False, True]


def test_shipped_image_models_know_their_neighbour_limit():
    from sourceclf.models import load_model

    for name in ("margnet-cnn-sgq", "margnet-sgq", "margformer-sgq"):
        domain = load_model(name).card.domain["neighbours"]
        # Simulated stamps hold at most two neighbours (plus noise peaks).
        assert 1 <= domain["limit"] <= 3
        assert sum(domain["training_counts"][:domain["limit"] + 1]) \
            >= 0.99 * sum(domain["training_counts"])


def test_classify_flags_crowded_stamps_and_keeps_the_count():
    from sourceclf import classify
    from astropy.table import Table

    lone = _stamps([[CENTRE]] * 2, flux=60.0, seed=1)
    crowded = _stamps([[CENTRE, (4, 4), (27, 27), (4, 27), (27, 4)]], flux=60.0, seed=2)
    one_band = np.concatenate([lone, crowded]) * 0.03  # nanomaggies, sky noise 0.03
    stamps = np.repeat(one_band[:, None], 5, axis=1)
    with pytest.warns(SourceclfWarning, match="Moffat index"):  # three stamps: too few
        out = classify(Table({"id": [1, 2, 3]}), cutouts=stamps, model="margnet-cnn-sgq",
                       psf=1.3, confidence=None, device="cpu", progress=False)
    flags = np.asarray(out["pred_flag"]).astype(str)
    crowded_rows = np.char.find(flags, FLAG_CROWDED) >= 0
    assert crowded_rows.tolist() == [False, False, True]
    assert out["n_neighbours"].tolist() == [0, 0, 4]
    assert not out["pred_class"].mask.any()  # crowded rows are still classified


@pytest.fixture(scope="module")
def r_frames(shared_data):
    """The r frame and the bright sources' truth of a quiet and a crowded field, made once."""
    from sourceclf.frames import read_frame
    from sourceclf.psf import measure_psf
    from sourceclf.recipes.extent_truth import frame_truth

    fields = {}
    for name in ("004510-4-0030", "005405-6-0099"):
        path = shared_data / f"sdss_frame_{name}" / f"frame-r-{name}.fits.bz2"
        if not path.is_file():
            pytest.skip(f"field {name} is absent")
        data, wcs = read_frame(path)
        fields[name] = (data, wcs, frame_truth(data, wcs, measure_psf(data)))
    return fields


def test_crowded_real_field_is_flagged_and_a_quiet_one_is_not(r_frames):
    from sourceclf import classify

    flagged, said = {}, {}
    for name, (data, wcs, truth) in r_frames.items():
        frame = (data, wcs)
        truth = truth[::max(1, len(truth) // 60)][:60]  # 60 sources of r < 20.5
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # The r frame for every band (one field read; copies: one frame is refused
            # for two bands)
            out = classify(truth["ra", "dec"], images={b: (frame[0].copy(), frame[1])
                                                       for b in BANDS},
                           model="margnet-cnn-sgq", psf=1.1, confidence=None, device="cpu",
                           progress=False)
        said[name] = [str(w.message) for w in caught
                      if issubclass(w.category, CrowdedFrameWarning)]
        flags = np.asarray(out["pred_flag"]).astype(str)
        flagged[name] = float((np.char.find(flags, FLAG_CROWDED) >= 0).mean())
    # Field 005405-6-0099 lies in the Galactic plane (b = -1 degree), 004510-4-0030 at b = 78.
    assert flagged["005405-6-0099"] > 0.5
    assert flagged["004510-4-0030"] < 0.05
    # The crowded frame says so once, naming its coverage and the docs; the quiet one not.
    assert len(said["005405-6-0099"]) == 1 and not said["004510-4-0030"]
    assert re.match(r"the r frame is crowded: \d+% of its pixels lie in detected sources, "
                    r"more than 10% .*every row on it is flagged 'crowded'",
                    said["005405-6-0099"][0])
    assert "(docs: images, 'Crowded frames: each source fitted with its neighbours')" in \
        said["005405-6-0099"][0]
    # The sets are not to be trusted there either (docs: "How sure they are").
    assert "prediction sets hold the true class less often than their confidence" in \
        said["005405-6-0099"][0]


def test_crowded_field_stays_flagged_when_blurred(r_frames):
    """Blurred to about 2.2", the crowded field's stamps show fewer neighbours, but its
    frame is as covered by sources: every row stays flagged; the quiet field's none."""
    from scipy.ndimage import gaussian_filter

    from sourceclf import classify
    from sourceclf.crowding import CROWDED_COVERAGE

    for name, crowded in (("004510-4-0030", False), ("005405-6-0099", True)):
        data, wcs, truth = r_frames[name]
        truth = truth[::max(1, len(truth) // 40)][:40]
        blurred = (gaussian_filter(data, 2.0), wcs)  # 1.0-1.1" to about 2.2"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CrowdedFrameWarning)
            warnings.simplefilter("ignore", FrameSkyWarning)  # the r frame given as u and z
            out = classify(truth["ra", "dec"], images={b: (blurred[0].copy(), wcs)
                                                       for b in BANDS},
                           model="margnet-cnn-sgq", psf=2.2, confidence=None, device="cpu",
                           progress=False)
        flags = np.char.find(np.asarray(out["pred_flag"]).astype(str), FLAG_CROWDED) >= 0
        coverage = float(out["frame_coverage"][0])
        assert (coverage > CROWDED_COVERAGE) is crowded, (name, coverage)
        assert flags.all() if crowded else not flags.any(), name


def test_source_coverage():
    from sourceclf.crowding import source_coverage

    rng = np.random.default_rng(0)
    sky = rng.normal(0.0, 1.0, (300, 300))
    assert source_coverage(sky, 3.0, 1.0) < 0.01
    yy, xx = np.mgrid[:300, :300]
    crowded = sky.copy()
    for x, y in rng.uniform(10, 290, (150, 2)):
        crowded += 50 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
    assert source_coverage(crowded, 3.0, 1.0) > 0.1
    assert np.isnan(source_coverage(np.full((50, 50), np.nan), 3.0, 1.0))


def test_blending_flags_take_the_largest_of_g_r_i():
    from astropy.table import Table

    from sourceclf.crowding import BLENDED_LIMIT, blending_flags

    table = Table({"blendedness_u": [0.9, 0.0, np.nan, 0.0],
                   "blendedness_g": [0.0, 0.02, np.nan, 0.0],
                   "blendedness_r": [0.01, BLENDED_LIMIT, np.nan, np.nan],
                   "blendedness_i": [0.05, 0.0, np.nan, 0.3],
                   "blendedness_z": [0.9, 0.0, np.nan, 0.0]})
    worst, blended = blending_flags(table)
    np.testing.assert_allclose(worst, [0.05, BLENDED_LIMIT, np.nan, 0.3])
    assert blended.tolist() == [False, True, False, True]  # u and z are not judged
    assert blending_flags(table["blendedness_g", "blendedness_r"]) == (None, None)
