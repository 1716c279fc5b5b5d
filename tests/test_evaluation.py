"""sourceclf.evaluate and its plots."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from sourceclf import classify, evaluate
from sourceclf.classification import SourceclfWarning
from sourceclf.evaluation import balanced_hit_rate, set_levels
from sourceclf.exceptions import InvalidInputError


def _table():
    """A hand-made classified table with known answers."""
    truth = ["GALAXY", "GALAXY", "GALAXY", "STAR", "STAR", "STAR", "STAR", "GALAXY"]
    pred = ["GALAXY", "GALAXY", "STAR", "STAR", "STAR", "GALAXY", "STAR", "GALAXY"]
    p_gal = [0.9, 0.8, 0.4, 0.1, 0.3, 0.55, 0.2, 0.7]
    sets_90 = ["GALAXY", "GALAXY", "GALAXY|STAR", "STAR", "", "GALAXY", "STAR", ""]
    sets_80 = ["GALAXY", "GALAXY", "STAR", "STAR", "", "", "STAR", ""]
    t = Table()
    t["class"] = truth
    t["dered_r"] = [20.1, 20.2, 20.3, 20.6, 20.7, 21.2, 21.3, 21.4]
    t["pred_class"] = MaskedColumn(pred, mask=[False] * 7 + [True])
    t["prob_galaxy"] = MaskedColumn(p_gal, mask=[False] * 7 + [True])
    t["prob_star"] = MaskedColumn(1 - np.array(p_gal), mask=[False] * 7 + [True])
    for suffix, sets in (("80", sets_80), ("90", sets_90)):
        t[f"pred_set_{suffix}"] = MaskedColumn(sets, mask=[False] * 7 + [True])
        t[f"pred_set_size_{suffix}"] = MaskedColumn(
            [len(s.split("|")) if s else 0 for s in sets], mask=[False] * 7 + [True])
    t.meta["CLFCONF"] = "0.8,0.9"
    return t


def test_metrics_by_hand():
    from sklearn.metrics import f1_score, precision_score, recall_score

    t = _table()
    result = evaluate(t, bins=[20.0, 20.5, 21.0, 21.5])
    s = result.summary
    assert list(s["level"]) == [0.8, 0.9]
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    yp = np.array([0, 0, 1, 1, 1, 0, 1])
    assert s["n"][0] == 7 and s["n_unclassified"][0] == 1
    assert s["accuracy"][0] == pytest.approx(5 / 7)
    assert s["precision_macro"][0] == pytest.approx(precision_score(y, yp, average="macro"))
    assert s["recall_macro"][0] == pytest.approx(recall_score(y, yp, average="macro"))
    assert s["f1_macro"][0] == pytest.approx(f1_score(y, yp, average="macro"))
    assert result.confusion_matrix.tolist() == [[2, 1], [1, 3]]
    # 90%: covered rows 0,1,2,3,6 of 7; sizes 1,1,2,1,0,1,1
    row90 = s[1]
    assert row90["coverage"] == pytest.approx(5 / 7)
    assert row90["coverage_err"] == pytest.approx(np.sqrt(5 / 7 * 2 / 7 / 7))
    assert row90["mean_set_size"] == pytest.approx(7 / 7)
    assert row90["empty_fraction"] == pytest.approx(1 / 7)
    assert row90["singleton_fraction"] == pytest.approx(5 / 7)
    assert s[0]["coverage"] == pytest.approx(4 / 7)
    pc = result.per_class[result.per_class["level"] == 0.9]
    assert list(pc["class"]) == ["GALAXY", "STAR"]
    assert list(pc["n"]) == [3, 4]
    assert pc["coverage"][0] == pytest.approx(1.0) and pc["coverage"][1] == pytest.approx(0.5)
    assert pc["recall"][0] == pytest.approx(2 / 3)
    pb = result.per_bin[result.per_bin["level"] == 0.9]
    assert list(pb["n"]) == [3, 2, 2]
    assert list(pb["coverage"]) == pytest.approx([1.0, 0.5, 0.5])
    assert list(pb["accuracy"]) == pytest.approx([2 / 3, 1.0, 0.5])
    assert result.mag_column == "dered_r"
    d = result.as_dict()
    assert d["confusion_matrix"] == [[2, 1], [1, 3]] and len(d["sets"]) == 2
    assert "coverage=0.7143" in repr(result)


def test_reliability_and_ece():
    t = _table()
    result = evaluate(t, reliability_bins=5)
    rel = result.reliability
    assert rel["n"].sum() == 7
    top = np.array([0.9, 0.8, 0.6, 0.9, 0.7, 0.55, 0.8])
    correct = np.array([1, 1, 0, 1, 1, 0, 1], bool)
    edges = np.linspace(0.5, 1, 6)
    which = np.clip(np.searchsorted(edges, top, side="right") - 1, 0, 4)
    ece = sum((which == k).sum() / 7 * abs(correct[which == k].mean() - top[which == k].mean())
              for k in range(5) if (which == k).any())
    assert result.summary["ece"][0] == pytest.approx(ece)


def test_levels_from_columns_and_meta():
    t = _table()
    assert [lv for lv, _, _ in set_levels(t)] == [0.8, 0.9]
    single = Table({"pred_set": ["STAR"], "pred_set_size": [1]}, meta={"CLFCONF": 0.95})
    assert set_levels(single) == [(0.95, "pred_set", "pred_set_size")]


def test_foreign_labels_warn_and_bad_inputs():
    t = _table()
    t["class"][0] = "QSO"
    with pytest.warns(SourceclfWarning, match=r"labelled \['QSO'\]"):
        result = evaluate(t)
    assert result.summary["n"][0] == 6
    with pytest.raises(InvalidInputError, match="column 'truth'"):
        evaluate(t, label_column="truth")
    with pytest.raises(InvalidInputError, match="astropy Table"):
        evaluate(np.zeros(3))
    with pytest.raises(InvalidInputError, match="mag_column 'w1'"):
        evaluate(_table(), mag_column="w1")


def test_no_sets_and_no_magnitudes():
    t = _table()
    for name in [c for c in t.colnames if c.startswith("pred_set")] + ["dered_r"]:
        t.remove_column(name)
    result = evaluate(t)
    assert result.per_bin is None and result.levels == []
    assert np.isnan(result.summary["coverage"][0])
    assert result.summary["accuracy"][0] == pytest.approx(5 / 7)


def test_plots_return_figures_and_write_files(tmp_path):
    from matplotlib.figure import Figure

    result = evaluate(_table(), bins=[20.0, 20.5, 21.0, 21.5], min_count=1)
    for method, name in ((result.plot_confusion_matrix, "cm.png"),
                         (result.plot_coverage, "coverage.png"),
                         (result.plot_reliability, "rel.png")):
        fig = method(path=tmp_path / name)
        assert isinstance(fig, Figure)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from sourceclf.plotting import plot_coverage_vs_magnitude

    fig = plot_coverage_vs_magnitude({"a": result, "b": result}, level=0.9)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_legend().get_texts()) == 2


def test_evaluate_after_fits_round_trip(demo, tmp_path):
    out = classify(demo, model="margnet-photometry-sg", confidence=[0.6, 0.9])
    path = tmp_path / "out.fits"
    out.write(path)
    back = Table.read(path)
    a, b = evaluate(out), evaluate(back)
    for col in ("accuracy", "coverage", "mean_set_size", "empty_fraction"):
        assert np.allclose(a.summary[col], b.summary[col], equal_nan=True)
    assert a.summary["empty_fraction"][0] > 0


def test_heldout_accuracy_matches_card(shared_data):
    from sourceclf.models import model_card
    from sourceclf.train_recipes import read_recipe_table, recipe_split

    name = "margnet-photometry-sg"
    table = read_recipe_table(name, shared_data)
    test = table[recipe_split(table)["test"]]
    result = evaluate(classify(test, model=name))
    assert result.summary["accuracy"][0] == pytest.approx(
        model_card(name).metrics["test"]["accuracy"], abs=2e-4)
    assert result.per_bin["n"].sum() == len(test)


def test_label_column_in_any_case():
    t = _table()
    expected = evaluate(t).summary["accuracy"][0]
    t.rename_column("class", "CLASS")
    assert evaluate(t).summary["accuracy"][0] == expected
    assert evaluate(t, label_column="Class").summary["accuracy"][0] == expected
    t["class"] = t["CLASS"]
    t["class"][:] = "STAR"  # an exact match wins over another case
    assert evaluate(t).summary["accuracy"][0] == pytest.approx(4 / 7)
    with pytest.raises(InvalidInputError, match=r"'Class' matches several columns \(CLASS, "
                                                r"class\)"):
        evaluate(t, label_column="Class")
    with pytest.raises(InvalidInputError, match="column 'truth' .any case. not in table"):
        evaluate(t, label_column="truth")


def _sparse_table(seed=0):
    """Many sources at r 18-20, one at 20.7 (alone in its bin), none at 21-23, some at 23+."""
    rng = np.random.default_rng(seed)
    mags = np.concatenate([rng.uniform(18, 20, 200), [20.7], rng.uniform(23.0, 23.4, 30)])
    truth = rng.choice(["GALAXY", "STAR"], mags.size)
    right = rng.random(mags.size) < 0.9
    pred = np.where(right, truth, np.where(truth == "STAR", "GALAXY", "STAR"))
    p = np.where(pred == "STAR", 0.8, 0.2)
    t = Table({"class": truth, "dered_r": mags, "pred_class": pred, "prob_galaxy": 1 - p,
               "prob_star": p, "pred_set": pred, "pred_set_size": np.ones(mags.size, int)},
              meta={"CLFCONF": 0.9})
    return t


def test_automatic_bins_reach_min_count_without_spanning_gaps():
    t = _sparse_table()
    r = evaluate(t, min_count=20)
    pb = r.per_bin
    assert r.min_count == 20 and pb.meta["min_count"] == 20
    assert pb["n"].sum() == len(t)
    # The lone source at 20.7 joins the 19.5-20 bin's run? No: 20.0-20.5 is empty, so it
    # stays alone (a sparse bin, kept in the table); no bin spans 20.5-23.
    lone = pb[(pb["mag_lo"] <= 20.7) & (pb["mag_hi"] > 20.7)]
    assert list(lone["n"]) == [1] and lone["mag_hi"][0] - lone["mag_lo"][0] == 0.5
    assert all(hi - lo <= 1.0 for lo, hi in zip(pb["mag_lo"], pb["mag_hi"]))
    dense = pb[pb["mag_hi"] <= 20.0]
    assert (dense["n"] >= 20).all() and len(dense) == 4
    # The last run (30 sources in one 0.5-mag bin) stays one bin.
    assert pb["n"][-1] == 30
    # min_count=1 gives the plain 0.5-mag grid, without empty bins.
    fine = evaluate(t, min_count=1).per_bin
    assert np.allclose(fine["mag_hi"] - fine["mag_lo"], 0.5) and (fine["n"] > 0).all()
    # Merging with min_count=100: 18-19 holds 88, so 19-19.5 joins it; the 60 left in
    # 19.5-20 are too few and join it too: one 18-20 bin of 200.
    wide = evaluate(t, min_count=100).per_bin
    assert ((t["dered_r"] >= 18) & (t["dered_r"] < 19)).sum() == 88
    assert (wide["mag_lo"][0], wide["mag_hi"][0], wide["n"][0]) == (18.0, 20.0, 200)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InvalidInputError, match="min_count"):
            evaluate(t, min_count=bad)


def test_plots_leave_out_sparse_bins_and_break_lines():
    from matplotlib.collections import LineCollection

    from sourceclf.plotting import wilson_interval

    r = evaluate(_sparse_table(), min_count=20)
    fig = r.plot_coverage()
    ax_cov, ax_size = fig.axes
    line = ax_cov.get_lines()[0]
    x, y = line.get_xdata(), line.get_ydata()
    # 4 dense bins, a break (NaN) across 20-23, the 23+ bin; the lone source is not drawn.
    assert np.isnan(x).sum() == 1 and np.isfinite(x).sum() == 5
    assert np.array_equal(np.isnan(x), np.isnan(y))
    assert not np.any((x > 20.5) & (x < 21))
    # Error bars: Wilson intervals, non-zero even where coverage is 1.
    bars = [c for c in ax_cov.collections if isinstance(c, LineCollection)]
    assert bars and len(bars[0].get_segments()) == 5
    assert all(seg[1][1] > seg[0][1] for seg in bars[0].get_segments())
    assert [c for c in ax_size.collections if isinstance(c, LineCollection)]
    low, high = wilson_interval([1.0, 0.0, 0.5], [1, 4, 0])
    assert 0 < low[0] < 1 and high[0] == 1 and low[1] == 0 and 0 < high[1] < 0.5
    assert np.isnan(low[2]) and np.isnan(high[2])
    # min_count=1 draws the lone source too.
    x1 = r.plot_coverage(min_count=1).axes[0].get_lines()[0].get_xdata()
    assert np.any((x1 > 20.5) & (x1 < 21))
    with pytest.raises(InvalidInputError, match="no magnitude bin holds"):
        r.plot_coverage(min_count=10 ** 6)
    # Reliability: all sources sit at probability 0.8 -> one drawn bin, with a bar.
    rel = r.plot_reliability()
    assert np.isfinite(rel.axes[0].get_lines()[1].get_xdata()).sum() == 1
    assert [c for c in rel.axes[0].collections if isinstance(c, LineCollection)]


def test_columns_maps_the_magnitude_of_the_bins():
    t = _sparse_table()
    t.rename_column("dered_r", "r0_mag")
    assert evaluate(t).per_bin is None  # no magnitude under sourceclf's names
    mapped = evaluate(t, columns={"dered_r": "r0_mag"}, min_count=20)
    reference = evaluate(_sparse_table(), min_count=20)
    assert mapped.mag_column == "dered_r"
    assert mapped.per_bin["n"].tolist() == reference.per_bin["n"].tolist()
    assert t.colnames[1] == "r0_mag"  # the table itself is left alone
    with pytest.raises(InvalidInputError, match="the catalog has no column 'r_0'"):
        evaluate(t, columns={"dered_r": "r_0"})


def test_balanced_hit_rate_is_the_mean_of_the_two_groups_rates():
    hit = np.array([1, 1, 0, 1, 0, 0], bool)
    point = np.array([1, 1, 1, 0, 0, 0], bool)
    assert balanced_hit_rate(hit, point, ~point) == pytest.approx((2 / 3 + 1 / 3) / 2)
    # one group of one row weighs as much as a group of five
    assert balanced_hit_rate(np.ones(6, bool), point, ~point) == 1.0
    assert balanced_hit_rate([0, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0],
                             [0, 1, 1, 1, 1, 1]) == 0.5


def test_balanced_hit_rate_is_nan_when_a_group_is_empty():
    assert np.isnan(balanced_hit_rate([True, False], [True, True], [False, False]))
