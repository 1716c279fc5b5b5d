"""Prediction sets of flagged rows calibrated on rows like them (``flag_calibrations``):
the sets, their storage in a model directory, and the recipe that makes them."""

import copy
import json
import warnings

import numpy as np
import pytest
from astropy.table import Table

from sourceclf.conformal import ConformalPredictor, add_prediction_sets, set_membership
from sourceclf.exceptions import InvalidInputError, ModelIntegrityError, ShiftAlarmWarning

MODEL = "margnet-photometry-sg"  # two classes, GALAXY and STAR, with a calibration table


def _model():
    from sourceclf.models import load_model

    clf = copy.copy(load_model(MODEL))
    clf.card = copy.deepcopy(clf.card)
    return clf


def _doubtful_table(classes, n=600, seed=0):
    """Calibration rows on which the model is right about half the time, sure or not."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.5, 1.0, n)
    labels = np.where(rng.random(n) < 0.5, classes[0], classes[1])
    return Table({"label": labels, f"prob_{classes[0].lower()}": p.astype(np.float32),
                  f"prob_{classes[1].lower()}": (1 - p).astype(np.float32),
                  "r": rng.uniform(16, 21, n).astype(np.float32)})


def _rows(n, seed=1):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.15, 0.85, n)
    return np.column_stack([p, 1 - p])


def test_flagged_rows_get_the_sets_of_their_own_calibration():
    clf = _model()
    table = _doubtful_table(clf.classes)
    clf.flag_calibrations = {"confused": table}
    proba = _rows(40)
    rows = np.arange(40)
    flags = np.array(["confused" if i % 3 == 0 else "" for i in rows], dtype=object)
    flags[1] = "blended;confused"
    flags[2] = "unconfused"  # another flag whose name holds it: not this one
    flagged = np.array(["confused" in f.split(";") for f in flags])
    plain = Table({"x": np.zeros(40)})
    add_prediction_sets(plain, clf, proba, rows, [0.9])
    out = Table({"x": np.zeros(40)})
    add_prediction_sets(out, clf, proba, rows, [0.9], row_flags=flags)
    assert out.meta["CLFFLCAL"] == f"confused:{len(table)}"
    assert "CLFFLCAL" not in plain.meta
    # The other rows keep the model's own sets.
    np.testing.assert_array_equal(np.asarray(out["pred_set"])[~flagged],
                                  np.asarray(plain["pred_set"])[~flagged])
    # The flagged ones: the sets of their own table, conformalized alone.
    own = ConformalPredictor(clf.classes, 0.9).fit_table(table).predict_sets(
        proba[flagged])[0][:, :, 0]
    np.testing.assert_array_equal(set_membership(out, clf.classes)[flagged], own)
    # Calibrated on rows the model is right on half the time, every flagged set of these
    # doubtful rows holds both classes, where the model's own calibration gives none or one.
    assert (np.asarray(out["pred_set_size"])[flagged] == 2).all()
    assert (np.asarray(plain["pred_set_size"])[flagged] <= 1).all()
    # Without a table for the flag, or without flags, nothing changes.
    clf.flag_calibrations = {}
    again = Table({"x": np.zeros(40)})
    add_prediction_sets(again, clf, proba, rows, [0.9], row_flags=flags)
    np.testing.assert_array_equal(np.asarray(again["pred_set"]), np.asarray(plain["pred_set"]))
    assert "CLFFLCAL" not in again.meta


def test_flagged_rows_keep_the_grouping_where_their_table_supports_it():
    clf = _model()
    table = _doubtful_table(clf.classes, n=900)
    clf.flag_calibrations = {"confused": table}
    proba, rows = _rows(30), np.arange(30)
    flags = np.array(["confused"] * 15 + [""] * 15, dtype=object)
    # Class-conditional: each class's threshold from the flagged table's rows of it.
    out = Table({"x": np.zeros(30)})
    add_prediction_sets(out, clf, proba, rows, [0.9], by="class", row_flags=flags)
    own = ConformalPredictor(clf.classes, 0.9, by="class").fit_table(table)
    np.testing.assert_array_equal(set_membership(out, clf.classes)[:15],
                                  own.predict_sets(proba[:15])[0][:, :, 0])
    # Binned by r: its own bins (900 rows: two at 90%).
    out = Table({"x": np.zeros(30), "r": np.linspace(16, 21, 30)})
    add_prediction_sets(out, clf, proba, rows, [0.9], by="r", row_flags=flags)
    own = ConformalPredictor(clf.classes, 0.9, by="r").fit_table(table)
    assert len(own.bin_edges_) == 1
    sets, groups = own.predict_sets(proba[:15], np.asarray(out["r"])[:15])
    np.testing.assert_array_equal(set_membership(out, clf.classes)[:15], sets[:, :, 0])
    np.testing.assert_array_equal(np.asarray(out["pred_set_group"])[:15], groups)
    # A table without the column: marginal within it.
    table.remove_column("r")
    out = Table({"x": np.zeros(30), "r": np.linspace(16, 21, 30)})
    add_prediction_sets(out, clf, proba, rows, [0.9], by="r", row_flags=flags)
    own = ConformalPredictor(clf.classes, 0.9).fit_table(table)
    np.testing.assert_array_equal(set_membership(out, clf.classes)[:15],
                                  own.predict_sets(proba[:15])[0][:, :, 0])


def test_flagged_rows_thresholds_are_computed_once_per_process():
    clf = _model()
    clf.flag_calibrations = {"confused": _doubtful_table(clf.classes, seed=4)}
    first = ConformalPredictor.from_table(clf.flag_calibrations["confused"], clf.classes, 0.9)
    again = ConformalPredictor.from_table(Table(clf.flag_calibrations["confused"], copy=True),
                                          clf.classes, 0.9)
    assert (first.threshold_source_, again.threshold_source_) == ("mapie", "process")
    np.testing.assert_array_equal(first.thresholds_, again.thresholds_)
    with pytest.raises(InvalidInputError, match="too few"):
        ConformalPredictor.from_table(clf.flag_calibrations["confused"][:5], clf.classes, 0.9)


@pytest.mark.parametrize("name", ["margnet-sgq", "margnet-cnn-sgq"])
def test_shipped_flag_tables_thresholds_come_from_the_thresholds_file(name):
    """Each shipped table's thresholds are stored with the model's (python -m
    sourceclf.conformal.thresholds): the sets classify gives its flagged rows need no MAPIE,
    and equal those MAPIE computes from the table."""
    from sourceclf.conformal import flag_predictor, threshold_store
    from sourceclf.conformal.thresholds import LEVELS
    from sourceclf.models import load_model

    threshold_store.clear_cache()
    clf = load_model(name)
    table = clf.flag_calibrations["confused"]
    proba = np.random.default_rng(7).dirichlet([0.4, 0.4, 0.4], 2000)
    for level in (0.8, 0.9, 0.95):
        for by in ("none", "class"):
            base = ConformalPredictor.from_classifier(clf, level, by=by)
            stored = flag_predictor(clf, "confused", base)
            assert stored.threshold_source_ == "file", (level, by)
            computed = ConformalPredictor(clf.classes, level, by=base.by).fit_table(table)
            np.testing.assert_array_equal(stored.predict_sets(proba)[0],
                                          computed.predict_sets(proba)[0])
    # Two levels at once take each level's stored thresholds; a level not stored is
    # computed once, then kept in the process.
    both = flag_predictor(clf, "confused", ConformalPredictor.from_classifier(clf, [0.8, 0.9]))
    assert both.threshold_source_ == "file"
    assert 0.93 not in LEVELS
    odd = [flag_predictor(clf, "confused", ConformalPredictor.from_classifier(clf, 0.93))
           for _ in range(2)]
    assert [cp.threshold_source_ for cp in odd] == ["mapie", "process"]
    # Without the model, the table alone is not looked up in its file.
    assert ConformalPredictor.from_table(table, clf.classes, 0.9).threshold_source_ != "file"


def test_flag_thresholds_of_another_table_are_not_used(tmp_path):
    """A thresholds file's flag entries serve the table they were computed from only."""
    from sourceclf.conformal import flag_predictor, threshold_store
    from sourceclf.conformal.thresholds import write_thresholds
    from sourceclf.models import load_model
    from sourceclf.models.card import write_flag_calibrations

    clf = _model()
    clf.flag_calibrations = {"confused": _doubtful_table(clf.classes, seed=8)}
    clf.card.flag_calibrations = {"confused": {"description": "rows like them"}}
    clf.save(tmp_path / "m")
    write_thresholds(tmp_path / "m")
    data = json.loads((tmp_path / "m" / "thresholds.json").read_text())
    assert set(data["flag_entries"]) == {"confused"}
    threshold_store.clear_cache()
    saved = load_model(tmp_path / "m")
    base = ConformalPredictor.from_classifier(saved, 0.9)
    assert flag_predictor(saved, "confused", base).threshold_source_ == "file"
    # The table replaced (and the card's digest with it): computed, not read.
    write_flag_calibrations(tmp_path / "m", saved.card,
                            {"confused": _doubtful_table(clf.classes, seed=9)})
    saved.card.to_json(tmp_path / "m" / "card.json")
    threshold_store.clear_cache()
    again = load_model(tmp_path / "m")
    assert flag_predictor(again, "confused", base).threshold_source_ == "mapie"


