import json
import shutil

import numpy as np
import pytest
import torch

from sourceclf.exceptions import InvalidInputError, ModelIntegrityError, UnknownModelError
from sourceclf.models import (MODEL_DIR, ModelCard, PhotometricMLP, TorchClassifier,
                              list_models, load_model, model_card, model_names)


def tiny_classifier(feature_set="ugriz", n_features=5, classes=("GALAXY", "QSO", "STAR")):
    torch.manual_seed(0)
    cfg = {"n_features": n_features, "n_classes": len(classes), "hidden": [8],
           "act": "relu", "dropout": 0.0}
    card = ModelCard(name="tiny", architecture="mlp", config=cfg, feature_set=feature_set,
                     classes=list(classes))
    return TorchClassifier(PhotometricMLP(**cfg), card)


def test_shipped_models_listed_with_cards():
    names = model_names()
    assert {"margnet-photometry-sg", "ugriz-sgq"} <= set(names)
    table = list_models()
    assert set(table["name"]) == set(names)
    for name in names:
        card = model_card(name)
        assert card.weights_sha256 and card.classes and card.metrics["test"]["n"] > 0
        assert card.training["recipe"].startswith("python -m sourceclf.")


def test_unknown_model_lists_known_ones():
    with pytest.raises(UnknownModelError, match="unknown model 'nope'; known models: .*ugriz-sgq"):
        load_model("nope")


def test_shipped_names_in_any_case_and_typos_get_a_hint():
    assert load_model("UGRIZ-SGQ").name == "ugriz-sgq"
    assert model_card("Margnet-Photometry-SG").name == "margnet-photometry-sg"
    with pytest.raises(UnknownModelError,
                       match=r"unknown model 'ugriz-sqg' \(did you mean 'ugriz-sgq'\?\); known"):
        load_model("ugriz-sqg")


def test_save_load_round_trip(tmp_path):
    clf = tiny_classifier()
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    path = clf.save(tmp_path / "m")
    assert sorted(p.name for p in path.iterdir()) == ["card.json", "weights.safetensors"]
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))
    assert loaded.card.weights_sha256 == clf.card.weights_sha256


def test_save_refuses_non_empty_directory(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x").write_text("")
    with pytest.raises(InvalidInputError, match="exists and is not empty"):
        tiny_classifier().save(tmp_path / "m")


def test_checksum_mismatch_is_refused(tmp_path):
    src = MODEL_DIR / "margnet-photometry-sg"
    dst = tmp_path / "margnet-photometry-sg"
    shutil.copytree(src, dst)
    weights = dst / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match the card"):
        load_model(dst)


def test_weights_are_not_pickles():
    # Every file of every shipped model directory (blend members included) is
    # safetensors, skops, JSON, ECSV or a pickle-free npz.
    import zipfile

    for name in model_names():
        for path in sorted((MODEL_DIR / name).rglob("*")):
            if path.is_dir():
                continue
            head = path.read_bytes()[:2]
            assert head[:1] != b"\x80", path                # not a bare pickle
            if path.suffix == ".safetensors":
                assert head != b"PK", path                  # not torch.save's zip
            elif path.suffix == ".skops":                   # a zip of JSON + arrays
                with zipfile.ZipFile(path) as zf:
                    members = zf.namelist()
                assert "schema.json" in members
                assert not any(m.endswith(".pkl") for m in members)
            elif path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    [data[k] for k in data.files]
            elif path.suffix == ".json":
                json.loads(path.read_text())
            else:
                assert path.suffix == ".ecsv", path


def test_card_json_round_trip(tmp_path):
    card = ModelCard(name="x", classes=["A", "B"], metrics={"test": {"accuracy": 1.0}})
    card.to_json(tmp_path / "card.json")
    assert ModelCard.from_json(tmp_path / "card.json") == card
    assert json.loads((tmp_path / "card.json").read_text())["name"] == "x"


def test_predict_proba_checks_shapes():
    clf = tiny_classifier()
    with pytest.raises(InvalidInputError, match=r"expects features of shape \(n, 5\)"):
        clf.predict_proba(np.zeros((3, 4), np.float32))
    assert clf.predict_proba(np.zeros((0, 5), np.float32)).shape == (0, 3)


def test_every_shipped_model_loads_in_a_fresh_process():
    # sourceclf.models is lazy: loading must import the module of the model's
    # kind by itself (a fresh process has imported none of them).
    import subprocess
    import sys

    code = ("from sourceclf.models import load_model, model_names\n"
            "for name in model_names():\n"
            "    load_model(name)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_domain_round_trip_and_flags(tmp_path):
    from sourceclf.exceptions import ModelIntegrityError
    from sourceclf.models import ApplicabilityDomain

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 3))
    domain = ApplicabilityDomain(n_components=3).fit(x[:2000], ["a", "b", "c"], x[2000:])
    fresh = rng.normal(size=(2000, 3))
    assert domain.outside(fresh).mean() < 0.03
    assert domain.outside(fresh + [8, 0, 0]).mean() > 0.99
    missing = fresh[:5].copy()
    missing[:, 1] = np.nan
    assert not domain.outside(missing).any()  # missing rows are not classified at all
    digest = domain.save(tmp_path / "d.npz")
    again = ApplicabilityDomain.load(tmp_path / "d.npz", sha256=digest.upper())
    assert np.array_equal(again.outside(fresh + [3, 0, 0]), domain.outside(fresh + [3, 0, 0]))
    with pytest.raises(ModelIntegrityError):
        ApplicabilityDomain.load(tmp_path / "d.npz", sha256="0" * 64)
    with pytest.raises(InvalidInputError, match="3 features"):
        domain.outside(np.zeros((2, 4)))


