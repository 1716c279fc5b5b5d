"""Conformal prediction sets: agreement with MAPIE, coverage on held-out SDSS data,
Mondrian calibration, recalibration, output columns and errors.

Coverage tolerances.  With ``n`` calibration rows and level ``c``, split
conformal prediction covers a new row with probability ``C`` that, given the
calibration set, is Beta(k, n + 1 - k) distributed, ``k = ceil((n + 1) c)``
(continuous scores): mean ``k / (n + 1)``, variance about ``c (1 - c) / (n + 2)``.
The coverage measured on ``m`` independent test rows adds a binomial
variance ``c (1 - c) / m``.  `_tolerance` is 3 standard deviations of the
two together (one-sided checks use the same band), so a correct
implementation fails a check with probability of order 0.1-0.3%.
"""

import copy
import math
import warnings

import numpy as np
import pytest
from astropy.table import Table

from sourceclf import calibrate, classify
from sourceclf.classification import SourceclfWarning
from sourceclf.conformal import (SCORES, ConformalPredictor, ProbabilityPassthrough,
                                 bin_rule_min_count, format_sets, level_suffix,
                                 parse_level_suffix, set_membership)
from sourceclf.conformal.mapie_adapter import MapieConformalizer
from sourceclf.exceptions import InvalidInputError

MODEL = "margnet-photometry-sg"


def _tolerance(level, n_cal, n_test, sigmas=3.0):
    return sigmas * math.sqrt(level * (1 - level) * (1 / (n_cal + 2) + 1 / n_test))


def _expected(level, n_cal):
    return math.ceil((n_cal + 1) * level) / (n_cal + 1)


def _coverage(out, truth, level=None):
    member = set_membership(out, level=level)
    classes = [c[5:].upper() for c in out.colnames
               if c.startswith("prob_") and not c.endswith("_std")]
    idx = np.array([classes.index(t) for t in truth])
    return member[np.arange(len(truth)), idx]


#: dered_r strata of the magnitude-shift experiment, and the fraction of each
#: stratum's rows that go to the calibration set (the rest are classified).
SHIFT_EDGES = (20.5, 21.0, 21.5)
SHIFT_TO_CALIBRATION = (0.9, 0.7, 0.35, 0.15)


def _magnitude_shift(table, seed=0):
    """Bright-heavy calibration rows and faint-heavy test rows.

    Within a stratum the split is random, so calibration and test rows of equal
    magnitude are exchangeable: only the magnitude distribution shifts.
    """
    mag = np.asarray(table["dered_r"])
    stratum = np.searchsorted(SHIFT_EDGES, mag, side="right")
    p_cal = np.asarray(SHIFT_TO_CALIBRATION)[stratum]
    to_cal = np.random.default_rng(seed).random(len(mag)) < p_cal
    return np.flatnonzero(to_cal), np.flatnonzero(~to_cal)


def _random_proba(rng, n, n_classes):
    p = rng.dirichlet(np.full(n_classes, 0.7), size=n)
    y = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return p, y


# Agreement with MAPIE -----------------------------------------------------------
@pytest.mark.parametrize("classes", [("GALAXY", "QSO", "STAR"), ("STAR", "GALAXY", "QSO")])
@pytest.mark.parametrize("score", sorted(SCORES))
def test_sets_equal_mapie_predict_set(classes, score):
    from mapie.classification import SplitConformalClassifier

    rng = np.random.default_rng(7)
    p_cal, y_cal = _random_proba(rng, 600, 3)
    p_new, _ = _random_proba(rng, 2000, 3)
    labels = np.array(classes)[y_cal]
    levels = [0.8, 0.9, 0.95]
    mine, groups = ConformalPredictor(classes, levels, score=score,
                                      random_state=11).fit(p_cal, labels).predict_sets(p_new)
    # MAPIE directly, on columns in sorted class order.
    order = np.argsort(classes)
    mapie_score, include_last = SCORES[score]
    ref = SplitConformalClassifier(ProbabilityPassthrough(tuple(np.array(classes)[order])).fit(),
                                   confidence_level=levels, conformity_score=mapie_score,
                                   prefit=True, random_state=11)
    ref.conformalize(p_cal[:, order], labels)
    _, ref_sets = ref.predict_set(p_new[:, order],
                                  conformity_score_params={"include_last_label": include_last})
    expected = np.zeros_like(ref_sets)
    expected[:, order] = ref_sets
    assert mine.shape == (2000, 3, 3)
    assert np.array_equal(mine, expected)
    assert (groups == 0).all()


