"""Applicability domains, the out_of_domain flag and the prediction-set shift alarm."""

import json
import warnings

import numpy as np
import pytest

from sourceclf import classify
from sourceclf.classification import FLAG_OUT_OF_DOMAIN
from sourceclf.conformal.shift import set_shift
from sourceclf.exceptions import ShiftAlarmWarning, SourceclfWarning
from sourceclf.models import load_model
from sourceclf.recipes.data import read_labelled_table
from sourceclf.streaming.summary import StreamSummary
from sourceclf.training import train_classical


@pytest.fixture(scope="module")
def dr14_model(shared_data, tmp_path_factory):
    """A small gradient-boosting model trained on 6,000 DR14 rows, and 2,000 held-out rows."""
    table = read_labelled_table(shared_data / "sdss_dr14_spectro_ugriz.fits")
    order = np.random.default_rng(0).permutation(len(table))
    train, held_out = table[order[:6000]], table[order[6000:]]
    clf = train_classical(train, model="gbdt", feature_set="ugriz", search=False,
                          params={"max_iter": 60}, random_state=0)
    directory = tmp_path_factory.mktemp("models") / "dr14-gbdt"
    clf.save(directory)
    return directory, held_out


@pytest.fixture(scope="module")
def sdss17(shared_data):
    return read_labelled_table(shared_data / "sdss17_ugriz_sgq.fits")[:3000]


def _flagged(out):
    return np.char.find(np.asarray(out["pred_flag"], dtype=str), FLAG_OUT_OF_DOMAIN) >= 0


def test_trained_models_carry_a_domain(dr14_model):
    directory, _ = dr14_model
    card = json.loads((directory / "card.json").read_text())
    assert card["domain"]["file"] == "domain.npz"
    assert "r from" in card["domain"]["description"]
    assert load_model(directory).domain is not None


def test_unseen_in_domain_rows_are_rarely_flagged(dr14_model):
    directory, held_out = dr14_model
    with warnings.catch_warnings():
        warnings.simplefilter("error", SourceclfWarning)  # no shift alarm either
        out = classify(held_out, model=str(directory))
    assert _flagged(out).mean() <= 0.03
    assert out.meta["CLFNOOD"] == int(_flagged(out).sum())
    assert "CLFSHIFT" not in out.meta


def test_shifted_catalog_is_flagged_and_still_classified(dr14_model):
    directory, held_out = dr14_model
    shifted = held_out.copy()
    for band in "ugriz":
        shifted[band] = shifted[band] - 7.0  # brighter than any training row, colours kept
    out = classify(shifted, model=str(directory), confidence=None)
    assert _flagged(out).mean() >= 0.95
    assert not np.ma.getmaskarray(out["pred_class"]).any()  # classified all the same
    assert np.isfinite(np.asarray(out["prob_star"])).all()


def test_other_population_raises_the_shift_alarm(dr14_model, sdss17):
    directory, _ = dr14_model
    with pytest.warns(ShiftAlarmWarning, match="recalibrate with sourceclf.calibrate"):
        out = classify(sdss17, model=str(directory))
    assert "empty sets" in out.meta["CLFSHIFT"]
    with warnings.catch_warnings():  # its own category: silenced alone, nothing else raised
        warnings.simplefilter("error", SourceclfWarning)
        warnings.simplefilter("ignore", ShiftAlarmWarning)
        classify(sdss17, model=str(directory))
    lines = StreamSummary.from_table(out).lines()
    assert any(line.startswith("SHIFT ALARM") for line in lines)
    assert any(line.startswith("out_of_domain:") for line in lines)


