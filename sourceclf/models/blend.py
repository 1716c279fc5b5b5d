"""Blends: the weighted average of several models' class probabilities.

A `BlendClassifier` holds member classifiers that read the same feature set
and return the same classes in the same order, and averages their
probabilities with fixed weights (e.g. gradient-boosted trees and a network,
whose errors differ).  It runs wherever one model runs
(`sourceclf.classify`, the CLI, `~sourceclf.models.load_model`).

Storage
-------
A blend's directory holds its own ``card.json``, calibration table and
domain like every model, and a small JSON file (``blend.json``, the card's
``weights_file``, whose sha256 the card records) listing the members::

    {"members": [{"path": "hgb", "weight": 0.5, "weights_sha256": "..."},
                 {"registry": "margnet-photometry-sg", "weight": 0.5,
                  "weights_sha256": "..."}]}

A member is either

* ``path``: a sub-directory of the blend's directory (a plain name: no
  separators, no ``..``), itself a normal model directory with its card and
  weights digest; the sha256 of its ``card.json`` is recorded too; or
* ``registry``: the name of a shipped model (`sourceclf.models.model_names`).

Each member records the sha256 of its weights: a blend refuses to load when a
member's weights are not the ones its weights were chosen for (a retrained
shipped model, an altered sub-directory).  Members may not be blends
themselves.
"""

import json
from pathlib import Path

import numpy as np

from ..exceptions import InvalidInputError, ModelIntegrityError
from .base import SourceClassifier
from .card import sha256_file

__all__ = ["BlendClassifier", "BLEND_FILE"]

#: File name of a blend's member list (its "weights") inside its directory.
BLEND_FILE = "blend.json"


