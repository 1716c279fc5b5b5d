"""Classical machine-learning classifiers: decision tree, random forest, boosting.

`SklearnClassifier` is a trained scikit-learn (or XGBoost) estimator in
sourceclf's model registry: `sourceclf.classify` accepts it and ``save()``
writes it without pickle: histogram gradient boosting as plain tree arrays
(`sourceclf.models.tree_arrays`), other estimators with `skops.io`.  Loading
a skops file trusts only the types that were listed in the model card when
it was saved, and only if they belong to scikit-learn or XGBoost.
`canonical_model_name` maps the short names and aliases of the classical
models (``'dt'``, ``'rf'``, ``'gbdt'``, ``'xgboost'``) onto
`CLASSICAL_MODELS`.

Training them (`~sourceclf.training.make_estimator`,
`~sourceclf.training.fit_classical`, `~sourceclf.training.train_classical`,
also reached through ``sourceclf.train(table, model='rf')``) is
`sourceclf.training`'s; those names, `~sourceclf.training.DEFAULT_PARAMS`
and `~sourceclf.training.PARAM_GRIDS` stay importable from this module.

``'gbdt'`` is scikit-learn's `~sklearn.ensemble.HistGradientBoostingClassifier`,
always available; ``'xgboost'`` is `xgboost.XGBClassifier`, available with
the optional ``xgboost`` extra (``pip install 'sourceclf[xgboost]'``).
"""

import json
import warnings

import numpy as np

from ..exceptions import InvalidInputError, ModelIntegrityError, SourceclfWarning
from ..progress import progress_bar
from ..utils._files import atomic_path
from .base import SourceClassifier
from .tree_arrays import TREES_FILE, GradientBoostedTrees, can_store_as_arrays

__all__ = ["CLASSICAL_MODELS", "TRUSTED_TYPE_PREFIXES", "SklearnClassifier",
           "canonical_model_name", "import_xgboost"]

#: Names of `sourceclf.training.classical` that this module has always offered;
#: they are looked up there on first use (models never import training).
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


def import_xgboost():
    """The `xgboost` module, or an ImportError saying how to install it."""
    try:
        import xgboost
    except ImportError:
        raise ImportError("model 'xgboost' needs the xgboost package: "
                          "pip install 'sourceclf[xgboost]' (or use model='gbdt', "
                          "scikit-learn's histogram gradient boosting)") from None
    return xgboost


class SklearnClassifier(SourceClassifier):
    """A classifier backed by a fitted scikit-learn-compatible estimator.

    The estimator's outputs are class indices ``0 .. n_classes - 1`` in the
    order of ``card.classes``.  Weights are never pickled: a histogram
    gradient boosting classifier is saved as plain tree arrays
    (``trees.npz``, `~sourceclf.models.tree_arrays.GradientBoostedTrees`:
    same probabilities bit for bit, and loading does not import all of
    scikit-learn); other estimators with `skops.io`, where ``save`` records
    in the card which non-default types the file needs, and loading refuses
    a file that needs any other type, or a type outside scikit-learn and
    XGBoost (`TRUSTED_TYPE_PREFIXES`).

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
            card.weights_file = TREES_FILE if can_store_as_arrays(estimator) else _WEIGHTS_FILE
        super().__init__(card, calibration)
        if not hasattr(estimator, "predict_proba"):
            raise InvalidInputError(f"{type(estimator).__name__} has no predict_proba")
        self.estimator = estimator

    # Storage ------------------------------------------------------------------
    def _write_weights(self, path):
        if path.suffix == ".npz":  # histogram gradient boosting: plain tree arrays
            trees = GradientBoostedTrees.from_estimator(self.estimator)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                trees.save(fh)
            self.card.extra.pop("skops_trusted_types", None)
            self.card.extra["library_versions"] = _library_versions(None)
            return
        if isinstance(self.estimator, GradientBoostedTrees):
            raise InvalidInputError(f"model '{self.name}': tree arrays are saved as "
                                    f"'{TREES_FILE}', not '{path.name}'")
        sio = _skops()
        # mode 0o666: the umask's permissions, as a file opened for writing gets.
        with atomic_path(path) as tmp:
            sio.dump(self.estimator, tmp)
            types = sorted(sio.get_untrusted_types(file=str(tmp)))
            outside = [t for t in types if not t.startswith(TRUSTED_TYPE_PREFIXES)]
            if outside:
                raise InvalidInputError(
                    f"model '{self.name}' holds types outside scikit-learn and XGBoost "
                    f"({', '.join(outside)}); sourceclf will not be able to load it safely")
        self.card.extra["skops_trusted_types"] = types
        self.card.extra["library_versions"] = _library_versions(self.estimator)

    @classmethod
    def _from_files(cls, card, weights, calibration):
        if weights.suffix == ".npz":
            trees = GradientBoostedTrees.load(weights, name=card.name)
            if len(trees.classes_) != len(card.classes):
                raise InvalidInputError(f"model '{card.name}': its trees predict "
                                        f"{len(trees.classes_)} classes, the card lists "
                                        f"{len(card.classes)}")
            return cls(trees, card, calibration)
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

    def _check_fits_card(self):
        """The estimator must read as many features as the card's feature set has."""
        n_features = self._n_features()
        fitted = getattr(self.estimator, "n_features_in_", None)
        if n_features is not None and fitted is not None and int(fitted) != n_features:
            raise InvalidInputError(f"model '{self.name}': its estimator reads {int(fitted)} "
                                    f"features, the card's feature set '{self.feature_set}' "
                                    f"has {n_features}")

    # Prediction ---------------------------------------------------------------
    def _predict_proba(self, features, cutouts, *, device, batch_size, progress,
                       precision="fp32", compile=False):
        # precision and compile were checked by check_speed_options: only the
        # defaults ('fp32' or 'auto', no compile) reach this point.
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
        versions["xgboost"] = import_xgboost().__version__
    return versions