def test_describe_model_sums_up_the_real_field_checks():
    """Per record, the lowest balanced accuracy over the uncrowded and the crowded fields at
    each seeing (a field is crowded when its native rows are flagged so)."""
    from sourceclf.models.registry import _real_field_lines, describe_model

    def row(field, seeing, balanced, crowded=0.0):
        return {"field": field, "target_r_fwhm": seeing, "balanced": balanced,
                "crowded": crowded}

    metrics = {"real_fields_kolmogorov": {"rows": [
        row("A", None, 0.95), row("A", 1.9, 0.90), row("B", None, 0.97), row("B", 1.9, 0.93),
        row("C", None, 0.70, 1.0), row("C", 1.9, 0.60, 1.0)]}}
    assert _real_field_lines(metrics) == [
        "  on real SDSS fields never trained on (docs/scripts/check_fields.py; lowest balanced "
        "accuracy over the fields, at their own seeing and blurred):",
        "    own sources, the atmosphere's blur: uncrowded native 0.95, 1.9\" 0.90; "
        "crowded native 0.70, 1.9\" 0.60"]
    assert _real_field_lines({"test": {"accuracy": 0.9}}) == []
    from sourceclf.models.registry import crowded_fields

    # SDSS's cut has no crowded share: its rows say nothing
    assert crowded_fields(metrics["real_fields_kolmogorov"]["rows"]
                          + [{"field": "D", "balanced": 0.5}]) == {"C"}
    text = describe_model("margnet-sgq")
    assert "own sources, Gaussian blur: uncrowded native" in text
    assert "injected sources, the atmosphere's blur" in text
    assert "real SDSS fields" not in describe_model("ugriz-sgq")
    # where the sets of its confused rows come from
    assert "prediction sets of rows flagged 'confused': calibrated on the rows flagged " \
        "confused" in text and "simulation version 10" in text
    assert "prediction sets of rows flagged" not in describe_model("ugriz-sgq")


def test_describe_model_says_which_psf_shape_the_cnn_reads():
    """The image-only CNN reads the PSF's Moffat index clipped to its card's range; the
    description says so, and the models that do not read it say nothing of it."""
    from sourceclf.models import describe_model, model_card

    card = model_card("margnet-cnn-sgq")
    text = describe_model(card)
    low, high = card.domain["psf_beta"]["r"]
    assert "reads the PSF's Moffat index, clipped to the trained" in text
    assert f"r {low:.2f}-{high:.2f}" in text
    assert "Moffat index, clipped" not in describe_model("margnet-sgq")