class BlendClassifier(SourceClassifier):
    """The weighted mean of member models' class probabilities.

    Parameters
    ----------
    members : sequence of `~sourceclf.models.SourceClassifier`
        Trained models with the same ``classes`` (same order) and the same
        ``feature_set``; none may use images or be a blend.
    weights : sequence of float
        Non-negative weight of each member (normalised to sum to one).
    card : `~sourceclf.models.ModelCard`
        The blend's card; its ``classes`` and ``feature_set`` are set from the
        members when empty, and must match them otherwise.
    calibration : `~astropy.table.Table`, optional
        Calibration split of the blend, for conformal sets.
    sources : sequence of str or None, optional
        Where each member is stored when the blend is saved: a sub-directory
        name, or ``'registry:<name>'`` for a shipped model kept by reference.
        Default: sub-directories ``member-0``, ``member-1``...  A member that
        is a shipped model may be referenced by name only if its weights are
        the shipped ones (checked at save time).

    Examples
    --------
    >>> from sourceclf.models import load_model
    >>> from sourceclf.models.card import ModelCard
    >>> a = load_model("margnet-photometry-sg")
    >>> b = load_model("gbdt-photometry-sg")
    >>> blend = BlendClassifier([a, b], [0.5, 0.5], ModelCard(name="my-blend"),
    ...                         sources=["registry:margnet-photometry-sg",
    ...                                  "registry:gbdt-photometry-sg"])
    >>> blend.classes
    ('GALAXY', 'STAR')
    """

    kind = "blend"

    def __init__(self, members, weights, card, calibration=None, sources=None):
        if card.weights_file in ("", None, "weights.safetensors"):
            card.weights_file = BLEND_FILE
        members = list(members)
        if not members:
            raise InvalidInputError("a blend needs at least one member")
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (len(members),) or not np.all(np.isfinite(weights)) \
                or np.any(weights < 0) or weights.sum() <= 0:
            raise InvalidInputError(f"a blend needs one finite non-negative weight per member "
                                    f"({len(members)}), not all zero; got {weights.tolist()}")
        first = members[0]
        for m in members:
            if not isinstance(m, SourceClassifier):
                raise InvalidInputError(f"blend members must be classifiers, got "
                                        f"{type(m).__name__}")
            if isinstance(m, BlendClassifier):
                raise InvalidInputError(f"member '{m.name}' is a blend; blends do not nest")
            if m.uses_images:
                raise InvalidInputError(f"member '{m.name}' uses images; blends take "
                                        "photometric models only")
            if m.classes != first.classes:
                raise InvalidInputError(f"member '{m.name}' has classes {list(m.classes)}, "
                                        f"'{first.name}' {list(first.classes)}: a blend's "
                                        "members must return the same classes in the same "
                                        "order")
            if m.feature_set != first.feature_set:
                raise InvalidInputError(f"member '{m.name}' reads features "
                                        f"'{m.feature_set}', '{first.name}' "
                                        f"'{first.feature_set}': a blend's members must read "
                                        "the same feature set")
        if first.feature_set is None:
            raise InvalidInputError("blend members must read a photometric feature set")
        if card.classes and tuple(card.classes) != first.classes:
            raise InvalidInputError(f"the card's classes {list(card.classes)} differ from the "
                                    f"members' {list(first.classes)}")
        if card.feature_set and card.feature_set != first.feature_set:
            raise InvalidInputError(f"the card's feature set '{card.feature_set}' differs from "
                                    f"the members' '{first.feature_set}'")
        card.classes = list(first.classes)
        card.feature_set = first.feature_set
        card.uses_images = False
        if sources is None:
            sources = [f"member-{k}" for k in range(len(members))]
        sources = [str(s) for s in sources]
        if len(sources) != len(members) or len(set(sources)) != len(sources):
            raise InvalidInputError(f"one distinct source per member needed, got {sources}")
        for s in sources:
            _check_source(s)
        super().__init__(card, calibration)
        self.members = members
        self.weights = weights / weights.sum()
        self.sources = sources
        self.card.config = {"members": [{"source": s, "name": m.name, "kind": m.kind,
                                         "weight": round(float(w), 6)}
                                        for s, m, w in zip(sources, members, self.weights)]}

    # Capabilities -------------------------------------------------------------
    def check_speed_options(self, precision, compile):
        """Accept ``precision`` and ``compile`` only if every member does.

        Raises
        ------
        InvalidInputError
            For an unknown value, or one some member cannot honour (a blend
            with a scikit-learn member runs in fp32 without compilation).
        """
        for m in self.members:
            m.check_speed_options(precision, compile)

    def resolve_precision(self, precision="fp32", device="cpu"):
        """The format the torch members run in (None when no member uses torch)."""
        used = {m.resolve_precision(precision, device) for m in self.members} - {None}
        return used.pop() if len(used) == 1 else (None if not used else "mixed")

    def is_compiled(self, device="cpu"):
        """Whether every torch member runs through `torch.compile` on ``device``."""
        torch_members = [m for m in self.members if m.resolve_precision("fp32") is not None]
        return bool(torch_members) and all(m.is_compiled(device) for m in torch_members)

    # Prediction ---------------------------------------------------------------
    def _predict_proba(self, features, cutouts, *, device, batch_size, progress,
                       precision="fp32", compile=False):
        total = None
        for m, w in zip(self.members, self.weights):
            if w == 0:
                continue
            p = m.predict_proba(features, None, device=device, batch_size=batch_size,
                                progress=progress, precision=precision, compile=compile)
            total = w * p if total is None else total + w * p
        return total / total.sum(axis=1, keepdims=True)

    # Storage ------------------------------------------------------------------
    def _write_weights(self, path):
        directory = Path(path).parent
        entries = []
        for source, m, w in zip(self.sources, self.members, self.weights):
            if source.startswith("registry:"):
                name = source[len("registry:"):]
                shipped = _registry_card(name)
                if not m.card.weights_sha256 or m.card.weights_sha256 != shipped.weights_sha256:
                    raise InvalidInputError(
                        f"member '{m.name}' is kept by reference to shipped model '{name}', "
                        "but its weights are not the shipped ones; store it in a "
                        "sub-directory instead")
                entries.append({"registry": name, "weight": float(w),
                                "weights_sha256": shipped.weights_sha256})
            else:
                sub = directory / source
                m.save(sub, overwrite=True)
                entries.append({"path": source, "weight": float(w),
                                "weights_sha256": m.card.weights_sha256,
                                "card_sha256": sha256_file(sub / "card.json")})
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"members": entries}, fh, indent=1)
            fh.write("\n")

    @classmethod
    def _from_files(cls, card, weights, calibration):
        directory = Path(weights).parent
        try:
            with open(weights, encoding="utf-8") as fh:
                entries = json.load(fh)["members"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelIntegrityError(f"model '{card.name}': '{weights}' is not a readable "
                                      f"blend file ({exc})") from None
        members, member_weights, sources = [], [], []
        for entry in entries:
            if not isinstance(entry, dict) or ("path" in entry) == ("registry" in entry):
                raise ModelIntegrityError(f"model '{card.name}': each blend member needs "
                                          "either 'path' or 'registry'")
            if "registry" in entry:
                source = f"registry:{entry['registry']}"
                _check_source(source, card.name)
                member = _load_registry_member(entry["registry"], card.name)
            else:
                source = str(entry["path"])
                _check_source(source, card.name)
                sub = directory / source
                if not sub.resolve().is_relative_to(directory.resolve()):
                    raise ModelIntegrityError(f"model '{card.name}': member '{source}' lies "
                                              "outside the model directory")
                card_file = sub / "card.json"
                if not card_file.is_file():
                    raise InvalidInputError(f"model '{card.name}': member directory "
                                            f"'{sub}' has no card.json")
                expected = entry.get("card_sha256")
                if expected and sha256_file(card_file) != expected:
                    raise ModelIntegrityError(
                        f"model '{card.name}': the card of member '{source}' does not match "
                        "the blend's record; refusing to load an altered member")
                member = SourceClassifier.load(sub)
            if member.card.weights_sha256 != entry.get("weights_sha256"):
                raise ModelIntegrityError(
                    f"model '{card.name}': member '{source}' has weights "
                    f"{str(member.card.weights_sha256)[:12]}..., the blend was made with "
                    f"{str(entry.get('weights_sha256'))[:12]}...; refusing to load it")
            members.append(member)
            member_weights.append(entry.get("weight"))
            sources.append(source)
        try:
            weights_arr = np.asarray(member_weights, dtype=float)
        except (TypeError, ValueError):
            raise ModelIntegrityError(f"model '{card.name}': blend weights must be numbers, "
                                      f"got {member_weights}") from None
        return cls(members, weights_arr, card, calibration, sources=sources)


def _check_source(source, model=None):
    """Refuse member locations that could leave the blend's directory."""
    error = ModelIntegrityError if model else InvalidInputError
    where = f"model '{model}': " if model else ""
    if source.startswith("registry:"):
        name = source[len("registry:"):]
        if not name or Path(name).name != name or name in (".", ".."):
            raise error(f"{where}'{name}' is not a registry model name")
        return
    if not source or Path(source).name != source or source in (".", "..") \
            or "\\" in source or source.startswith("."):
        raise error(f"{where}blend member '{source}' must be a plain sub-directory name "
                    "(no separators, not hidden, no '..')")


def _registry_card(name):
    from .registry import model_card, model_names

    if name not in model_names():
        raise InvalidInputError(f"blend member '{name}' is not a shipped model")
    return model_card(name)


def _load_registry_member(name, blend_name):
    from .registry import MODEL_DIR

    card = _registry_card(name)
    if card.kind == "blend":
        raise ModelIntegrityError(f"model '{blend_name}': member '{name}' is a blend; "
                                  "blends do not nest")
    return SourceClassifier.load(MODEL_DIR / name)
