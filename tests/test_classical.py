"""Classical models: training, grid search, storage without pickle, the shipped one."""

import json
import zipfile

import numpy as np
import pytest
from astropy.table import Table

import sourceclf
from sourceclf import classify
from sourceclf.demo import demo_catalog
from sourceclf.exceptions import InvalidInputError, ModelIntegrityError
from sourceclf.features import get_feature_set
from sourceclf.models import GradientBoostedTrees, SklearnClassifier, load_model, model_card
from sourceclf.models.card import sha256_file
from sourceclf.models.classical import CLASSICAL_MODELS, canonical_model_name
from sourceclf.training import PARAM_GRIDS, fit_classical, make_estimator, train_classical

# Small, fast settings for each model (the defaults are for real catalogs).
FAST = {"dt": {"max_depth": 6}, "rf": {"n_estimators": 15},
        "gbdt": {"max_iter": 30, "early_stopping": False},
        "xgboost": {"n_estimators": 15, "max_depth": 3}}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One OpenMP/BLAS thread: on a busy CI machine OpenMP's spinning threads make
    histogram gradient boosting on tiny data ten times slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def catalog():
    return demo_catalog(400, random_state=5)


@pytest.fixture(scope="module")
def trained(catalog):
    return sourceclf.train(catalog, model="gbdt", search=False, config=FAST["gbdt"],
                           random_state=1)


