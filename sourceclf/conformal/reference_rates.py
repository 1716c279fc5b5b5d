"""How often a model's prediction sets are empty or single on its own calibration rows.

These rates are the reference a shift alarm compares a new catalog's sets
with: on sources drawn like the calibration sources, a model's sets at a
level are empty, single or larger in the proportions its calibration rows
give them.  Sets grow as sources get fainter, so a catalog is compared with
its calibration rows weighted to the catalog's own r magnitudes
(`reference_set_bins`), when both have them: a catalog of bright sources
against bright calibration rows, not against all of them.
"""

import weakref

import numpy as np

from ..exceptions import InvalidInputError
from ..utils._validation import check_by, check_confidence_levels
from .calibration_tables import group_values
from .flag_sets import flag_predictor
from .predictor import ConformalPredictor

__all__ = ["reference_set_rates", "reference_set_bins", "combine_set_bins", "MATCH_BINS",
           "MATCH_COLUMNS"]

# Per model object: {(level, score, by): (set sizes, magnitudes by column)}; entries
# die with the model.
_CACHE = weakref.WeakKeyDictionary()

#: Bins of the calibration rows' magnitudes (equal counts) over which a
#: catalog is matched (`reference_set_bins`).
MATCH_BINS = 20

#: Magnitudes a catalog is matched on, in order of preference: the first
#: that both the catalog and the calibration table have.
MATCH_COLUMNS = ("r", "dered_r")

_STATISTICS = ("empty", "singleton", "mean_size")


def reference_set_rates(clf, level, *, score=None, by=None, magnitudes=None, flag=None):
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
    magnitudes : dict, optional
        The catalog's magnitudes, ``{column: values}`` for columns of
        `MATCH_COLUMNS`: the rates are then those of the calibration rows
        weighted to the catalog's distribution of the first of them that
        both have (`MATCH_BINS` bins of equal calibration counts), and ``n``
        is the weighted rows' effective number (Kish's).  Without a column in
        common, or without a finite magnitude, the rates of all calibration
        rows.
    flag : str, optional
        The rates of the model's calibration table of the rows flagged
        ``flag`` (``clf.flag_calibrations``), with the sets ``classify`` gives
        such rows (`sourceclf.conformal.flag_predictor`), instead of its
        calibration rows': the reference of a catalog's rows so flagged.

    Returns
    -------
    rates : dict
        ``n`` (int, calibration rows), ``empty`` and ``singleton`` (float,
        fractions of those rows whose set is empty / has one class) and
        ``mean_size`` (float, mean number of classes per set); when matched,
        also ``matched``: the magnitude column.

    Raises
    ------
    InvalidInputError
        If the model has no calibration data (or no table for ``flag``), or a
        setting is invalid.

    Examples
    --------
    >>> from sourceclf.models import load_model
    >>> rates = reference_set_rates(load_model("margnet-photometry-sg"), 0.9)
    >>> sorted(rates)
    ['empty', 'mean_size', 'n', 'singleton']
    """
    return combine_set_bins(reference_set_bins(clf, level, score=score, by=by,
                                               magnitudes=magnitudes, flag=flag))


def reference_set_bins(clf, level, *, score=None, by=None, magnitudes=None, flag=None):
    """`reference_set_rates` per magnitude bin, with the catalog's count in each.

    What ``meta['CLFSHREF']`` records: the catalog's counts of two parts add
    up to the whole's, so a catalog classified in chunks gets the rates of
    the whole (`combine_set_bins`).

    Parameters
    ----------
    clf, level, score, by, magnitudes, flag
        As for `reference_set_rates`.

    Returns
    -------
    bins : dict
        ``matched`` (the magnitude column, or None: one bin), ``rows`` (the
        catalog's finite magnitudes in each bin), ``calibration`` (the
        calibration rows in each), and ``empty``, ``singleton``,
        ``mean_size``: their rates in each bin.

    Examples
    --------
    >>> from sourceclf.models import load_model
    >>> clf = load_model("margnet-photometry-sg")
    >>> bins = reference_set_bins(clf, 0.9, magnitudes={"r": [17.0, 17.5, 21.0]})
    >>> bins["matched"], len(bins["rows"]), sum(bins["rows"])
    ('r', 20, 3)
    """
    level = check_confidence_levels(level, required=True)
    if len(level) != 1:
        raise InvalidInputError(f"reference_set_rates takes one confidence level, got {level}")
    key = (level[0], None if score is None else str(score).lower(),
           None if by is None else str(by), flag)
    per_model = _CACHE.setdefault(clf, {})
    if key not in per_model:
        per_model[key] = _sizes(clf, level[0], score, by, flag)
    size, reference = per_model[key]
    for column in MATCH_COLUMNS:
        values = (magnitudes or {}).get(column)
        known = reference.get(column)
        if values is None or known is None or np.isfinite(known).sum() < MATCH_BINS:
            continue
        finite = np.isfinite(known)
        edges = np.quantile(known[finite], np.linspace(0, 1, MATCH_BINS + 1))
        index = _bin_index(edges, known[finite])
        values = np.asarray(values, dtype=np.float64)
        rows = np.bincount(_bin_index(edges, values[np.isfinite(values)]), minlength=MATCH_BINS)
        return {"matched": column, "rows": rows.tolist(),
                **_bin_rates(size[finite], index, MATCH_BINS)}
    return {"matched": None, "rows": [0], **_bin_rates(size, np.zeros(size.size, int), 1)}


def _bin_index(edges, values):
    """Bin of each value (those beyond the edges in the end bins)."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def _bin_rates(size, index, bins):
    count = np.bincount(index, minlength=bins)
    safe = np.maximum(count, 1)
    return {"calibration": count.tolist(),  # rounded: as meta['CLFSHREF'] keeps them
            "empty": np.round(np.bincount(index, size == 0, bins) / safe, 5).tolist(),
            "singleton": np.round(np.bincount(index, size == 1, bins) / safe, 5).tolist(),
            "mean_size": np.round(np.bincount(index, size, bins) / safe, 5).tolist()}


