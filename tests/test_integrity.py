"""Model directories that were tampered with, truncated or made inconsistent.

Every directory must carry the sha256 of its weights (checked, any case), name
only files inside itself, have a card that is a JSON object with the needed
keys, a readable calibration table matching its recorded digest, and weights
that fit the card's classes and feature set: each failure is one line.
"""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from astropy.table import Table

from sourceclf.exceptions import InvalidInputError, ModelIntegrityError
from sourceclf.models import (MODEL_DIR, ModelCard, PhotometricMLP, TorchClassifier,
                              load_model, model_names)
from sourceclf.models.card import REQUIRED_KEYS, sha256_file

CLASSES = ["GALAXY", "QSO", "STAR"]


def _calibration(n=30, classes=CLASSES):
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(len(classes)), size=n)
    table = Table({f"prob_{c.lower()}": proba[:, k] for k, c in enumerate(classes)})
    table["label"] = rng.choice(classes, n)
    table["dered_r"] = rng.uniform(17, 21, n)
    return table


@pytest.fixture
def saved(tmp_path):
    """A small photometric model saved with its calibration; returns its directory."""
    torch.manual_seed(0)
    cfg = {"n_features": 5, "n_classes": 3, "hidden": [8], "act": "relu", "dropout": 0.0}
    card = ModelCard(name="tiny", architecture="mlp", config=cfg, feature_set="ugriz",
                     classes=list(CLASSES))
    return TorchClassifier(PhotometricMLP(**cfg), card, _calibration()).save(tmp_path / "m")


#: A value that removes a key from the card (`_edit`).
_DROP = object()


def _edit(directory, **changes):
    path = directory / "card.json"
    card = json.loads(path.read_text())
    for key, value in changes.items():
        if value is _DROP:
            card.pop(key, None)
        else:
            card[key] = value
    path.write_text(json.dumps(card))