def _classified(clf, n_plain=400, n_flagged=200, flagged_proba=None, seed=2):
    """A table of rows drawn like the model's calibration rows and rows flagged confused
    (drawn like its table of such rows, or ``flagged_proba``), with their sets and flags."""
    rng = np.random.default_rng(seed)

    def drawn(table, n):
        pick = rng.integers(0, len(table), n)
        return np.column_stack([np.asarray(table[f"prob_{c.lower()}"])[pick]
                                for c in clf.classes])

    plain = drawn(clf.calibration, n_plain)
    flagged = (drawn(clf.flag_calibrations["confused"], n_flagged) if flagged_proba is None
               else flagged_proba)
    proba = np.vstack([plain, flagged])
    flags = np.array([""] * n_plain + ["blended;confused"] * len(flagged), dtype=object)
    return _with_sets(clf, proba, flags, rng.uniform(17, 20, len(proba))), np.arange(len(proba))


def _with_sets(clf, proba, flags, r):
    """A classified table of these rows: sets, classes and flags."""
    out = Table({"r": r})
    add_prediction_sets(out, clf, proba, np.arange(len(proba)), [0.9], row_flags=flags)
    out["pred_class"] = np.asarray(clf.classes)[proba.argmax(axis=1)]
    out["pred_flag"] = np.asarray(flags).astype(str)
    out.meta["CLFMODEL"] = clf.name
    return out


