"""Fitting a trained model's applicability domain from its training rows."""

import numpy as np

from ..models.domain import ApplicabilityDomain

__all__ = ["fit_model_domain", "magnitude_ranges", "MIN_DOMAIN_ROWS"]

#: Fewest calibration rows a domain's threshold is fitted on (fewer: no domain).
MIN_DOMAIN_ROWS = 20

#: Feature names that are an r-band magnitude, in order of preference.
_R_MAGNITUDE_NAMES = ("dered_r", "r")


def magnitude_ranges(x, names, *, quantiles=(0.001, 0.999)):
    """The trained r-magnitude range, for the card: ``{'r': [bright, faint]}`` or ``{}``."""
    for name in _R_MAGNITUDE_NAMES:
        if name in names:
            values = np.asarray(x, dtype=float)[:, list(names).index(name)]
            values = values[np.isfinite(values)]
            if values.size:
                low, high = np.quantile(values, quantiles)
                return {"r": [round(float(low), 1), round(float(high), 1)]}
    return {}


def fit_model_domain(clf, x_train, x_calibration, names, *, description=None, **options):
    """Fit ``clf.domain`` on its training rows and describe it in its card.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        The trained model; its ``domain`` and ``card.domain`` are set.
    x_train : array-like of shape (n_rows, n_features)
        The rows the model was trained on (its feature set's values).
    x_calibration : array-like of shape (n_rows, n_features)
        Rows it was not trained on (the calibration split), which set the
        joint-density threshold.
    names : sequence of str
        Feature names.
    description : str, optional
        Where to use the model, in words; default: a sentence from the
        trained magnitude range.
    **options
        Keyword arguments of `~sourceclf.models.domain.ApplicabilityDomain`.

    Returns
    -------
    clf : `~sourceclf.models.SourceClassifier`
        The same model.
    """
    clf.domain = ApplicabilityDomain(**options).fit(x_train, names, x_calibration)
    magnitudes = magnitude_ranges(x_train, names)
    if description is None:
        span = (f" with r from {magnitudes['r'][0]:g} to {magnitudes['r'][1]:g}"
                if magnitudes else "")
        description = (f"sources like its {len(x_train)} training rows{span} "
                       f"(classes {', '.join(clf.classes)})")
    clf.card.domain = {"description": description, "magnitudes": magnitudes}
    return clf
