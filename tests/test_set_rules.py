"""The default prediction-set rule and how empty sets are reported.

``'lac'`` stays the default (evidence: docs/scripts/compare_set_rules.py, quoted in
docs/conformal.rst); a classified row whose set is empty keeps its class and gets
``empty_set:<L>`` in ``pred_flag``.
"""

import numpy as np
import pytest
from astropy.table import Table

from sourceclf import classify
from sourceclf.conformal import (EMPTY_SET_FLAG, ConformalPredictor, add_prediction_sets,
                                 empty_set_flags)
from sourceclf.exceptions import InvalidInputError
from sourceclf.models import load_model

MODEL = "margnet-photometry-sg"


def _has_flag(flags, text):
    return np.array([text in str(f).split(";") for f in flags])


def test_empty_set_flags_name_the_levels():
    sizes = [[0, 0, 1], [0, 1, 1], [1, 1, 2], [0, 0, 0]]
    flags = empty_set_flags(sizes, [0.68, 0.9, 0.975])
    assert flags.tolist() == ["empty_set:68,90", "empty_set:68", "",
                              "empty_set:68,90,97p5"]
    assert empty_set_flags(np.zeros((0, 1), int), [0.9]).shape == (0,)
    with pytest.raises(InvalidInputError, match=r"shape \(n, 2\)"):
        empty_set_flags([[0, 1, 1]], [0.68, 0.9])


def test_lac_is_the_default_score(demo):
    out = classify(demo, model=MODEL, confidence=0.9)
    assert out.meta["CLFSCORE"] == "lac"
    assert ConformalPredictor.from_classifier(load_model(MODEL), 0.9).score == "lac"


def test_empty_sets_are_flagged_at_their_levels(demo):
    out = classify(demo, model=MODEL, confidence=[0.6, 0.9])
    flags = np.asarray(out["pred_flag"])
    for suffix in ("60", "90"):
        empty = np.ma.filled(out[f"pred_set_size_{suffix}"], -1) == 0
        flagged = np.array([any(part.startswith(f"{EMPTY_SET_FLAG}:") and
                                suffix in part[len(EMPTY_SET_FLAG) + 1:].split(",")
                                for part in str(f).split(";")) for f in flags])
        assert np.array_equal(flagged, empty), suffix
    assert (np.ma.filled(out["pred_set_size_60"], -1) == 0).any()
    # a row with an empty set keeps its class and probabilities
    empty = np.ma.filled(out["pred_set_size_60"], -1) == 0
    assert not np.ma.getmaskarray(out["pred_class"])[empty].any()
    assert "no class is probable enough" in out["pred_set_60"].description


def test_single_level_flag_and_no_flag_without_empty_sets(demo):
    out = classify(demo, model=MODEL, confidence=0.6)
    empty = np.ma.filled(out["pred_set_size"], -1) == 0
    assert empty.any()
    assert np.array_equal(_has_flag(out["pred_flag"], "empty_set:60"), empty)
    wide = classify(demo, model=MODEL, confidence=0.99)
    assert (np.ma.filled(wide["pred_set_size"], -1) > 0).all()
    assert not any(EMPTY_SET_FLAG in str(f) for f in wide["pred_flag"])


def test_empty_set_flag_joins_the_marginal_set_note():
    clf = load_model(MODEL)
    out = Table({"dered_r": [np.nan, 21.0, np.nan]})
    proba = np.array([[0.5, 0.5], [0.5, 0.5], [0.001, 0.999]])
    flags = add_prediction_sets(out, clf, proba, np.arange(3), [0.9], by="dered_r")
    assert out["pred_set_size"].tolist() == [0, 0, 1]
    assert flags.tolist() == ["no_dered_r:marginal_set;empty_set:90", "empty_set:90",
                              "no_dered_r:marginal_set"]


def test_no_notes_gives_none():
    clf = load_model(MODEL)
    out = Table({"x": [1, 2]})
    proba = np.array([[0.001, 0.999], [0.999, 0.001]])
    assert add_prediction_sets(out, clf, proba, np.arange(2), [0.9]) is None
