"""Applicability domains of the shipped photometric models, checked on held-out rows.

These read the real SDSS tables in ../shared/data and skip when it is absent.
"""

import numpy as np
import pytest

from sourceclf.features import get_feature_set
from sourceclf.models import load_model, model_card, model_names
from sourceclf.train_recipes import read_recipe_table, recipe_split

FAINT_COMPACT = [n for n in ("margnet-photometry-sg", "bayesian-margnet-photometry-sg",
                             "gbdt-photometry-sg", "blend-photometry-sg")
                 if n in model_names()]


@pytest.mark.parametrize("name", FAINT_COMPACT + ["ugriz-sgq"])
def test_cards_describe_their_domain(name):
    card = model_card(name)
    domain = card.domain
    assert domain["file"] == "domain.npz" and len(domain["sha256"]) == 64
    assert len(domain["description"]) > 40
    bright, faint = domain["magnitudes"]["r"]
    assert 10 < bright < faint < 25
    clf = load_model(name)
    assert clf.domain.names_ == list(get_feature_set(card.feature_set).names)


@pytest.mark.parametrize("name", FAINT_COMPACT)
def test_faint_compact_domain_on_held_out_and_brighter_rows(shared_data, name):
    table = read_recipe_table(name, shared_data)
    test = table[recipe_split(table)["test"]]
    clf = load_model(name)
    fs = get_feature_set(clf.feature_set)
    inside = clf.outside_domain(fs.compute(test).values)
    # Unseen rows like the training data are almost never flagged...
    assert inside.mean() <= 0.03
    # ...the same rows four magnitudes brighter (colours unchanged) almost always.
    brighter = test.copy()
    for b in "ugriz":
        brighter[f"dered_{b}"] = np.asarray(brighter[f"dered_{b}"], float) - 4.0
    outside = clf.outside_domain(fs.compute(brighter).values)
    assert outside.mean() >= 0.95
    check = clf.card.metrics["domain_check"]
    assert check["test_flagged"] == pytest.approx(inside.mean(), abs=1e-4)
    assert check["test_4mag_brighter_flagged"] == pytest.approx(outside.mean(), abs=1e-4)


def test_ugriz_sgq_domain_on_held_out_rows(shared_data):
    table = read_recipe_table("ugriz-sgq", shared_data)
    test = table[recipe_split(table)["test"]]
    clf = load_model("ugriz-sgq")
    features = get_feature_set(clf.feature_set).compute(test)
    x, dataset = features.values[features.valid], np.asarray(test["dataset"])[features.valid]
    for name in ("sdss17", "dr14"):
        flagged = clf.outside_domain(x[dataset == name]).mean()
        assert flagged <= 0.03
        assert flagged == pytest.approx(
            clf.card.metrics["domain_check"]["test_flagged"][name], abs=1e-4)
    # Magnitudes far fainter than any training row (r 26-35) are outside.
    faint = x.copy()
    faint[:, 0] += 12.0
    assert clf.outside_domain(faint).mean() >= 0.95


def test_combined_table_and_split(shared_data):
    table = read_recipe_table("ugriz-sgq", shared_data)
    assert set(table["dataset"]) == {"sdss17", "dr14"}
    assert "redshift" not in table.colnames
    assert table.meta["n_duplicates_dropped"] == 79
    parts = recipe_split(table)
    allrows = np.concatenate(list(parts.values()))
    assert allrows.size == len(table) == np.unique(allrows).size
    dataset = np.asarray(table["dataset"])
    for name in ("sdss17", "dr14"):
        share = np.mean(dataset[parts["test"]] == name)
        assert share == pytest.approx(np.mean(dataset == name), abs=0.002)
    assert parts["test"].size / len(table) == pytest.approx(0.15, abs=0.001)
    card = model_card("ugriz-sgq")
    valid = get_feature_set("ugriz").compute(table).valid
    for part in ("train", "validation", "calibration", "test"):
        assert card.training[f"n_{part}"] == int(valid[parts[part]].sum())


def test_domains_recipe_keeps_weights(shared_data, tmp_path):
    """``python -m sourceclf.train_recipes domains`` rewrites cards and domains only."""
    import shutil

    from sourceclf.models.card import sha256_file
    from sourceclf.models.registry import MODEL_DIR
    from sourceclf.recipes.cards import fit_domains

    name = "gbdt-photometry-sg"
    shutil.copytree(MODEL_DIR / name, tmp_path / name)
    card = model_card(name)
    checks = fit_domains(shared_data, names=[name], model_dir=tmp_path)
    again = model_card(name)
    assert sha256_file(tmp_path / name / card.weights_file) == card.weights_sha256
    written = load_model(tmp_path / name)
    assert written.card.weights_sha256 == again.weights_sha256
    # Refitting gives the shipped domain (fixed split and seeds; to rounding).
    shipped = load_model(name).domain
    np.testing.assert_allclose(written.domain.low_, shipped.low_)
    np.testing.assert_allclose(written.domain.high_, shipped.high_)
    assert written.domain.threshold_ == pytest.approx(shipped.threshold_, rel=1e-6)
    assert checks[name] == pytest.approx(again.metrics["domain_check"], abs=1e-4)
