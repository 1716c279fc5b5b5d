"""How often a model's prediction sets are empty or single on its own calibration rows.

These rates are the reference a shift alarm compares a new catalog's sets
with: on sources drawn like the calibration sources, a model's sets at a
level are empty, single or larger in the proportions its calibration rows
give them.
"""

import weakref

import numpy as np

from ..exceptions import InvalidInputError
from ..utils._validation import check_by, check_confidence_levels
from .calibration_tables import group_values
from .predictor import ConformalPredictor

__all__ = ["reference_set_rates"]

# Per model object: {(level, score, by): rates}; entries die with the model.
_CACHE = weakref.WeakKeyDictionary()


def reference_set_rates(clf, level, *, score=None, by=None):
    """Set-size rates of a model's prediction sets on its own calibration rows.

    The model's thresholds at ``level`` (with ``score`` and ``by`` resolved as
    `sourceclf.classify` resolves them) are applied to the calibration rows'
    stored probabilities, giving the same sets ``classify`` would give those
    rows.  Results are cached per model object.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        A model with calibration data.
    level : float
        Confidence level, strictly between 0 and 1.
    score : str, optional
        Conformity score (default: the card's ``extra['conformal_score']``,
        else ``'lac'``).
    by : str, optional
        ``'class'``, a column name, or ``'none'`` (default: the card's
        ``extra['conformal_by']``, else marginal).  Calibration rows without
        a value of a column ``by`` use the marginal threshold, as new rows do.

    Returns
    -------
    rates : dict
        ``n`` (int, calibration rows), ``empty`` and ``singleton`` (float,
        fractions of those rows whose set is empty / has one class) and
        ``mean_size`` (float, mean number of classes per set).

    Raises
    ------
    InvalidInputError
        If the model has no calibration data, or a setting is invalid.

    Examples
    --------
    >>> from sourceclf.models import load_model
    >>> rates = reference_set_rates(load_model("margnet-photometry-sg"), 0.9)
    >>> sorted(rates)
    ['empty', 'mean_size', 'n', 'singleton']
    """
    level = check_confidence_levels(level, required=True)
    if len(level) != 1:
        raise InvalidInputError(f"reference_set_rates takes one confidence level, got {level}")
    key = (level[0], None if score is None else str(score).lower(),
           None if by is None else str(by))
    per_model = _CACHE.setdefault(clf, {})
    if key not in per_model:
        per_model[key] = _rates(clf, level[0], score, by)
    return dict(per_model[key])


def _rates(clf, level, score, by):
    cp = ConformalPredictor.from_classifier(clf, level, score=score, by=by)
    calibration = clf.calibration
    proba = np.column_stack([np.asarray(calibration[f"prob_{c.lower()}"], dtype=np.float64)
                             for c in cp.classes])
    column = check_by(cp.by)
    values = None
    if column is not None and column.lower() != "class":
        values = group_values(calibration, column)
    sets, _ = cp.predict_sets(proba, values)
    size = sets[:, :, 0].sum(axis=1)
    n = int(size.size)
    return {"n": n,
            "empty": float(np.mean(size == 0)) if n else float("nan"),
            "singleton": float(np.mean(size == 1)) if n else float("nan"),
            "mean_size": float(np.mean(size)) if n else float("nan")}
