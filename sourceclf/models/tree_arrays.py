"""Histogram gradient boosting stored as plain arrays, walked in numpy or by scikit-learn.

A fitted `~sklearn.ensemble.HistGradientBoostingClassifier` keeps what it
needs for prediction in a few numeric arrays: the nodes of every tree (one
structured array per tree, scikit-learn's ``PREDICTOR_RECORD_DTYPE``) and the
baseline of the raw predictions.  `GradientBoostedTrees` stores exactly those
in an ``.npz`` file (no pickle, no object arrays) and predicts with the same
comparisons, the same sums in the same order and the same link functions as
the estimator, so its probabilities are the estimator's bit for bit.

Two walkers give the same leaves: a numpy one, which walks all trees at once
(for a few thousand rows, and wherever scikit-learn is missing or stores its
nodes differently), and scikit-learn's compiled ``TreePredictor`` for larger
batches, where its speed (3 to 7 times the numpy walker's) pays for
importing scikit-learn (about 2 s, with scipy), or once it is imported.  A
1,000-row run of the default model thus imports no scikit-learn.

Why not `skops.io`, which stores the whole estimator: loading a skops file
imports every scikit-learn estimator (skops lists them to decide which types
to trust), several seconds per process that a 1,000-row run of the default
model pays before its first row.  Models saved with skops still load
(`sourceclf.models.classical`).
"""

import json
import math
import sys

import numpy as np

from ..exceptions import InvalidInputError, ModelIntegrityError

__all__ = ["TREES_FILE", "PARALLEL_MIN_ROWS", "NUMPY_MAX_VISITS", "GradientBoostedTrees",
           "can_store_as_arrays"]

#: File name of the tree arrays in a model directory.
TREES_FILE = "trees.npz"

#: Below this many rows the trees are walked on one thread (see `GradientBoostedTrees.raw_predict`).
PARALLEL_MIN_ROWS = 16384

#: Up to this many rows x trees the trees are walked in numpy, not by scikit-learn.
NUMPY_MAX_VISITS = 1_000_000

_FORMAT = "sourceclf-hgb-arrays-1"

_SKLEARN_WALKER = "sklearn.ensemble._hist_gradient_boosting.predictor"

# The node fields prediction reads, with the kinds of their types.
_NODE_FIELDS = {"value": "f", "feature_idx": "iu", "num_threshold": "f",
                "missing_go_to_left": "iub", "left": "iu", "right": "iu", "is_leaf": "iub",
                "is_categorical": "iub"}


def _sklearn_record_dtype():
    """scikit-learn's node dtype, or None if scikit-learn (or that private name) is missing."""
    try:
        from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    except ImportError:
        return None
    return PREDICTOR_RECORD_DTYPE


def _expit(x):
    """The logistic function exactly as scipy's ``expit`` (scikit-learn's binary link).

    scipy computes ``1 / (1 + exp(-x))`` with the C library's ``exp``, from
    which numpy's own ``exp`` differs in the last bit for about one value in
    six (numpy 2.4).  So does this: by scipy's ``expit`` once scipy is
    imported (large runs walk the trees with scikit-learn, which imports it),
    else by `math.exp` row by row, which is the C library's, so that a small
    run still imports no scipy.
    """
    if "scipy.special" in sys.modules:
        from scipy.special import expit

        return expit(x)
    x = np.asarray(x, dtype=np.float64)
    return np.fromiter((0.0 if v < -709.0 else 1.0 / (1.0 + math.exp(-v)) for v in x.ravel()),
                       dtype=np.float64, count=x.size).reshape(x.shape)


def can_store_as_arrays(estimator):
    """Whether ``estimator`` is a fitted histogram gradient boosting classifier
    without categorical features, which `GradientBoostedTrees` can hold.

    Parameters
    ----------
    estimator : object

    Returns
    -------
    bool
    """
    if isinstance(estimator, GradientBoostedTrees):
        return True
    kind = type(estimator)
    if kind.__name__ != "HistGradientBoostingClassifier" or \
            not kind.__module__.startswith("sklearn."):
        return False
    categorical = getattr(estimator, "is_categorical_", None)
    return hasattr(estimator, "_predictors") and (categorical is None
                                                  or not np.any(categorical))


