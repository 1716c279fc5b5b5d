"""The conformity scores sourceclf offers, by name, and what MAPIE needs of each."""

from ..exceptions import InvalidInputError

__all__ = ["SCORES", "check_score", "min_calibration_rows"]

#: Conformity scores: name -> (MAPIE score name, MAPIE ``include_last_label``).
SCORES = {
    "lac": ("lac", True),
    "aps": ("aps", True),
    "aps-randomized": ("aps", "randomized"),
    "raps": ("raps", True),
    "raps-randomized": ("raps", "randomized"),
    "top_k": ("top_k", True),
}


def check_score(score, n_classes, name="model"):
    """The `SCORES` key of a conformity score name, checked against the class count.

    Parameters
    ----------
    score : str
        A key of `SCORES`, any case (``'top-k'`` and ``'topk'`` mean ``'top_k'``).
    n_classes : int
        Number of classes of the model.
    name : str
        What to call the model in messages.

    Returns
    -------
    key : str

    Raises
    ------
    InvalidInputError
        For an unknown score, or a score other than ``'lac'`` for two classes
        (MAPIE 1.x computes only LAC for binary targets).
    """
    key = str(score).lower().replace("top-k", "top_k").replace("topk", "top_k")
    if key not in SCORES:
        raise InvalidInputError(f"unknown conformity score '{score}'; use one of "
                                f"{', '.join(SCORES)}")
    if n_classes == 2 and SCORES[key][0] != "lac":
        raise InvalidInputError(
            f"{name} has two classes; MAPIE 1.x computes only the 'lac' score for binary "
            f"targets ('{key}' needs three or more classes)")
    return key


def min_calibration_rows(levels):
    """MAPIE's fewest calibration rows for the levels: ``max(1/alpha, 1/(1 - alpha))``."""
    return max(max(1 / (1 - c), 1 / c) for c in levels)
