"""How well a classified catalog did, against known classes.

`evaluate` takes the output of `sourceclf.classify` for sources whose true
class is known and measures the point predictions (accuracy, macro
precision / recall / F1, confusion matrix, calibration of the probabilities)
and the conformal prediction sets (empirical coverage, set sizes), overall,
per class and per magnitude bin.  `sourceclf.plotting` draws the results.
"""

import warnings

import numpy as np
from astropy.table import Table

from .columns import decode_strings, map_columns
from .conformal import group_values, parse_set_column, probability_classes, set_membership
from .exceptions import InvalidInputError, SourceclfWarning
from .plotting import plot_confusion_matrix, plot_coverage_vs_magnitude, plot_reliability

__all__ = ["EvaluationResult", "balanced_hit_rate", "evaluate", "set_levels"]


class EvaluationResult:
    """Metrics of a classified, labelled table (returned by `evaluate`).

    Attributes
    ----------
    summary : `~astropy.table.Table`
        One row per prediction-set level (one row with ``level`` NaN when the
        table has no sets): ``n``, ``n_unclassified``, ``accuracy``,
        ``precision_macro``, ``recall_macro``, ``f1_macro``, ``ece`` (expected
        calibration error of the top-class probability), ``level``,
        ``coverage`` (fraction of sources whose true class is in the set),
        ``coverage_err`` (its binomial standard error), ``mean_set_size``,
        ``mean_set_size_err`` (its standard error), ``empty_fraction``,
        ``singleton_fraction``.
    per_class : `~astropy.table.Table`
        One row per (true class, level): ``n``, ``precision``, ``recall``,
        ``f1`` and the set columns.
    per_bin : `~astropy.table.Table` or None
        One row per (magnitude bin, level): ``mag_lo``, ``mag_hi``,
        ``mag_median`` (of the bin's rows), ``n``, ``accuracy`` and the set
        columns; None without a magnitude column.
    confusion : `~astropy.table.Table`
        Counts; rows are true classes (column ``true_class``), columns
        predicted classes.
    reliability : `~astropy.table.Table`
        Reliability diagram: top-class probability bins, their mean
        probability and accuracy.
    classes : tuple of str
    levels : list of float
    mag_column : str or None
    min_count : int
        Fewest sources of a bin the plots draw (see `evaluate`).
    """

    def __init__(self, summary, per_class, per_bin, confusion, reliability, classes, levels,
                 mag_column, min_count=1):
        self.min_count = int(min_count)
        self.summary = summary
        self.per_class = per_class
        self.per_bin = per_bin
        self.confusion = confusion
        self.reliability = reliability
        self.classes = tuple(classes)
        self.levels = list(levels)
        self.mag_column = mag_column

    @property
    def confusion_matrix(self):
        """Confusion counts as an array (true class x predicted class)."""
        return np.array([[int(row[c]) for c in self.classes] for row in self.confusion])

    def as_dict(self):
        """JSON-able summary: overall metrics and coverage per level."""
        first = self.summary[0]
        out = {k: _py(first[k]) for k in ("n", "n_unclassified", "accuracy",
                                          "precision_macro", "recall_macro", "f1_macro",
                                          "ece")}
        out["classes"] = list(self.classes)
        out["confusion_matrix"] = self.confusion_matrix.tolist()
        out["sets"] = [{k: _py(row[k]) for k in ("level", "coverage", "coverage_err",
                                                 "mean_set_size", "empty_fraction",
                                                 "singleton_fraction")}
                       for row in self.summary if np.isfinite(row["level"])]
        return out

    def __repr__(self):
        first = self.summary[0]
        text = (f"<EvaluationResult n={first['n']} accuracy={first['accuracy']:.4f} "
                f"f1_macro={first['f1_macro']:.4f}")
        for row in self.summary:
            if np.isfinite(row["level"]):
                text += (f"; {row['level']:g}: coverage={row['coverage']:.4f} "
                         f"size={row['mean_set_size']:.3f}")
        return text + ">"

    # Plots (see sourceclf.plotting) -------------------------------------------
    def plot_confusion_matrix(self, **kwargs):
        """`sourceclf.plotting.plot_confusion_matrix` of this result."""
        return plot_confusion_matrix(self, **kwargs)

    def plot_coverage(self, **kwargs):
        """`sourceclf.plotting.plot_coverage_vs_magnitude` of this result."""
        return plot_coverage_vs_magnitude(self, **kwargs)

    def plot_reliability(self, **kwargs):
        """`sourceclf.plotting.plot_reliability` of this result."""
        return plot_reliability(self, **kwargs)


