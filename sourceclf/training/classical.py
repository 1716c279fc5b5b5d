"""Training the classical baselines: decision tree, random forest, boosting.

The published comparisons (Chaini et al. 2023) put MargNet next to a decision
tree, a random forest and XGBoost trained on the same 24 photometric
features, their hyper-parameters chosen by `~sklearn.model_selection.GridSearchCV`
(3-fold cross-validation, scoring accuracy).  This module trains those
baselines the same way:

* `make_estimator` builds an untrained estimator by short name (``'dt'``,
  ``'rf'``, ``'gbdt'``, ``'xgboost'``);
* `fit_classical` fits one on feature rows, with or without the grid search;
* `train_classical` (also reached through ``sourceclf.train(table,
  model='rf')``) splits a labelled catalog, trains, evaluates and keeps a
  calibration split for conformal sets, giving a
  `~sourceclf.models.SklearnClassifier`.
"""

import numpy as np

from ..exceptions import InvalidInputError
from ..features import default_feature_set, get_feature_set
from ..inputs import model_inputs
from ..models.card import ModelCard
from ..models.classical import CLASSICAL_MODELS, SklearnClassifier, canonical_model_name, \
    import_xgboost
from ..utils._threads import blas_threads
from .calibration import calibration_table
from .domain import MIN_DOMAIN_ROWS, fit_model_domain
from .labels import labels_from_table
from .metrics import classification_metrics
from .splits import split_indices

__all__ = ["DEFAULT_PARAMS", "PARAM_GRIDS", "make_estimator", "fit_classical",
           "train_classical"]

#: Parameters of each model when no grid search is run (and the fixed part
#: of the estimator when one is).
DEFAULT_PARAMS = {
    "dt": {"max_depth": 10, "min_samples_leaf": 10, "criterion": "gini"},
    "rf": {"n_estimators": 100, "max_features": "sqrt", "min_samples_leaf": 1},
    "gbdt": {"learning_rate": 0.1, "max_leaf_nodes": 31, "l2_regularization": 0.0,
             "max_iter": 500, "early_stopping": True, "validation_fraction": 0.1,
             "n_iter_no_change": 20},
    "xgboost": {"n_estimators": 300, "max_depth": 6, "learning_rate": 0.1,
                "subsample": 0.8, "colsample_bytree": 0.8, "tree_method": "hist"},
}

#: The grids `fit_classical` searches by default (small: a few dozen fits at most).
PARAM_GRIDS = {
    "dt": {"max_depth": [6, 10, 15, None], "min_samples_leaf": [1, 10, 50],
           "criterion": ["gini", "entropy"]},
    "rf": {"max_features": ["sqrt", 0.5], "min_samples_leaf": [1, 5]},
    "gbdt": {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31, 63]},
    "xgboost": {"max_depth": [4, 6, 8], "learning_rate": [0.05, 0.1]},
}


def _require_model(model):
    name = canonical_model_name(model)
    if name is None:
        raise InvalidInputError(f"unknown classical model {model!r}; known: "
                                f"{', '.join(CLASSICAL_MODELS)}")
    return name


def make_estimator(model, *, random_state=0, n_jobs=None, **params):
    """An untrained scikit-learn-compatible estimator.

    Parameters
    ----------
    model : str
        ``'dt'`` (decision tree), ``'rf'`` (random forest), ``'gbdt'``
        (scikit-learn histogram gradient boosting) or ``'xgboost'``.
    random_state : int
        Seed of the estimator.
    n_jobs : int, optional
        Threads of the random forest and of XGBoost (default: all cores).
        Histogram gradient boosting uses OpenMP threads (set
        ``OMP_NUM_THREADS`` to limit them).
    **params
        Estimator parameters, overriding `DEFAULT_PARAMS`.

    Returns
    -------
    estimator : estimator with ``fit`` and ``predict_proba``
    """
    name = _require_model(model)
    kwargs = {**DEFAULT_PARAMS[name], **params}
    if name == "dt":
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(random_state=random_state, **kwargs)
    if name == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=random_state,
                                      n_jobs=-1 if n_jobs is None else n_jobs, **kwargs)
    if name == "gbdt":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=random_state, **kwargs)
    xgboost = import_xgboost()
    return xgboost.XGBClassifier(random_state=random_state, n_jobs=n_jobs,
                                 eval_metric="logloss", **kwargs)


