"""The calibration table a trainer stores with a new model."""

import numpy as np

from ..conformal.calibration_tables import build_calibration_table

__all__ = ["calibration_table"]


def calibration_table(clf, rows, x, y, cutouts=None):
    """Table of a calibration split: labels, class probabilities and magnitudes.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        The trained model.
    rows : `~astropy.table.Table`
        The calibration rows of the original table (for magnitude columns).
    x : array-like
        Their features.
    y : array-like of int
        Their class indices.
    cutouts : array-like, optional
        Their cutouts.

    Returns
    -------
    calibration : `~astropy.table.Table`
        Columns ``label``, ``prob_<class>`` and, where the table has them,
        ``r`` (observed) and ``dered_r`` magnitudes (see
        `sourceclf.conformal.build_calibration_table`).
    """
    proba = clf.predict_proba(x, cutouts)
    return build_calibration_table(clf.classes, np.array(clf.classes)[y], proba, rows)
