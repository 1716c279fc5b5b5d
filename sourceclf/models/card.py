"""Model cards: what a shipped model is, how it was made and how well it does."""

import hashlib
import json
from dataclasses import asdict, dataclass, field

__all__ = ["ModelCard", "sha256_file"]


def sha256_file(path):
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ModelCard:
    """Description of a trained model, stored as ``card.json`` beside its weights.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``'margnet-photometry-sg'``.
    version : str
        Version of these weights.
    description : str
        One paragraph for users.
    kind : str
        ``'torch'`` or ``'sklearn'``: how the weights are stored and run.
    architecture : str
        Architecture name (see `sourceclf.models.ARCHITECTURES`) for torch models.
    config : dict
        Keyword arguments that rebuild the architecture.
    feature_set : str or None
        Name of the photometric feature set the model reads, None for image-only models.
    uses_images : bool
        Whether the model needs 5-band cutouts.
    classes : list of str
        Class labels, in the order of the model's outputs.
    training : dict
        Training data, recipe command, split, seed and sizes.
    metrics : dict
        Held-out metrics (accuracy, macro precision/recall/F1, confusion matrix).
    weights_file : str
        File name of the weights inside the model directory.
    weights_sha256 : str
        SHA-256 of the weights file; loading refuses a mismatch.
    calibration_file : str or None
        File name of the stored calibration split (for conformal sets).
    auto_priority : int
        Higher is preferred when ``model='auto'`` chooses among usable models.
    notes : str
        Caveats users must know.
    extra : dict
        Anything else the recipe records (parameter count, library versions).
    domain : dict
        The model's applicability domain (see `sourceclf.models.domain`):
        ``'description'`` (where to use it, in words), ``'magnitudes'``
        (band -> [faintest, brightest] trained range, for display), for
        photometric models ``'file'`` and ``'sha256'`` (the fitted
        `~sourceclf.models.domain.ApplicabilityDomain`), for image models
        ``'psf_fwhm'`` (band -> [low, high], arcsec: the seeing they were
        trained on).  Empty for models made before domains existed.
    """

    name: str
    version: str = "1.0"
    description: str = ""
    kind: str = "torch"
    architecture: str = ""
    config: dict = field(default_factory=dict)
    feature_set: str = None
    uses_images: bool = False
    classes: list = field(default_factory=list)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    weights_file: str = "weights.safetensors"
    weights_sha256: str = ""
    calibration_file: str = None
    auto_priority: int = 0
    notes: str = ""
    extra: dict = field(default_factory=dict)
    domain: dict = field(default_factory=dict)

    def to_json(self, path):
        """Write the card as indented JSON."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh, indent=2, sort_keys=False)
            fh.write("\n")

    @classmethod
    def from_json(cls, path):
        """Read a card written by `to_json`."""
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
