"""MAPIE 1.x behind one seam: conformity scores, quantiles and prediction sets.

`sourceclf.conformal` needs more of MAPIE than its public estimator offers:
the conformity scores of the calibration rows, the conformal quantile of any
*subset* of them (one per Mondrian group) and the prediction sets for given
quantiles.  `MapieConformalizer` is the only place that touches MAPIE's
internals (``SplitConformalClassifier._mapie_classifier``, the fitted
conformity-score function and, for RAPS, its held-out split); if MAPIE
changes them, this module is what to adapt, and its test says so first.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from ..exceptions import InvalidInputError
from .scores import SCORES

__all__ = ["ProbabilityPassthrough", "MapieConformalizer"]


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


class MapieConformalizer:
    """MAPIE's split-conformal scores, quantiles and sets over stored probabilities.

    Parameters
    ----------
    classes : sequence of str
        Class labels in *sorted* order (MAPIE's label encoding), the column
        order of every probability matrix given to this object.
    levels : list of float
        Confidence levels.
    score : str
        A key of `SCORES`.
    random_state : int, optional
        Seed of the randomised scores and of RAPS's held-out split.

    Attributes
    ----------
    mapie_ : `mapie.classification.SplitConformalClassifier`
        The conformalized MAPIE estimator (``prefit=True`` around
        `ProbabilityPassthrough`).
    scores_ : `numpy.ndarray`
        Conformity score of each scored calibration row.
    scored_rows_ : `numpy.ndarray` of int
        Which calibration rows ``scores_`` belong to: all of them, except
        for RAPS, which holds a fraction apart to tune its penalty.

    Notes
    -----
    MAPIE's errors (a `ValueError`) pass through unchanged, for the caller
    to word.
    """

    def __init__(self, classes, levels, score, random_state=0):
        self.classes = tuple(classes)
        self.levels = list(levels)
        self.score = score
        self.random_state = random_state
        self._mapie_score, self._include_last = SCORES[score]
        self._alpha = 1 - np.asarray(self.levels)

    def conformalize(self, proba, labels):
        """Compute the conformity scores of calibration rows.

        Parameters
        ----------
        proba : `numpy.ndarray`, shape (n, n_classes)
            Calibration probabilities, columns in ``classes`` order.
        labels : `numpy.ndarray` of str
            Their true classes.

        Returns
        -------
        self
        """
        from mapie.classification import SplitConformalClassifier
        from sklearn.model_selection import StratifiedShuffleSplit
        from sklearn.preprocessing import LabelEncoder

        estimator = ProbabilityPassthrough(self.classes).fit()
        mapie = SplitConformalClassifier(estimator, confidence_level=self.levels,
                                         conformity_score=self._mapie_score, prefit=True,
                                         random_state=self.random_state)
        with warnings.catch_warnings():
            # sourceclf warns about absent classes in its own words.
            warnings.filterwarnings("ignore", message=".*conformalization dataset has less "
                                                      "labels.*")
            mapie.conformalize(proba, labels)
        self.mapie_ = mapie
        self._fn = mapie._mapie_classifier.conformity_score_function_
        self.scores_ = np.asarray(mapie.conformity_scores)
        self.scored_rows_ = np.arange(len(labels))
        if self._mapie_score == "raps":
            # MAPIE keeps some rows apart to tune the RAPS penalty and scores
            # the rest; recover which rows were scored (checked against MAPIE's copy).
            y_enc = LabelEncoder().fit(self.classes).transform(labels)
            split = StratifiedShuffleSplit(n_splits=1, test_size=self._fn.size_raps,
                                           random_state=self.random_state)
            self.scored_rows_, held = next(split.split(proba, y_enc))
            if not np.array_equal(self._fn.X_raps, proba[held]):  # pragma: no cover
                raise RuntimeError("cannot match MAPIE's RAPS split; is MAPIE 1.x installed?")
            self._cutoff = np.asarray(self._fn.cutoff)
        if len(self.scores_) != len(self.scored_rows_):  # pragma: no cover - MAPIE changed
            raise RuntimeError("unexpected number of MAPIE conformity scores")
        return self

    def quantiles(self, idx):
        """MAPIE's conformal quantile, per level, of the scores ``scores_[idx]``."""
        fn = self._fn
        kwargs = {}
        if self._mapie_score == "raps":
            kwargs["include_last_label"] = self._include_last
            saved = fn.cutoff
            fn.cutoff = self._cutoff[idx]
        try:
            q = fn.get_conformity_score_quantiles(self.scores_[idx], self._alpha, "prefit",
                                                  **kwargs)
        finally:
            if kwargs:
                fn.cutoff = saved
        return np.asarray(q, dtype=np.float64).reshape(-1)

    def regularisation(self):
        """RAPS's penalty ``lambda_star`` and rank ``k_star`` per level, None for other scores.

        MAPIE tunes them on its held-out RAPS rows when computing quantiles
        (`quantiles` must have been called); they do not depend on which
        scored rows the quantile was computed from.
        """
        if self._mapie_score != "raps":
            return None, None
        n_levels = len(self.levels)
        return (np.broadcast_to(np.asarray(self._fn.lambda_star, dtype=np.float64),
                                (n_levels,)).copy(),
                np.broadcast_to(np.asarray(self._fn.k_star, dtype=np.int64), (n_levels,)).copy())

    def prediction_sets(self, proba, quantiles):
        """MAPIE's prediction sets of rows for given quantiles.

        Parameters
        ----------
        proba : `numpy.ndarray`, shape (n, n_classes)
            Probabilities, columns in ``classes`` order.
        quantiles : array-like, shape (n_levels,)
            One quantile per level (from `quantiles`).

        Returns
        -------
        sets : `numpy.ndarray` of bool, shape (n, n_classes, n_levels)
        """
        fn = self._fn
        quantiles = np.asarray(quantiles, dtype=np.float64)
        if self._mapie_score == "top_k":  # MAPIE indexes with top-k's quantiles
            quantiles = quantiles.astype(np.int64)
        fn.quantiles_ = quantiles
        y_pred = fn.get_predictions(proba, self._alpha, proba, "prefit")
        out = fn.get_prediction_sets(y_pred, self.scores_, self._alpha, "prefit",
                                     include_last_label=self._include_last)
        return np.asarray(out, dtype=bool)
