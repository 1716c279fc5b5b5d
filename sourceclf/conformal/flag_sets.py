"""Rows whose prediction sets come from a calibration table of their own flag.

A model may hold, beside its calibration split, calibration tables of the
rows of one ``pred_flag`` (``clf.flag_calibrations``; the shipped image
models hold one of rows flagged ``confused``).  A row carrying such a flag
gets its prediction sets from that table (`sourceclf.conformal.add_prediction_sets`),
and the shift alarm compares those rows with that table's rows, not with the
model's calibration rows (`sourceclf.conformal.check_set_shift`).  This
module says which rows those are (`flag_set_groups`), fits a table's
conformalizer (`flag_predictor`) and reads the flags a classified table's
``meta['CLFFLCAL']`` names (`calibrated_flags`).
"""

import numpy as np

from ..columns import decode_strings
from ..exceptions import InvalidInputError
from .predictor import ConformalPredictor

__all__ = ["flag_set_groups", "flag_predictor", "calibrated_flags"]


def flag_set_groups(row_flags, flags):
    """The flag whose calibration table gives each row's prediction sets.

    Parameters
    ----------
    row_flags : array-like of str or bytes
        Each row's ``pred_flag`` (``';'``-joined flags).
    flags : iterable of str
        The flags with a calibration table, in the order their tables are
        applied: a row carrying two of them takes the last one's sets.

    Returns
    -------
    groups : `numpy.ndarray` of str
        Per row, that flag, or ``''`` for a row whose sets come from the
        model's own calibration rows.

    Examples
    --------
    >>> flag_set_groups(["", "confused", "blended;confused", "unconfused"], ["confused"])
    array(['', 'confused', 'confused', ''], dtype='<U8')
    """
    flags = [str(flag) for flag in flags]
    width = max([1] + [len(flag) for flag in flags])
    groups = np.full(len(row_flags), "", dtype=f"<U{width}")
    if not flags or not len(row_flags):  # most catalogs: nothing to read
        return groups
    # Each row's flags between separators, so that a flag matches whole ('unconfused'
    # is not 'confused').
    text = np.char.add(np.char.add(";", decode_strings(row_flags)), ";")
    for flag in flags:
        groups[np.char.find(text, f";{flag};") >= 0] = flag
    return groups


def flag_predictor(clf, flag, base):
    """The conformalizer of a model's calibration table of the rows flagged ``flag``.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        A model holding ``flag_calibrations[flag]``.
    flag : str
        The ``pred_flag`` whose table to conformalize.
    base : `~sourceclf.conformal.ConformalPredictor`
        The model's own conformalizer: its score, grouping, levels and seed
        are those of the table's (marginal within the table where the table
        cannot support the grouping: too few rows per group, or no such
        column).

    Returns
    -------
    predictor : `~sourceclf.conformal.ConformalPredictor`
        Fitted on the table: the thresholds the model's thresholds file
        holds for it, else computed with MAPIE once per process.

    Raises
    ------
    InvalidInputError
        If the model holds no table for ``flag``, or the table cannot be
        conformalized even marginally.
    """
    table = (getattr(clf, "flag_calibrations", None) or {}).get(flag)
    if table is None:
        raise InvalidInputError(f"model '{clf.name}' holds no calibration table of rows "
                                f"flagged '{flag}'")
    for by in dict.fromkeys((base.by, None)):
        try:
            return ConformalPredictor.from_table(table, clf.classes, base.levels,
                                                 score=base.score, by=by,
                                                 random_state=base.random_state,
                                                 name=f"model '{clf.name}' ({flag} rows)",
                                                 model=clf)
        except InvalidInputError:
            if by is None:
                raise


def calibrated_flags(meta):
    """The flags whose tables gave rows their sets, from ``meta['CLFFLCAL']``.

    Parameters
    ----------
    meta : dict-like
        A classified table's ``meta``.

    Returns
    -------
    flags : list of str
        In the order their tables were applied; empty without the key.

    Examples
    --------
    >>> calibrated_flags({"CLFFLCAL": "confused:908"})
    ['confused']
    """
    text = str(meta.get("CLFFLCAL", "") or "")
    return [item.rsplit(":", 1)[0] for item in text.split(",") if item.strip()]
