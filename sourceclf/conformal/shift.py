"""Alarms for prediction sets that behave unlike the model's calibration data.

Conformal prediction sets keep their coverage only on data like the
calibration rows.  On a catalog that differs (fainter, another survey,
other classes) the sets themselves show it: many more empty sets, fewer
singletons, or larger sets than the calibration rows get.  `set_shift`
compares a catalog's set sizes with the calibration rows' rates (from
`sourceclf.conformal.reference_set_rates`, weighted to the catalog's r
magnitudes when it has them) and reports each departure that is larger
than sampling noise: more than `SHIFT_Z` standard errors of the
difference between the two samples, and more than a small practical
tolerance (`SHIFT_TOLERANCE`), so that a catalog of millions of rows does
not alarm on a negligible change.

Only departures towards less decisive sets alarm (more empty sets, fewer
singletons, a larger mean size): sets more decisive than the calibration
rows' (a catalog of bright stars and galaxies, without the quasars that
share the stars' sets) are no sign that coverage is lost, and an alarm
that rang on them would ring on most real catalogs.  A model confidently
wrong on data unlike its training data does not show in its sets: the
applicability-domain and image flags of ``pred_flag`` are there for that.

The cure is to recalibrate the model on a few hundred labelled rows of the
catalog's kind with `sourceclf.calibrate`.

Rows whose sets come from a calibration table of their own flag (the
``confused`` rows of the image models, `sourceclf.conformal.flag_sets`) are
compared with that table's rows, the others with the model's calibration
rows (`check_set_shift`): each group's sets are tested against the rows
they were calibrated on.  Compared with the model's calibration rows, the
flagged rows' sets, wider by design, would ring the alarm on every crowded
frame for a difference their calibration meant them to have, and hide
whether they are unlike the rows of their own table.
"""

import json
import warnings

import numpy as np

from ..exceptions import ShiftAlarmWarning
from .calibration_tables import group_values
from .flag_sets import flag_set_groups
from .reference_rates import MATCH_COLUMNS, combine_set_bins, reference_set_bins
from .set_columns import set_columns

__all__ = ["set_shift", "shift_message", "check_set_shift", "SHIFT_Z", "SHIFT_TOLERANCE",
           "SHIFT_MIN_ROWS"]

#: Standard errors a departure must exceed.
SHIFT_Z = 4.0

#: Smallest departure that alarms: in fraction of rows for the shares of empty
#: sets and singletons, in classes for the mean set size.
SHIFT_TOLERANCE = {"empty": 0.02, "singleton": 0.02, "mean_size": 0.05}

#: Fewer classified rows than this never alarm.
SHIFT_MIN_ROWS = 50


def set_shift(sizes, reference):
    """Departures of a catalog's set sizes from the calibration rows' rates.

    Parameters
    ----------
    sizes : array-like of int
        Set size of every classified row of the catalog.
    reference : dict
        ``n``, ``empty``, ``singleton``, ``mean_size`` of the calibration rows
        (see `sourceclf.conformal.reference_set_rates`).

    Returns
    -------
    departures : list of tuple
        ``(statistic, catalog value, calibration value)`` for each statistic
        that departs towards less decisive sets by more than sampling noise:
        ``'empty'`` (more empty sets), ``'singleton'`` (fewer single-class
        sets), ``'mean_size'`` (larger sets, with more of two classes or
        more); empty when the catalog's sets are as decisive as the
        calibration rows' or more (or it has fewer than `SHIFT_MIN_ROWS`
        rows).

    Examples
    --------
    >>> ref = {"n": 2000, "empty": 0.01, "singleton": 0.9, "mean_size": 1.09}
    >>> set_shift([1] * 900 + [2] * 90 + [0] * 10, ref)
    []
    >>> [d[0] for d in set_shift([0] * 600 + [1] * 400, ref)]
    ['empty', 'singleton']
    >>> [d[0] for d in set_shift([1] * 700 + [2] * 300, ref)]
    ['singleton', 'mean_size']
    >>> set_shift([1] * 1000, ref)  # more decisive than the calibration rows
    []
    """
    sizes = np.asarray(sizes, dtype=float)
    n, n_ref = len(sizes), int(reference["n"])
    if n < SHIFT_MIN_ROWS or n_ref < 1:
        return []
    observed = {"empty": float(np.mean(sizes == 0)), "singleton": float(np.mean(sizes == 1)),
                "mean_size": float(sizes.mean())}
    departures = []
    for key in ("empty", "singleton", "mean_size"):
        ref = float(reference[key])
        if key == "mean_size":
            variance = max(float(sizes.var()), 0.25 / n_ref)
        else:  # binomial, pooled, never below one row's worth
            p = (observed[key] * n + ref * n_ref) / (n + n_ref)
            variance = max(p * (1 - p), 1.0 / (n + n_ref))
        standard_error = np.sqrt(variance * (1.0 / n + 1.0 / n_ref))
        # Positive when the catalog's sets are less decisive than the reference's; a
        # larger mean size counts only when it comes from more multi-class sets (not
        # from fewer empty ones).
        difference = (ref - observed[key]) if key == "singleton" else (observed[key] - ref)
        if key == "mean_size" and (observed["empty"] + observed["singleton"]
                                   >= float(reference["empty"]) + float(reference["singleton"])):
            difference = 0.0
        if difference > SHIFT_Z * standard_error and difference > SHIFT_TOLERANCE[key]:
            departures.append((key, observed[key], ref))
    return departures


