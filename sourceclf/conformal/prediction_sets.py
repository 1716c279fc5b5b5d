"""Conformal prediction-set columns added to a classified table."""

import warnings

import numpy as np
from astropy.table import MaskedColumn

from ..exceptions import InvalidInputError, SourceclfWarning
from ..utils._validation import check_by, check_confidence_levels
from .calibration_tables import group_values
from .flag_sets import flag_predictor, flag_set_groups
from .predictor import ConformalPredictor
from .set_columns import empty_set_flags, format_sets, parse_set_column, set_columns

__all__ = ["add_prediction_sets"]


def add_prediction_sets(out, clf, proba, rows, levels, *, score=None, by=None,
                        random_state=0, group_table=None, row_flags=None):
    """Add conformal prediction-set columns to a classified table, in place.

    Parameters
    ----------
    out : `~astropy.table.Table`
        The output table (all n input rows).
    clf : `~sourceclf.models.SourceClassifier`
        The model, with its ``calibration`` table.
    proba : array-like, shape (len(rows), n_classes)
        Class probabilities of the rows that could be classified.
    rows : array-like of int
        Their indices in ``out``; other rows get masked set columns.
    levels : list of float
        Confidence levels.
    score : str, optional
        Conformity score (default: the card's ``extra['conformal_score']``, else
        ``'lac'``).
    by : str, optional
        ``'class'`` or a column name for Mondrian calibration (default: the
        card's ``extra['conformal_by']``, else marginal; ``'none'`` forces
        marginal).  A column's values for the new rows are taken from
        ``group_table``.
    random_state : int
        Seed of the randomised scores.
    group_table : `~astropy.table.Table`, optional
        The rows under sourceclf's column names (``classify``'s ``columns=``
        view), where a ``by`` column is looked up; default ``out``.
    row_flags : array-like of str, optional
        Each row's ``pred_flag`` so far (``';'``-joined flags).  The rows
        flagged with a flag for which the model holds a calibration table of
        its own (``clf.flag_calibrations``: rows like them, flagged alike, as
        ``confused`` rows of crowded simulated fields) get their sets from
        that table, conformalized with the same score and grouping (marginal
        within the table where it cannot support the grouping): their
        coverage is then that of rows like them, not of the model's
        calibration rows, which held few such rows.

    Returns
    -------
    flags : `numpy.ndarray` of str or None
        Per-row notes for ``pred_flag``, or None when no row has one:
        ``empty_set:<L>,...`` for rows whose set is empty at those levels (no
        class probable enough; see `empty_set_flags`) and
        ``no_<column>:marginal_set`` for rows whose ``by`` value was missing.

    Notes
    -----
    A model without calibration data gets no sets: a `SourceclfWarning` when
    only ``levels`` were given (``classify``'s default confidence), an
    `InvalidInputError` when ``score`` or ``by`` asked for them explicitly.
    Meta keys written: ``CLFCONF`` (a float, or comma-separated levels),
    ``CLFSCORE``, for Mondrian calibration ``CLFGROUP``, and where flagged
    rows got sets of their own, ``CLFFLCAL`` (``'<flag>:<rows>,...'``: each
    flag with the calibration rows behind its sets).  ``pred_set_group`` of
    such a row is the bin of its own table's grouping.
    """
    n = len(out)
    rows = np.asarray(rows, dtype=np.int64)
    levels = check_confidence_levels(levels, required=True)
    for name in list(out.colnames):
        if parse_set_column(name) is not None or name == "pred_set_group":
            out.remove_column(name)
    for key in ("CLFCONF", "CLFSCORE", "CLFGROUP", "CLFFLCAL"):
        out.meta.pop(key, None)
    if clf.calibration is None:
        if score is not None or by is not None:
            ConformalPredictor.from_classifier(clf, levels, score=score, by=by)  # raises
        warnings.warn(f"model '{clf.name}' has no calibration data: no prediction sets "
                      "added (pass confidence=None to silence this)", SourceclfWarning,
                      stacklevel=3)
        return None
    explicit_by = by is not None
    extra = getattr(clf.card, "extra", {}) or {}
    default_by = extra.get("conformal_by")
    chosen_by = by if by is not None else default_by
    if check_by(chosen_by) is None:
        chosen_by = "none"  # explicit, so that the card's default does not apply
    values = None
    if chosen_by != "none" and str(chosen_by).lower() != "class":
        values = group_values(out if group_table is None else group_table, chosen_by)
        if values is None:
            if explicit_by:
                raise InvalidInputError(f"by='{chosen_by}': the table has no column to "
                                        f"supply '{chosen_by}'")
            warnings.warn(f"model '{clf.name}' is calibrated by '{chosen_by}' but the table "
                          "has no such column: marginal prediction sets instead",
                          SourceclfWarning, stacklevel=3)
            chosen_by = "none"
    cp = ConformalPredictor.from_classifier(clf, levels, score=score, by=chosen_by,
                                            random_state=random_state)
    sub_values = None if values is None else values[rows]
    sets, groups = cp.predict_sets(proba, sub_values)
    own = _flagged_row_sets(clf, cp, proba, sub_values, rows, row_flags, sets, groups)

    valid = np.zeros(n, dtype=bool)
    valid[rows] = True
    classes = np.array(clf.classes)
    width = max(1, len("|".join(classes)))
    names = set_columns(levels)
    for j, (set_name, size_name) in enumerate(names):
        text = np.zeros(n, dtype=f"<U{width}")  # empty strings
        text[rows] = format_sets(sets[:, :, j], classes)
        size = np.zeros(n, dtype=np.int16)
        size[rows] = sets[:, :, j].sum(axis=1)
        level = levels[j]
        out[set_name] = MaskedColumn(
            text, mask=~valid,
            description=f"classes in the {level:g} conformal prediction set ('|'-joined; "
                        "'' when no class is probable enough, flagged empty_set)")
        out[size_name] = MaskedColumn(size, mask=~valid,
                                      description=f"size of the {level:g} prediction set")
    flags = np.full(n, "", dtype=object)
    flags[rows] = empty_set_flags(sets.sum(axis=1), levels)
    if cp.bin_edges_ is not None:
        group_col = np.full(n, -1, dtype=np.int16)
        group_col[rows] = groups
        out["pred_set_group"] = MaskedColumn(
            group_col, mask=~valid,
            description=f"bin of {cp.by} used for the prediction sets (-1: no value)")
        missing = rows[groups < 0]
        note = f"no_{cp.by}:marginal_set"
        flags[missing] = np.where(flags[missing] == "", note, note + ";" + flags[missing])
    out.meta["CLFCONF"] = levels[0] if len(levels) == 1 else ",".join(f"{c:g}" for c in levels)
    out.meta["CLFSCORE"] = cp.score
    group = cp.describe_groups()
    if group is not None:
        out.meta["CLFGROUP"] = group
    if own:
        out.meta["CLFFLCAL"] = ",".join(f"{flag}:{count}" for flag, count in own.items())
    return flags if (flags != "").any() else None


def _flagged_row_sets(clf, cp, proba, values, rows, row_flags, sets, groups):
    """Replace, in ``sets`` and ``groups`` (in place), those of the rows flagged with a flag
    the model holds a calibration table for (`add_prediction_sets`' ``row_flags``).
    Returns ``{flag: calibration rows}`` of the flags that had rows."""
    tables = getattr(clf, "flag_calibrations", None) or {}
    if row_flags is None or not tables or not len(rows):
        return {}
    by_flag = flag_set_groups(np.asarray(row_flags)[rows], tables)
    done = {}
    for flag, table in tables.items():
        these = by_flag == flag
        if not these.any():
            continue
        own = flag_predictor(clf, flag, cp)
        binned = own.bin_edges_ is not None
        sets[these], groups[these] = own.predict_sets(proba[these],
                                                      values[these] if binned else None)
        done[flag] = len(table)
    return done