class GradientBoostedTrees:
    """The prediction state of a fitted histogram gradient boosting classifier.

    Parameters
    ----------
    nodes : `numpy.ndarray` of scikit-learn's ``PREDICTOR_RECORD_DTYPE``
        The nodes of all trees, one tree after the other, iteration by
        iteration (and, within an iteration, class by class).
    offsets : `numpy.ndarray` of int, shape (n_trees + 1,)
        Where each tree's nodes start in ``nodes`` (and where the last ends).
    baseline : `numpy.ndarray` of float64, shape (n_trees_per_iteration,)
        The raw prediction before any tree.
    classes : `numpy.ndarray`
        The estimator's ``classes_``.
    n_features_in : int
        Number of features the trees read.

    Attributes
    ----------
    classes_, n_features_in_, n_trees_per_iteration_
        As scikit-learn's estimator has them.
    """

    def __init__(self, nodes, offsets, baseline, classes, n_features_in):
        self.nodes = nodes
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.baseline = np.asarray(baseline, dtype=np.float64).ravel()
        self.classes_ = np.asarray(classes)
        self.n_features_in_ = int(n_features_in)
        self.n_trees_per_iteration_ = len(self.baseline)
        self._predictors = None
        self._walk = None
        missing = [f for f, kinds in _NODE_FIELDS.items()
                   if nodes.dtype.names is None or f not in nodes.dtype.names
                   or nodes.dtype.fields[f][0].kind not in kinds]
        if missing:
            raise InvalidInputError("inconsistent tree arrays: the nodes lack numeric field(s) "
                                    + ", ".join(missing))
        if np.any(nodes["is_categorical"]):
            raise InvalidInputError("tree arrays with categorical splits are not supported")
        n_trees = len(self.offsets) - 1
        if n_trees < 0 or n_trees % self.n_trees_per_iteration_ or \
                self.offsets[0] != 0 or self.offsets[-1] != len(nodes) or \
                np.any(np.diff(self.offsets) < 1):
            raise InvalidInputError("inconsistent tree arrays: offsets do not cut the nodes "
                                    "into whole trees of every class")
        binary = len(self.classes_) == 2 and self.n_trees_per_iteration_ == 1
        if not binary and self.n_trees_per_iteration_ != len(self.classes_):
            raise InvalidInputError(f"inconsistent tree arrays: {self.n_trees_per_iteration_} "
                                    f"trees per iteration for {len(self.classes_)} classes")

    @classmethod
    def from_estimator(cls, estimator):
        """The arrays of a fitted `~sklearn.ensemble.HistGradientBoostingClassifier`."""
        if isinstance(estimator, cls):
            return estimator
        if not can_store_as_arrays(estimator):
            raise InvalidInputError(f"{type(estimator).__name__} cannot be stored as tree "
                                    "arrays (a fitted HistGradientBoostingClassifier without "
                                    "categorical features can)")
        trees = [p.nodes for iteration in estimator._predictors for p in iteration]
        offsets = np.concatenate([[0], np.cumsum([len(t) for t in trees])])
        return cls(np.concatenate(trees), offsets, estimator._baseline_prediction,
                   estimator.classes_, estimator.n_features_in_)

    # Storage ------------------------------------------------------------------
    def save(self, file):
        """Write the arrays to ``file`` (a path or a binary file object), as ``.npz``."""
        settings = {"format": _FORMAT, "n_features_in": self.n_features_in_,
                    "record_dtype": _describe(self.nodes.dtype)}
        np.savez_compressed(file, settings=np.array(json.dumps(settings)), nodes=self.nodes,
                            offsets=self.offsets, baseline=self.baseline,
                            classes=self.classes_)

    @classmethod
    def load(cls, path, *, name="model"):
        """Read arrays written by `save` (without pickle).

        Raises
        ------
        ModelIntegrityError
            For a file that is not such arrays.
        InvalidInputError
            For nodes without the fields prediction reads.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                settings = json.loads(str(data["settings"]))
                arrays = {k: data[k] for k in ("nodes", "offsets", "baseline", "classes")}
        except Exception as exc:  # numpy raises many types for a damaged file
            raise ModelIntegrityError(f"model '{name}': '{path}' is not readable tree "
                                      f"arrays ({type(exc).__name__}: {exc})") from None
        if not isinstance(settings, dict) or settings.get("format") != _FORMAT:
            raise ModelIntegrityError(f"model '{name}': '{path}' is not in the format "
                                      f"{_FORMAT}")
        return cls(arrays["nodes"], arrays["offsets"], arrays["baseline"], arrays["classes"],
                   settings["n_features_in"])

    # Prediction ---------------------------------------------------------------
    def predictors(self):
        """scikit-learn ``TreePredictor`` objects of the trees, made once.

        None when scikit-learn is not installed or stores its nodes in another
        dtype than the file's (then the numpy walker does all the work).
        """
        if self._predictors is None:
            expected = _sklearn_record_dtype()
            if expected is None or _describe(expected) != _describe(self.nodes.dtype):
                self._predictors = False
            else:
                from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

                no_categories = np.zeros((0, 8), dtype=np.uint32)
                self._predictors = [
                    TreePredictor(self.nodes[a:b], no_categories, no_categories)
                    for a, b in zip(self.offsets[:-1], self.offsets[1:])]
        return self._predictors or None

    def _walk_arrays(self):
        """Node arrays with children as indices into all nodes; leaves point to themselves."""
        if self._walk is None:
            nodes = self.nodes
            index = np.arange(len(nodes))
            start = np.repeat(self.offsets[:-1], np.diff(self.offsets))
            leaf = nodes["is_leaf"].astype(bool)
            self._walk = {
                "leaf": leaf,
                "feature": np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp),
                "threshold": nodes["num_threshold"].astype(np.float64),
                "missing_left": nodes["missing_go_to_left"].astype(bool),
                "left": np.where(leaf, index, nodes["left"].astype(np.intp) + start),
                "right": np.where(leaf, index, nodes["right"].astype(np.intp) + start),
                "value": nodes["value"].astype(np.float64),
            }
        return self._walk

    def leaf_values(self, x):
        """Each tree's leaf value for each row, walked in numpy: shape (n_trees, n).

        A row goes left where its feature is ``<=`` the node's threshold, and
        where it is NaN, to the side the node learned for missing values: the
        rule of scikit-learn's ``TreePredictor``.  All trees and rows are
        walked together, level by level, each lane until it reaches a leaf.

        Parameters
        ----------
        x : `numpy.ndarray` of float64, shape (n, ``n_features_in_``), C-contiguous
        """
        w = self._walk_arrays()
        n, n_features = x.shape
        n_trees = len(self.offsets) - 1
        flat_x = x.ravel()
        node = np.repeat(self.offsets[:-1], n)  # tree-major lanes: tree t, row r at t * n + r
        row_start = np.tile(np.arange(n, dtype=np.intp) * n_features, n_trees)
        lanes = np.flatnonzero(~w["leaf"][node])
        while lanes.size:
            at = node[lanes]
            value = flat_x[row_start[lanes] + w["feature"][at]]
            go_left = value <= w["threshold"][at]
            missing = np.isnan(value)
            if missing.any():
                go_left[missing] = w["missing_left"][at[missing]]
            at = np.where(go_left, w["left"][at], w["right"][at])
            node[lanes] = at
            lanes = lanes[~w["leaf"][at]]
        return w["value"][node].reshape(n_trees, n)

    def raw_predict(self, x, n_threads=None, walker="auto"):
        """Sum of the baseline and every tree's leaf value, shape (n, n_trees_per_iteration).

        The leaves are summed tree after tree, as scikit-learn sums them, so
        the result is the same bit for bit whichever walker found them.

        Parameters
        ----------
        x : array-like, shape (n, ``n_features_in_``)
        n_threads : int, optional
            OpenMP threads of scikit-learn's walker, used when rows x trees
            exceed `NUMPY_MAX_VISITS` or scikit-learn's walker is already
            imported (the numpy walker is 3 to 7 times slower per row).  Default: one for fewer than
            `PARALLEL_MIN_ROWS` rows (starting threads for each of hundreds of
            trees costs more than walking them, ten times more on a busy
            machine), else scikit-learn's default.  Every row's result is the
            same whatever the number of threads.
        walker : {'auto', 'numpy', 'sklearn'}, optional
            Which walker finds the leaves (the result is the same); 'sklearn'
            falls back to numpy where scikit-learn cannot read the nodes.
        """
        if walker not in ("auto", "numpy", "sklearn"):
            raise InvalidInputError(f"walker must be 'auto', 'numpy' or 'sklearn', not {walker!r}")
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise InvalidInputError(f"the trees read {self.n_features_in_} features; got "
                                    f"shape {x.shape}")
        k = self.n_trees_per_iteration_
        n_trees = len(self.offsets) - 1
        raw = np.zeros((len(x), k), dtype=np.float64, order="F")
        raw += self.baseline
        predictors = None
        if walker == "sklearn" or (walker == "auto" and (
                len(x) * n_trees > NUMPY_MAX_VISITS or _SKLEARN_WALKER in sys.modules)):
            predictors = self.predictors()  # faster, once imported
        if predictors is None:
            for i, values in enumerate(self.leaf_values(x)):
                raw[:, i % k] += values
            return raw
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        if n_threads is None and len(x) < PARALLEL_MIN_ROWS:
            n_threads = 1
        n_threads = _openmp_effective_n_threads(n_threads)
        f_idx_map = np.zeros(self.n_features_in_, dtype=np.uint32)
        known = np.zeros((0, 8), dtype=np.uint32)
        for i, predictor in enumerate(predictors):
            raw[:, i % k] += predictor.predict(x, known_cat_bitsets=known, f_idx_map=f_idx_map,
                                               n_threads=n_threads)
        return raw

    def predict_proba(self, x):
        """Class probabilities, as the estimator's ``predict_proba`` gives them."""
        raw = self.raw_predict(x)
        if self.n_trees_per_iteration_ == 1:  # binary: logit link
            proba = np.empty((len(raw), 2), dtype=raw.dtype)
            proba[:, 1] = _expit(raw[:, 0])
            proba[:, 0] = 1 - proba[:, 1]
            return proba
        raw = np.array(raw, copy=True)  # softmax, as scikit-learn's extmath.softmax
        raw -= raw.max(axis=1).reshape(-1, 1)
        np.exp(raw, out=raw)
        raw /= raw.sum(axis=1).reshape(-1, 1)
        return raw


def _describe(dtype):
    """A structured dtype as JSON-able text (field names, types and offsets)."""
    return json.dumps([[name, dtype.fields[name][0].str, dtype.fields[name][1]]
                       for name in dtype.names])