def _refused(directory, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        load_model(directory)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_saved_card_records_both_digests(saved):
    card = json.loads((saved / "card.json").read_text())
    assert card["weights_sha256"] == sha256_file(saved / "weights.safetensors")
    assert card["calibration_sha256"] == sha256_file(saved / "calibration.ecsv")
    back = load_model(saved)
    assert back.calibration is not None and len(back.calibration) == 30


@pytest.mark.parametrize("value", [_DROP, "", "   "])
def test_missing_or_empty_weights_digest_is_refused(saved, value):
    _edit(saved, weights_sha256=value)
    _refused(saved, ModelIntegrityError, "(records no sha256|not 64 hexadecimal)")


def test_digest_is_checked_case_insensitively(saved):
    digest = sha256_file(saved / "weights.safetensors")
    _edit(saved, weights_sha256=digest.upper())
    assert load_model(saved).name == "tiny"
    _edit(saved, weights_sha256=digest[:-1] + ("0" if digest[-1] != "0" else "1"))
    _refused(saved, ModelIntegrityError, "refusing to load altered files")
    _edit(saved, weights_sha256="z" * 64)
    _refused(saved, ModelIntegrityError, "not 64 hexadecimal digits")


def test_tampered_weights_are_refused(saved):
    weights = saved / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    _refused(saved, ModelIntegrityError, "weights .* has sha256")


@pytest.mark.parametrize("key", ["weights_file", "calibration_file"])
@pytest.mark.parametrize("name", ["../outside.bin", "/tmp/outside.bin", "sub/w.bin",
                                  "sub\\w.bin", "..", "."])
def test_files_must_lie_inside_the_directory(saved, tmp_path, key, name):
    # Even with the right digest of the outside file, the name is refused.
    outside = tmp_path / "outside.bin"
    shutil.copy(saved / "weights.safetensors", outside)
    _edit(saved, **{key: name}, weights_sha256=sha256_file(outside))
    _refused(saved, ModelIntegrityError, "must name a file inside the model directory")


def test_domain_file_must_lie_inside_the_directory(saved):
    _edit(saved, domain={"file": "../domain.npz", "sha256": "0" * 64})
    _refused(saved, ModelIntegrityError, "domain file '../domain.npz' must name a file inside")


@pytest.mark.parametrize("text, pattern", [
    ("[1, 2, 3]", "is not a JSON object"),
    ('"a string"', "is not a JSON object"),
    ("{not json", "is not readable JSON"),
    ("", "is not readable JSON"),
])
def test_card_that_is_not_a_json_object(saved, text, pattern):
    (saved / "card.json").write_text(text)
    message = _refused(saved, InvalidInputError, pattern)
    assert str(saved / "card.json") in message


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_card_lacking_keys(saved, key):
    _edit(saved, **{key: _DROP})
    message = _refused(saved, InvalidInputError, f"lacks the keys {key}")
    assert str(saved / "card.json") in message


@pytest.mark.parametrize("changes, pattern", [
    ({"classes": "GALAXY"}, "classes"),
    ({"classes": ["STAR"]}, "classes"),
    ({"classes": ["STAR", "star", "QSO"]}, "classes"),
    ({"name": ""}, "name"),
    ({"config": [1]}, "config"),
    ({"weights_file": 3}, "weights_file"),
    ({"uses_images": "yes"}, "uses_images"),
])
def test_card_values_of_the_wrong_type(saved, changes, pattern):
    _edit(saved, **changes)
    _refused(saved, InvalidInputError, f"wrong type: .*{pattern}")


def test_missing_or_corrupt_calibration(saved):
    calibration = saved / "calibration.ecsv"
    original = calibration.read_bytes()
    calibration.unlink()
    assert str(calibration) in _refused(saved, InvalidInputError, "calibration file .* missing")
    calibration.write_text("# %ECSV 1.0\n# ---\n# garbage: [\nnot a table\x00\n")
    _refused(saved, ModelIntegrityError, "calibration file .* has sha256")
    _edit(saved, calibration_sha256=_DROP)  # an older card: no digest, content checked
    assert str(calibration) in _refused(saved, InvalidInputError, "not a readable ECSV")
    _calibration()["prob_galaxy", "label"].write(calibration, format="ascii.ecsv",
                                                 overwrite=True)
    _refused(saved, InvalidInputError, "lacks the columns prob_qso, prob_star")
    calibration.write_bytes(original)
    assert len(load_model(saved).calibration) == 30  # cards without the digest still load


def test_classes_inconsistent_with_the_weights(saved):
    _edit(saved, classes=["GALAXY", "STAR"])
    _refused(saved, InvalidInputError, r"returns 3 class scores per row, the card lists 2")


def test_feature_set_inconsistent_with_the_weights(saved):
    _edit(saved, feature_set="margnet24")
    _refused(saved, InvalidInputError, "does not take the card's inputs .24 features of "
                                       "'margnet24'")
    _edit(saved, feature_set="nope")
    _refused(saved, InvalidInputError, "unknown feature set 'nope'")
    _edit(saved, feature_set=None)
    _refused(saved, InvalidInputError, "names neither a feature set nor images")


def test_image_network_inconsistent_with_its_card(tmp_path):
    from sourceclf.models import MargNetCNN

    torch.manual_seed(0)
    cfg = {"n_classes": 2, "width": 0.0625, "dense": [8]}
    card = ModelCard(name="tiny-cnn", architecture="margnet-cnn", config=cfg, feature_set=None,
                     uses_images=True, classes=["GALAXY", "STAR"])
    path = TorchClassifier(MargNetCNN(**cfg), card).save(tmp_path / "cnn")
    assert load_model(path).uses_images
    _edit(path, classes=list(CLASSES))
    _refused(path, InvalidInputError, "returns 2 class scores per row, the card lists 3")


def test_sklearn_feature_count_checked_at_load(tmp_path):
    pytest.importorskip("skops")
    from sklearn.tree import DecisionTreeClassifier

    from sourceclf.models import SklearnClassifier

    rng = np.random.default_rng(0)
    tree = DecisionTreeClassifier(max_depth=2).fit(rng.normal(size=(40, 5)),
                                                   rng.integers(0, 2, 40))
    card = ModelCard(name="tiny-tree", kind="sklearn", feature_set="ugriz",
                     classes=["GALAXY", "STAR"])
    path = SklearnClassifier(tree, card).save(tmp_path / "tree")
    assert load_model(path).name == "tiny-tree"
    _edit(path, feature_set="margnet24")
    _refused(path, InvalidInputError, "estimator reads 5 features, the card's feature set "
                                      "'margnet24' has 24")


def test_every_shipped_model_carries_a_checked_digest(tmp_path):
    for name in model_names():
        card = json.loads((MODEL_DIR / name / "card.json").read_text())
        assert re.fullmatch(r"[0-9a-f]{64}", card["weights_sha256"]), name
        assert sha256_file(MODEL_DIR / name / card["weights_file"]) == card["weights_sha256"]
        if card.get("calibration_sha256"):
            assert sha256_file(MODEL_DIR / name / card["calibration_file"]) \
                == card["calibration_sha256"].lower(), name
    # A shipped model whose card loses its digest is refused like any other.
    dst = tmp_path / "ugriz-sgq"
    shutil.copytree(MODEL_DIR / "ugriz-sgq", dst)
    _edit(dst, weights_sha256="")
    _refused(dst, ModelIntegrityError, "records no sha256 of its weights")


def test_conftest_honours_sourceclf_data(tmp_path, monkeypatch):
    import conftest

    monkeypatch.setenv("SOURCECLF_DATA", str(tmp_path))
    assert conftest.shared_data_dir() == tmp_path.resolve()
    monkeypatch.delenv("SOURCECLF_DATA")
    assert conftest.shared_data_dir().parts[-2:] == ("shared", "data")


def test_calibration_digest_without_its_file_is_refused(saved):
    """Dropping calibration_file from a card must not silently drop the sets."""
    _edit(saved, calibration_file="")
    _refused(saved, ModelIntegrityError, "calibration digest but no calibration_file")
