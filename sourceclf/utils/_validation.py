"""Checks of arguments shared by several public functions.

Each raises `~sourceclf.exceptions.InvalidInputError` with a one-line message
naming the argument.
"""

import numbers

import numpy as np

from ..exceptions import InvalidInputError

__all__ = ["check_confidence_levels", "check_positive_int"]


def check_confidence_levels(confidence):
    """Confidence level(s) as a list of floats in (0, 1); None gives ``[]``."""
    if confidence is None:
        return []
    levels = [confidence] if np.isscalar(confidence) else list(confidence)
    for c in levels:
        if isinstance(c, bool) or not isinstance(c, (numbers.Real, np.floating)) \
                or not 0 < float(c) < 1:
            raise InvalidInputError(f"confidence must be strictly between 0 and 1, got {c!r}")
    return [float(c) for c in levels]


def check_positive_int(value, name, *, allow_none=False):
    """``value`` as a positive int, or None when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) \
            or int(value) < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