def test_shift_alarm_compares_flagged_rows_with_their_own_table():
    from sourceclf.conformal.shift import check_set_shift
    from sourceclf.streaming.summary import StreamSummary

    clf = _model()
    clf.flag_calibrations = {"confused": _doubtful_table(clf.classes)}
    out, rows = _classified(clf)
    flagged = out["pred_flag"] != ""
    # The flagged rows' sets are wider by design (mostly both classes, as their table's) ...
    size = np.asarray(out["pred_set_size"])
    assert size[flagged].mean() > 1.5 > 1.2 > size[~flagged].mean()
    # ... which, compared with the model's calibration rows, would ring the alarm.
    with pytest.warns(ShiftAlarmWarning, match="on this catalog are unlike"):
        check_set_shift(out, clf, rows, [0.9], row_flags=np.full(len(out), ""))
    # The other rows, unlike the model's calibration rows, alarm as such, named apart.
    odd = Table(out, copy=True)
    plain = np.flatnonzero(~flagged)
    odd["pred_set_size"][plain[:200]] = 2
    with pytest.warns(ShiftAlarmWarning, match="on this catalog's rows not flagged 'confused' "
                                               "are unlike those of its calibration data"):
        message = check_set_shift(odd, clf, rows, [0.9])
    assert StreamSummary.from_table(odd).shift_alarm() == message
    # Each group compared with the rows its sets were calibrated on: no alarm.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShiftAlarmWarning)
        assert check_set_shift(out, clf, rows, [0.9]) is None
    assert "CLFSHIFT" not in out.meta
    main = json.loads(out.meta["CLFSHREF"])["0.9"]
    own = json.loads(out.meta["CLFSHFLG"])["confused"]["0.9"]
    assert sum(main["rows"]) == (~flagged).sum() and sum(own["rows"]) == flagged.sum()
    assert sum(own["calibration"]) == len(clf.flag_calibrations["confused"])
    # The command line's summary, whole and in chunks, tests the same groups.
    assert StreamSummary.from_table(out).shift_alarm() is None
    # In chunks, each classified alone (the first without a flagged row): the same.
    chunked = StreamSummary()
    for part in (slice(0, 400), slice(400, None)):
        chunk = out[part]
        chunk.meta = {k: v for k, v in out.meta.items() if k == "CLFMODEL"}
        if part.start:
            chunk.meta["CLFFLCAL"] = out.meta["CLFFLCAL"]
        check_set_shift(chunk, clf, np.arange(len(chunk)), [0.9])
        chunked.add(chunk)
    assert chunked.shift_alarm() is None
    assert chunked.flag_shift_bins["confused"]["0.9"]["rows"] == own["rows"]
    assert chunked.shift_bins["0.9"]["rows"] == main["rows"]
    assert chunked.meta["CLFFLCAL"] == out.meta["CLFFLCAL"]  # from the second chunk
    # The command line's summary gives the flagged rows' set sizes apart.
    size = np.asarray(out["pred_set_size"])
    counts = ", ".join(f"{k}: {(size[flagged] == k).sum()}" for k in range(size[flagged].max() + 1))
    assert (f"  of which the {flagged.sum()} rows flagged 'confused' (sets calibrated on rows "
            f"like them): sizes {counts}") in chunked.lines()