def three_class_catalog(n=450, seed=2):
    """Synthetic SGQ catalog: demo rows, a third class made from shifted stars."""
    t = demo_catalog(n, random_state=seed)
    labels = np.asarray(t["class"]).astype("U6")
    stars = np.flatnonzero(labels == "STAR")
    qso = stars[: len(stars) // 2]
    labels[qso] = "QSO"
    t["class"] = labels
    for col in ("dered_u", "u"):
        values = np.array(t[col].value)
        values[qso] -= 1.0  # quasars: UV excess
        t[col] = values * t[col].unit
    t["u_g"] = t["u"] - t["g"]
    return t


def _xgboost_or_skip(model):
    if model == "xgboost":
        pytest.importorskip("xgboost")


@pytest.mark.parametrize("model", sorted(CLASSICAL_MODELS))
def test_train_dispatch_predict_classify(catalog, model):
    _xgboost_or_skip(model)
    clf = sourceclf.train(catalog, model=model, search=False, config=FAST[model])
    assert isinstance(clf, SklearnClassifier)
    assert clf.kind == clf.card.kind == "sklearn"
    assert clf.classes == ("GALAXY", "STAR")
    assert clf.feature_set == "margnet24"
    x = get_feature_set("margnet24").compute(catalog).values
    proba = clf.predict_proba(x)
    assert proba.shape == (len(catalog), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    # Better than chance on its own training data, and on the held-out part.
    assert clf.card.metrics["validation"]["accuracy"] > 0.7
    assert set(clf.calibration.colnames) >= {"label", "prob_galaxy", "prob_star"}
    out = classify(catalog[:20], model=clf, confidence=0.9)
    assert list(out["pred_class"]) == list(np.array(clf.classes)[proba[:20].argmax(1)])
    assert "pred_set" in out.colnames


def test_aliases_and_unknown():
    assert canonical_model_name("Random-Forest") == "rf"
    assert canonical_model_name("hgb") == "gbdt"
    assert canonical_model_name("margnet-ann") is None
    with pytest.raises(InvalidInputError, match="unknown classical model"):
        make_estimator("svm")


def test_grid_search_records_best(catalog):
    x = get_feature_set("margnet24").compute(catalog).values
    y = (np.asarray(catalog["class"]) == "STAR").astype(int)
    grid = {"max_depth": [2, 6], "min_samples_leaf": [1, 20]}
    est, info = fit_classical("dt", x, y, search=True, param_grid=grid, random_state=0)
    assert info["search"] and info["cv"] == 3 and info["scoring"] == "accuracy"
    assert info["param_grid"] == grid
    assert len(info["cv_results"]) == 4
    best = max(info["cv_results"], key=lambda r: r["mean"])
    assert info["best_cv_score"] == best["mean"]
    assert {k: getattr(est, k) for k in grid} == info["best_params"]
    assert info["params"]["max_depth"] == info["best_params"]["max_depth"]
    # Same seed, same search.
    _, again = fit_classical("dt", x, y, search=True, param_grid=grid, random_state=0)
    assert again["cv_results"] == info["cv_results"]


def test_default_grids_are_small():
    for model, grid in PARAM_GRIDS.items():
        assert int(np.prod([len(v) for v in grid.values()])) <= 24, model


def test_grid_search_through_train(catalog):
    clf = sourceclf.train(catalog, model="rf", config={"n_estimators": 10},
                          param_grid={"max_features": ["sqrt", 0.5]})
    search = clf.card.training["search"]
    assert search["search"] and search["best_params"]["max_features"] in ("sqrt", 0.5)
    assert clf.card.config["n_estimators"] == 10


def test_fit_rejects_missing_class():
    x = np.random.default_rng(0).normal(size=(30, 3))
    with pytest.raises(InvalidInputError, match="every class"):
        fit_classical("dt", x, np.full(30, 1), search=False)


def test_three_classes_and_ugriz():
    t = three_class_catalog()
    clf = train_classical(t, model="dt", feature_set="ugriz", search=False,
                          params={"max_depth": 5})
    assert clf.classes == ("GALAXY", "QSO", "STAR")
    out = classify(t[:30], model=clf, confidence=None)
    assert {"prob_galaxy", "prob_qso", "prob_star"} <= set(out.colnames)


@pytest.fixture(scope="module")
def forest(catalog):
    """A model stored with skops (every estimator but histogram gradient boosting)."""
    return sourceclf.train(catalog, model="rf", search=False, config=FAST["rf"],
                           random_state=1)


def test_gbdt_round_trip_as_tree_arrays(trained, catalog, tmp_path):
    """Histogram gradient boosting is saved as plain arrays, read back bit for bit."""
    x = get_feature_set("margnet24").compute(catalog).values
    path = trained.save(tmp_path / "m")
    names = sorted(p.name for p in path.iterdir())
    assert names == ["calibration.ecsv", "card.json", "domain.npz", "trees.npz"]
    with np.load(path / "trees.npz", allow_pickle=False) as data:  # no object arrays
        assert {"nodes", "offsets", "baseline", "classes", "settings"} == set(data.files)
    card = json.loads((path / "card.json").read_text())
    assert card["kind"] == "sklearn" and card["weights_file"] == "trees.npz"
    assert "skops_trusted_types" not in card["extra"]
    loaded = load_model(path)
    assert isinstance(loaded, SklearnClassifier)
    assert isinstance(loaded.estimator, GradientBoostedTrees)
    np.testing.assert_array_equal(loaded.predict_proba(x), trained.predict_proba(x))
    np.testing.assert_array_equal(loaded.predict_proba(x, batch_size=7),
                                  trained.predict_proba(x))
    assert len(loaded.calibration) == len(trained.calibration)
    again = loaded.save(tmp_path / "again")  # a loaded model saves the same arrays
    assert (again / "trees.npz").read_bytes() == (path / "trees.npz").read_bytes()
    with pytest.raises(InvalidInputError, match="not empty"):
        trained.save(path)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_tree_arrays_give_the_estimators_probabilities(n_classes, tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(n_classes)
    x = rng.normal(size=(600, 5))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the trees' learned side
    y = rng.integers(0, n_classes, len(x))
    est = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    GradientBoostedTrees.from_estimator(est).save(tmp_path / "t.npz")
    trees = GradientBoostedTrees.load(tmp_path / "t.npz")
    z = rng.normal(size=(300, 5)).astype(np.float32)
    z[rng.random(z.shape) < 0.05] = np.nan
    z[:10] = x[:10]  # values equal to thresholds go left in both walkers
    np.testing.assert_array_equal(trees.predict_proba(z), est.predict_proba(z))
    # Both walkers find the same leaves, summed in the same order: equal bit for bit.
    by_numpy = trees.raw_predict(z, walker="numpy")
    np.testing.assert_array_equal(by_numpy, trees.raw_predict(z, walker="sklearn"))
    np.testing.assert_array_equal(by_numpy, est._raw_predict(z))
    with pytest.raises(InvalidInputError, match="read 5 features"):
        trees.predict_proba(z[:, :4])


@pytest.mark.parametrize("name", ["gbdt-photometry-sg", "ugriz-sgq"])
def test_shipped_trees_walked_in_numpy_as_by_scikit_learn(name):
    """Real inputs of the shipped trees, thresholds hit exactly, NaN, +-inf: same leaves."""
    model = load_model(name)
    trees = model.estimator if name != "ugriz-sgq" else \
        next(m for m in model.members if m.kind == "sklearn").estimator
    nodes = trees.nodes[trees.nodes["is_leaf"] == 0]
    rng = np.random.default_rng(0)
    x = np.empty((3000, trees.n_features_in_))
    for j in range(trees.n_features_in_):
        thresholds = nodes["num_threshold"][nodes["feature_idx"] == j]
        x[:, j] = rng.choice(thresholds, len(x)) if len(thresholds) else 0.0
    x[::3] += rng.normal(scale=0.05, size=x[::3].shape)
    x[rng.random(x.shape) < 0.02] = np.nan
    x[rng.random(x.shape) < 0.01] = np.inf
    x[rng.random(x.shape) < 0.01] = -np.inf
    np.testing.assert_array_equal(trees.raw_predict(x, walker="numpy"),
                                  trees.raw_predict(x, walker="sklearn"))


def test_tree_arrays_need_no_scikit_learn(trained, catalog, tmp_path, monkeypatch):
    """Nodes scikit-learn stores differently (or no scikit-learn) use the numpy walker."""
    from sourceclf.models import tree_arrays

    path = trained.save(tmp_path / "m")
    x = get_feature_set("margnet24").compute(catalog).values
    expected = trained.predict_proba(x)
    monkeypatch.setattr(tree_arrays, "_sklearn_record_dtype", lambda: None)
    loaded = load_model(path)
    assert loaded.estimator.predictors() is None
    np.testing.assert_array_equal(loaded.predict_proba(x), expected)
    trees = loaded.estimator
    np.testing.assert_array_equal(trees.raw_predict(x, walker="sklearn"),
                                  trees.raw_predict(x, walker="numpy"))
    with pytest.raises(InvalidInputError, match="walker must be"):
        trees.raw_predict(x, walker="cython")
    # Nodes without a field prediction reads are refused when read.
    nodes = trees.nodes
    fields = [f for f in nodes.dtype.names if f != "missing_go_to_left"]
    with pytest.raises(InvalidInputError, match="missing_go_to_left"):
        tree_arrays.GradientBoostedTrees(nodes[fields], trees.offsets, trees.baseline,
                                         trees.classes_, trees.n_features_in_)


def test_damaged_tree_arrays_are_refused(trained, tmp_path):
    path = trained.save(tmp_path / "m")
    data = bytearray((path / "trees.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "trees.npz").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_model(path)
    (path / "trees.npz").write_bytes(b"not an npz")
    _edit_card(path, lambda c: c.__setitem__("weights_sha256", sha256_file(path / "trees.npz")))
    with pytest.raises(ModelIntegrityError, match="not readable tree arrays"):
        load_model(path)


def test_skops_round_trip_without_pickle(forest, catalog, tmp_path):
    x = get_feature_set("margnet24").compute(catalog).values
    path = forest.save(tmp_path / "m")
    names = sorted(p.name for p in path.iterdir())
    assert names == ["calibration.ecsv", "card.json", "domain.npz", "model.skops"]
    # A skops file is a zip of a JSON schema and numpy arrays: no pickle stream.
    with zipfile.ZipFile(path / "model.skops") as zf:
        assert "schema.json" in zf.namelist()
        assert not any(n.endswith((".pkl", ".pickle")) for n in zf.namelist())
    card = json.loads((path / "card.json").read_text())
    assert card["kind"] == "sklearn" and card["weights_file"] == "model.skops"
    assert all(t.startswith("sklearn.") for t in card["extra"]["skops_trusted_types"])
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), forest.predict_proba(x))


def test_tampered_weights_are_refused(forest, tmp_path):
    path = forest.save(tmp_path / "m")
    data = bytearray((path / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "model.skops").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_model(path)


def _edit_card(path, change):
    card = json.loads((path / "card.json").read_text())
    change(card)
    (path / "card.json").write_text(json.dumps(card))


def test_card_may_not_trust_foreign_types(forest, tmp_path):
    path = forest.save(tmp_path / "m")
    _edit_card(path, lambda c: c["extra"]["skops_trusted_types"].append("builtins.eval"))
    with pytest.raises(ModelIntegrityError, match="outside scikit-learn"):
        load_model(path)


def test_weights_needing_unlisted_types_are_refused(forest, tmp_path):
    path = forest.save(tmp_path / "m")
    _edit_card(path, lambda c: c["extra"].__setitem__("skops_trusted_types", []))
    with pytest.raises(ModelIntegrityError, match="does not list"):
        load_model(path)
    _edit_card(path, lambda c: c["extra"].pop("skops_trusted_types"))
    with pytest.raises(ModelIntegrityError, match="lacks the list"):
        load_model(path)


def test_xgboost_round_trip(catalog, tmp_path):
    pytest.importorskip("xgboost")
    clf = train_classical(catalog, model="xgboost", search=False, params=FAST["xgboost"])
    path = clf.save(tmp_path / "x")
    loaded = load_model(path)
    assert any(t.startswith("xgboost.") for t in loaded.card.extra["skops_trusted_types"])
    x = get_feature_set("margnet24").compute(catalog).values
    np.testing.assert_allclose(loaded.predict_proba(x), clf.predict_proba(x), rtol=1e-6)


def test_missing_features_rows_left_unclassified(trained, catalog):
    rows = Table(catalog[:5], copy=True)
    rows["dered_g"][1] = np.nan
    out = classify(rows, model=trained, confidence=None)
    masked = np.ma.getmaskarray(out["pred_class"]).tolist()
    assert masked == [False, True, False, False, False]


def test_classical_models_take_no_cutouts(catalog):
    cutouts = np.zeros((len(catalog), 5, 8, 8), dtype=np.float32)
    with pytest.raises(InvalidInputError, match="no cutouts"):
        sourceclf.train(catalog, cutouts, model="dt", search=False)


# --- the shipped model ---------------------------------------------------------

def test_gbdt_photometry_sg_card():
    card = model_card("gbdt-photometry-sg")
    assert card.kind == "sklearn" and card.auto_priority == 8
    search = card.training["grid_search"]
    assert search["cv"] == 3 and search["scoring"] == "accuracy"
    assert set(search["best_params"]) == set(search["param_grid"])
    assert card.metrics["test"]["accuracy"] >= 0.945


def test_gbdt_photometry_sg_heldout_accuracy(shared_data):
    from sourceclf.train_recipes import read_recipe_table, recipe_split

    table = read_recipe_table("gbdt-photometry-sg", shared_data)
    test = recipe_split(table)["test"]
    card = model_card("gbdt-photometry-sg")
    assert card.training["n_test"] == test.size
    rows = table[test]
    out = classify(rows, model="gbdt-photometry-sg", confidence=None)
    accuracy = np.mean(np.asarray(out["pred_class"]) == np.asarray(rows["class"]))
    assert accuracy == pytest.approx(card.metrics["test"]["accuracy"], abs=2e-4)
    assert accuracy >= 0.945


def test_binary_link_is_scipys_expit_without_scipy(monkeypatch):
    """Before scipy is imported (a small run), the logistic link still gives scipy's
    expit bit for bit (both use the C library's exp, not numpy's)."""
    import sys

    from scipy.special import expit

    from sourceclf.models import tree_arrays

    x = np.random.default_rng(0).normal(0.0, 6.0, 20000)
    x[:3] = [-800.0, 800.0, 0.0]
    expected = expit(x)
    monkeypatch.delitem(sys.modules, "scipy.special")
    np.testing.assert_array_equal(tree_arrays._expit(x), expected)