@pytest.mark.parametrize("score", sorted(SCORES))
def test_mapie_adapter_seam_matches_public_mapie(score):
    """Every MAPIE internal sourceclf touches sits in MapieConformalizer; check it
    against MAPIE's public API, so that a MAPIE release that moves them fails here."""
    from mapie.classification import SplitConformalClassifier

    rng = np.random.default_rng(2)
    classes = ("GALAXY", "QSO", "STAR")
    p_cal, y_cal = _random_proba(rng, 500, 3)
    p_new, _ = _random_proba(rng, 300, 3)
    labels = np.array(classes)[y_cal]
    levels = [0.8, 0.9]
    seam = MapieConformalizer(classes, levels, score, random_state=4).conformalize(p_cal, labels)
    mapie_score, include_last = SCORES[score]
    ref = SplitConformalClassifier(ProbabilityPassthrough(classes).fit(), confidence_level=levels,
                                   conformity_score=mapie_score, prefit=True,
                                   random_state=4).conformalize(p_cal, labels)
    # Conformity scores, and which calibration rows they belong to (RAPS holds some apart).
    assert np.array_equal(seam.scores_, ref.conformity_scores)
    n_scored = len(seam.scores_)
    assert len(np.unique(seam.scored_rows_)) == len(seam.scored_rows_) == n_scored
    assert (n_scored < 500) if mapie_score == "raps" else (n_scored == 500)
    # The quantiles of all scored rows give MAPIE's own prediction sets.
    every = np.arange(n_scored)
    _, ref_sets = ref.predict_set(p_new,
                                  conformity_score_params={"include_last_label": include_last})
    assert np.array_equal(seam.prediction_sets(p_new, seam.quantiles(every)), ref_sets)
    # The quantile of a subset of rows (a Mondrian group) is its own split-conformal
    # quantile (for LAC: the ceil((n + 1) level)-th smallest score), and leaves no trace.
    half = every[: n_scored // 2]
    q = seam.quantiles(half)
    assert q.shape == (len(levels),)
    if score == "lac":
        k = np.ceil((half.size + 1) * np.array(levels)).astype(int)
        assert np.allclose(q, np.sort(seam.scores_[half].ravel())[k - 1])
    assert np.array_equal(seam.prediction_sets(p_new, seam.quantiles(every)), ref_sets)


def test_binary_lac_equals_mapie_and_other_scores_refused():
    from mapie.classification import SplitConformalClassifier

    rng = np.random.default_rng(3)
    p_cal, y_cal = _random_proba(rng, 500, 2)
    p_new, _ = _random_proba(rng, 1000, 2)
    labels = np.array(["GALAXY", "STAR"])[y_cal]
    mine, _ = ConformalPredictor(["GALAXY", "STAR"], [0.9]).fit(p_cal, labels).predict_sets(p_new)
    ref = SplitConformalClassifier(ProbabilityPassthrough(("GALAXY", "STAR")).fit(),
                                   confidence_level=[0.9], prefit=True).conformalize(p_cal, labels)
    assert np.array_equal(mine, ref.predict_set(p_new)[1])
    for score in ("aps", "aps-randomized", "raps", "top_k"):
        with pytest.raises(InvalidInputError, match="only the 'lac' score"):
            ConformalPredictor(["GALAXY", "STAR"], 0.9, score=score)


def test_single_bin_mondrian_equals_marginal():
    rng = np.random.default_rng(5)
    p_cal, y_cal = _random_proba(rng, 800, 3)
    p_new, _ = _random_proba(rng, 500, 3)
    classes = ("GALAXY", "QSO", "STAR")
    labels = np.array(classes)[y_cal]
    marginal, _ = ConformalPredictor(classes, [0.9], score="aps").fit(p_cal, labels) \
        .predict_sets(p_new)
    binned = ConformalPredictor(classes, [0.9], score="aps", by="mag", bins=1)
    sets, groups = binned.fit(p_cal, labels, rng.uniform(18, 22, 800)) \
        .predict_sets(p_new, rng.uniform(18, 22, 500))
    assert np.array_equal(sets, marginal)
    assert (groups == 0).all()


def test_class_conditional_uses_each_labels_threshold():
    rng = np.random.default_rng(9)
    p_cal, y_cal = _random_proba(rng, 3000, 3)
    classes = ("GALAXY", "QSO", "STAR")
    labels = np.array(classes)[y_cal]
    cp = ConformalPredictor(classes, [0.9], by="class").fit(p_cal, labels)
    assert cp.thresholds_.shape == (3, 1)
    p_new, _ = _random_proba(rng, 1000, 3)
    sets, _ = cp.predict_sets(p_new)
    # LAC: label k is in the set exactly when 1 - p_k is within class k's threshold.
    expected = (1 - p_new) - cp.thresholds_[:, 0][None, :] <= 1e-8
    assert np.array_equal(sets[:, :, 0], expected)


# Names, formatting, errors -------------------------------------------------------------
def test_level_suffixes_and_formatting():
    assert [level_suffix(c) for c in (0.8, 0.9, 0.95, 0.975, 0.999)] == \
        ["80", "90", "95", "97p5", "99p9"]
    assert parse_level_suffix("97p5") == 0.975
    sets = format_sets(np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]], bool),
                       ["GALAXY", "QSO", "STAR"])
    assert sets.tolist() == ["GALAXY|STAR", "", "GALAXY|QSO|STAR"]
    assert bin_rule_min_count([0.9]) == 400


