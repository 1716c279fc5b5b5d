"""Registry of neural-network architectures that model cards refer to by name."""

from ..exceptions import InvalidInputError

__all__ = ["ARCHITECTURES", "register_architecture", "build_architecture"]

#: Architecture name -> `torch.nn.Module` subclass.  Filled by `register_architecture`.
ARCHITECTURES = {}


def register_architecture(name):
    """Class decorator that registers an `torch.nn.Module` under ``name``."""
    def decorator(cls):
        ARCHITECTURES[name] = cls
        cls.architecture_name = name
        return cls
    return decorator


#: Modules whose import registers architectures (extended as modules are added).
ARCHITECTURE_MODULES = ["sourceclf.models.margnet", "sourceclf.models.ensemble",
                        "sourceclf.models.margnet_cnn", "sourceclf.models.margformer",
                        "sourceclf.models.bayesian"]


def build_architecture(name, config, check_only=False):
    """Instantiate the architecture ``name`` with keyword arguments ``config``.

    With ``check_only`` only check that the name is known.

    Raises
    ------
    InvalidInputError
        For an unknown name, or a ``config`` the architecture refuses (an
        unknown keyword, inconsistent options), naming the architecture.
    """
    import importlib

    for module in ARCHITECTURE_MODULES:
        importlib.import_module(module)
    try:
        cls = ARCHITECTURES[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown architecture '{name}'; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
    if check_only:
        return None
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:  # an unknown or inconsistent config entry
        raise InvalidInputError(f"architecture '{name}': bad config: {exc}") from exc
