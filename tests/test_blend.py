"""Blends of models (`sourceclf.models.BlendClassifier`), with tiny members."""

import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.table import Table

from sourceclf import classify
from sourceclf.exceptions import InvalidInputError, ModelIntegrityError
from sourceclf.models import BlendClassifier, load_model
from sourceclf.models.card import ModelCard, sha256_file

CLASSES = ["GALAXY", "QSO", "STAR"]


def _table(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    r = rng.uniform(15, 22, n)
    colours = rng.normal(size=(n, 4)) * 0.2 + np.array([[1.2, 0.5, 0.2, 0.1]])
    colours[:, 0] += 0.8 * (y == 0) - 0.9 * (y == 1)
    colours[:, 1] += 0.5 * (y == 2)
    g = r + colours[:, 1]
    u = g + colours[:, 0]
    i = r - colours[:, 2]
    z = i - colours[:, 3]
    return Table({"u": u, "g": g, "r": r, "i": i, "z": z,
                  "class": np.array(CLASSES)[y]}), y


def _features(table):
    from sourceclf.features import compute_features

    return compute_features(table, "ugriz").values


@pytest.fixture(scope="module")
def members():
    from sklearn.tree import DecisionTreeClassifier

    from sourceclf.models import PhotometricMLP, SklearnClassifier, TorchClassifier

    table, y = _table()
    x = _features(table)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    trees = SklearnClassifier(tree, ModelCard(name="tiny-tree", kind="sklearn",
                                              feature_set="ugriz", classes=CLASSES))
    import torch

    torch.manual_seed(0)
    net = PhotometricMLP(5, 3, hidden=[8], standardize=True)
    net.standardize.fit(x)
    mlp = TorchClassifier(net, ModelCard(name="tiny-mlp", architecture="mlp",
                                         config={"n_features": 5, "n_classes": 3,
                                                 "hidden": [8], "standardize": True},
                                         feature_set="ugriz", classes=CLASSES))
    return trees, mlp


def _blend(members, weights=(0.25, 0.75), **kwargs):
    return BlendClassifier(members, weights, ModelCard(name="tiny-blend"), **kwargs)


def test_blend_is_the_weighted_mean(members):
    trees, mlp = members
    x = _features(_table(50, seed=1)[0])
    blend = _blend(members, (1.0, 3.0))  # normalised to 0.25 / 0.75
    expected = 0.25 * trees.predict_proba(x) + 0.75 * mlp.predict_proba(x)
    np.testing.assert_allclose(blend.predict_proba(x), expected, rtol=1e-12, atol=1e-12)
    assert blend.classes == tuple(CLASSES) and blend.feature_set == "ugriz"
    assert blend.card.kind == "blend"
    assert [m["weight"] for m in blend.card.config["members"]] == [0.25, 0.75]


def test_save_load_round_trip_and_classify(members, tmp_path):
    from sourceclf.training import calibration_table

    table, y = _table(120, seed=2)
    blend = _blend(members, sources=["trees", "net"])
    blend.calibration = calibration_table(blend, table, _features(table), y)
    out = blend.save(tmp_path / "blend")
    assert (out / "blend.json").is_file() and (out / "trees" / "card.json").is_file()
    assert (out / "net" / "weights.safetensors").is_file()
    loaded = load_model(out)
    assert isinstance(loaded, BlendClassifier) and loaded.sources == ["trees", "net"]
    x = _features(table)
    np.testing.assert_allclose(loaded.predict_proba(x), blend.predict_proba(x), atol=1e-12)
    result = classify(table, model=out, confidence=0.9)
    assert result.meta["CLFMODEL"] == "tiny-blend"
    assert set(result["pred_class"]) <= set(CLASSES)
    assert "pred_set" in result.colnames and "prob_qso" in result.colnames


def test_load_model_in_a_fresh_process(members, tmp_path):
    out = _blend(members).save(tmp_path / "blend")
    code = ("from sourceclf.models import load_model; "
            f"m = load_model({str(out)!r}); print(type(m).__name__, len(m.members))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert run.stdout.split() == ["BlendClassifier", "2"]


def test_speed_options_follow_the_members(members):
    trees, mlp = members
    with_trees = _blend(members)
    with_trees.check_speed_options("fp32", False)
    with_trees.check_speed_options("auto", False)
    with pytest.raises(InvalidInputError, match="bf16"):
        with_trees.check_speed_options("bf16", False)
    with pytest.raises(InvalidInputError, match="compile"):
        with_trees.check_speed_options("fp32", True)
    assert with_trees.resolve_precision("fp32", "cpu") == "fp32"
    torch_only = _blend([mlp, mlp], sources=["a", "b"])
    torch_only.check_speed_options("bf16", True)  # the torch members accept both
    assert torch_only.resolve_precision("bf16", "cpu") == "bf16"
    assert _blend([trees, trees], sources=["a", "b"]).resolve_precision() is None


def test_members_must_agree(members):
    from sklearn.tree import DecisionTreeClassifier

    from sourceclf.models import SklearnClassifier

    trees, mlp = members
    table, y = _table()
    two = SklearnClassifier(DecisionTreeClassifier(max_depth=2).fit(_features(table), y % 2),
                            ModelCard(name="two", kind="sklearn", feature_set="ugriz",
                                      classes=["GALAXY", "STAR"]))
    with pytest.raises(InvalidInputError, match="same classes"):
        _blend([trees, two])
    other = SklearnClassifier(trees.estimator, ModelCard(name="other", kind="sklearn",
                                                         feature_set="margnet24",
                                                         classes=CLASSES))
    with pytest.raises(InvalidInputError, match="same feature set"):
        _blend([trees, other])
    with pytest.raises(InvalidInputError, match="do not nest"):
        _blend([trees, _blend(members)])
    with pytest.raises(InvalidInputError, match="weight"):
        _blend(members, (1.0, -1.0))
    with pytest.raises(InvalidInputError, match="weight"):
        _blend(members, (1.0,))
    for bad in ("../x", "a/b", ".hidden", "", "registry:../x"):
        with pytest.raises(InvalidInputError):
            _blend(members, sources=[bad, "ok"])


def _rewrite_blend_file(directory, edit):
    """Edit blend.json and re-sign it in the card (as an attacker could)."""
    path = directory / "blend.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    card = ModelCard.from_json(directory / "card.json")
    card.weights_sha256 = sha256_file(path)
    card.to_json(directory / "card.json")


@pytest.mark.parametrize("path", ["../outside", "/etc", "a/../../b", "..", "sub/dir"])
def test_member_paths_must_stay_inside(members, tmp_path, path):
    out = _blend(members).save(tmp_path / "blend")
    _rewrite_blend_file(out, lambda d: d["members"][0].update(path=path))
    with pytest.raises(ModelIntegrityError, match="sub-directory|outside"):
        load_model(out)


def test_member_symlink_outside_is_refused(members, tmp_path):
    out = _blend(members).save(tmp_path / "blend")
    outside = tmp_path / "elsewhere"
    (out / "member-0").rename(outside)
    (out / "member-0").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelIntegrityError, match="outside"):
        load_model(out)


def test_altered_members_are_refused(members, tmp_path):
    out = _blend(members).save(tmp_path / "blend")
    # The blend file itself is covered by the card's digest.
    (out / "blend.json").write_text((out / "blend.json").read_text().replace("0.25", "0.5"))
    with pytest.raises(ModelIntegrityError):
        load_model(out)
    out = _blend(members).save(tmp_path / "blend2")
    card = json.loads((out / "member-1" / "card.json").read_text())
    card["notes"] = "changed"
    (out / "member-1" / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelIntegrityError, match="member 'member-1'"):
        load_model(out)


def test_registry_members_by_reference(tmp_path):
    net = load_model("margnet-photometry-sg")
    trees = load_model("gbdt-photometry-sg")
    blend = BlendClassifier([net, trees], [0.5, 0.5], ModelCard(name="ref-blend"),
                            sources=["registry:margnet-photometry-sg",
                                     "registry:gbdt-photometry-sg"])
    out = blend.save(tmp_path / "ref")
    assert sorted(p.name for p in out.iterdir()) == ["blend.json", "card.json"]
    loaded = load_model(out)
    from sourceclf.demo import demo_catalog

    table = demo_catalog(20, random_state=0)
    result = classify(table, model=out, confidence=None)
    assert set(result["pred_class"].compressed()) <= {"GALAXY", "STAR"}
    assert loaded.members[0].name == "margnet-photometry-sg"
    # A reference to other weights than the shipped ones is refused.
    _rewrite_blend_file(out, lambda d: d["members"][0].update(weights_sha256="0" * 64))
    with pytest.raises(ModelIntegrityError, match="refusing"):
        load_model(out)
    _rewrite_blend_file(out, lambda d: d["members"][0].update(registry="nope"))
    with pytest.raises(InvalidInputError, match="not a shipped model"):
        load_model(out)


def test_registry_reference_needs_the_shipped_weights(members, tmp_path):
    trees, mlp = members
    blend = _blend(members, sources=["registry:gbdt-photometry-sg", "net"])
    with pytest.raises(InvalidInputError, match="not the shipped ones"):
        blend.save(tmp_path / "x")
