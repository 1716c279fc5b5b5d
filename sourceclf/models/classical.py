"""Classical machine-learning classifiers: decision tree, random forest, boosting.

The published comparisons (Chaini et al. 2023) put MargNet next to a decision
tree, a random forest and XGBoost trained on the same 24 photometric
features, their hyper-parameters chosen by `~sklearn.model_selection.GridSearchCV`
(3-fold cross-validation, scoring accuracy).  This module trains those
baselines the same way, and stores them in sourceclf's model registry:

* `make_estimator` builds an untrained estimator by short name (``'dt'``,
  ``'rf'``, ``'gbdt'``, ``'xgboost'``);
* `fit_classical` fits one on feature rows, with or without the grid search;
* `train_classical` (also reached through ``sourceclf.train(table,
  model='rf')``) splits a labelled catalog, trains, evaluates and keeps a
  calibration split for conformal sets;
* `SklearnClassifier` is the trained model: `sourceclf.classify` accepts it
  and ``save()`` writes it with `skops.io` (no pickle).  Loading trusts only
  the types that were listed in the model card when it was saved, and only
  if they belong to scikit-learn or XGBoost.

``'gbdt'`` is scikit-learn's `~sklearn.ensemble.HistGradientBoostingClassifier`,
always available; ``'xgboost'`` is `xgboost.XGBClassifier`, available with
the optional ``xgboost`` extra (``pip install 'sourceclf[xgboost]'``).
"""

import json
import os
from pathlib import Path

import numpy as np

from ..exceptions import InvalidInputError, ModelIntegrityError
from .base import SourceClassifier

__all__ = ["CLASSICAL_MODELS", "DEFAULT_PARAMS", "PARAM_GRIDS", "TRUSTED_TYPE_PREFIXES",
           "SklearnClassifier", "canonical_model_name", "make_estimator", "fit_classical",
           "train_classical"]

#: Short names of the classical models and the estimator each one builds.
CLASSICAL_MODELS = {
    "dt": "sklearn.tree.DecisionTreeClassifier",
    "rf": "sklearn.ensemble.RandomForestClassifier",
    "gbdt": "sklearn.ensemble.HistGradientBoostingClassifier",
    "xgboost": "xgboost.XGBClassifier",
}

_ALIASES = {
    "decision-tree": "dt", "tree": "dt",
    "random-forest": "rf", "forest": "rf",
    "hgb": "gbdt", "gradient-boosting": "gbdt", "histgradientboosting": "gbdt",
    "xgb": "xgboost",
}

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

#: Module prefixes whose types a stored model may ask `skops.io` to trust.
TRUSTED_TYPE_PREFIXES = ("sklearn.", "xgboost.")

_WEIGHTS_FILE = "model.skops"


def canonical_model_name(model):
    """Short name (``'dt'``, ``'rf'``, ``'gbdt'``, ``'xgboost'``) of a classical model.

    Parameters
    ----------
    model : str
        A short name or an alias (``'random-forest'``, ``'hgb'``, ``'xgb'``...),
        any case.

    Returns
    -------
    name : str or None
        None when ``model`` is not a classical model.

    Examples
    --------
    >>> canonical_model_name("Random-Forest"), canonical_model_name("margnet-ann")
    ('rf', None)
    """
    if not isinstance(model, str):
        return None
    key = model.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in CLASSICAL_MODELS else None


def _require_model(model):
    name = canonical_model_name(model)
    if name is None:
        raise InvalidInputError(f"unknown classical model {model!r}; known: "
                                f"{', '.join(CLASSICAL_MODELS)}")
    return name


def _xgboost():
    try:
        import xgboost
    except ImportError:
        raise ImportError("model 'xgboost' needs the xgboost package: "
                          "pip install 'sourceclf[xgboost]' (or use model='gbdt', "
                          "scikit-learn's histogram gradient boosting)") from None
    return xgboost


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
    xgboost = _xgboost()
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
    with _thread_limit(n_jobs):
        estimator = _fit(estimator, x, y, info, search=search, param_grid=param_grid,
                         cv=cv, scoring=scoring, random_state=random_state)
    fixed = {**DEFAULT_PARAMS[name], **params, **info.get("best_params", {})}
    info["params"] = _jsonable(fixed)
    if name == "gbdt" and hasattr(estimator, "n_iter_"):
        info["n_iter"] = int(estimator.n_iter_)
    return estimator, info


