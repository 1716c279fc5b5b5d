"""Conformal prediction sets from a model's stored calibration probabilities.

Every shipped model carries the class probabilities it gave to a held-out
*calibration* split of its training data (``clf.calibration``, written by
`sourceclf.training.calibration_table` or by `sourceclf.calibrate`).  This
module turns them into split-conformal prediction sets with MAPIE 1.x
(`mapie.classification.SplitConformalClassifier`, ``prefit=True``) wrapped
around `ProbabilityPassthrough`, a fitted scikit-learn classifier whose input
*is* the probability matrix.  Nothing is refitted: the calibration
probabilities are conformalized and the sets of new rows follow from their
probabilities alone.

Conformity scores (``score``), as named by MAPIE:

``'lac'``
    One minus the probability of the label (Sadinle et al. 2019): smallest
    sets on average; a row may get an *empty* set when no class is probable
    enough.  The only score MAPIE 1.x allows for two-class models.
``'aps'``, ``'aps-randomized'``
    Adaptive prediction sets (Romano et al. 2020): labels are added by
    decreasing probability until their summed probability reaches the
    calibrated threshold.  ``'aps'`` keeps the label that crosses the
    threshold (MAPIE's ``include_last_label=True``: never empty, coverage at or
    above the target); ``'aps-randomized'`` keeps it at random
    (``include_last_label='randomized'``: exact coverage on average, empty sets
    possible).
``'raps'``, ``'raps-randomized'``
    Regularised APS (Angelopoulos et al. 2021), penalising large sets; MAPIE
    holds out 20% of the calibration rows to tune the penalty.
``'top_k'``
    The same number of most probable labels for every row.

Calibration (``by``):

``None`` (marginal)
    One threshold from all calibration rows.  Guarantee: over new sources
    *drawn like the calibration sources*, the true class is in the set with
    probability at least the confidence level, averaged over all of them.
    Nothing is promised for any subgroup (faint sources, one class...), nor
    for sources unlike the calibration data.
``'class'`` (class-conditional Mondrian)
    One threshold per class, from the calibration rows of that class; a label
    enters a row's set when its score passes *that label's* threshold.
    Guarantee: for every class separately, sources of that class are covered
    at the confidence level (exchangeability within each class).
a column name, e.g. ``'dered_r'`` or ``'r'`` (magnitude-binned Mondrian)
    The calibration rows are binned in that column and every bin gets its own
    threshold; a new row uses the threshold of the bin its own value falls in
    (rows beyond the calibration range use the first or last bin; rows without
    a value use the marginal threshold and are flagged).  Guarantee: coverage
    at the confidence level within every bin, for sources drawn like the
    calibration sources of that bin.  This repairs a model whose errors grow
    with magnitude, but only if the calibration data reach the magnitudes of
    the sources classified.

Bins (rule).  With ``bins=None`` the number of bins is
``K = min(5, floor(n / n_min))`` (at least 1) with equal numbers of
calibration rows per bin (edges at calibration quantiles of the column), where
``n`` counts the calibration rows with a finite value and, for the strictest
requested level with miscoverage ``alpha``::

    n_min = max(50, ceil(alpha * (1 - alpha) / 0.015**2), ceil(2 * (1 - alpha) / alpha))

so that the coverage a bin's threshold gives, which scatters with standard
deviation ``sqrt(alpha (1 - alpha) / (n_bin + 2))`` from one calibration draw to
another, is known to 1.5 percentage points (400 rows at 90%), and the
conformal quantile exists with room to spare.  A bin with fewer than
``n_min`` rows (explicit ``bins``, ties) gives a `SourceclfWarning`; one with
fewer than MAPIE's minimum ``max(1/alpha, 1/(1 - alpha))`` is an error.

Output columns (`add_prediction_sets`).  One level: ``pred_set`` (the classes
joined by ``'|'`` in the model's class order, ``''`` for an empty set) and
``pred_set_size``.  Several levels: ``pred_set_<L>`` and ``pred_set_size_<L>``
with ``<L>`` the level in percent, a ``'p'`` for a decimal point
(`level_suffix`: 0.9 -> ``90``, 0.975 -> ``97p5``).  Magnitude-binned Mondrian
adds ``pred_set_group`` (the bin index; -1 when the row had no value).  Rows
that could not be classified are masked.  FITS and ECSV readers mask empty
strings, so after a round trip an empty set reads back as a masked
``pred_set`` with ``pred_set_size`` 0; `set_membership` tells the two apart.
"""

