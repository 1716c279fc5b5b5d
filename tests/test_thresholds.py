"""Stored conformity thresholds: sets applied in numpy equal MAPIE's, on every shipped
model, score and a grid of levels; files, fingerprints, integrity and the process cache."""

import json
import shutil

import numpy as np
import pytest

from sourceclf import calibrate, classify
from sourceclf.conformal import (SCORES, ConformalPredictor, check_score,
                                 reference_set_rates, threshold_store)
from sourceclf.conformal.thresholds import LEVELS, main, write_thresholds
from sourceclf.exceptions import InvalidInputError, ModelIntegrityError
from sourceclf.models import load_model, model_names
from sourceclf.models.registry import MODEL_DIR

#: The stored levels and a few that are not stored (computed with MAPIE, then cached).
GRID = sorted(set(LEVELS) | {0.6, 0.73, 0.93})


def _scores(clf):
    out = []
    for score in SCORES:
        try:
            out.append(check_score(score, len(clf.classes)))
        except InvalidInputError:
            pass
    return out


def _mapie_sets(fitted, proba):
    """The sets MAPIE itself gives with a predictor's MAPIE-computed thresholds."""
    conformalizer, order = fitted._conformalizer, np.argsort(fitted.classes)
    P = proba[:, order]
    sets = np.zeros((len(P), len(fitted.classes), len(fitted.levels)), dtype=bool)
    if fitted.by is None:
        sets[:, order] = conformalizer.prediction_sets(P, fitted.thresholds_[0])
    else:  # class-conditional: each label against its own class's threshold
        for k in range(len(fitted.classes)):
            col = int(np.flatnonzero(order == k)[0])
            sets[:, k] = conformalizer.prediction_sets(P, fitted.thresholds_[k])[:, col]
    return sets


@pytest.mark.parametrize("name", model_names())
def test_stored_thresholds_give_mapies_sets(name):
    threshold_store.clear_cache()
    clf = load_model(name)
    if clf.calibration is None:
        pytest.skip(f"{name} has no calibration data")
    cal = np.column_stack([np.asarray(clf.calibration[f"prob_{c.lower()}"], dtype=np.float64)
                           for c in clf.classes])
    cal /= cal.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(1)
    proba = np.concatenate([cal, rng.dirichlet(np.full(len(clf.classes), 0.4), 3000)])
    for score in _scores(clf):
        for by in (None, "class"):
            levels = list(GRID)
            while True:  # levels with too few calibration rows (per class) are refused
                try:
                    reference = ConformalPredictor(clf.classes, levels, score=score, by=by) \
                        .fit_table(clf.calibration)
                    break
                except InvalidInputError:
                    with pytest.raises(InvalidInputError):
                        ConformalPredictor.from_classifier(clf, levels[-1], score=score,
                                                           by=by or "none")
                    levels.pop()
            expected = _mapie_sets(reference, proba)
            for j, level in enumerate(levels):
                cp = ConformalPredictor.from_classifier(clf, level, score=score,
                                                        by=by or "none")
                assert cp.threshold_source_ == ("file" if level in LEVELS else "mapie"), \
                    (score, by, level)
                sets, _ = cp.predict_sets(proba)
                assert np.array_equal(sets[:, :, 0], expected[:, :, j]), (score, by, level)
                np.testing.assert_array_equal(cp.thresholds_[:, 0], reference.thresholds_[:, j])


def test_several_levels_and_randomised_scores_reproducible():
    clf = load_model("margnet-sgq")
    levels = [0.8, 0.9, 0.95]
    proba = np.random.default_rng(4).dirichlet([0.4, 0.4, 0.4], 2000)
    first = ConformalPredictor.from_classifier(clf, levels, score="aps-randomized")
    again = ConformalPredictor.from_classifier(clf, levels, score="aps-randomized")
    assert first.threshold_source_ == again.threshold_source_ == "file"
    sets = first.predict_sets(proba)[0]
    assert np.array_equal(sets, again.predict_sets(proba)[0])
    # MAPIE's sets with the same seed, the levels conformalized together.
    reference = ConformalPredictor(clf.classes, levels, score="aps-randomized") \
        .fit_table(clf.calibration)
    assert np.array_equal(sets, _mapie_sets(reference, proba))


