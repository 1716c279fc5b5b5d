"""`train`: a new classifier from a user's labelled catalog."""

import inspect

import numpy as np

from ..augment import random_augment
from ..columns import map_columns
from ..exceptions import InvalidInputError
from ..features import default_feature_set, get_feature_set
from ..inputs import model_inputs
from ..models import bayesian
from ..models.architectures import ARCHITECTURES, build_architecture
from ..models.base import TorchClassifier
from ..models.card import ModelCard
from ..models.classical import canonical_model_name
from ..models.margnet_cnn import MargNetStack
from ..sky import STAMP_BORDER
from .calibration import calibration_table
from .classical import train_classical
from .domain import MIN_DOMAIN_ROWS, fit_model_domain
from .fitting import build_network, fit_network
from .labels import labels_from_table
from .metrics import classification_metrics
from .splits import split_indices

__all__ = ["train"]


def train(table, cutouts=None, *, label_column="class", model="auto", feature_set=None,
          classes=None, config=None, name=None, epochs=200, batch_size=256, lr=1e-3,
          weight_decay=0.0, patience=30, validation_fraction=0.15, calibration_fraction=0.15,
          augment_images=True, device="auto", random_state=0, progress=None, search=True,
          param_grid=None, columns=None):
    """Train a classifier on a labelled catalog.

    The rows are split (stratified, seeded) into training, validation (early
    stopping) and calibration parts; the calibration part's class
    probabilities are stored with the model so that `sourceclf.classify` can
    add conformal prediction sets straight away.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Labelled catalog with the feature set's columns.
    cutouts : array-like, optional
        Cutouts for image models.
    label_column : str
        Column of class labels (``'STAR'``, ``'GALAXY'``, ``'QSO'``...).
    model : str
        Architecture name (see `sourceclf.models.ARCHITECTURES`): ``'margnet-ann'``,
        ``'mlp'``...; ``'auto'`` picks ``'margformer'`` with cutouts, else
        ``'margnet-ann'``.  The classical models ``'dt'``, ``'rf'``, ``'gbdt'``
        and ``'xgboost'`` are trained by `~sourceclf.training.train_classical`
        (``config`` then holds estimator parameters; the optimisation settings
        do not apply).  The Bayesian architectures (``'bayesian-mlp'``,
        ``'bayesian-margnet-ann'``, ``'bayesian-margnet-ensemble'``,
        ``'bayesian-margformer'``: see `sourceclf.models.bayesian`) are
        trained with the ELBO (cross-entropy + KL / n_train), their posterior
        widths fitted by `sourceclf.models.bayesian.fit_posterior_scales`, and
        give a `~sourceclf.models.BayesianClassifier`, which
        ``sourceclf.classify(..., mc_samples=N)`` accepts.
    feature_set : str, optional
        Feature set (see `sourceclf.features.FEATURE_SETS`); default
        ``'margnet24'`` when the table has its columns, else ``'ugriz'``.
        ``'ugriz_psf'`` adds the PSF minus model magnitudes
        ``psfMag_<b> - modelMag_<b>`` to ``'ugriz'`` (no shipped model uses
        it: train one on your own labels).
    classes : sequence of str, optional
        Class order; default the sorted labels.
    config : dict, optional
        Extra keyword arguments of the architecture.  Image networks
        subtract each stamp's own border sky before reading it
        (``sky_border``: `sourceclf.sky.STAMP_BORDER` pixels, or a stacked
        ensemble's ``cnn={'sky_border': ...}``) unless it says otherwise.
    name : str, optional
        Name written into the model card.
    epochs, batch_size, lr, weight_decay, patience
        Optimisation settings (see `~sourceclf.training.fit_module`; the
        network is prepared and fitted by `~sourceclf.training.fit_network`).
    validation_fraction, calibration_fraction : float
        Fractions of rows held out for early stopping and for calibration.
    augment_images : bool
        Random rotations, flips and small shifts of training cutouts.
    device : str
        Training device.
    random_state : int
        Seed; the same seed gives the same model.
    progress : bool, optional
        Show a progress bar.
    search : bool
        Classical models only: choose hyper-parameters by a 3-fold grid search
        scored on accuracy, as the published baselines did.
    param_grid : dict, optional
        Classical models only: the grid (default
        `~sourceclf.training.PARAM_GRIDS`).
    columns : dict, optional
        The table's own names for sourceclf's inputs, as for
        `sourceclf.classify` (e.g. ``{'u': 'umag', 'psfMag_u': 'upsf'}``).
        The model is trained on the inputs, so it classifies any catalog
        that supplies them, under whatever names ``columns=`` maps.

    Returns
    -------
    model : `~sourceclf.models.TorchClassifier` or `~sourceclf.models.SklearnClassifier`
        Accepted by `sourceclf.classify`; ``model.save(directory)`` writes it.
    """
    table = map_columns(table, columns)  # the catalog under sourceclf's names (a view)
    if canonical_model_name(model) is not None:
        if cutouts is not None:
            raise InvalidInputError(f"model '{model}' reads photometric features only; "
                                    "it takes no cutouts")
        return train_classical(table, model=model, label_column=label_column,
                               feature_set=feature_set, classes=classes, search=search,
                               param_grid=param_grid, params=config, name=name,
                               validation_fraction=validation_fraction,
                               calibration_fraction=calibration_fraction,
                               random_state=random_state)
    if model == "auto":
        model = "margformer" if cutouts is not None else "margnet-ann"
    build_architecture(model, None, check_only=True)
    arch = ARCHITECTURES[model]
    uses_features = getattr(arch, "uses_features", True)
    uses_images = getattr(arch, "uses_images", False)
    if uses_images and cutouts is None:
        raise InvalidInputError(f"architecture '{model}' needs cutouts")
    classes, y = labels_from_table(table, label_column, classes)
    if not uses_features:
        feature_set = None
    elif feature_set is None:
        feature_set = default_feature_set(table)
    inputs = model_inputs(table, feature_set=feature_set, uses_images=uses_images,
                          cutouts=cutouts, model_name=model)
    x, images, valid = inputs.features, inputs.stamps, inputs.valid
    if images is not None:
        valid = valid & np.isfinite(images).all(axis=(1, 2, 3))
    keep = np.flatnonzero(valid)
    if keep.size < len(classes) * 10:
        raise InvalidInputError(f"only {keep.size} rows have all inputs; too few to train")
    y = y[keep]
    x = None if x is None else x[keep]
    images = None if images is None else images[keep]
    tr, va, ca = split_indices(y, [validation_fraction, calibration_fraction], random_state)

    def part(a, idx):
        return None if a is None else a[idx]

    cfg = with_sky_border(arch, {"n_classes": len(classes), **(config or {})})
    if x is not None:
        cfg["n_features"] = x.shape[1]
    module = build_network(model, cfg, random_state)
    # Networks with variational layers minimise the ELBO (cross-entropy + KL / n_train);
    # stacked ensembles train in stages (members, then a head on another split).
    history = fit_network(module, part(x, tr), y[tr], part(x, va), y[va],
                          images_train=part(images, tr), images_val=part(images, va),
                          epochs=epochs, batch_size=batch_size, lr=lr,
                          weight_decay=weight_decay, patience=patience, device=device,
                          random_state=random_state,
                          augment=random_augment if images is not None and augment_images
                          else None, progress=progress)
    module.cpu()
    is_bayesian = bool(bayesian.variational_layers(module))
    card = ModelCard(
        name=name or f"user-{model}-{feature_set or 'images'}", version="1.0", kind="torch",
        architecture=model, config=cfg, feature_set=feature_set, uses_images=uses_images,
        classes=list(classes),
        training={"n_train": int(tr.size), "n_validation": int(va.size),
                  "n_calibration": int(ca.size), "epochs_run": len(history["val_loss"]),
                  "best_epoch": history["best_epoch"], "random_state": random_state,
                  "label_column": label_column},
    )
    if is_bayesian:
        elbo = "cross_entropy + KL(posterior || prior) / n_train"
        if isinstance(module, MargNetStack):
            elbo = "members: cross_entropy; head: " + elbo.replace("n_train", "n_head_rows")
        card.training["loss"] = elbo
        if history["posterior_scales"]:
            card.training["posterior_scales_final_loss"] = round(
                float(history["posterior_scales"][-1]), 6)
    clf = (bayesian.BayesianClassifier if is_bayesian else TorchClassifier)(module, card)
    if va.size:
        pred = clf.predict_proba(part(x, va), part(images, va), device=device).argmax(1)
        card.metrics["validation"] = classification_metrics(y[va], pred, classes)
    if ca.size:
        clf.calibration = calibration_table(clf, table[keep[ca]], part(x, ca), y[ca],
                                            part(images, ca))
        if x is not None and ca.size >= MIN_DOMAIN_ROWS:
            fit_model_domain(clf, x[tr], x[ca], get_feature_set(feature_set).names)
    return clf


def _takes(arch, name):
    """Whether the constructor of ``arch`` (or of a class it passes keywords to) takes
    ``name``."""
    return any(name in inspect.signature(cls.__init__).parameters
               for cls in arch.__mro__ if "__init__" in vars(cls))


def with_sky_border(arch, config):
    """``config`` with each stamp's own sky subtracted by default (`STAMP_BORDER`).

    Parameters
    ----------
    arch : type
        An architecture (`sourceclf.models.ARCHITECTURES`).
    config : dict
        Its keyword arguments; a ``sky_border`` there (or in a stacked
        ensemble's ``cnn``) is kept as given.

    Returns
    -------
    config : dict
        A new dict; ``config`` itself for architectures that read no stamps.
    """
    if _takes(arch, "sky_border"):
        return {"sky_border": STAMP_BORDER, **config}
    if _takes(arch, "cnn") and getattr(arch, "uses_images", False):
        return {**config, "cnn": {"sky_border": STAMP_BORDER, **(config.get("cnn") or {})}}
    return config