def test_bad_confidence_and_score(demo):
    for bad in (0, 1, 1.5, -0.1, [0.9, 1.0]):
        with pytest.raises(InvalidInputError, match="strictly between 0 and 1"):
            classify(demo, confidence=bad)
    with pytest.raises(InvalidInputError, match="unknown conformity score 'bogus'"):
        classify(demo, score="bogus")
    with pytest.raises(InvalidInputError, match="only the 'lac' score"):
        classify(demo, model=MODEL, score="aps")


def test_no_calibration_warns_by_default_and_fails_when_asked(demo):
    from sourceclf.models import load_model

    clf = copy.copy(load_model(MODEL))
    clf.calibration = None
    with pytest.warns(SourceclfWarning, match="no calibration data"):
        out = classify(demo, model=clf)
    assert "pred_set" not in out.colnames and "CLFCONF" not in out.meta
    with pytest.raises(InvalidInputError, match="no calibration data"):
        classify(demo, model=clf, score="lac")
    with pytest.raises(InvalidInputError, match="no calibration data"):
        ConformalPredictor.from_classifier(clf)


def test_columns_meta_and_nesting(demo):
    demo["dered_u"][3] = -9999  # one row that cannot be classified
    out = classify(demo, model=MODEL, confidence=[0.8, 0.9, 0.975])
    for suffix in ("80", "90", "97p5"):
        assert f"pred_set_{suffix}" in out.colnames
        assert out[f"pred_set_size_{suffix}"].mask[3] and out[f"pred_set_{suffix}"].mask[3]
    assert "pred_set" not in out.colnames
    assert out.meta["CLFCONF"] == "0.8,0.9,0.975"
    assert out.meta["CLFSCORE"] == "lac"
    assert all(len(k) <= 8 for k in out.meta)
    sizes = [np.ma.filled(out[f"pred_set_size_{s}"], 0) for s in ("80", "90", "97p5")]
    assert (sizes[0] <= sizes[1]).all() and (sizes[1] <= sizes[2]).all()
    m80, m975 = set_membership(out, level=0.8), set_membership(out, level=0.975)
    assert not (m80 & ~m975).any()
    size = np.asarray(np.ma.filled(out["pred_set_size_90"], 0))
    text = np.asarray(np.ma.filled(out["pred_set_90"], ""))
    assert ((text == "") == (size == 0)).all()
    # Re-classifying with one level leaves no stale columns.
    again = classify(out, model=MODEL, confidence=0.9)
    assert not [c for c in again.colnames if c.startswith("pred_set_")
                and c != "pred_set_size"]
    assert again.meta["CLFCONF"] == 0.9