def balanced_hit_rate(hit, first, second):
    """The mean of the hit rates of two groups of rows (a balanced accuracy).

    Parameters
    ----------
    hit : array of bool
        Whether each row was called right (or its set held the truth).
    first, second : array of bool
        The rows of each group, e.g. the point-like and the extended sources.

    Returns
    -------
    rate : float
        ``(hit[first].mean() + hit[second].mean()) / 2``; NaN when either group
        is empty.
    """
    hit, first, second = (np.asarray(a, bool) for a in (hit, first, second))
    if not first.any() or not second.any():
        return float("nan")
    return float((hit[first].mean() + hit[second].mean()) / 2)


def _py(value):
    value = np.asarray(value).item()
    return None if isinstance(value, float) and not np.isfinite(value) else value


def set_levels(table):
    """Confidence levels of the prediction sets in a classified table, with their columns.

    Returns
    -------
    levels : list of (float, str, str)
        ``(level, set column, size column)``, by increasing level.
    """
    out = []
    if "pred_set" in table.colnames and "pred_set_size" in table.colnames:
        conf = table.meta.get("CLFCONF")
        try:
            level = float(conf)
        except (TypeError, ValueError):
            level = float("nan")
        out.append((level, "pred_set", "pred_set_size"))
    for name in table.colnames:
        kind, level = parse_set_column(name) or (None, None)
        set_name = "pred_set" + name[len("pred_set_size"):]
        if kind == "size" and level is not None and set_name in table.colnames:
            out.append((level, set_name, name))
    return sorted(out, key=lambda t: (np.isnan(t[0]), t[0]))


def _bin_edges(values, bins):
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    if bins is None:
        lo, hi = np.floor(finite.min() * 2) / 2, np.ceil(finite.max() * 2) / 2
        if hi <= lo:
            hi = lo + 0.5
        return np.arange(lo, hi + 0.25, 0.5)
    if np.isscalar(bins):
        k = int(bins)
        if k < 1:
            raise InvalidInputError(f"bins must be positive, got {bins}")
        edges = np.quantile(finite, np.linspace(0, 1, k + 1))
        edges[-1] = np.nextafter(edges[-1], np.inf)
        return np.unique(edges)
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise InvalidInputError("bins must be at least two increasing bin edges")
    return edges


def _merge_sparse_bins(edges, values, min_count):
    """Merge neighbouring automatic bins until each holds ``min_count`` values.

    Runs of non-empty bins separated by empty ones are merged separately (a
    merged bin never spans an empty range); within a run, bins are joined
    from the faint end... left to right until a bin holds ``min_count``
    values, and a sparse remainder joins the bin before it.  A run with fewer
    than ``min_count`` values in all stays one (sparse) bin.

    Returns
    -------
    bins : list of (float, float)
        ``(low, high)`` edges of the merged bins, in order.
    """
    counts = np.histogram(values[np.isfinite(values)], bins=edges)[0]
    out = []
    run = []  # merged bins of the current run of non-empty bins: [low, high, count]
    for k, count in enumerate(list(counts) + [0]):
        if count == 0:  # an empty bin (or the end) closes the run
            if len(run) > 1 and run[-1][2] < min_count:
                run[-2][1], run[-2][2] = run[-1][1], run[-2][2] + run[-1][2]
                run.pop()
            out.extend((lo, hi) for lo, hi, _ in run)
            run = []
            continue
        if run and run[-1][2] < min_count:
            run[-1][1], run[-1][2] = edges[k + 1], run[-1][2] + count
        else:
            run.append([edges[k], edges[k + 1], count])
    return out


def _set_stats(member_true, sizes, level):
    n = len(sizes)
    if n == 0 or not np.isfinite(level):
        return dict(level=level, coverage=np.nan, coverage_err=np.nan, mean_set_size=np.nan,
                    mean_set_size_err=np.nan, empty_fraction=np.nan,
                    singleton_fraction=np.nan)
    cov = float(np.mean(member_true))
    return dict(level=level, coverage=cov, coverage_err=float(np.sqrt(cov * (1 - cov) / n)),
                mean_set_size=float(np.mean(sizes)),
                mean_set_size_err=float(np.std(sizes) / np.sqrt(n)),
                empty_fraction=float(np.mean(sizes == 0)),
                singleton_fraction=float(np.mean(sizes == 1)))