_WORDS = {"empty": "empty sets", "singleton": "single-class sets", "mean_size": "mean set size"}


def shift_message(departures, level, model_name, flag=None, apart=()):
    """One line saying how the sets depart, and what to do about it.

    With ``flag``, the line speaks of the rows flagged so, whose sets come
    from the model's calibration table of such rows; ``apart`` names the
    flags whose rows were compared with their own tables, and so are not
    among the rows the line speaks of.
    """
    parts = []
    for key, value, ref in departures:
        if key == "mean_size":
            parts.append(f"{_WORDS[key]} {value:.2f} against {ref:.2f}")
        else:
            parts.append(f"{_WORDS[key]} {value:.1%} against {ref:.1%}")
    if flag is not None:
        return (f"the {level:g} prediction sets of model '{model_name}' on this catalog's rows "
                f"flagged '{flag}' are unlike those of its calibration table of such rows "
                f"({'; '.join(parts)}): these rows differ from the ones their sets were "
                "calibrated on, so the sets' coverage is not guaranteed; check them against "
                "a few hundred labelled rows like them before trusting their classes")
    rows = "this catalog" + ("'s rows not flagged " + " or ".join(f"'{f}'" for f in apart)
                             if apart else "")
    return (f"the {level:g} prediction sets of model '{model_name}' on {rows} are unlike "
            f"those of its calibration data ({'; '.join(parts)}): the catalog differs from the "
            "data the model was calibrated on, so the sets' coverage is not guaranteed; "
            "recalibrate with sourceclf.calibrate on a few hundred labelled rows like these")


def check_set_shift(out, clf, rows, levels, *, score=None, by=None, source=None,
                    row_flags=None):
    """Record the calibration rows' set rates in ``meta``; warn once if the sets depart.

    The rows whose sets come from the model's calibration rows are compared
    with those rows, weighted to their magnitudes
    (`sourceclf.conformal.reference_set_bins`); the rows of each flag whose
    sets come from a table of their own (``out['pred_flag']``,
    `sourceclf.conformal.flag_set_groups`) with that table's rows.
    ``meta['CLFSHREF']`` holds the reference of the rows whose sets come
    from the model's calibration rows, per magnitude bin with those rows in
    each (JSON, by level), ``meta['CLFSHFLG']`` that of each flag's rows
    (JSON, ``{flag: {level: bins}}``), so that a streamed run can test the
    whole catalog at the end; ``meta['CLFSHIFT']`` the alarm, when there
    is one (the first departure found), also given as a
    `~sourceclf.exceptions.ShiftAlarmWarning`.

    Parameters
    ----------
    out : `~astropy.table.Table`
        The classified table, with its set-size columns and ``pred_flag``.
    clf : `~sourceclf.models.SourceClassifier`
        The model, with its calibration data.
    rows : array-like of int
        The classified rows' indices in ``out``.
    levels : list of float
        The sets' confidence levels.
    score, by
        As given to `sourceclf.conformal.add_prediction_sets`.
    source : `~astropy.table.Table`, optional
        The rows under sourceclf's column names, where their magnitudes
        (`sourceclf.conformal.MATCH_COLUMNS`) are read; default ``out``.
    row_flags : array-like of str, optional
        Each row of ``out``'s ``pred_flag`` (default: ``out['pred_flag']``, or
        none).

    Returns
    -------
    message : str or None
        The alarm.
    """
    rows = np.asarray(rows, dtype=np.int64)
    source = out if source is None else source
    if row_flags is None and "pred_flag" in out.colnames:
        row_flags = out["pred_flag"]
    flags = np.full(len(rows), "") if row_flags is None else np.asarray(row_flags)[rows]
    groups = flag_set_groups(flags, getattr(clf, "flag_calibrations", None) or {})
    known = {column: group_values(source, column) for column in MATCH_COLUMNS}
    references, by_flag, message = {}, {}, None
    for group in dict.fromkeys(("", *sorted(set(groups) - {""}))):
        these = rows[groups == group]
        flag = group or None
        magnitudes = {column: values[these] for column, values in known.items()
                      if values is not None}
        for level, (_, size_column) in zip(levels, set_columns(levels)):
            bins = reference_set_bins(clf, level, score=score, by=by, magnitudes=magnitudes,
                                      flag=flag)
            (references if flag is None else by_flag.setdefault(flag, {}))[f"{level:g}"] = bins
            departures = set_shift(np.ma.getdata(out[size_column])[these],
                                   combine_set_bins(bins))
            if departures and message is None:
                message = shift_message(departures, level, clf.name, flag=flag,
                                        apart=sorted(set(groups) - {""}))
    out.meta["CLFSHREF"] = json.dumps(references, sort_keys=True)
    out.meta.pop("CLFSHFLG", None)
    if by_flag:
        out.meta["CLFSHFLG"] = json.dumps(by_flag, sort_keys=True)
    out.meta.pop("CLFSHIFT", None)
    if message is not None:
        out.meta["CLFSHIFT"] = message
        warnings.warn(message, ShiftAlarmWarning, stacklevel=3)
    return message