def _jsonable(value):
    """Plain Python (JSON-writable) copy of parameter values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def fit_classical(model, x, y, *, search=True, param_grid=None, params=None, cv=3,
                  scoring="accuracy", random_state=0, n_jobs=None):
    """Fit a classical model, optionally choosing its parameters by grid search.

    Parameters
    ----------
    model : str
        ``'dt'``, ``'rf'``, ``'gbdt'`` or ``'xgboost'``.
    x : array-like, shape (n, n_features)
        Training features.
    y : array-like of int, shape (n,)
        Class indices ``0 .. n_classes - 1``; every class must occur.
    search : bool
        Run `~sklearn.model_selection.GridSearchCV` (as the published
        baselines did) and refit the best parameters on all of ``x``; False
        fits ``params`` (or `DEFAULT_PARAMS`) once, much faster.
    param_grid : dict or list of dict, optional
        Grid to search; default `PARAM_GRIDS` of the model.
    params : dict, optional
        Fixed estimator parameters (overriding `DEFAULT_PARAMS`; the grid
        overrides these).
    cv : int
        Number of cross-validation folds (stratified, shuffled with
        ``random_state``: catalog rows are often ordered by magnitude).
    scoring : str
        Scikit-learn scorer of the search.
    random_state : int
        Seed of the estimator and of the folds.
    n_jobs : int, optional
        Threads per estimator (see `make_estimator`), also the limit of the
        OpenMP and BLAS thread pools during the fits (on a busy machine
        ``n_jobs=1`` is often the fastest for histogram gradient boosting);
        the search itself runs the fits one after the other.

    Returns
    -------
    estimator : fitted estimator
    info : dict
        JSON-able: ``model``, ``estimator`` (class), ``params`` (the
        parameters sourceclf set: `DEFAULT_PARAMS`, ``params`` and the best
        grid point), ``search``
        and, after a search, ``param_grid``, ``cv``, ``scoring``,
        ``best_params``, ``best_cv_score`` and ``cv_results`` (mean and
        standard deviation of the score for each candidate).
    """
    name = _require_model(model)
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or len(x) != len(y):
        raise InvalidInputError(f"x must be (n, n_features) with one label per row; got "
                                f"x {x.shape} and y {y.shape}")
    present = np.unique(y)
    if present.size < 2 or not np.array_equal(present, np.arange(present.size)):
        raise InvalidInputError(f"training labels must be 0 .. n_classes-1 with every class "
                                f"present (at least two); got {present.tolist()}")
    params = dict(params or {})
    estimator = make_estimator(name, random_state=random_state, n_jobs=n_jobs, **params)
    info = {"model": name, "estimator": type(estimator).__name__, "search": bool(search)}
    with blas_threads(n_jobs):
        estimator = _fit(estimator, x, y, info, search=search, param_grid=param_grid,
                         cv=cv, scoring=scoring, random_state=random_state)
    fixed = {**DEFAULT_PARAMS[name], **params, **info.get("best_params", {})}
    info["params"] = _jsonable(fixed)
    if name == "gbdt" and hasattr(estimator, "n_iter_"):
        info["n_iter"] = int(estimator.n_iter_)
    return estimator, info


def _fit(estimator, x, y, info, *, search, param_grid, cv, scoring, random_state):
    """Fit (or grid-search) ``estimator``; record the search in ``info``."""
    name = info["model"]
    if search:
        from sklearn.model_selection import GridSearchCV, StratifiedKFold

        grid = PARAM_GRIDS[name] if param_grid is None else param_grid
        folds = StratifiedKFold(n_splits=int(cv), shuffle=True, random_state=random_state)
        gs = GridSearchCV(estimator, grid, cv=folds, scoring=scoring, refit=True,
                          error_score="raise")
        gs.fit(x, y)
        estimator = gs.best_estimator_
        res = gs.cv_results_
        info.update({
            "param_grid": _jsonable(grid), "cv": int(cv), "scoring": scoring,
            "best_params": _jsonable(gs.best_params_),
            "best_cv_score": round(float(gs.best_score_), 5),
            "cv_results": [{"params": _jsonable(p), "mean": round(float(m), 5),
                            "std": round(float(s), 5)}
                           for p, m, s in zip(res["params"], res["mean_test_score"],
                                              res["std_test_score"])],
        })
    else:
        estimator.fit(x, y)
    return estimator


def train_classical(table, *, model="gbdt", label_column="class", feature_set=None,
                    classes=None, search=True, param_grid=None, params=None, cv=3,
                    name=None, validation_fraction=0.15, calibration_fraction=0.15,
                    random_state=0, n_jobs=None):
    """Train a classical model on a labelled catalog.

    The rows with all features are split (stratified, seeded) into training,
    validation and calibration parts as in `sourceclf.training.train`; the
    model (with its grid search, cross-validated on the training part) is
    fitted on the training part, its metrics measured on the validation
    part, and the calibration part's probabilities stored for conformal
    prediction sets.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Labelled catalog with the feature set's columns.
    model : str
        ``'dt'``, ``'rf'``, ``'gbdt'`` or ``'xgboost'``.
    label_column : str
        Column of class labels.
    feature_set : str, optional
        Default ``'margnet24'`` when the table has its columns, else ``'ugriz'``.
    classes : sequence of str, optional
        Class order; default the sorted labels.
    search, param_grid, params, cv
        Hyper-parameter search (see `fit_classical`).
    name : str, optional
        Name written into the model card.
    validation_fraction, calibration_fraction : float
        Fractions of rows held out for metrics and for calibration.
    random_state : int
        Seed of the split and of the model.
    n_jobs : int, optional
        Threads per estimator.

    Returns
    -------
    model : `~sourceclf.models.SklearnClassifier`
        Accepted by `sourceclf.classify`; ``model.save(directory)`` writes it.

    Examples
    --------
    >>> from sourceclf.demo import demo_catalog
    >>> from sourceclf.training import train_classical
    >>> clf = train_classical(demo_catalog(300), model="dt", search=False)
    >>> clf.classes
    ('GALAXY', 'STAR')
    """
    name_ = _require_model(model)
    classes, y = labels_from_table(table, label_column, classes)
    if feature_set is None:
        feature_set = default_feature_set(table)
    inputs = model_inputs(table, feature_set=feature_set, uses_images=False)
    keep = inputs.rows
    if keep.size < len(classes) * 10:
        raise InvalidInputError(f"only {keep.size} rows have all features; too few to train")
    x, y = inputs.features[keep], y[keep]
    tr, va, ca = split_indices(y, [validation_fraction, calibration_fraction], random_state)
    estimator, info = fit_classical(name_, x[tr], y[tr], search=search, param_grid=param_grid,
                                    params=params, cv=cv, random_state=random_state,
                                    n_jobs=n_jobs)
    card = ModelCard(
        name=name or f"user-{name_}-{feature_set}", version="1.0", kind="sklearn",
        architecture=name_, config=info["params"], feature_set=feature_set,
        uses_images=False, classes=list(classes),
        training={"estimator": info["estimator"], "n_train": int(tr.size),
                  "n_validation": int(va.size), "n_calibration": int(ca.size),
                  "random_state": random_state, "label_column": label_column,
                  "search": _search_summary(info)},
    )
    clf = SklearnClassifier(estimator, card)
    if va.size:
        pred = clf.predict_proba(x[va]).argmax(1)
        card.metrics["validation"] = classification_metrics(y[va], pred, classes)
    if ca.size:
        clf.calibration = calibration_table(clf, table[keep[ca]], x[ca], y[ca])
        if ca.size >= MIN_DOMAIN_ROWS:
            fit_model_domain(clf, x[tr], x[ca], get_feature_set(feature_set).names)
    return clf


def _search_summary(info):
    """The part of `fit_classical`'s info worth keeping in a model card."""
    keys = ("search", "param_grid", "cv", "scoring", "best_params", "best_cv_score",
            "n_iter")
    return {k: info[k] for k in keys if k in info}