def test_shift_alarm_rings_when_flagged_rows_are_unlike_their_table():
    from sourceclf.conformal.shift import check_set_shift
    from sourceclf.streaming.summary import StreamSummary

    clf = _model()
    rng = np.random.default_rng(3)
    p = rng.uniform(0.97, 1.0, 600)  # a table of sure, right rows: sets of one class
    labels = np.where(rng.random(600) < 0.5, clf.classes[0], clf.classes[1])
    first = labels == clf.classes[0]
    table = Table({"label": labels,
                   f"prob_{clf.classes[0].lower()}": np.where(first, p, 1 - p),
                   f"prob_{clf.classes[1].lower()}": np.where(first, 1 - p, p)})
    clf.flag_calibrations = {"confused": table}
    out, rows = _classified(clf, flagged_proba=_rows(200, seed=5))  # undecided rows
    with pytest.warns(ShiftAlarmWarning, match="rows flagged 'confused' are unlike those of "
                                               "its calibration table of such rows"):
        message = check_set_shift(out, clf, rows, [0.9])
    assert out.meta["CLFSHIFT"] == message and "empty sets" in message
    assert StreamSummary.from_table(out).shift_alarm() == message


def test_flag_calibrations_are_saved_verified_and_loaded(tmp_path):
    from sourceclf import calibrate, classify
    from sourceclf.demo import demo_catalog
    from sourceclf.models import load_model

    clf = _model()
    table = _doubtful_table(clf.classes)
    clf.flag_calibrations = {"confused": table}
    clf.card.flag_calibrations = {"confused": {"description": "rows like them"}}
    path = clf.save(tmp_path / "model")
    card = json.loads((path / "card.json").read_text())
    entry = card["flag_calibrations"]["confused"]
    assert entry["file"] == "calibration_confused.ecsv" and entry["rows"] == len(table)
    assert entry["description"] == "rows like them" and len(entry["sha256"]) == 64
    back = load_model(path)
    assert set(back.flag_calibrations) == {"confused"}
    np.testing.assert_array_equal(back.flag_calibrations["confused"]["label"], table["label"])
    # A model without them loads with none.
    assert load_model(MODEL).flag_calibrations == {}
    # Recalibrated on a user's labels, the flagged rows keep their own table.
    demo = demo_catalog(60, random_state=3)
    recal = calibrate(demo, model=back)
    assert recal.flag_calibrations.keys() == {"confused"}
    assert recal.flag_calibrations is not back.flag_calibrations
    assert classify(demo, model=recal)["pred_set"].shape == (60,)

    def card_with(**entry):
        data = json.loads((path / "card.json").read_text())
        data["flag_calibrations"]["confused"].update(entry)
        (path / "card.json").write_text(json.dumps(data))

    # Altered, unverified, missing, outside the directory, or not an object: refused.
    sha = entry["sha256"]
    card_with(sha256="0" * 64)
    with pytest.raises(ModelIntegrityError, match="rows flagged confused.*does not match"):
        load_model(path)
    card_with(sha256="")
    with pytest.raises(ModelIntegrityError, match="records no sha256"):
        load_model(path)
    card_with(sha256=sha, file="nowhere.ecsv")
    with pytest.raises(InvalidInputError, match="nowhere.ecsv' is missing"):
        load_model(path)
    card_with(file="../calibration.ecsv")
    with pytest.raises(ModelIntegrityError, match="plain file name"):
        load_model(path)
    data = json.loads((path / "card.json").read_text())
    data["flag_calibrations"]["confused"] = "calibration_confused.ecsv"
    (path / "card.json").write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match=r"flag_calibrations\['confused'\] must be"):
        load_model(path)
    data["flag_calibrations"] = ["confused"]
    (path / "card.json").write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match="flag_calibrations"):
        load_model(path)