def _find_label_column(table, name):
    """The table's column called ``name``, in any case (an exact match first)."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"label_column must be a column name, got {name!r}")
    if name in table.colnames:
        return name
    matches = [c for c in table.colnames if c.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidInputError(f"label column '{name}' matches several columns "
                                f"({', '.join(matches)}); pass label_column= one of them")
    raise InvalidInputError(f"column '{name}' (any case) not in table; evaluate needs the "
                            "output of sourceclf.classify with a column of true classes "
                            "(label_column=)")


def evaluate(table, *, label_column="class", mag_column=None, bins=None,
             reliability_bins=10, min_count=20, columns=None):
    """Evaluate a classified table against its true classes.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Output of `sourceclf.classify` (``pred_class``, ``prob_<class>`` and,
        when present, prediction-set columns) with a column of true classes.
        Tables read back from FITS or ECSV work too.
    label_column : str
        Column of true classes, its name matched in any case (``'class'``
        finds ``CLASS`` or ``Class``; an exact match wins); its values in
        any case too, bytes decoded.
    mag_column : str, optional
        Column for the per-bin metrics; default ``'dered_r'`` when the table
        can supply it (``dered_r``, or ``r``/``modelMag_r`` with
        ``extinction_r``), else ``'r'``.  ``False`` skips the per-bin table.
    bins : int or sequence of float, optional
        Magnitude bins: edges, or a number of equal-count bins; default
        0.5-mag bins over the data, empty ones left out and neighbouring
        ones merged until each holds ``min_count`` sources (never across an
        empty range).
    reliability_bins : int
        Bins of the top-class probability for the reliability diagram.
    min_count : int
        Fewest sources a bin needs to be merged no further (automatic
        magnitude bins) and to be drawn by the plots; recorded as
        ``result.min_count``.  Bins with fewer are kept in the tables, with
        their ``n``.
    columns : dict, optional
        The table's own names for sourceclf's inputs, as for
        `sourceclf.classify` (e.g. ``{'r': 'rmag'}``): the default magnitude
        column is then found under them.

    Returns
    -------
    result : `EvaluationResult`

    Notes
    -----
    Rows that were not classified (masked ``pred_class``) are left out and
    counted in ``n_unclassified``; rows whose true class the model does not
    know (e.g. QSO for a star/galaxy model) are left out with a
    `~sourceclf.exceptions.SourceclfWarning`.  ``coverage_err`` is the
    binomial standard error of the coverage on these rows alone; the spread
    from one calibration set to another adds to it (see `sourceclf.conformal`).

    Examples
    --------
    >>> from sourceclf import classify, evaluate
    >>> from sourceclf.demo import demo_catalog
    >>> result = evaluate(classify(demo_catalog(300, random_state=5),
    ...                            model="margnet-photometry-sg"))
    >>> float(result.summary["accuracy"][0]) > 0.8
    True
    >>> result.per_class["class"].tolist()
    ['GALAXY', 'STAR']
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if not isinstance(table, Table):
        raise InvalidInputError(f"evaluate takes an astropy Table, got {type(table).__name__}")
    catalog = map_columns(table, columns)
    label_column = _find_label_column(table, label_column)
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) \
            or min_count < 1:
        raise InvalidInputError(f"min_count must be a positive integer, got {min_count!r}")
    if "pred_class" not in table.colnames:
        raise InvalidInputError("column 'pred_class' not in table; evaluate needs the output "
                                "of sourceclf.classify with a column of true classes")
    classes = probability_classes(table)
    if len(classes) < 2:
        raise InvalidInputError("table has no prob_<class> columns; is it classified?")
    truth = np.char.upper(decode_strings(np.ma.getdata(table[label_column])))
    pred_col = table["pred_class"]
    pred = np.char.upper(decode_strings(np.ma.getdata(pred_col)))
    classified = ~np.ma.getmaskarray(pred_col) & (pred != "")
    known = np.isin(truth, classes) & ~np.ma.getmaskarray(table[label_column])
    foreign = classified & ~known
    if foreign.any():
        names = sorted(set(truth[foreign].tolist()))
        warnings.warn(f"{int(foreign.sum())} rows labelled {names}, not classes of the model "
                      f"({', '.join(classes)}), are left out", SourceclfWarning, stacklevel=2)
    use = classified & known
    n_unclassified = int((~classified & known).sum())
    idx = {c: k for k, c in enumerate(classes)}
    y = np.array([idx[c] for c in truth[use]], dtype=np.int64)
    yp = np.array([idx.get(c, -1) for c in pred[use]], dtype=np.int64)
    labels = list(range(len(classes)))

    proba = np.column_stack([np.ma.filled(np.ma.asarray(table[f"prob_{c.lower()}"],
                                                        dtype=np.float64), np.nan)
                             for c in classes])[use]
    top = np.max(proba, axis=1) if len(proba) else np.zeros(0)
    correct = (yp == y)
    rel_edges = np.linspace(1 / len(classes), 1, int(reliability_bins) + 1)
    which = np.clip(np.searchsorted(rel_edges, top, side="right") - 1, 0, len(rel_edges) - 2)
    rel_rows = []
    ece = 0.0
    for k in range(len(rel_edges) - 1):
        m = which == k
        nk = int(m.sum())
        conf = float(top[m].mean()) if nk else np.nan
        acc = float(correct[m].mean()) if nk else np.nan
        if nk:
            ece += nk / max(len(top), 1) * abs(acc - conf)
        rel_rows.append((rel_edges[k], rel_edges[k + 1], nk, conf, acc))
    reliability = Table(rows=rel_rows, names=("prob_lo", "prob_hi", "n", "mean_prob",
                                              "accuracy"),
                        dtype=(float, float, int, float, float))

    n = int(use.sum())
    if n:
        p, r, f, _ = precision_recall_fscore_support(y, yp, labels=labels, average="macro",
                                                     zero_division=0)
        pc, rc, fc, _ = precision_recall_fscore_support(y, yp, labels=labels, average=None,
                                                        zero_division=0)
        cm = confusion_matrix(y, yp, labels=labels)
        accuracy = float(np.mean(correct))
    else:
        p = r = f = accuracy = np.nan
        pc = rc = fc = np.full(len(classes), np.nan)
        cm = np.zeros((len(classes), len(classes)), dtype=int)
    confusion = Table({"true_class": classes, **{c: cm[:, k] for k, c in enumerate(classes)}})

    levels = set_levels(table)
    set_data = []
    for level, set_col, size_col in levels:
        member = set_membership(table, classes, level=None if set_col == "pred_set" else level)
        member = member[use]
        sizes = np.ma.filled(np.ma.asarray(table[size_col]), 0)[use].astype(int)
        set_data.append((level, member[np.arange(n), y] if n else np.zeros(0, bool), sizes))
    if not set_data:
        set_data = [(np.nan, np.zeros(n, dtype=bool), np.zeros(n, dtype=int))]

    base = dict(n=n, n_unclassified=n_unclassified, accuracy=accuracy, precision_macro=float(p),
                recall_macro=float(r), f1_macro=float(f), ece=float(ece) if n else np.nan)
    summary = Table(rows=[{**base, **_set_stats(cov, size, level)}
                          for level, cov, size in set_data])

    class_rows = []
    for k, c in enumerate(classes):
        m = y == k
        for level, cov, size in set_data:
            class_rows.append({"class": c, "n": int(m.sum()), "precision": float(pc[k]),
                               "recall": float(rc[k]), "f1": float(fc[k]),
                               **_set_stats(cov[m], size[m], level)})
    per_class = Table(rows=class_rows)

    per_bin = None
    mag_name = None
    if mag_column is not False:
        if mag_column is None:
            for cand in ("dered_r", "r"):
                values = group_values(catalog, cand)
                if values is not None:
                    mag_name = cand
                    break
        else:
            values = group_values(catalog, mag_column)
            if values is None:
                raise InvalidInputError(f"mag_column '{mag_column}' not in table")
            mag_name = mag_column
        if mag_name is not None:
            mags = values[use]
            edges = _bin_edges(mags, bins)
            if edges is not None:
                if bins is None:  # automatic bins: no empty ones, merged to min_count
                    pairs = _merge_sparse_bins(edges, mags, int(min_count))
                else:
                    pairs = list(zip(edges[:-1], edges[1:]))
                bin_rows = []
                for lo, hi in pairs:
                    m = (mags >= lo) & (mags < hi) & np.isfinite(mags)
                    for level, cov, size in set_data:
                        bin_rows.append({
                            "mag_lo": float(lo), "mag_hi": float(hi),
                            "mag_median": float(np.median(mags[m])) if m.any() else np.nan,
                            "n": int(m.sum()),
                            "accuracy": float(np.mean(correct[m])) if m.any() else np.nan,
                            **_set_stats(cov[m], size[m], level)})
                per_bin = Table(rows=bin_rows)
                per_bin.meta["mag_column"] = mag_name
                per_bin.meta["min_count"] = int(min_count)
    level_list = [lv for lv, _, _ in set_data if np.isfinite(lv)]
    return EvaluationResult(summary, per_class, per_bin, confusion, reliability, classes,
                            level_list, mag_name, min_count=int(min_count))
