"""sourceclf: star / galaxy / quasar classification of astronomical catalogs.

The main entry points are `classify` (a Table in, the Table with predictions
out), `list_models` / `load_model` (the shipped, pretrained models) and the
``sourceclf-classify`` command.  Heavy dependencies (torch, MAPIE) are imported
only when first needed, so ``import sourceclf`` and ``sourceclf-classify --help``
stay fast.
"""

import importlib

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - running from a source tree without a build
    __version__ = "0.1.dev0"

__all__ = ["classify", "classify_file", "list_models", "load_model", "train",
           "compute_features", "calibrate", "evaluate", "SourceclfError", "__version__"]

from .exceptions import SourceclfError  # noqa: E402  (light)

_LAZY = {
    "classify": ("sourceclf.classification", "classify"),
    "classify_file": ("sourceclf.streaming", "classify_file"),
    "list_models": ("sourceclf.models.registry", "list_models"),
    "load_model": ("sourceclf.models.registry", "load_model"),
    "train": ("sourceclf.training", "train"),
    "compute_features": ("sourceclf.features", "compute_features"),
    "calibrate": ("sourceclf.calibration", "calibrate"),
    "evaluate": ("sourceclf.evaluation", "evaluate"),
}


def __getattr__(name):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'sourceclf' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