# The recipe -------------------------------------------------------------------------------
def test_recipe_calibrates_the_flagged_rows_of_simulated_crowded_fields(
        shared_data, tmp_path, monkeypatch):
    import functools

    from sourceclf import crowding
    from sourceclf.models import load_model
    from sourceclf.models.card import sha256_file
    from sourceclf.recipes import flag_calibration as recipe
    from sourceclf.recipes import image_training_set as sim
    from sourceclf.recipes.data import recipe_split
    from sourceclf.recipes.measured_columns import measure_with_neighbours

    monkeypatch.setitem(sim.SIMULATIONS[10], "fields", 2)
    shipped = load_model("margnet-sgq").directory
    before = {p.name: sha256_file(p) for p in shipped.iterdir()}
    options = dict(data_dir=shared_data, cache_dir=tmp_path / "cache", n=40, random_state=5,
                   jobs=1, log=lambda line: None)
    # Few rows are confused among so few: none is enough, and nothing is written.
    with pytest.raises(InvalidInputError, match="at least 400 are needed"):
        recipe.calibrate_confused(["margnet-sgq"], output_dir=tmp_path / "none", **options)
    assert not (tmp_path / "none").exists()
    # Every measured row taken as flagged, to check what is written.
    monkeypatch.setattr(recipe, "confusion_flags",
                        functools.partial(crowding.confusion_flags, limit=-np.inf))
    written = recipe.calibrate_confused(["margnet-sgq", "margnet-cnn-sgq"],
                                        output_dir=tmp_path / "models", min_rows=1, **options)
    assert [p.name for p in written] == ["margnet-sgq", "margnet-cnn-sgq"]
    assert {p.name: sha256_file(p) for p in shipped.iterdir()} == before  # left as it was
    table, stamps = sim.simulated_training_set(40, random_state=5, data_dir=shared_data,
                                               cache_dir=tmp_path / "cache", version=10)
    rows = np.asarray(recipe_split(table)["calibration"])
    measured = measure_with_neighbours(table[rows], stamps[rows])
    flagged = np.isfinite(measured["unmodelled_r"])
    assert 0 < flagged.sum()
    # a row whose unmodelled light was not measured is never flagged
    rows, measured = rows[flagged], measured[flagged]
    psf = sim.psf_columns(table, random_state=6)[rows]
    for path in written:
        clf = load_model(path)
        own = clf.flag_calibrations["confused"]
        entry = clf.card.flag_calibrations["confused"]
        assert entry["rows"] == len(own) == len(rows)
        assert "simulation version 10" in entry["description"]
        np.testing.assert_array_equal(own["label"], np.char.upper(
            np.asarray(measured["class"]).astype(str)))
        proba = clf.predict_proba(recipe.model_features(clf, measured, psf), stamps[rows])
        np.testing.assert_allclose(
            np.column_stack([own[f"prob_{c.lower()}"] for c in clf.classes]), proba,
            atol=1e-6)
        np.testing.assert_allclose(own["dered_r"], measured["dered_r"], rtol=1e-6)
        # the table's thresholds are stored with the model's
        assert "confused" in json.loads((path / "thresholds.json").read_text())["flag_entries"]
        # its weights and own calibration are the shipped ones
        assert sha256_file(path / "weights.safetensors") == \
            sha256_file(load_model(clf.name).directory / "weights.safetensors")


def test_measure_with_neighbours_checks_its_input():
    from sourceclf.exceptions import MissingColumnsError
    from sourceclf.recipes.measured_columns import measure_with_neighbours

    table = Table({"field": [0, 1]})
    with pytest.raises(MissingColumnsError, match="psf_fwhm_u"):
        measure_with_neighbours(table, np.zeros((2, 5, 32, 32)))
    names = ["field"] + [f"{c}_{b}" for b in "ugriz"
                         for c in ("psf_fwhm", "psf_beta", "sky_sigma")]
    with pytest.raises(InvalidInputError, match="do not match"):
        measure_with_neighbours(Table({n: [1.0, 1.0] for n in names}), np.zeros((2, 4, 32, 32)))
    with pytest.raises(InvalidInputError, match="no rows"):
        measure_with_neighbours(Table({n: np.zeros(0) for n in names}), np.zeros((0, 5, 32, 32)))
