"""The registry of models shipped with sourceclf."""

from pathlib import Path

from astropy.table import Table

from ..exceptions import InvalidInputError, UnknownModelError
from .base import SourceClassifier
from .card import ModelCard

__all__ = ["MODEL_DIR", "list_models", "load_model", "model_names", "model_card"]

#: Directory holding one sub-directory per shipped model.
MODEL_DIR = Path(__file__).parent / "data"


def model_names():
    """Names of the shipped models, sorted."""
    if not MODEL_DIR.is_dir():
        return []
    return sorted(p.name for p in MODEL_DIR.iterdir() if (p / "card.json").is_file())


def model_card(name):
    """The `~sourceclf.models.ModelCard` of a shipped model, without loading weights."""
    path = MODEL_DIR / name / "card.json"
    if not path.is_file():
        raise UnknownModelError(_unknown(name))
    return ModelCard.from_json(path)


def _unknown(name):
    known = ", ".join(model_names()) or "none installed"
    return f"unknown model '{name}'; known models: {known}"


def list_models():
    """Summarise the shipped models.

    Returns
    -------
    models : `~astropy.table.Table`
        One row per model: name, version, inputs, classes, held-out accuracy and
        the data it was tested on.

    Examples
    --------
    >>> from sourceclf.models import list_models
    >>> "margnet-photometry-sg" in list_models()["name"]
    True
    """
    rows = []
    for name in model_names():
        card = model_card(name)
        test = card.metrics.get("test", {})
        inputs = " + ".join(x for x in (card.feature_set,
                                        "images" if card.uses_images else None) if x)
        rows.append((name, card.version, inputs, "/".join(card.classes),
                     float(test.get("accuracy", float("nan"))), card.metrics.get("test_data", "")))
    return Table(rows=rows or None,
                 names=("name", "version", "inputs", "classes", "test_accuracy", "test_data"),
                 dtype=(str, str, str, str, float, str))


def load_model(model):
    """Load a model by registry name or from a directory written by ``save``.

    Parameters
    ----------
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        A shipped model's name (see `list_models`), a model directory, or an
        already loaded classifier (returned as is).

    Returns
    -------
    classifier : `~sourceclf.models.SourceClassifier`

    Raises
    ------
    UnknownModelError
        If no shipped model has that name and it is not a model directory.
    ModelIntegrityError
        If the weights do not match the checksum in the card.
    """
    if isinstance(model, SourceClassifier):
        return model
    if not isinstance(model, (str, Path)):
        raise InvalidInputError(f"model must be a name, a directory or a classifier, "
                                f"got {type(model).__name__}")
    shipped = MODEL_DIR / str(model)
    if isinstance(model, str) and (shipped / "card.json").is_file():
        return SourceClassifier.load(shipped)
    path = Path(model)
    if (path / "card.json").is_file():
        return SourceClassifier.load(path)
    raise UnknownModelError(_unknown(model))