def test_set_columns_round_trip_fits_and_ecsv(demo, tmp_path):
    demo["psffwhm_g"][0] = np.nan
    out = classify(demo, model=MODEL, confidence=[0.8, 0.95])
    out_one = classify(demo, model=MODEL, confidence=0.6)  # low level: empty sets
    assert (np.ma.filled(out_one["pred_set_size"], 1) == 0).any()
    for table, name in ((out, "multi"), (out_one, "one")):
        for ext in ("fits", "ecsv"):
            path = tmp_path / f"{name}.{ext}"
            table.write(path)
            back = Table.read(path)
            for key in ("CLFCONF", "CLFSCORE", "CLFMODEL"):
                assert back.meta[key] == table.meta[key]
            for level in ([0.8, 0.95] if name == "multi" else [None]):
                assert np.array_equal(set_membership(back, level=level),
                                      set_membership(table, level=level))
            for col in [c for c in table.colnames if c.startswith("pred_set")]:
                orig, new = table[col], back[col]
                if "size" in col:
                    assert np.array_equal(np.ma.getmaskarray(orig), np.ma.getmaskarray(new))
                    assert np.array_equal(np.ma.filled(orig, -1), np.ma.filled(new, -1))
                else:  # the readers mask empty strings: compare the filled text
                    assert np.array_equal(np.ma.filled(orig, ""),
                                          np.ma.filled(new, "").astype(str))


def test_empty_sets_are_legal_and_counted_by_cli_summary(demo):
    from sourceclf.cli import summary

    out = classify(demo, model=MODEL, confidence=0.6)
    size = np.ma.filled(out["pred_set_size"], -1)
    n_empty = int((size == 0).sum())
    assert n_empty > 0
    assert (np.asarray(out["pred_set"])[size == 0] == "").all()
    line = [x for x in summary(out) if x.startswith("prediction sets")][0]
    assert f"empty sets {n_empty} (no class probable enough" in line


def test_missing_group_value_uses_marginal_and_is_flagged(demo):
    labelled = demo.copy()
    labelled["seeing"] = np.random.default_rng(0).uniform(0.8, 2.0, len(demo))
    with pytest.warns(SourceclfWarning, match="few calibration rows"):
        recal = calibrate(labelled, model=MODEL, by="seeing", bins=2)
    new = demo.copy()
    new["seeing"] = np.linspace(0.5, 2.5, len(new))
    new["seeing"][[1, 4]] = np.nan
    with pytest.warns(SourceclfWarning, match="few calibration rows"):
        out = classify(new, model=recal)
    assert out.meta["CLFGROUP"].startswith("seeing:")
    group = np.asarray(out["pred_set_group"])
    assert group[1] == group[4] == -1 and set(group[group >= 0]) == {0, 1}
    assert "no_seeing:marginal_set" in out["pred_flag"][1].split(";")
    assert not np.ma.getmaskarray(out["pred_set_size"])[[1, 4]].any()
    # the explicit marginal override is honoured
    marginal = classify(new, model=recal, by="none")
    assert "CLFGROUP" not in marginal.meta and "pred_set_group" not in marginal.colnames
    with pytest.raises(InvalidInputError, match="no column"):
        classify(new, model=MODEL, by="seeing")