import math
import re
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .exceptions import InvalidInputError

__all__ = ["SCORES", "ProbabilityPassthrough", "ConformalPredictor", "add_prediction_sets",
           "bin_rule_min_count", "format_sets", "group_values", "level_suffix",
           "parse_level_suffix", "set_columns", "set_membership"]

#: Conformity scores: name -> (MAPIE score name, MAPIE ``include_last_label``).
SCORES = {
    "lac": ("lac", True),
    "aps": ("aps", True),
    "aps-randomized": ("aps", "randomized"),
    "raps": ("raps", True),
    "raps-randomized": ("raps", "randomized"),
    "top_k": ("top_k", True),
}

_MAX_AUTO_BINS = 5
_BIN_PRECISION = 0.015
_SET_COLUMN = re.compile(r"^pred_set(_size)?(_\d+(p\d+)?)?$")


class ProbabilityPassthrough(ClassifierMixin, BaseEstimator):
    """A fitted scikit-learn classifier whose input is its own output.

    ``predict_proba(X)`` returns ``X``: the columns of ``X`` are class
    probabilities in the order of ``classes``.  It lets MAPIE conformalize
    probabilities computed elsewhere (by a torch model, or stored in a
    calibration table) without refitting anything.

    Parameters
    ----------
    classes : sequence of str
        Class labels, in column order.  MAPIE encodes labels in sorted order,
        so give them sorted (`ConformalPredictor` does).

    Examples
    --------
    >>> import numpy as np
    >>> est = ProbabilityPassthrough(("GALAXY", "STAR")).fit()
    >>> est.predict(np.array([[0.8, 0.2], [0.3, 0.7]]))
    array(['GALAXY', 'STAR'], dtype='<U6')
    """

    def __init__(self, classes=("GALAXY", "STAR")):
        self.classes = classes

    def fit(self, X=None, y=None):
        """Record the classes; ``X`` and ``y`` are ignored."""
        self.classes_ = np.asarray(self.classes)
        self.n_features_in_ = len(self.classes_)
        return self

    def predict_proba(self, X):
        """Return ``X`` as float64, checking its shape."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.classes_):
            raise InvalidInputError(f"expected probabilities of shape (n, "
                                    f"{len(self.classes_)}), got {X.shape}")
        return X

    def predict(self, X):
        """The most probable class of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# Names and formatting ---------------------------------------------------------
def level_suffix(level):
    """Column-name suffix of a confidence level: percent, ``'p'`` for the point.

    Examples
    --------
    >>> level_suffix(0.9), level_suffix(0.95), level_suffix(0.975)
    ('90', '95', '97p5')
    """
    return f"{100 * float(level):.6g}".replace(".", "p")


def parse_level_suffix(suffix):
    """Inverse of `level_suffix`: ``'97p5'`` -> 0.975."""
    return round(float(suffix.replace("p", ".")) / 100, 10)


def set_columns(levels):
    """Names of the (set, size) columns for each level, as `add_prediction_sets` writes them."""
    levels = list(levels)
    if len(levels) == 1:
        return [("pred_set", "pred_set_size")]
    return [(f"pred_set_{level_suffix(c)}", f"pred_set_size_{level_suffix(c)}") for c in levels]


def format_sets(membership, classes):
    """Join the classes of each row's set with ``'|'``, vectorised.

    Parameters
    ----------
    membership : array-like of bool, shape (n, n_classes)
        Whether each class is in each row's set.
    classes : sequence of str
        Class labels in column order.

    Returns
    -------
    sets : `numpy.ndarray` of str, shape (n,)
        ``''`` for an empty set.

    Examples
    --------
    >>> format_sets([[True, False, True], [False, False, False]], ["GALAXY", "QSO", "STAR"])
    array(['GALAXY|STAR', ''], dtype='<U15')
    """
    membership = np.asarray(membership, dtype=bool)
    classes = [str(c) for c in classes]
    n_classes = len(classes)
    if membership.ndim != 2 or membership.shape[1] != n_classes:
        raise InvalidInputError(f"membership must have shape (n, {n_classes}), "
                                f"got {membership.shape}")
    codes = membership.astype(np.int64) @ (1 << np.arange(n_classes, dtype=np.int64))
    width = max(1, len("|".join(classes)))
    lookup = np.array(["|".join(c for k, c in enumerate(classes) if code >> k & 1)
                       for code in range(1 << n_classes)], dtype=f"<U{width}")
    return lookup[codes]