def test_other_seed_and_bins_computed_once_then_cached():
    clf = load_model("margnet-sgq")
    cp = ConformalPredictor.from_classifier(clf, 0.9, score="aps-randomized", random_state=3)
    assert cp.threshold_source_ == "mapie"  # not stored: computed with MAPIE
    again = ConformalPredictor.from_classifier(clf, 0.9, score="aps-randomized",
                                               random_state=3)
    assert again.threshold_source_ == "process"  # kept in the process
    np.testing.assert_array_equal(cp.thresholds_, again.thresholds_)
    binned = ConformalPredictor.from_classifier(clf, [0.9, 0.95], by="dered_r")
    cached = ConformalPredictor.from_classifier(clf, [0.9, 0.95], by="dered_r")
    assert (binned.threshold_source_, cached.threshold_source_) == ("mapie", "process")
    np.testing.assert_array_equal(binned.bin_edges_, cached.bin_edges_)
    rng = np.random.default_rng(2)
    proba = rng.dirichlet([0.5, 0.5, 0.5], 500)
    values = rng.uniform(16, 23, 500)
    assert np.array_equal(binned.predict_sets(proba, values)[0],
                          cached.predict_sets(proba, values)[0])


def test_every_shipped_thresholds_file_is_current():
    for name in model_names():
        clf = load_model(name)
        if clf.calibration is None:
            continue
        reference = clf.card.extra.get(threshold_store.CARD_KEY)
        assert reference, f"{name}: python -m sourceclf.conformal.thresholds --all"
        data = threshold_store.read_thresholds(MODEL_DIR / name / reference["file"],
                                               reference["sha256"])
        assert data["calibration_sha256"] == threshold_store.calibration_fingerprint(
            clf.calibration, clf.classes), f"{name}: python -m sourceclf.conformal.thresholds --all"
        key = threshold_store.threshold_key("lac", None, None, [0.9], 0)
        assert threshold_store.find(clf, key)[1] == "file"


def _copy_model(tmp_path, name="margnet-photometry-sg"):
    directory = tmp_path / name
    shutil.copytree(MODEL_DIR / name, directory)
    return directory


def test_model_without_thresholds_file_uses_mapie_then_cache(tmp_path, demo):
    directory = _copy_model(tmp_path)
    (directory / "thresholds.json").unlink()
    card = json.loads((directory / "card.json").read_text())
    del card["extra"][threshold_store.CARD_KEY]
    (directory / "card.json").write_text(json.dumps(card))
    threshold_store.clear_cache()
    old = load_model(str(directory))
    assert ConformalPredictor.from_classifier(old, 0.9).threshold_source_ == "mapie"
    assert ConformalPredictor.from_classifier(old, 0.9).threshold_source_ == "process"
    shipped = classify(demo, model="margnet-photometry-sg")
    mine = classify(demo, model=old)
    assert np.array_equal(shipped["pred_set"], mine["pred_set"])


def test_altered_thresholds_file_refused(tmp_path):
    # The thresholds are read from the directory the model was loaded from.
    directory = _copy_model(tmp_path)
    data = json.loads((directory / "thresholds.json").read_text())
    key = threshold_store.threshold_key("lac", None, None, [0.9], 0)
    data["entries"][key]["thresholds"] = [[0.999]]
    (directory / "thresholds.json").write_text(json.dumps(data))
    threshold_store.clear_cache()
    with pytest.raises(ModelIntegrityError, match="refusing altered thresholds"):
        ConformalPredictor.from_classifier(load_model(directory), 0.9)
    threshold_store.clear_cache()