# Recalibration -----------------------------------------------------------------------------
def test_calibrate_rejects_unknown_labels(demo):
    demo["class"][[2, 5]] = "QSO"
    with pytest.raises(InvalidInputError) as info:
        calibrate(demo, model=MODEL)
    message = str(info.value)
    assert "['QSO']" in message and MODEL in message and "\n" not in message
    with pytest.raises(InvalidInputError, match="label column 'kind'"):
        calibrate(demo, model=MODEL, label_column="kind")


def test_calibrate_returns_new_model_that_saves(demo, tmp_path):
    from sourceclf.models import load_model

    original = load_model(MODEL)
    before = len(original.calibration)
    labelled = demo.copy()
    labelled["class"] = np.char.lower(np.asarray(labelled["class"]).astype(str))  # any case
    recal = calibrate(labelled, model=original, by="class", source="demo table")
    assert recal is not original and len(original.calibration) == before
    assert len(recal.calibration) == len(demo)
    assert set(recal.calibration.colnames) >= {"label", "prob_galaxy", "prob_star", "r",
                                               "dered_r"}
    assert recal.card.extra["conformal_by"] == "class"
    assert recal.card.training["calibration"]["source"] == "demo table"
    assert "Recalibrated on 60" in recal.card.notes
    assert recal.card.version == original.card.version + "+recal"
    assert original.card.version == "1.1"
    out = classify(demo, model=recal)
    assert out.meta["CLFGROUP"] == "class"
    path = recal.save(tmp_path / "recal")
    again = classify(demo, model=str(path))
    assert np.array_equal(np.asarray(again["pred_set"]), np.asarray(out["pred_set"]))
    # A name of its own, so that outputs say which calibration made them.
    named = calibrate(labelled, model=original, name="margnet-mysurvey")
    assert named.name == "margnet-mysurvey" and original.name == MODEL
    assert classify(demo, model=named).meta["CLFMODEL"] == "margnet-mysurvey"
    with pytest.raises(InvalidInputError, match="name must be"):
        calibrate(labelled, model=original, name=" ")


# Real held-out SDSS data ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def faint(shared_data):
    from sourceclf.train_recipes import read_recipe_table, recipe_split

    table = read_recipe_table(MODEL, shared_data)
    return table, recipe_split(table)


def test_heldout_coverage_of_shipped_calibration(faint):
    """The shipped calibration covers the recipe's unseen test split at every level."""
    from sourceclf.models import load_model

    table, parts = faint
    test = table[parts["test"]]
    n_cal = len(load_model(MODEL).calibration)
    levels = [0.8, 0.9, 0.95]
    out = classify(test, model=MODEL, confidence=levels)
    truth = np.asarray(test["class"])
    for level in levels:
        cov = _coverage(out, truth, level).mean()
        tol = _tolerance(level, n_cal, len(test))
        assert abs(cov - _expected(level, n_cal)) <= tol, (level, cov, tol)
        if level == 0.9:
            assert 0.88 <= cov <= 0.93, cov


def test_class_conditional_coverage_on_heldout(faint):
    from sourceclf.models import load_model

    table, parts = faint
    test = table[parts["test"]]
    cal = load_model(MODEL).calibration
    out = classify(test, model=MODEL, by="class", confidence=0.9)
    truth = np.asarray(test["class"])
    covered = _coverage(out, truth)
    for c in ("GALAXY", "STAR"):
        m = truth == c
        n_cal = int(np.sum(cal["label"] == c))
        assert covered[m].mean() >= _expected(0.9, n_cal) - _tolerance(0.9, n_cal, m.sum())