def set_membership(table, classes=None, level=None):
    """Boolean (n, n_classes) membership of the prediction sets of a classified table.

    Works on tables read back from FITS or ECSV, whose readers mask empty
    strings: a masked ``pred_set`` with a ``pred_set_size`` of 0 is an empty
    set; rows whose size is masked (unclassified) are all False.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Output of `sourceclf.classify`.
    classes : sequence of str, optional
        Class order; default: the ``prob_<class>`` columns' classes, upper case.
    level : float, optional
        Which level, when the table has several.

    Returns
    -------
    membership : `numpy.ndarray` of bool
    """
    from .columns import decode_strings

    if classes is None:
        classes = [c[5:].upper() for c in table.colnames
                   if c.startswith("prob_") and not c.endswith("_std")]
    set_col, size_col = _set_column_names(table, level)
    strings = np.ma.getdata(table[set_col])
    text = decode_strings(strings)
    text = np.where(np.ma.getmaskarray(table[set_col]), "", text)
    padded = np.char.add(np.char.add("|", text.astype(str)), "|")
    out = np.column_stack([np.char.find(padded, f"|{c}|") >= 0 for c in classes]) \
        if len(text) else np.zeros((0, len(classes)), dtype=bool)
    size = table[size_col]
    out[np.ma.getmaskarray(size)] = False
    return out


def _set_column_names(table, level=None):
    if level is None:
        if "pred_set" in table.colnames:
            return "pred_set", "pred_set_size"
        found = [c for c in table.colnames if c.startswith("pred_set_size_")]
        if len(found) == 1:
            suffix = found[0][len("pred_set_size_"):]
            return f"pred_set_{suffix}", found[0]
        raise InvalidInputError("table has prediction sets at several levels "
                                f"({', '.join(found) or 'none'}); pass level=")
    suffix = level_suffix(level)
    if f"pred_set_{suffix}" in table.colnames:
        return f"pred_set_{suffix}", f"pred_set_size_{suffix}"
    conf = table.meta.get("CLFCONF")
    if "pred_set" in table.colnames and conf is not None and np.isclose(float(conf), level):
        return "pred_set", "pred_set_size"
    raise InvalidInputError(f"table has no prediction sets at level {level}")


# Scores and groups ------------------------------------------------------------
def _check_score(score, n_classes, name="model"):
    key = str(score).lower().replace("top-k", "top_k").replace("topk", "top_k")
    if key not in SCORES:
        raise InvalidInputError(f"unknown conformity score '{score}'; use one of "
                                f"{', '.join(SCORES)}")
    if n_classes == 2 and SCORES[key][0] != "lac":
        raise InvalidInputError(
            f"{name} has two classes; MAPIE 1.x computes only the 'lac' score for binary "
            f"targets ('{key}' needs three or more classes)")
    return key


def _alphas(levels):
    levels = [levels] if np.isscalar(levels) else list(levels)
    if not levels:
        raise InvalidInputError("no confidence level given")
    for c in levels:
        if not isinstance(c, (int, float, np.floating)) or not 0 < float(c) < 1:
            raise InvalidInputError(f"confidence must be strictly between 0 and 1, got {c!r}")
    return [float(c) for c in levels]


def bin_rule_min_count(levels):
    """Fewest calibration rows per magnitude bin that the automatic rule allows.

    ``max(50, ceil(alpha (1 - alpha) / 0.015**2), ceil(2 (1 - alpha) / alpha))``
    maximised over the levels (``alpha = 1 - level``); see the module docstring.

    Examples
    --------
    >>> bin_rule_min_count([0.9]), bin_rule_min_count([0.95]), bin_rule_min_count([0.99])
    (400, 212, 198)
    """
    out = 50
    for level in _alphas(levels):
        alpha = 1 - level
        out = max(out, math.ceil(alpha * (1 - alpha) / _BIN_PRECISION ** 2 - 1e-9),
                  math.ceil(2 * (1 - alpha) / alpha - 1e-9))
    return int(out)


def _mapie_min_count(levels):
    return max(max(1 / (1 - c), 1 / c) for c in levels)