def test_write_thresholds_refuses_an_altered_calibration(tmp_path):
    """The thresholds are computed from the calibration load_model would read: an
    altered file is refused as loading refuses it, not conformalized."""
    directory = _copy_model(tmp_path)
    calibration = directory / load_model(directory).card.calibration_file
    calibration.write_text(calibration.read_text().replace("0.", "0.1", 1))
    with pytest.raises(ModelIntegrityError):
        write_thresholds(directory)


def test_recalibrated_model_ignores_the_original_thresholds():
    from sourceclf.demo import demo_catalog

    recal = calibrate(demo_catalog(600, random_state=5), model="margnet-photometry-sg")
    fresh = ConformalPredictor(recal.classes, 0.9).fit_table(recal.calibration)
    cp = ConformalPredictor.from_classifier(recal, 0.9)
    np.testing.assert_array_equal(cp.thresholds_, fresh.thresholds_)
    shipped = ConformalPredictor.from_classifier(load_model("margnet-photometry-sg"), 0.9)
    assert not np.array_equal(cp.thresholds_, shipped.thresholds_)


def test_write_thresholds_command(tmp_path, capsys):
    directory = _copy_model(tmp_path, "margnet-sgq")
    (directory / "thresholds.json").unlink()
    before = json.loads((directory / "card.json").read_text())
    assert main([str(directory)]) == 0
    assert "threshold sets" in capsys.readouterr().out
    after = json.loads((directory / "card.json").read_text())
    reference = after["extra"].pop(threshold_store.CARD_KEY)
    before["extra"].pop(threshold_store.CARD_KEY)
    assert after == before  # nothing else in the card changed
    shipped = json.loads((MODEL_DIR / "margnet-sgq" / "thresholds.json").read_text())
    data = threshold_store.read_thresholds(directory / reference["file"], reference["sha256"])
    assert data == shipped
    with pytest.raises(InvalidInputError, match="not a sourceclf model directory"):
        write_thresholds(tmp_path)
    assert main([str(tmp_path)]) == 2


def test_reference_set_rates_match_the_sets_of_the_calibration_rows():
    clf = load_model("margnet-sgq")
    rates = reference_set_rates(clf, 0.9, score="aps")
    assert reference_set_rates(clf, 0.9, score="aps") == rates
    cp = ConformalPredictor(clf.classes, 0.9, score="aps").fit_table(clf.calibration)
    proba = np.column_stack([np.asarray(clf.calibration[f"prob_{c.lower()}"], dtype=np.float64)
                             for c in clf.classes])
    size = _mapie_sets(cp, proba / proba.sum(axis=1, keepdims=True))[:, :, 0].sum(axis=1)
    assert rates == pytest.approx({"n": len(size), "empty": float(np.mean(size == 0)),  # to 5
                                   "singleton": float(np.mean(size == 1)),       # digits, as
                                   "mean_size": float(size.mean())}, abs=1e-5)  # meta keeps them
    with pytest.raises(InvalidInputError, match="one confidence level"):
        reference_set_rates(clf, [0.8, 0.9])


def test_photometric_recipe_writes_the_models_conformal_thresholds(tmp_path, monkeypatch,
                                                                   capsys):
    """``python -m sourceclf.train_recipes`` saves a retrained model with thresholds of
    its own calibration, as the image recipes do."""
    from astropy.table import Table

    from sourceclf.recipes import photometric

    # The training itself is the recipe's (minutes, on an 80,000-row table); here a
    # shipped model stands in, so the table is never read.
    monkeypatch.setattr(photometric, "read_recipe_table", lambda recipe, data_dir: Table())
    monkeypatch.setitem(photometric.RECIPES, "ugriz-sgq",
                        lambda table: load_model("ugriz-sgq"))
    out = tmp_path / "ugriz-sgq"
    assert photometric.main(["ugriz-sgq", "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    card = json.loads((out / "card.json").read_text())
    reference = card["extra"][threshold_store.CARD_KEY]
    data = threshold_store.read_thresholds(out / reference["file"], reference["sha256"])
    shipped = json.loads((MODEL_DIR / "ugriz-sgq" / "thresholds.json").read_text())
    assert data == shipped  # the same model and calibration: the same thresholds
