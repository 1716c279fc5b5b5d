"""Property tests: tampered model directories through `load_model`.

Copies of a tiny saved model get a tampered ``card.json`` (keys removed,
values of other JSON types, a card that is not an object or not JSON, file
names leaving the directory, wrong or missing digests) and damaged weights
or calibration files.  The property: `load_model` refuses each harmful
change with one `~sourceclf.exceptions.InvalidInputError` or
`~sourceclf.exceptions.ModelIntegrityError` line, never loads it silently,
and never raises anything else; harmless changes (an upper-case digest,
free text) load a model that classifies a valid table.
"""

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import pytest
from astropy.table import Table
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sourceclf import classify, load_model
from sourceclf.exceptions import InvalidInputError, ModelIntegrityError
from test_properties_tables import EXAMPLES, assert_one_line, save_tiny_photometric
from test_properties_tables import one_thread  # noqa: F401  (autouse fixture)

GOOD_TABLE = Table({"u": [19.5, 20.1], "g": [18.2, 19.0], "r": [17.6, 18.5],
                    "i": [17.4, 18.2], "z": [17.3, 18.0]})

#: Card keys whose values the loader relies on.
KEYS = ("name", "version", "kind", "architecture", "config", "feature_set", "uses_images",
        "classes", "weights_file", "weights_sha256", "calibration_file", "calibration_sha256",
        "domain", "training", "metrics", "extra", "auto_priority")

_SCALARS = (st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False)
            | st.text(max_size=12))
json_values = st.recursive(
    _SCALARS,
    lambda inner: (st.lists(inner, max_size=3)
                   | st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny ugriz model directory, and the card it was saved with."""
    path = save_tiny_photometric(tmp_path_factory.mktemp("tiny-models") / "m", "ugriz",
                                 ["GALAXY", "QSO", "STAR"])
    return path, json.loads((path / "card.json").read_text())


def _card(saved):
    """The saved card, with where its files are (for the strategies to read them)."""
    path, card = saved
    return {**card, "_directory": str(path)}


def _damage(data, draw):
    how = draw(st.sampled_from(["truncate", "flip", "empty", "append"]))
    if how == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if how == "empty":
        return b""
    if how == "append":
        return data + draw(st.binary(min_size=1, max_size=16))
    data = bytearray(data)
    at = draw(st.integers(0, len(data) - 1))
    data[at] = (data[at] + draw(st.integers(1, 255))) % 256
    return bytes(data)


@st.composite
def tamperings(draw, card):
    """(name, harmful, function of a directory) tampering with a saved model."""
    kind = draw(st.sampled_from(["drop key", "retype key", "outside file", "digest",
                                 "weights", "calibration", "harmless"] * 2
                                + ["not an object", "not json"]))
    if kind == "drop key":
        key = draw(st.sampled_from(KEYS))
        changes = {key: None}
        # Without calibration_sha256 the calibration is not checked (documented, for
        # older cards); without calibration_file the model has no prediction sets.
        harmful = None if key in ("calibration_sha256", "calibration_file") else key in (
            "name", "kind", "classes", "weights_file", "weights_sha256", "architecture",
            "config", "feature_set")

        def apply(directory):
            text = {k: v for k, v in card.items() if k != "_directory"}
            text.pop(key, None)
            (directory / "card.json").write_text(json.dumps(text))
        return f"drop {key}", harmful, apply
    if kind == "retype key":
        key = draw(st.sampled_from(KEYS))
        value = draw(json_values.filter(lambda v: v != card.get(key)))
        changes = {key: value}
        harmful = None  # some new values may be fine (a version string...): either outcome
    elif kind == "not an object":
        text = json.dumps(draw(st.one_of(_SCALARS, st.lists(json_values, max_size=3))))
        event(f"card holding a {type(json.loads(text)).__name__}")
        return "not an object", True, lambda d: (d / "card.json").write_text(text)
    elif kind == "not json":
        text = json.dumps({k: v for k, v in card.items() if k != "_directory"}).encode()
        raw = draw(st.sampled_from([text[:draw(st.integers(0, len(text) - 1))], b"",
                                    b"\xff" + text, text + b"}", text.replace(b'"', b"'")]))
        return "not json", True, lambda d: (d / "card.json").write_bytes(raw)
    elif kind == "outside file":
        key = draw(st.sampled_from(["weights_file", "calibration_file"]))
        target = draw(st.sampled_from(["../outside/{}", "/tmp/../{}", "sub/{}", "./{}", "..",
                                       "", "/", "{}\0", "C:\\{}"]))
        changes = {key: target.format(card[key])}
        # An empty calibration_file reads as "no calibration" (like null): either outcome.
        harmful = None if (key, target) == ("calibration_file", "") else True
    elif kind == "digest":
        key = draw(st.sampled_from(["weights_sha256", "calibration_sha256"]))
        how = draw(st.sampled_from(["upper", "wrong", "short", "empty", "not hex"]))
        value = {"upper": card[key].upper(), "wrong": "0" * 64, "short": card[key][:63],
                 "empty": "", "not hex": "z" * 64}[how]
        changes = {key: value}
        # An empty calibration digest is documented as "not checked" (older cards).
        harmful = how != "upper" and not (how == "empty" and key == "calibration_sha256")
    elif kind in ("weights", "calibration"):
        file = card["weights_file" if kind == "weights" else "calibration_file"]
        damage = draw(st.sampled_from(["missing", "damaged"]))
        raw = _damage((Path(card["_directory"]) / file).read_bytes(), draw)

        def apply(directory):
            path = directory / file
            if damage == "missing":
                path.unlink()
            else:
                path.write_bytes(raw)
        return f"{kind} {damage}", True, apply
    else:
        key = draw(st.sampled_from(["description", "notes", "version"]))
        changes = {key: draw(st.text(max_size=40))}
        harmful = False

    def apply(directory):
        text = {k: v for k, v in card.items() if k != "_directory"}
        text.update(changes)
        (directory / "card.json").write_text(json.dumps(text))
    return f"{kind} {changes}", harmful, apply


@settings(max_examples=6 * EXAMPLES)
@given(data=st.data())
def test_tampered_model_directories(saved, data):
    path, card = saved
    name, harmful, apply = data.draw(tamperings(_card(saved)), label="tampering")
    event(name.split(" {")[0])
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "model"
        shutil.copytree(path, directory)
        apply(directory)
        try:
            model = load_model(directory)
        except (InvalidInputError, ModelIntegrityError) as exc:
            assert_one_line(exc)
            assert harmful is not False, f"refused a harmless change ({name}): {exc}"
            event("refused")
            return
        assert harmful is not True, f"loaded a model directory with {name}"
        event("loaded")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = classify(GOOD_TABLE, model=model,
                           confidence=None if model.calibration is None else 0.9)
        assert len(out) == len(GOOD_TABLE) and not out["pred_class"].mask.any()
