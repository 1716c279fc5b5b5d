"""Split-conformal prediction sets over stored class probabilities.

See `sourceclf.conformal` for the scores, the Mondrian groupings and the
rule that picks the magnitude bins.
"""

import math
import numbers
import warnings

import numpy as np

from ..exceptions import InvalidInputError, SourceclfWarning
from ..utils._validation import check_by, check_confidence_levels
from . import threshold_store
from .calibration_tables import read_calibration_table
from .scores import check_score, min_calibration_rows
from .set_rules import prediction_sets

__all__ = ["ConformalPredictor", "bin_rule_min_count"]

_MAX_AUTO_BINS = 5
_BIN_PRECISION = 0.015


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
    for level in check_confidence_levels(levels, required=True):
        alpha = 1 - level
        out = max(out, math.ceil(alpha * (1 - alpha) / _BIN_PRECISION ** 2 - 1e-9),
                  math.ceil(2 * (1 - alpha) / alpha - 1e-9))
    return int(out)


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
        the scores every group's threshold is computed from.  Set by `fit`
        only.
    threshold_source_ : {'file', 'process', 'mapie'}
        Set by `from_classifier`: where the thresholds came from (the model's
        thresholds file, thresholds computed earlier in this process, or
        MAPIE now); with several levels, the last of these that any level
        needed.
    thresholds_ : `numpy.ndarray`, shape (n_groups, n_levels)
        Conformal quantile of each group (one group when marginal; one per
        class, in the model's class order, for ``'class'``; one per bin).
    marginal_thresholds_ : `numpy.ndarray`, shape (n_levels,)
        Quantiles of all calibration rows (used for rows with no group value).
    group_counts_ : `numpy.ndarray` of int
        Calibration rows behind each group's threshold.
    bin_edges_ : `numpy.ndarray` or None
        Inner bin edges of a column ``by``.
    lambda_star_, k_star_ : `numpy.ndarray` or None
        RAPS's penalty and rank per level (None for other scores).

    Notes
    -----
    MAPIE computes the thresholds (`fit`); `predict_sets` applies them in
    numpy (`sourceclf.conformal.set_rules`), with the same results.
    """

    def __init__(self, classes, levels=0.9, *, score="lac", by=None, bins=None,
                 random_state=0, name="model"):
        self.classes = tuple(str(c).upper() for c in classes)
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise InvalidInputError(f"need two or more distinct classes, got {classes}")
        self.levels = check_confidence_levels(levels, required=True)
        self.name = name
        self.score = check_score(score, len(self.classes), name)
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

        With an integer ``random_state``, thresholds computed before for the
        same calibration data are reused: those of the model's thresholds
        file (see `sourceclf.conformal.thresholds`), else those computed
        earlier in this process; the others are computed with MAPIE once
        and kept for the rest of the process.  Marginal and class-conditional
        thresholds are kept per level, binned ones per set of levels.

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
        by = check_by(by)
        if bins is None and by is not None and by == extra.get("conformal_by"):
            bins = extra.get("conformal_bins")
        self = cls(clf.classes, levels, score=score, by=by, bins=bins,
                   random_state=random_state, name=f"model '{clf.name}'")
        if not isinstance(random_state, numbers.Integral):  # unseeded: nothing to reuse
            self.threshold_source_ = "mapie"
            return self.fit_table(clf.calibration)
        return self._fit_from_store(
            clf.calibration, bins, random_state,
            lambda key: threshold_store.find(clf, key),
            lambda key, state: threshold_store.remember(clf, key, state))

    @classmethod
    def from_table(cls, calibration, classes, levels=0.9, *, score="lac", by=None, bins=None,
                   random_state=0, name="model", model=None):
        """Conformalize a calibration table, reusing thresholds computed before.

        As ``cls(classes, levels, ...).fit_table(calibration)``, for a table
        that is not a model's own calibration (the calibration of a model's
        flagged rows, `sourceclf.conformal.add_prediction_sets`): with an
        integer ``random_state`` the thresholds are those ``model``'s
        thresholds file holds for the same table contents and settings
        (`sourceclf.conformal.thresholds` stores those of a model's
        ``flag_calibrations``), else those computed earlier in this process,
        else they are computed with MAPIE once and kept for the rest of the
        process.
        """
        self = cls(classes, levels, score=score, by=by, bins=bins,
                   random_state=random_state, name=name)
        if not isinstance(random_state, numbers.Integral):
            self.threshold_source_ = "mapie"
            return self.fit_table(calibration)
        return self._fit_from_store(
            calibration, bins, random_state,
            lambda key: threshold_store.find_table(calibration, self.classes, key, model=model),
            lambda key, state: threshold_store.remember_table(calibration, self.classes, key,
                                                              state))

    def _fit_from_store(self, calibration, bins, random_state, find, remember):
        """Take the thresholds ``find(key)`` gives (``(state, source)``), computing with MAPIE
        those it does not know and giving them to ``remember(key, state)``.

        Marginal and class-conditional thresholds are kept level by level;
        binned ones for all the levels together (the strictest sets the bins).
        The `SourceclfWarning` messages MAPIE gave when they were computed
        are given again.
        """
        grouped = self._by_key() not in (None, "class")
        states, sources = [], set()
        for part in [self.levels] if grouped else [[c] for c in self.levels]:
            key = threshold_store.threshold_key(self.score, self._by_key(),
                                                bins if grouped else None, part, random_state)
            state, source = find(key)
            if state is None:
                state, source = type(self)(self.classes, part, score=self.score, by=self.by,
                                           bins=bins, random_state=random_state,
                                           name=self.name) \
                    ._fit_recording_warnings(calibration).state(), "mapie"
                remember(key, state)
            states.append(state)
            sources.add(source)
        self._set_state(states)
        self.threshold_source_ = next(s for s in ("mapie", "process", "file") if s in sources)
        for message in dict.fromkeys(m for state in states for m in state["warnings"]):
            warnings.warn(message, SourceclfWarning, stacklevel=4)
        return self

    def _by_key(self):
        by = check_by(self.by)
        return "class" if by is not None and by.lower() == "class" else by

    def _fit_recording_warnings(self, calibration):
        """`fit_table`, keeping the `SourceclfWarning` messages it gives in ``warnings_``."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SourceclfWarning)
            self.fit_table(calibration)
        self.warnings_ = []
        for w in caught:
            if issubclass(w.category, SourceclfWarning):
                self.warnings_.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return self

    # Thresholds as data ---------------------------------------------------------
    def state(self):
        """The fitted thresholds as JSON-friendly data.

        Returns
        -------
        state : dict
            ``levels``, ``thresholds`` (per group, per level), ``marginal``
            (per level), ``group_counts``, ``bin_edges`` (or None),
            ``lambda_star`` and ``k_star`` (RAPS, per level; else None) and
            ``warnings`` (the messages fitting gave).  Everything
            `predict_sets` needs, for a thresholds file or the process cache.
        """
        self._check_fitted()

        def floats(a):
            return None if a is None else np.asarray(a, dtype=np.float64).tolist()

        return {"levels": list(self.levels), "thresholds": floats(self.thresholds_),
                "marginal": floats(self.marginal_thresholds_),
                "group_counts": [int(c) for c in self.group_counts_],
                "bin_edges": floats(self.bin_edges_), "lambda_star": floats(self.lambda_star_),
                "k_star": None if self.k_star_ is None else [int(k) for k in self.k_star_],
                "warnings": list(getattr(self, "warnings_", []))}

    def _set_state(self, states):
        """Take the thresholds of `state` dicts, one per part of ``levels``, in order."""
        def cat(name, axis=0):
            parts = [s[name] for s in states]
            return None if parts[0] is None else np.concatenate(
                [np.asarray(p, dtype=np.float64) for p in parts], axis=axis)

        first = states[0]
        self.thresholds_ = cat("thresholds", axis=1)
        self.marginal_thresholds_ = cat("marginal")
        self.group_counts_ = np.asarray(first["group_counts"], dtype=np.int64)
        self.bin_edges_ = None if first["bin_edges"] is None else \
            np.asarray(first["bin_edges"], dtype=np.float64)
        self.lambda_star_ = cat("lambda_star")
        k_star = cat("k_star")
        self.k_star_ = None if k_star is None else k_star.astype(np.int64)
        self._order = np.argsort(self.classes)

    # Fitting ------------------------------------------------------------------
    def fit_table(self, calibration):
        """Conformalize a calibration table (``label``, ``prob_<class>`` columns)."""
        by = None if self.by is None or str(self.by).lower() == "class" else self.by
        proba, labels, values = read_calibration_table(calibration, self.classes, by,
                                                       self.name)
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
        proba = _normalised(proba, len(self.classes))
        labels = np.char.upper(np.asarray(labels).astype(str))
        unknown = sorted(set(labels.tolist()) - set(self.classes))
        if unknown:
            raise InvalidInputError(f"calibration labels {unknown} are not classes of "
                                    f"{self.name} ({', '.join(self.classes)})")
        if len(labels) != len(proba):
            raise InvalidInputError(f"{len(labels)} labels for {len(proba)} probability rows")
        alpha_min = min_calibration_rows(self.levels)
        if len(labels) < alpha_min:
            raise InvalidInputError(
                f"{len(labels)} calibration rows are too few for confidence "
                f"{max(self.levels)} (MAPIE needs at least {math.ceil(alpha_min)})")
        absent = [c for c in self.classes if c not in set(labels.tolist())]
        if absent:
            warnings.warn(f"the calibration data of {self.name} have no {', '.join(absent)} "
                          "rows: sources of that class are not covered by the guarantee",
                          SourceclfWarning, stacklevel=3)

        # MAPIE encodes labels in sorted order: give it sorted columns.
        self._order = np.argsort(self.classes)
        sorted_classes = np.array(self.classes)[self._order]
        P = proba[:, self._order]
        from .mapie_adapter import MapieConformalizer  # MAPIE and scikit-learn: fitting only

        conformalizer = MapieConformalizer(tuple(sorted_classes), self.levels, self.score,
                                           self.random_state)
        try:
            conformalizer.conformalize(P, labels)
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise InvalidInputError(f"MAPIE cannot conformalize {self.name} with score "
                                    f"'{self.score}': {first}") from None
        self.mapie_ = conformalizer.mapie_
        self._conformalizer = conformalizer
        rows = conformalizer.scored_rows_

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
        self.lambda_star_, self.k_star_ = conformalizer.regularisation()
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
        hard = min_calibration_rows(self.levels)
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
                          SourceclfWarning, stacklevel=4)
            return
        sparse = [f"{n} ({c})" for n, c in zip(names, self.group_counts_) if c < soft]
        if sparse:
            warnings.warn(f"Mondrian calibration by '{by}': few calibration rows in "
                          f"{', '.join(sparse)} (fewer than {soft}); coverage within those "
                          "groups is uncertain", SourceclfWarning, stacklevel=4)

    def _quantiles(self, idx):
        """The conformal quantile of the scores of calibration rows ``idx``."""
        try:
            return self._conformalizer.quantiles(idx)
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise InvalidInputError(f"MAPIE cannot compute the '{self.score}' threshold of "
                                    f"{self.name} at confidence {self.levels}: {first}") from None

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
        self._check_fitted()
        proba = _normalised(proba, len(self.classes))
        n, n_classes, n_levels = len(proba), len(self.classes), len(self.levels)
        sets = np.zeros((n, n_classes, n_levels), dtype=bool)
        groups = np.zeros(n, dtype=np.int64)
        if n == 0:
            return sets, groups
        P = proba[:, self._order]
        by = None if self.by is None else str(self.by)

        def sets_for(P, quantiles):
            return prediction_sets(P, quantiles, self.score, lambda_star=self.lambda_star_,
                                   k_star=self.k_star_, random_state=self.random_state)

        if by is None:
            sets[:, self._order] = sets_for(P, self.thresholds_[0])
        elif by.lower() == "class":
            # Each label is judged against its own class's threshold.
            for k in range(n_classes):
                col = int(np.flatnonzero(self._order == k)[0])
                sets[:, k] = sets_for(P, self.thresholds_[k])[:, col]
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
                    sets[idx[:, None], self._order[None, :]] = sets_for(P[idx], q)
        return sets, groups

    def _check_fitted(self):
        if not hasattr(self, "thresholds_"):
            raise InvalidInputError("ConformalPredictor is not fitted; call fit first")

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