def _thread_limit(n_jobs):
    import contextlib

    if n_jobs is None or n_jobs < 1:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(n_jobs))


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


class SklearnClassifier(SourceClassifier):
    """A classifier backed by a fitted scikit-learn-compatible estimator.

    The estimator's outputs are class indices ``0 .. n_classes - 1`` in the
    order of ``card.classes``.  Weights are stored with `skops.io`, never
    pickle: ``save`` records in the card which non-default types the file
    needs, and loading refuses a file that needs any other type, or a type
    outside scikit-learn and XGBoost (`TRUSTED_TYPE_PREFIXES`).

    Parameters
    ----------
    estimator : estimator
        Fitted, with ``predict_proba`` and ``classes_``.
    card : `~sourceclf.models.ModelCard`
        Its card.
    calibration : `~astropy.table.Table`, optional
        Calibration split for conformal sets.
    """

    kind = "sklearn"

    def __init__(self, estimator, card, calibration=None):
        if card.weights_file in ("", None, "weights.safetensors"):
            card.weights_file = _WEIGHTS_FILE
        super().__init__(card, calibration)
        if not hasattr(estimator, "predict_proba"):
            raise InvalidInputError(f"{type(estimator).__name__} has no predict_proba")
        self.estimator = estimator

    # Storage ------------------------------------------------------------------
    def _write_weights(self, path):
        sio = _skops()
        path = Path(path)
        # A plain open() (not mkstemp) so that the file gets the umask's permissions.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            sio.dump(self.estimator, tmp)
            types = sorted(sio.get_untrusted_types(file=tmp))
            outside = [t for t in types if not t.startswith(TRUSTED_TYPE_PREFIXES)]
            if outside:
                raise InvalidInputError(
                    f"model '{self.name}' holds types outside scikit-learn and XGBoost "
                    f"({', '.join(outside)}); sourceclf will not be able to load it safely")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.card.extra["skops_trusted_types"] = types
        self.card.extra["library_versions"] = _library_versions(self.estimator)

    @classmethod
    def _from_files(cls, card, weights, calibration):
        sio = _skops()
        listed = card.extra.get("skops_trusted_types")
        if not isinstance(listed, list) or not all(isinstance(t, str) for t in listed):
            raise ModelIntegrityError(f"model '{card.name}': card lacks the list of types "
                                      "its skops file may use; refusing to load it")
        outside = [t for t in listed if not t.startswith(TRUSTED_TYPE_PREFIXES)]
        if outside:
            raise ModelIntegrityError(
                f"model '{card.name}': card asks to trust types outside scikit-learn and "
                f"XGBoost ({', '.join(outside)}); refusing to load it")
        try:
            needed = sio.get_untrusted_types(file=str(weights))
        except Exception as exc:  # skops raises various errors on a corrupt file
            raise ModelIntegrityError(f"model '{card.name}': '{weights}' is not a readable "
                                      f"skops file ({exc})") from None
        unexpected = sorted(set(needed) - set(listed))
        if unexpected:
            raise ModelIntegrityError(
                f"model '{card.name}': weights need types the card does not list "
                f"({', '.join(unexpected)}); refusing to load them")
        try:
            estimator = _load_quietly(sio, weights, sorted(set(needed)), card)
        except Exception as exc:
            saved = card.extra.get("library_versions", {})
            raise InvalidInputError(
                f"model '{card.name}' could not be loaded with this scikit-learn "
                f"({_library_versions(None).get('scikit-learn')}); it was saved with "
                f"{json.dumps(saved)}: {type(exc).__name__}: {exc}") from None
        n_classes = len(card.classes)
        if len(getattr(estimator, "classes_", ())) != n_classes:
            raise InvalidInputError(f"model '{card.name}': estimator predicts "
                                    f"{len(getattr(estimator, 'classes_', ()))} classes, the "
                                    f"card lists {n_classes}")
        return cls(estimator, card, calibration)

    # Prediction ---------------------------------------------------------------
    def _predict_proba(self, features, cutouts, *, device, batch_size, progress,
                       precision="fp32", compile=False):
        # precision and compile were checked by _check_speed_options: only the
        # defaults ('fp32' or 'auto', no compile) reach this point.
        from ..progress import progress_bar

        x = np.asarray(features, dtype=np.float32)
        n = len(x)
        out = np.zeros((n, len(self.classes)), dtype=np.float64)
        cols = np.asarray(self.estimator.classes_, dtype=int)
        step = int(batch_size or 65536)
        if step < 1:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
        with progress_bar(total=n, enabled=progress, unit="src") as bar:
            for start in range(0, n, step):
                stop = min(start + step, n)
                out[start:stop, cols] = self.estimator.predict_proba(x[start:stop])
                bar.update(stop - start)
        return out