def test_dask_shift_alarm_tests_the_whole_catalog(dr14_model, sdss17):
    """A Dask run's alarm, over the whole catalog, is the alarm classify gives the
    whole table; none on rows drawn like the calibration rows."""
    dd = pytest.importorskip("dask.dataframe")
    import dask

    from sourceclf.dask import classify_dask, shift_alarm
    from sourceclf.exceptions import InvalidInputError

    directory, held_out = dr14_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShiftAlarmWarning)
        whole = classify(sdss17, model=str(directory))
    with dask.config.set(scheduler="synchronous"):
        classified = classify_dask(dd.from_pandas(sdss17.to_pandas(), npartitions=4),
                                   model=str(directory)).persist()
        with pytest.warns(ShiftAlarmWarning, match="empty sets"):
            message = shift_alarm(classified, str(directory))
        assert message == whole.meta["CLFSHIFT"]
        like = classify_dask(dd.from_pandas(held_out.to_pandas(), npartitions=3),
                             model=str(directory))
        with warnings.catch_warnings():
            warnings.simplefilter("error", ShiftAlarmWarning)
            assert shift_alarm(like, str(directory)) is None
            assert "CLFSHIFT" not in classify(held_out, model=str(directory)).meta
        with pytest.raises(InvalidInputError, match="not 'auto'"):
            shift_alarm(classified, "auto")
        with pytest.raises(InvalidInputError, match="missing: pred_set_size_80"):
            shift_alarm(classified, str(directory), confidence=[0.8, 0.9])


def test_models_without_a_domain_still_load_and_classify(dr14_model, tmp_path):
    directory, held_out = dr14_model
    old = tmp_path / "old-model"
    old.mkdir()
    for path in directory.iterdir():
        if path.name != "domain.npz":
            (old / path.name).write_bytes(path.read_bytes())
    card = json.loads((old / "card.json").read_text())
    del card["domain"]  # a card written before domains existed
    (old / "card.json").write_text(json.dumps(card))
    out = classify(held_out[:50], model=str(old), confidence=None)
    assert "CLFNOOD" not in out.meta
    assert not _flagged(out).any()


def test_tampered_domain_file_is_refused(dr14_model, tmp_path):
    from sourceclf.exceptions import ModelIntegrityError

    directory, _ = dr14_model
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in directory.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    data = bytearray((copy / "domain.npz").read_bytes())
    data[200] ^= 0xFF
    (copy / "domain.npz").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="domain"):
        load_model(copy)


def test_shift_statistics():
    reference = {"n": 800, "empty": 0.09, "singleton": 0.91, "mean_size": 0.91}
    rng = np.random.default_rng(0)
    like = (rng.random(3000) > 0.09).astype(int)
    assert set_shift(like, reference) == []
    assert set_shift(like[:30], reference) == []  # too few rows to tell
    unlike = (rng.random(3000) > 0.6).astype(int)  # many empty sets: smaller, not larger
    assert [d[0] for d in set_shift(unlike, reference)] == ["empty", "singleton"]
    larger = 1 + (rng.random(3000) > 0.7)  # no empty set, a third of them pairs
    assert [d[0] for d in set_shift(larger, reference)] == ["singleton", "mean_size"]
    # Sets more decisive than the calibration rows' are no sign of lost coverage.
    assert set_shift(np.ones(3000, int), reference) == []


def test_reference_is_weighted_to_the_catalog_magnitudes(dr14_model):
    from sourceclf.conformal import combine_set_bins, reference_set_bins, reference_set_rates

    directory, held_out = dr14_model
    clf = load_model(directory)
    r = np.asarray(held_out["r"], dtype=float)
    everything = reference_set_rates(clf, 0.9)
    assert "matched" not in everything
    # Matched to the calibration rows' own magnitudes, all of them weigh alike.
    own = reference_set_rates(clf, 0.9, magnitudes={"r": np.asarray(clf.calibration["r"])})
    assert own["matched"] == "r"
    for stat in ("empty", "singleton", "mean_size"):
        assert own[stat] == pytest.approx(everything[stat], abs=1e-4)
    # Bright and faint catalogs get the rates of bright and faint calibration rows.
    bright = reference_set_rates(clf, 0.9, magnitudes={"r": r[r < 18]})
    faint = reference_set_rates(clf, 0.9, magnitudes={"r": r[r > 19.5]})
    assert bright["empty"] < everything["empty"] < faint["empty"]
    assert bright["n"] < everything["n"] and faint["n"] < everything["n"]
    # Bins of two parts of a catalog add up to the whole's (how a streamed run combines).
    half = len(r) // 2
    parts = [reference_set_bins(clf, 0.9, magnitudes={"r": x}) for x in (r[:half], r[half:])]
    whole = reference_set_bins(clf, 0.9, magnitudes={"r": r})
    assert [a + b for a, b in zip(parts[0]["rows"], parts[1]["rows"])] == whole["rows"]
    # Without a magnitude in common, the rates of all calibration rows.
    assert reference_set_rates(clf, 0.9, magnitudes={"g": r}) == everything
    unknown = combine_set_bins(reference_set_bins(clf, 0.9, magnitudes={"r": [np.nan]}))
    assert "matched" not in unknown
    for stat in ("empty", "singleton", "mean_size"):
        assert unknown[stat] == pytest.approx(everything[stat], abs=1e-4)