def test_mondrian_repairs_a_magnitude_shift(faint):
    """Bright-heavy calibration under-covers a faint-heavy catalog; Mondrian bins do not.

    The rows no model saw (the recipe's calibration and test splits) are cut
    into dered_r strata; 90% of the brightest stratum's rows but 15% of the
    faintest one's go to the calibration set, the rest are classified.  With
    Mondrian bins equal to the strata, calibration and test rows of a bin are
    exchangeable, so each bin must be covered (3-sigma floor).  The marginal
    threshold, set by the bright majority, must fall short in at least one bin
    by more than 2 sigma of its own scatter (calibration on all ``n_cal`` rows
    plus the bin's test rows): the check that the shift is real.
    """
    from sourceclf.models import load_model

    table, parts = faint
    clf = load_model(MODEL)
    unseen = table[np.concatenate([parts["calibration"], parts["test"]])]
    cal_rows, test_rows = _magnitude_shift(unseen)
    level = 0.9
    with pytest.warns(SourceclfWarning, match="few calibration rows"):
        mondrian = calibrate(unseen[cal_rows], model=clf, by="dered_r", bins=SHIFT_EDGES)
    marginal = calibrate(unseen[cal_rows], model=clf)
    test = unseen[test_rows]
    truth = np.asarray(test["class"])
    out_marg = classify(test, model=marginal, confidence=level)
    with pytest.warns(SourceclfWarning, match="few calibration rows"):
        out_mond = classify(test, model=mondrian, confidence=level)
    assert out_mond.meta["CLFGROUP"] == "dered_r:20.500,21.000,21.500"
    with pytest.warns(SourceclfWarning):
        counts = ConformalPredictor.from_classifier(mondrian, level).group_counts_
    groups = np.asarray(out_mond["pred_set_group"])
    assert np.array_equal(groups, np.searchsorted(SHIFT_EDGES, test["dered_r"], side="right"))
    cov_marg, cov_mond = _coverage(out_marg, truth), _coverage(out_mond, truth)
    failing = []
    for g in range(len(SHIFT_TO_CALIBRATION)):
        m = groups == g
        floor = _expected(level, counts[g]) - _tolerance(level, counts[g], m.sum())
        assert cov_mond[m].mean() >= floor, (g, cov_mond[m].mean(), floor)
        marginal_floor = level - _tolerance(level, len(cal_rows), m.sum(), sigmas=2)
        if cov_marg[m].mean() < marginal_floor:
            failing.append(g)
    assert failing, "the magnitude shift did not make marginal calibration fail"
    assert cov_mond[groups == failing[-1]].mean() > cov_marg[groups == failing[-1]].mean()


def test_recalibrated_on_half_covers_other_half_in_every_r_bin(faint):
    """Done criterion: calibrate on half of the unseen test split, >= 88% per r bin."""
    table, parts = faint
    test = table[parts["test"]]
    rng = np.random.default_rng(42)
    order = rng.permutation(len(test))
    half_a, half_b = test[order[: len(test) // 2]], test[order[len(test) // 2:]]
    recal = calibrate(half_a, model=MODEL, by="r", source="half of the recipe test split")
    out = classify(half_b, model=recal, confidence=0.9)
    assert out.meta["CLFGROUP"].startswith("r:")
    truth = np.asarray(half_b["class"])
    covered = _coverage(out, truth)
    groups = np.asarray(out["pred_set_group"])
    assert groups.min() >= 0 and np.unique(groups).size >= 2
    for g in np.unique(groups):
        assert covered[groups == g].mean() >= 0.88, (g, covered[groups == g].mean())


def test_bin_rule_gives_enough_rows_per_bin(faint):
    from sourceclf.models import load_model

    clf = load_model(MODEL)
    cp = ConformalPredictor.from_classifier(clf, [0.9], by="dered_r")
    n = len(clf.calibration)
    assert len(cp.group_counts_) == min(5, n // 400)
    assert cp.group_counts_.min() >= 400
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConformalPredictor.from_classifier(clf, [0.9], by="dered_r")
    with pytest.warns(SourceclfWarning, match="few calibration rows"):
        ConformalPredictor.from_classifier(clf, [0.9], by="dered_r", bins=8)


def test_magnitude_bins_falling_back_to_one_bin_warn(demo):
    with pytest.warns(SourceclfWarning, match="single bin"):
        recal = calibrate(demo, model=MODEL, by="dered_r")
    assert recal.card.extra["conformal_by"] == "dered_r"