def _load_quietly(sio, weights, trusted, card):
    """``skops.io.load``, turning scikit-learn's version warnings into one clear warning."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator = sio.load(str(weights), trusted=trusted)
    mismatch = False
    for w in caught:
        if w.category.__name__ == "InconsistentVersionWarning":
            mismatch = True
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if mismatch:
        from ..exceptions import SourceclfWarning

        saved = card.extra.get("library_versions", {}).get("scikit-learn", "?")
        warnings.warn(f"model '{card.name}' was saved with scikit-learn {saved} and is "
                      f"loaded with {_library_versions(None)['scikit-learn']}; its "
                      "predictions may differ: re-train it (see its card's recipe)",
                      SourceclfWarning, stacklevel=4)
    return estimator


def _skops():
    try:
        import skops.io as sio
    except ImportError:
        raise ImportError("classical models are stored with skops: pip install skops") \
            from None
    return sio


def _library_versions(estimator):
    import sklearn

    versions = {"scikit-learn": sklearn.__version__}
    try:
        import skops

        versions["skops"] = skops.__version__
    except ImportError:  # pragma: no cover
        pass
    if estimator is not None and type(estimator).__module__.startswith("xgboost"):
        versions["xgboost"] = _xgboost().__version__
    return versions


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
    model : `SklearnClassifier`
        Accepted by `sourceclf.classify`; ``model.save(directory)`` writes it.

    Examples
    --------
    >>> from sourceclf.demo import demo_catalog
    >>> from sourceclf.models.classical import train_classical
    >>> clf = train_classical(demo_catalog(300), model="dt", search=False)
    >>> clf.classes
    ('GALAXY', 'STAR')
    """
    from ..features import available_feature_sets, get_feature_set
    from ..training import (calibration_table, classification_metrics, labels_from_table,
                            split_indices)
    from .card import ModelCard

    name_ = _require_model(model)
    classes, y = labels_from_table(table, label_column, classes)
    if feature_set is None:
        usable = available_feature_sets(table)
        if not usable:
            get_feature_set("ugriz").compute(table)  # raises, listing missing columns
        feature_set = "margnet24" if "margnet24" in usable else usable[0]
    fm = get_feature_set(feature_set).compute(table)
    keep = np.flatnonzero(fm.valid)
    if keep.size < len(classes) * 10:
        raise InvalidInputError(f"only {keep.size} rows have all features; too few to train")
    x, y = fm.values[keep], y[keep]
    tr, va, ca = split_indices(y, [validation_fraction, calibration_fraction], random_state)
    estimator, info = fit_classical(name_, x[tr], y[tr], search=search, param_grid=param_grid,
                                    params=params, cv=cv, random_state=random_state,
                                    n_jobs=n_jobs)
    card = ModelCard(
        name=name or f"user-{name_}-{feature_set}", version="1.0", kind="sklearn",
        architecture=name_, config=info["params"], feature_set=feature_set,
        uses_images=False, classes=list(classes), weights_file=_WEIGHTS_FILE,
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
    return clf


def _search_summary(info):
    """The part of `fit_classical`'s info worth keeping in a model card."""
    keys = ("search", "param_grid", "cv", "scoring", "best_params", "best_cv_score",
            "n_iter")
    return {k: info[k] for k in keys if k in info}
