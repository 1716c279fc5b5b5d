"""Checks of arguments shared by several public functions.

Each raises `~sourceclf.exceptions.InvalidInputError` with a one-line message
naming the argument.
"""

import numbers

import numpy as np

from ..exceptions import InvalidInputError

__all__ = ["check_confidence_levels", "check_positive_int", "check_by", "check_random_state",
           "check_image"]


def check_confidence_levels(confidence, *, required=False):
    """Confidence level(s) as a list of floats in (0, 1), each once, in the order given.

    None or an empty sequence gives ``[]``, or an error when ``required``.
    """
    levels = [] if confidence is None else \
        [confidence] if np.isscalar(confidence) else list(confidence)
    if required and not levels:
        raise InvalidInputError("no confidence level given")
    for c in levels:
        if isinstance(c, bool) or not isinstance(c, (numbers.Real, np.floating)) \
                or not 0 < float(c) < 1:
            raise InvalidInputError(f"confidence must be strictly between 0 and 1, got {c!r}")
    return list(dict.fromkeys(float(c) for c in levels))  # a level given twice is one level


def check_positive_int(value, name, *, allow_none=False):
    """``value`` as a positive int, or None when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) \
            or int(value) < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_by(by):
    """A Mondrian grouping ``by=`` as None (marginal) or the name given.

    None, ``'none'``, ``'marginal'`` and ``''`` (any case) mean marginal sets;
    ``'class'`` (any case) means class-conditional ones; any other string
    names a column.
    """
    if by is None or str(by).lower() in ("none", "marginal", ""):
        return None
    return str(by)


def check_random_state(random_state):
    """A `numpy.random.Generator` from a ``random_state`` argument.

    Parameters
    ----------
    random_state : None, int, `numpy.random.Generator` or `numpy.random.RandomState`
        None for fresh entropy, a seed, a generator (returned as it is), or a
        legacy RandomState (which seeds a new generator from its next draw).

    Returns
    -------
    rng : `numpy.random.Generator`

    Raises
    ------
    InvalidInputError
        If ``random_state`` is none of these.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2 ** 31 - 1))
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise InvalidInputError(f"random_state must be None, an int or a numpy Generator, "
                                f"got {random_state!r}") from None


def check_image(data, label):
    """``data`` as a 2-D float32 array; ``label`` names it in the error."""
    try:
        data = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{label} is not a numeric image") from None
    if data.ndim != 2:
        raise InvalidInputError(f"{label} must be a 2-D image, got shape {data.shape}")
    return data