def test_decisive_catalog_does_not_raise_the_alarm(dr14_model):
    # A catalog of the sources the model is sure of (no empty set, against 9% on the
    # calibration rows) departs from the calibration rows, but towards more decisive
    # sets: no sign of lost coverage, no alarm.
    directory, held_out = dr14_model
    first = classify(held_out, model=str(directory))
    sure = held_out[np.asarray(first["pred_set_size"]) == 1]
    assert len(sure) > 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShiftAlarmWarning)
        out = classify(sure, model=str(directory))
    assert "CLFSHIFT" not in out.meta
    assert json.loads(out.meta["CLFSHREF"])["0.9"]["matched"] == "r"


def test_outside_magnitudes_judges_by_the_catalogs_magnitude():
    """The image models' domain: the magnitudes their cards record."""
    from astropy.table import Table

    from sourceclf.models.domain import outside_magnitudes

    ranges = {"r": [14.0, 22.5]}
    dered = Table({"dered_r": [13.0, 18.0, 23.1, np.nan], "r": [30.0, 30.0, 30.0, 30.0]})
    assert outside_magnitudes(dered, ranges).tolist() == [True, False, True, False]
    observed = Table({"r": [18.0, 23.0], "extinction_r": [0.1, 0.1]})  # dered = r - ext
    assert outside_magnitudes(observed, ranges).tolist() == [False, True]
    assert outside_magnitudes(Table({"ra": [1.0]}), ranges) is None
    assert outside_magnitudes(dered, None) is None
    # A column that is not magnitudes judges nothing (the CNN does not read it).
    fluxes = Table({"r": np.geomspace(1.0, 1000.0, 30)})
    assert outside_magnitudes(fluxes, ranges) is None


def test_a_model_without_a_fitted_domain_judges_the_catalogs_magnitudes(shared_data):
    """`SourceClassifier.outside_domain` given the rows' catalog: an image model (no fitted
    domain) flags those beyond its card's magnitudes, as classify does; a photometric model
    keeps its fitted domain on the features and ignores the catalog."""
    from astropy.table import Table

    from sourceclf.features import get_feature_set

    cnn = load_model("margnet-cnn-sgq")
    assert cnn.domain is None and cnn.card.domain["magnitudes"]["r"] == [14.0, 22.5]
    catalog = Table({"dered_r": [13.0, 18.0, 23.1]})
    assert cnn.outside_domain(None, catalog=catalog).tolist() == [True, False, True]
    assert cnn.outside_domain(None) is None  # nothing to judge
    assert cnn.outside_domain(None, catalog=Table({"ra": [1.0]})) is None
    ugriz = load_model("ugriz-sgq")
    table = read_labelled_table(shared_data / "sdss_dr14_spectro_ugriz.fits")[:50]
    features = get_feature_set(ugriz.feature_set).compute(table).values
    np.testing.assert_array_equal(ugriz.outside_domain(features, catalog=table),
                                  ugriz.domain.outside(features))
    assert ugriz.outside_domain(None, catalog=table) is None