def combine_set_bins(bins):
    """The set-size rates of `reference_set_bins`' calibration rows weighted to the catalog.

    Each bin weighs as the catalog's share of rows in it (the calibration
    rows' own shares when the catalog has no magnitude there or at all).

    Parameters
    ----------
    bins : dict
        `reference_set_bins`' output, or the ``rows`` of several catalogs'
        added up.

    Returns
    -------
    rates : dict
        As `reference_set_rates`; ``n`` is the weighted calibration rows'
        effective number (Kish's), ``matched`` the magnitude column when
        the catalog had one.
    """
    calibration = np.asarray(bins["calibration"], dtype=np.float64)
    rows = np.where(calibration > 0, np.asarray(bins["rows"], dtype=np.float64), 0.0)
    if calibration.sum() == 0:
        return {"n": 0, **{stat: float("nan") for stat in _STATISTICS}}
    matched = bins.get("matched") is not None and rows.sum() > 0
    share = rows / rows.sum() if matched else calibration / calibration.sum()
    out = {stat: float(share @ np.asarray(bins[stat], dtype=np.float64))
           for stat in _STATISTICS}
    # Each calibration row of bin b weighs share_b / calibration_b: Kish's effective n.
    squares = np.divide(share ** 2, calibration, out=np.zeros_like(share),
                        where=calibration > 0).sum()
    out["n"] = int(round(1.0 / squares)) if squares > 0 else 0
    return out | ({"matched": bins["matched"]} if matched else {})


def _sizes(clf, level, score, by, flag=None):
    """The calibration rows' set sizes at ``level``, and their `MATCH_COLUMNS` magnitudes
    (those of the table of the rows flagged ``flag``, with its sets, when given)."""
    cp = ConformalPredictor.from_classifier(clf, level, score=score, by=by)
    calibration = clf.calibration
    if flag is not None:
        cp = flag_predictor(clf, flag, cp)
        calibration = clf.flag_calibrations[flag]
    proba = np.column_stack([np.asarray(calibration[f"prob_{c.lower()}"], dtype=np.float64)
                             for c in cp.classes])
    column = check_by(cp.by)
    values = None
    if column is not None and column.lower() != "class":
        values = group_values(calibration, column)
    sets, _ = cp.predict_sets(proba, values)
    size = sets[:, :, 0].sum(axis=1).astype(np.float64)
    return size, {column: (np.asarray(calibration[column], dtype=np.float64)
                           if column in calibration.colnames else None)
                  for column in MATCH_COLUMNS}