def group_values(table, column):
    """Values of a Mondrian grouping column of a table, NaN where missing.

    ``'r'`` (observed) and ``'dered_r'`` (extinction-corrected) magnitudes, and
    the same for the other bands, are derived as the feature sets derive them
    (e.g. ``dered_r + extinction_r`` for ``r``); other names are looked up
    case-insensitively.

    Parameters
    ----------
    table : `~astropy.table.Table`
        A catalog or a calibration table.
    column : str
        Column name.

    Returns
    -------
    values : `numpy.ndarray` of float64, or None when the table cannot supply it
    """
    from .bands import BANDS
    from .columns import ColumnFinder, clean_column
    from .features import _Band

    finder = ColumnFinder(table)
    key = column.lower()
    if key in BANDS:
        return _Band(finder, key).observed_mag()
    if key.startswith("dered_") and key[6:] in BANDS:
        return _Band(finder, key[6:]).dered()
    name = finder.find(column)
    if name is None:
        return None
    try:
        return clean_column(table[name], unit="mag", name=name)
    except InvalidInputError:  # not a magnitude: take the numbers as they are
        col = table[name]
        data = getattr(col, "value", col)
        return np.ma.filled(np.ma.asarray(data, dtype=np.float64), np.nan)


class ConformalPredictor:
    """Split-conformal prediction sets over stored class probabilities.

    Parameters
    ----------
    classes : sequence of str
        The model's classes, in the column order of the probabilities.
    levels : float or sequence of float
        Confidence level(s), each strictly between 0 and 1.
    score : str
        Conformity score, one of `SCORES`.
    by : str, optional
        ``None`` (marginal), ``'class'`` (class-conditional) or a column name
        (magnitude-binned Mondrian calibration); see the module docstring.
    bins : int or sequence of float, optional
        For a column ``by``: the number of equal-count bins, or the inner bin
        edges; default: the automatic rule of `bin_rule_min_count`.
    random_state : int, optional
        Seed of the randomised scores (APS, RAPS) and of RAPS's split.
    name : str
        What to call the model in messages.

    Attributes
    ----------
    mapie_ : `mapie.classification.SplitConformalClassifier`
        Conformalized on all calibration rows; its ``conformity_scores`` are
        the scores every group's threshold is computed from.
    thresholds_ : `numpy.ndarray`, shape (n_groups, n_levels)
        Conformal quantile of each group (one group when marginal; one per
        class, in the model's class order, for ``'class'``; one per bin).
    marginal_thresholds_ : `numpy.ndarray`, shape (n_levels,)
        Quantiles of all calibration rows (used for rows with no group value).
    group_counts_ : `numpy.ndarray` of int
        Calibration rows behind each group's threshold.
    bin_edges_ : `numpy.ndarray` or None
        Inner bin edges of a column ``by``.
    """

    def __init__(self, classes, levels=0.9, *, score="lac", by=None, bins=None,
                 random_state=0, name="model"):
        self.classes = tuple(str(c).upper() for c in classes)
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise InvalidInputError(f"need two or more distinct classes, got {classes}")
        self.levels = _alphas(levels)
        self.name = name
        self.score = _check_score(score, len(self.classes), name)
        self.by = by
        self.bins = bins
        self.random_state = random_state

    @classmethod
    def from_classifier(cls, clf, levels=0.9, *, score=None, by=None, bins=None,
                        random_state=0):
        """Conformalize a classifier's stored calibration split.

        ``score``, ``by`` and ``bins`` default to the model card's
        ``extra['conformal_score']`` (else ``'lac'``), ``extra['conformal_by']``
        and ``extra['conformal_bins']``; ``by='none'`` forces marginal sets.

        Raises
        ------
        InvalidInputError
            If the model has no calibration data, or a setting is invalid.
        """
        if clf.calibration is None:
            raise InvalidInputError(
                f"model '{clf.name}' has no calibration data, so it cannot make prediction "
                "sets; recalibrate it on labelled sources with sourceclf.calibrate")
        extra = getattr(clf.card, "extra", {}) or {}
        score = score if score is not None else extra.get("conformal_score", "lac")
        if by is None:
            by = extra.get("conformal_by")
        if isinstance(by, str) and by.lower() in ("none", "marginal", ""):
            by = None
        if bins is None and by is not None and by == extra.get("conformal_by"):
            bins = extra.get("conformal_bins")
        self = cls(clf.classes, levels, score=score, by=by, bins=bins,
                   random_state=random_state, name=f"model '{clf.name}'")
        return self.fit_table(clf.calibration)

    # Fitting ------------------------------------------------------------------
    def fit_table(self, calibration):
        """Conformalize a calibration table (``label``, ``prob_<class>`` columns)."""
        from .columns import decode_strings

        missing = [f"prob_{c.lower()}" for c in self.classes
                   if f"prob_{c.lower()}" not in calibration.colnames]
        if "label" not in calibration.colnames:
            missing.insert(0, "label")
        if missing:
            raise InvalidInputError(f"calibration table of {self.name} lacks columns "
                                    f"{', '.join(missing)}")
        proba = np.column_stack([np.asarray(calibration[f"prob_{c.lower()}"], dtype=np.float64)
                                 for c in self.classes])
        labels = np.char.upper(decode_strings(calibration["label"]))
        values = None
        if self.by is not None and str(self.by).lower() != "class":
            values = group_values(calibration, self.by)
            if values is None:
                have = [c for c in calibration.colnames if not c.startswith("prob_")
                        and c != "label"]
                raise InvalidInputError(
                    f"the calibration data of {self.name} have no column '{self.by}' (they "
                    f"have {', '.join(have) or 'none'}); recalibrate with "
                    f"sourceclf.calibrate(..., by='{self.by}')")
        return self.fit(proba, labels, values)

    def fit(self, proba, labels, values=None):
        """Conformalize calibration probabilities.

        Parameters
        ----------
        proba : array-like, shape (n, n_classes)
            Calibration class probabilities, columns in ``classes`` order.
        labels : array-like of str
            True classes of those rows.
        values : array-like of float, optional
            Values of the ``by`` column (magnitude-binned Mondrian only).

        Returns
        -------
        self
        """
        from mapie.classification import SplitConformalClassifier
        from sklearn.preprocessing import LabelEncoder

        proba = _normalised(proba, len(self.classes))
        labels = np.char.upper(np.asarray(labels).astype(str))
        unknown = sorted(set(labels.tolist()) - set(self.classes))
        if unknown:
            raise InvalidInputError(f"calibration labels {unknown} are not classes of "
                                    f"{self.name} ({', '.join(self.classes)})")
        if len(labels) != len(proba):
            raise InvalidInputError(f"{len(labels)} labels for {len(proba)} probability rows")
        alpha_min = _mapie_min_count(self.levels)
        if len(labels) < alpha_min:
            raise InvalidInputError(
                f"{len(labels)} calibration rows are too few for confidence "
                f"{max(self.levels)} (MAPIE needs at least {math.ceil(alpha_min)})")
        absent = [c for c in self.classes if c not in set(labels.tolist())]
        if absent:
            warnings.warn(f"the calibration data of {self.name} have no {', '.join(absent)} "
                          "rows: sources of that class are not covered by the guarantee",
                          _warning_class(), stacklevel=3)

        # MAPIE encodes labels in sorted order: give it sorted columns.
        self._order = np.argsort(self.classes)
        sorted_classes = np.array(self.classes)[self._order]
        P = proba[:, self._order]
        mapie_score, self._include_last = SCORES[self.score]
        estimator = ProbabilityPassthrough(tuple(sorted_classes)).fit()
        mapie = SplitConformalClassifier(estimator, confidence_level=self.levels,
                                         conformity_score=mapie_score, prefit=True,
                                         random_state=self.random_state)
        with warnings.catch_warnings():
            # MAPIE's own warning for absent classes is replaced by the one above.
            warnings.filterwarnings("ignore", message=".*conformalization dataset has less "
                                                      "labels.*")
            try:
                mapie.conformalize(P, labels)
            except ValueError as exc:
                first = str(exc).splitlines()[0]
                raise InvalidInputError(f"MAPIE cannot conformalize {self.name} with score "
                                        f"'{self.score}': {first}") from None
        self.mapie_ = mapie
        fn = mapie._mapie_classifier.conformity_score_function_
        self._fn = fn
        scores = np.asarray(mapie.conformity_scores)
        rows = np.arange(len(labels))
        if mapie_score == "raps":
            # MAPIE keeps 20% of the rows apart to tune the RAPS penalty and scores
            # the rest; recover which rows were scored (checked against MAPIE's copy).
            from sklearn.model_selection import StratifiedShuffleSplit

            y_enc = LabelEncoder().fit(sorted_classes).transform(labels)
            split = StratifiedShuffleSplit(n_splits=1, test_size=fn.size_raps,
                                           random_state=self.random_state)
            rows, held = next(split.split(P, y_enc))
            if not np.array_equal(fn.X_raps, P[held]):  # pragma: no cover - MAPIE changed
                raise RuntimeError("cannot match MAPIE's RAPS split; is MAPIE 1.x installed?")
            self._cutoff = np.asarray(fn.cutoff)
        if len(scores) != len(rows):  # pragma: no cover - MAPIE changed
            raise RuntimeError("unexpected number of MAPIE conformity scores")
        self._scores = scores
        alpha_np = 1 - np.asarray(self.levels)
        self._alpha_np = alpha_np

        self.marginal_thresholds_ = self._quantiles(np.arange(len(rows)))
        self.bin_edges_ = None
        by = None if self.by is None else str(self.by)
        if by is None:
            groups = [np.arange(len(rows))]
        elif by.lower() == "class":
            lookup = {c: k for k, c in enumerate(self.classes)}
            group_of = np.array([lookup[c] for c in labels[rows]], dtype=np.int64)
            groups = [np.flatnonzero(group_of == k) for k in range(len(self.classes))]
        else:
            if values is None:
                raise InvalidInputError(f"Mondrian calibration by '{by}' needs its values")
            values = np.asarray(values, dtype=np.float64)[rows]
            self.bin_edges_ = self._bin_edges(values)
            group_of = np.where(np.isfinite(values),
                                np.searchsorted(self.bin_edges_, values, side="right"), -1)
            groups = [np.flatnonzero(group_of == k) for k in range(len(self.bin_edges_) + 1)]
        self.group_counts_ = np.array([g.size for g in groups])
        self._check_group_sizes(by)
        self.thresholds_ = np.array([self._quantiles(g) if g.size else
                                     np.full(len(self.levels), np.nan) for g in groups])
        return self

    def _bin_edges(self, values):
        finite = values[np.isfinite(values)]
        if self.bins is None:
            n_min = bin_rule_min_count(self.levels)
            k = int(np.clip(finite.size // n_min, 1, _MAX_AUTO_BINS))
            edges = np.quantile(finite, np.arange(1, k) / k) if finite.size else np.array([])
        elif np.isscalar(self.bins):
            k = int(self.bins)
            if k < 1:
                raise InvalidInputError(f"bins must be positive, got {self.bins}")
            edges = np.quantile(finite, np.arange(1, k) / k) if finite.size else np.array([])
        else:
            edges = np.asarray(self.bins, dtype=np.float64)
            if edges.ndim != 1 or not np.all(np.diff(edges) > 0):
                raise InvalidInputError("bins must be increasing inner bin edges")
        return np.unique(np.asarray(edges, dtype=np.float64))

    def _check_group_sizes(self, by):
        if by is None:
            return
        hard = _mapie_min_count(self.levels)
        if by.lower() == "class":
            names = list(self.classes)
            soft = hard
        else:
            names = [f"{by} bin {k}" for k in range(len(self.group_counts_))]
            soft = bin_rule_min_count(self.levels)
        too_few = [f"{n} ({c})" for n, c in zip(names, self.group_counts_) if 0 < c < hard]
        empty = [n for n, c in zip(names, self.group_counts_) if c == 0]
        if by.lower() == "class" and empty:
            raise InvalidInputError(f"class-conditional sets need calibration rows of every "
                                    f"class; {self.name} has none of {', '.join(empty)}")
        if too_few or empty:
            raise InvalidInputError(
                f"Mondrian calibration by '{by}' at confidence {max(self.levels)} needs at "
                f"least {math.ceil(hard)} calibration rows per group; too few in "
                f"{', '.join(too_few + [f'{e} (0)' for e in empty])}")
        if by.lower() != "class" and self.bins is None and len(self.group_counts_) == 1:
            warnings.warn(f"Mondrian calibration by '{by}': {self.group_counts_[0]} "
                          f"calibration rows make a single bin (the automatic rule takes "
                          f"at least {soft} per bin at confidence {max(self.levels)}), so "
                          "the sets are marginal; give more labelled rows or bins=",
                          _warning_class(), stacklevel=4)
            return
        sparse = [f"{n} ({c})" for n, c in zip(names, self.group_counts_) if c < soft]
        if sparse:
            warnings.warn(f"Mondrian calibration by '{by}': few calibration rows in "
                          f"{', '.join(sparse)} (fewer than {soft}); coverage within those "
                          "groups is uncertain", _warning_class(), stacklevel=4)

    def _quantiles(self, idx):
        """MAPIE's conformal quantile of the scores of calibration rows ``idx``."""
        fn = self._fn
        kwargs = {}
        if SCORES[self.score][0] == "raps":
            kwargs["include_last_label"] = self._include_last
            saved = fn.cutoff
            fn.cutoff = self._cutoff[idx]
        try:
            q = fn.get_conformity_score_quantiles(self._scores[idx], self._alpha_np, "prefit",
                                                  **kwargs)
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise InvalidInputError(f"MAPIE cannot compute the '{self.score}' threshold of "
                                    f"{self.name} at confidence {self.levels}: {first}") from None
        finally:
            if kwargs:
                fn.cutoff = saved
        return np.asarray(q, dtype=np.float64).reshape(-1)

    # Prediction ---------------------------------------------------------------
    def predict_sets(self, proba, values=None):
        """Prediction sets of new rows.

        Parameters
        ----------
        proba : array-like, shape (n, n_classes)
            Class probabilities (rows sum to one), columns in ``classes`` order.
        values : array-like of float, optional
            The ``by`` column of the new rows (magnitude-binned Mondrian).

        Returns
        -------
        sets : `numpy.ndarray` of bool, shape (n, n_classes, n_levels)
        groups : `numpy.ndarray` of int, shape (n,)
            Bin of each row (-1: no value, marginal threshold used); zeros
            unless calibrated by a column.
        """
        if not hasattr(self, "mapie_"):
            raise InvalidInputError("ConformalPredictor is not fitted; call fit first")
        proba = _normalised(proba, len(self.classes))
        n, n_classes, n_levels = len(proba), len(self.classes), len(self.levels)
        sets = np.zeros((n, n_classes, n_levels), dtype=bool)
        groups = np.zeros(n, dtype=np.int64)
        if n == 0:
            return sets, groups
        P = proba[:, self._order]
        by = None if self.by is None else str(self.by)
        if by is None:
            sets[:, self._order] = self._mapie_sets(P, self.thresholds_[0])
        elif by.lower() == "class":
            # Each label is judged against its own class's threshold.
            for k in range(n_classes):
                col = int(np.flatnonzero(self._order == k)[0])
                sets[:, k] = self._mapie_sets(P, self.thresholds_[k])[:, col]
        else:
            if values is None:
                raise InvalidInputError(f"Mondrian sets by '{by}' need the new rows' {by}")
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (n,):
                raise InvalidInputError(f"{values.shape[0]} '{by}' values for {n} rows")
            groups = np.where(np.isfinite(values),
                              np.searchsorted(self.bin_edges_, values, side="right"), -1)
            for k in range(-1, len(self.bin_edges_) + 1):
                idx = np.flatnonzero(groups == k)
                if idx.size:
                    q = self.marginal_thresholds_ if k < 0 else self.thresholds_[k]
                    sets[idx[:, None], self._order[None, :]] = self._mapie_sets(P[idx], q)
        return sets, groups

    def _mapie_sets(self, P, thresholds):
        """MAPIE's prediction sets of rows ``P`` (sorted columns) for given quantiles."""
        fn = self._fn
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if self.score == "top_k":  # MAPIE indexes with top-k's quantiles
            thresholds = thresholds.astype(np.int64)
        fn.quantiles_ = thresholds
        y_pred = fn.get_predictions(P, self._alpha_np, P, "prefit")
        out = fn.get_prediction_sets(y_pred, self._scores, self._alpha_np, "prefit",
                                     include_last_label=self._include_last)
        return np.asarray(out, dtype=bool)

    def describe_groups(self):
        """Short FITS-friendly text of the grouping, for ``meta['CLFGROUP']``."""
        if self.by is None:
            return None
        if str(self.by).lower() == "class":
            return "class"
        return f"{self.by}:" + ",".join(f"{e:.3f}" for e in self.bin_edges_)


def _normalised(proba, n_classes):
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != n_classes:
        raise InvalidInputError(f"expected probabilities of shape (n, {n_classes}), "
                                f"got {proba.shape}")
    if proba.size and (not np.isfinite(proba).all() or (proba < 0).any()):
        raise InvalidInputError("probabilities must be finite and non-negative")
    total = proba.sum(axis=1, keepdims=True)
    if proba.size and np.any(np.abs(total - 1) > 1e-3):
        raise InvalidInputError("probabilities must sum to one in every row")
    return proba / np.where(total > 0, total, 1)


def _warning_class():
    from .exceptions import SourceclfWarning

    return SourceclfWarning


# The hook classify calls ------------------------------------------------------
def add_prediction_sets(out, clf, proba, rows, levels, *, score=None, by=None,
                        random_state=0):
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
        marginal).  A column's values for the new rows are taken from ``out``.
    random_state : int
        Seed of the randomised scores.

    Returns
    -------
    flags : `numpy.ndarray` of str or None
        Per-row notes for ``pred_flag`` (rows whose ``by`` value was missing),
        or None.

    Notes
    -----
    A model without calibration data gets no sets: a `SourceclfWarning` when
    only ``levels`` were given (``classify``'s default confidence), an
    `InvalidInputError` when ``score`` or ``by`` asked for them explicitly.
    Meta keys written: ``CLFCONF`` (a float, or comma-separated levels),
    ``CLFSCORE`` and, for Mondrian calibration, ``CLFGROUP``.
    """
    from astropy.table import MaskedColumn

    n = len(out)
    rows = np.asarray(rows, dtype=np.int64)
    levels = _alphas(levels)
    for name in list(out.colnames):
        if _SET_COLUMN.match(name) or name == "pred_set_group":
            out.remove_column(name)
    for key in ("CLFCONF", "CLFSCORE", "CLFGROUP"):
        out.meta.pop(key, None)
    if clf.calibration is None:
        if score is not None or by is not None:
            ConformalPredictor.from_classifier(clf, levels, score=score, by=by)  # raises
        warnings.warn(f"model '{clf.name}' has no calibration data: no prediction sets "
                      "added (pass confidence=None to silence this)", _warning_class(),
                      stacklevel=3)
        return None
    explicit_by = by is not None
    extra = getattr(clf.card, "extra", {}) or {}
    default_by = extra.get("conformal_by")
    chosen_by = by if by is not None else default_by
    if chosen_by is None or str(chosen_by).lower() in ("none", "marginal", ""):
        chosen_by = "none"  # explicit, so that the card's default does not apply
    values = None
    if chosen_by != "none" and str(chosen_by).lower() != "class":
        values = group_values(out, chosen_by)
        if values is None:
            if explicit_by:
                raise InvalidInputError(f"by='{chosen_by}': the table has no column to "
                                        f"supply '{chosen_by}'")
            warnings.warn(f"model '{clf.name}' is calibrated by '{chosen_by}' but the table "
                          "has no such column: marginal prediction sets instead",
                          _warning_class(), stacklevel=3)
            chosen_by = "none"
    cp = ConformalPredictor.from_classifier(clf, levels, score=score, by=chosen_by,
                                            random_state=random_state)
    sub_values = None if values is None else values[rows]
    sets, groups = cp.predict_sets(proba, sub_values)

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
            description=f"classes in the {level:g} conformal prediction set ('|'-joined)")
        out[size_name] = MaskedColumn(size, mask=~valid,
                                      description=f"size of the {level:g} prediction set")
    flags = None
    if cp.bin_edges_ is not None:
        group_col = np.full(n, -1, dtype=np.int16)
        group_col[rows] = groups
        out["pred_set_group"] = MaskedColumn(
            group_col, mask=~valid,
            description=f"bin of {cp.by} used for the prediction sets (-1: no value)")
        missing = rows[groups < 0]
        if missing.size:
            flags = np.full(n, "", dtype=object)
            flags[missing] = f"no_{cp.by}:marginal_set"
    out.meta["CLFCONF"] = levels[0] if len(levels) == 1 else ",".join(f"{c:g}" for c in levels)
    out.meta["CLFSCORE"] = cp.score
    group = cp.describe_groups()
    if group is not None:
        out.meta["CLFGROUP"] = group
    return flags
