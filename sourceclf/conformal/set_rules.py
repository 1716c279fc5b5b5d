"""Prediction sets from conformity thresholds, in numpy alone.

Given the conformal quantiles that MAPIE computed from a calibration split,
the prediction set of a new row follows from its class probabilities by a
fixed rule per conformity score.  `prediction_sets` applies MAPIE 1.x's rules
(split conformal, ``prefit``) operation for operation, so its sets are
identical to MAPIE's own (``tests/test_conformal.py`` checks it on every
shipped model, score and a grid of levels) without importing MAPIE or
scikit-learn at inference.
"""

import numpy as np

from ..exceptions import InvalidInputError
from .scores import SCORES

__all__ = ["EPSILON", "prediction_sets"]

#: MAPIE's tolerance in every comparison of a probability with a threshold.
EPSILON = np.float64(1e-8)


def prediction_sets(proba, quantiles, score, *, lambda_star=None, k_star=None,
                    random_state=0):
    """Prediction sets of rows for given conformal quantiles, as MAPIE makes them.

    Parameters
    ----------
    proba : `numpy.ndarray` of float64, shape (n, n_classes)
        Class probabilities, columns in *sorted* class order (MAPIE's label
        encoding), rows summing to one.
    quantiles : array-like, shape (n_levels,)
        The conformal quantile of each level.
    score : str
        A key of `SCORES`.
    lambda_star, k_star : array-like, shape (n_levels,), optional
        RAPS's regularisation (penalty and rank), required for ``'raps'``
        and ``'raps-randomized'``.
    random_state : int, `numpy.random.RandomState` or None
        Seed of the randomised scores: the uniform numbers that decide
        whether each row keeps its last label are drawn afresh from it, one
        per row, in row order (as MAPIE draws them).

    Returns
    -------
    sets : `numpy.ndarray` of bool, shape (n, n_classes, n_levels)
    """
    mapie_score, include_last = SCORES[score]
    quantiles = np.asarray(quantiles, dtype=np.float64).reshape(-1)
    if mapie_score == "lac":
        return (1 - _per_level(proba, quantiles)) - quantiles <= EPSILON
    if mapie_score == "top_k":
        return _top_k(proba, quantiles.astype(np.int64))
    if mapie_score == "raps":
        if lambda_star is None or k_star is None:
            raise InvalidInputError("RAPS sets need the regularisation lambda_star and k_star")
        lambda_star = np.asarray(lambda_star, dtype=np.float64).reshape(-1)
        k_star = np.asarray(k_star).reshape(-1)
    return _adaptive(proba, quantiles, include_last == "randomized",
                     lambda_star if mapie_score == "raps" else None, k_star, random_state)


def _per_level(proba, quantiles):
    """MAPIE's ``get_predictions``: the probabilities repeated once per level."""
    return np.repeat(proba[:, :, np.newaxis], len(quantiles), axis=2)


def _top_k(proba, k):
    index_sorted = np.fliplr(np.argsort(proba, axis=1))
    index_last = np.stack([index_sorted[:, q] for q in k], axis=1)
    proba_last = np.stack([np.take_along_axis(proba, index_last[:, j].reshape(-1, 1), axis=1)
                           for j in range(len(k))], axis=2)
    return proba[:, :, np.newaxis] - proba_last >= -EPSILON


def _adaptive(proba, quantiles, randomized, lambda_star, k_star, random_state):
    """APS (``lambda_star`` None) and RAPS sets, MAPIE's ``get_prediction_sets``."""
    y_pred = _per_level(proba, quantiles)
    index_sorted = np.flip(np.argsort(y_pred, axis=1), axis=1)
    cumsum_sorted = np.cumsum(np.take_along_axis(y_pred, index_sorted, axis=1), axis=1)
    if lambda_star is not None:
        rank = np.cumsum(np.ones(cumsum_sorted.shape), axis=1)
        cumsum_sorted += lambda_star * np.maximum(0, rank - k_star)
    cumsum = np.take_along_axis(cumsum_sorted, np.argsort(index_sorted, axis=1), axis=1)
    # The first label (by decreasing probability) whose cumulated score reaches the
    # threshold is the last one included.
    gap = cumsum - quantiles[np.newaxis, :]
    index_last = np.where(gap < -EPSILON, np.inf, gap).argmin(axis=1)[:, np.newaxis, :]
    proba_last = np.take_along_axis(y_pred, index_last, axis=1)
    zero = proba_last <= EPSILON
    if zero.any():  # never let a zero probability pull zero-probability labels in
        smallest = np.where(y_pred < EPSILON, np.inf, y_pred).min(axis=1)[:, np.newaxis, :]
        proba_last[zero] = smallest[zero]
    included = y_pred - proba_last >= -EPSILON
    if randomized:
        last_cumsum = np.squeeze(np.take_along_axis(cumsum, index_last, axis=1), axis=1)
        denominator = proba_last[:, 0, :]
        if lambda_star is not None:
            size = included.sum(axis=1)
            denominator = (denominator - lambda_star * np.maximum(0, size - k_star)
                           + lambda_star * (size > k_star))
        v = (last_cumsum - quantiles.reshape(1, -1)) / denominator
        u = _uniform(random_state, len(proba))
        keep = v - u <= EPSILON
        np.put_along_axis(included, index_last, keep[:, np.newaxis, :], axis=1)
    return included


def _uniform(random_state, n):
    """MAPIE's draw: ``check_random_state(random_state).uniform(size=(n, 1))``."""
    if random_state is None:
        rng = np.random.mtrand._rand
    elif isinstance(random_state, np.random.RandomState):
        rng = random_state
    else:
        rng = np.random.RandomState(random_state)
    return rng.uniform(size=(n, 1))
