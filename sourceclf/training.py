"""Training sourceclf's torch models on a user's labelled catalog."""

import copy
import functools

import numpy as np

from .columns import decode_strings
from .exceptions import InvalidInputError

__all__ = ["train", "fit_module", "split_indices", "labels_from_table", "classification_metrics"]


def labels_from_table(table, label_column="class", classes=None):
    """Class labels of a table as stripped upper-case strings, with their indices.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Labelled catalog.
    label_column : str
        Column holding the labels (bytes from FITS are decoded).
    classes : sequence of str, optional
        Allowed classes in output order; default: the sorted unique labels.

    Returns
    -------
    classes : tuple of str
    y : `numpy.ndarray` of int
        Index of each row's label in ``classes``.
    """
    if label_column not in table.colnames:
        raise InvalidInputError(f"label column '{label_column}' not in table; columns: "
                                f"{', '.join(table.colnames)}")
    labels = np.char.upper(decode_strings(table[label_column]))
    if classes is None:
        classes = tuple(sorted(set(labels.tolist())))
    classes = tuple(str(c).upper() for c in classes)
    unknown = sorted(set(labels.tolist()) - set(classes))
    if unknown:
        raise InvalidInputError(f"labels {unknown} in column '{label_column}' are not among "
                                f"the classes {list(classes)}")
    if len(classes) < 2:
        raise InvalidInputError(f"need at least two classes to train, found {list(classes)}")
    lookup = {c: i for i, c in enumerate(classes)}
    return classes, np.array([lookup[v] for v in labels], dtype=np.int64)


def split_indices(y, fractions, random_state=0):
    """Stratified random split of row indices into consecutive parts.

    Parameters
    ----------
    y : array-like of int
        Class index of each row (for stratification).
    fractions : sequence of float
        Fraction of rows in each part but the first; the first gets the rest.
    random_state : int
        Seed.

    Returns
    -------
    parts : list of `numpy.ndarray`
        Sorted index arrays, the first part first.
    """
    from sklearn.model_selection import train_test_split

    rest = np.arange(len(y))
    parts = []
    remaining = 1.0
    for frac in fractions:
        if frac <= 0:
            parts.append(np.array([], dtype=int))
            continue
        take = frac / remaining
        rest, part = train_test_split(rest, test_size=take, random_state=random_state,
                                      stratify=np.asarray(y)[rest])
        parts.append(np.sort(part))
        remaining -= frac
    return [np.sort(rest)] + parts


def classification_metrics(y_true, y_pred, classes):
    """Accuracy, macro precision/recall/F1 and confusion matrix as a JSON-able dict."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                 average="macro", zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 5),
        "precision_macro": round(float(p), 5),
        "recall_macro": round(float(r), 5),
        "f1_macro": round(float(f), 5),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": list(classes),
    }


def fit_module(module, x_train, y_train, x_val, y_val, *, images_train=None, images_val=None,
               epochs=200, batch_size=256, lr=1e-3, weight_decay=0.0, patience=30,
               device="cpu", random_state=0, augment=None, progress=None, loss_fn=None):
    """Train a classifier network with Adam and early stopping on validation loss.

    Parameters
    ----------
    module : `torch.nn.Module`
        Network with ``forward(features, images)`` returning logits.
    x_train, x_val : array-like or None
        Feature rows (float32).
    y_train, y_val : array-like of int
        Class indices.
    images_train, images_val : array-like, optional
        Cutouts (n, 5, H, W) for image networks.
    epochs : int
        Maximum number of epochs.
    batch_size : int
        Rows per step.
    lr, weight_decay : float
        Adam(W) settings.
    patience : int
        Stop after this many epochs without a lower validation loss; the
        weights of the best epoch are kept.
    device : str or `torch.device`
        Where to train.
    random_state : int
        Seed of the initialisation-independent randomness (shuffling,
        dropout, augmentation).
    augment : callable, optional
        ``augment(images, generator) -> images`` applied to training batches.
    progress : bool, optional
        Show a tqdm bar over epochs.
    loss_fn : callable, optional
        ``loss_fn(module, logits, targets, n_train) -> loss``; default cross-entropy.

    Returns
    -------
    history : dict
        ``train_loss``, ``val_loss`` and ``val_accuracy`` per epoch, ``best_epoch``.
    """
    import torch
    from torch.nn import functional as F

    from .device import resolve_device
    from .progress import progress_bar

    device = resolve_device(device)
    gen = torch.Generator().manual_seed(int(random_state))
    torch.manual_seed(int(random_state))
    module.to(device)

    def tensor(a, dtype=torch.float32):
        return None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype)

    xt, xv = tensor(x_train), tensor(x_val)
    it, iv = tensor(images_train), tensor(images_val)
    yt, yv = tensor(y_train, torch.long), tensor(y_val, torch.long)
    n = len(yt)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    if loss_fn is None:
        def loss_fn(mod, logits, targets, n_train):
            return F.cross_entropy(logits, targets)

    def batches(x, im, y, size, order=None):
        idx = order if order is not None else torch.arange(len(y))
        for s in range(0, len(idx), size):
            b = idx[s:s + size]
            yield (None if x is None else x[b].to(device),
                   None if im is None else im[b].to(device), y[b].to(device))

    history = {"train_loss": [], "val_loss": [], "val_accuracy": [], "best_epoch": 0}
    best_loss, best_state, best_epoch = np.inf, None, 0
    with progress_bar(total=epochs, enabled=progress, unit="epoch") as bar:
        for epoch in range(epochs):
            module.train()
            total = 0.0
            order = torch.randperm(n, generator=gen)
            for xb, ib, yb in batches(xt, it, yt, batch_size, order):
                if augment is not None and ib is not None:
                    ib = augment(ib, gen)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(module, module(xb, ib), yb, n)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(yb)
            module.eval()
            vloss, correct = 0.0, 0
            with torch.inference_mode():
                for xb, ib, yb in batches(xv, iv, yv, 4096 if iv is None else 512):
                    logits = module(xb, ib)
                    vloss += float(F.cross_entropy(logits, yb, reduction="sum"))
                    correct += int((logits.argmax(1) == yb).sum())
            vloss /= max(len(yv), 1)
            history["train_loss"].append(total / n)
            history["val_loss"].append(vloss)
            history["val_accuracy"].append(correct / max(len(yv), 1))
            if vloss < best_loss:
                best_loss, best_epoch = vloss, epoch
                best_state = copy.deepcopy(module.state_dict())
            bar.update(1)
            if epoch - best_epoch >= patience:
                break
    module.load_state_dict(best_state)
    module.eval()
    history["best_epoch"] = best_epoch
    return history


def train(table, cutouts=None, *, label_column="class", model="auto", feature_set=None,
          classes=None, config=None, name=None, epochs=200, batch_size=256, lr=1e-3,
          weight_decay=0.0, patience=30, validation_fraction=0.15, calibration_fraction=0.15,
          augment_images=True, device="auto", random_state=0, progress=None, search=True,
          param_grid=None):
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
        and ``'xgboost'`` are trained by `sourceclf.models.classical.train_classical`
        (``config`` then holds estimator parameters; the optimisation settings
        do not apply).  The Bayesian architectures (``'bayesian-mlp'``,
        ``'bayesian-margnet-ann'``, ``'bayesian-margnet-ensemble'``,
        ``'bayesian-margformer'``: see `sourceclf.models.bayesian`) are
        trained with the ELBO (cross-entropy + KL / n_train), their posterior
        widths fitted by `sourceclf.models.bayesian.fit_posterior_scales`, and
        give a `~sourceclf.models.BayesianClassifier`, which
        ``sourceclf.classify(..., mc_samples=N)`` accepts.
    feature_set : str, optional
        Feature set; default ``'margnet24'`` when the table has its columns,
        else ``'ugriz'``.
    classes : sequence of str, optional
        Class order; default the sorted labels.
    config : dict, optional
        Extra keyword arguments of the architecture.
    name : str, optional
        Name written into the model card.
    epochs, batch_size, lr, weight_decay, patience
        Optimisation settings (see `fit_module`).
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
        `sourceclf.models.classical.PARAM_GRIDS`).

    Returns
    -------
    model : `~sourceclf.models.TorchClassifier` or `~sourceclf.models.SklearnClassifier`
        Accepted by `sourceclf.classify`; ``model.save(directory)`` writes it.
    """
    from .models.classical import canonical_model_name, train_classical

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
    import torch

    from .features import available_feature_sets, get_feature_set
    from .models.architectures import build_architecture
    from .models.base import TorchClassifier
    from .models.card import ModelCard

    from .models.architectures import ARCHITECTURES

    if model == "auto":
        model = "margformer" if cutouts is not None else "margnet-ann"
    build_architecture(model, None, check_only=True)
    arch = ARCHITECTURES[model]
    uses_features = getattr(arch, "uses_features", True)
    uses_images = getattr(arch, "uses_images", False)
    if uses_images and cutouts is None:
        raise InvalidInputError(f"architecture '{model}' needs cutouts")
    classes, y = labels_from_table(table, label_column, classes)
    n = len(table)
    valid = np.ones(n, dtype=bool)
    x = None
    if uses_features:
        if feature_set is None:
            usable = available_feature_sets(table)
            if not usable:
                get_feature_set("ugriz").compute(table)  # raises, listing missing columns
            feature_set = "margnet24" if "margnet24" in usable else usable[0]
        fm = get_feature_set(feature_set).compute(table)
        x, valid = fm.values, fm.valid
    else:
        feature_set = None
    images = None
    if uses_images:
        from .cutouts import make_cutouts

        images = make_cutouts(cutouts, table=table).data
        if len(images) != n:
            raise InvalidInputError(f"{len(images)} cutouts for a table of {n} rows")
        valid &= np.isfinite(images).all(axis=(1, 2, 3))
    keep = np.flatnonzero(valid)
    if keep.size < len(classes) * 10:
        raise InvalidInputError(f"only {keep.size} rows have all inputs; too few to train")
    y = y[keep]
    x = None if x is None else x[keep]
    images = None if images is None else images[keep]
    tr, va, ca = split_indices(y, [validation_fraction, calibration_fraction], random_state)

    def part(a, idx):
        return None if a is None else a[idx]

    torch.manual_seed(int(random_state))
    cfg = {"n_classes": len(classes), **(config or {})}
    if x is not None:
        cfg["n_features"] = x.shape[1]
    module = build_architecture(model, cfg)
    if x is not None and hasattr(module, "standardize") and hasattr(module.standardize, "fit"):
        module.standardize.fit(x[tr])
    if images is not None and hasattr(module, "fit_image_normalisation"):
        module.fit_image_normalisation(images[tr])
    augment = None
    if images is not None and augment_images:
        from .augment import random_augment as augment
    # Networks with variational layers minimise the ELBO (cross-entropy + KL / n_train).
    from .models.bayesian import (BayesianClassifier, elbo_loss, fit_posterior_scales,
                                  variational_layers)

    bayesian = bool(variational_layers(module))
    extra = {"loss_fn": elbo_loss()} if bayesian else {}
    # Stacked ensembles train in stages (members, then a head on another split); a
    # Bayesian ensemble applies the ELBO to its head only and fits the head's widths itself.
    fit = getattr(module, "fit_stages", None) or functools.partial(fit_module, module)
    history = fit(part(x, tr), y[tr], part(x, va), y[va],
                  images_train=part(images, tr), images_val=part(images, va),
                  epochs=epochs, batch_size=batch_size, lr=lr,
                  weight_decay=weight_decay, patience=patience, device=device,
                  random_state=random_state, augment=augment, progress=progress, **extra)
    module.cpu()
    if bayesian and "posterior_scales" not in history:
        # Early stopping leaves the posterior widths near their initial value: fit them
        # (means frozen) on the training rows, cutouts included for image networks.
        history["posterior_scales"] = fit_posterior_scales(
            module, part(x, tr), y[tr], images=part(images, tr), random_state=random_state)
    card = ModelCard(
        name=name or f"user-{model}-{feature_set or 'images'}", version="1.0", kind="torch",
        architecture=model, config=cfg, feature_set=feature_set, uses_images=uses_images,
        classes=list(classes),
        training={"n_train": int(tr.size), "n_validation": int(va.size),
                  "n_calibration": int(ca.size), "epochs_run": len(history["val_loss"]),
                  "best_epoch": history["best_epoch"], "random_state": random_state,
                  "label_column": label_column},
    )
    if bayesian:
        elbo = "cross_entropy + KL(posterior || prior) / n_train"
        if getattr(module, "fit_stages", None) is not None:  # a stacked ensemble
            elbo = "members: cross_entropy; head: " + elbo.replace("n_train", "n_head_rows")
        card.training["loss"] = elbo
        if history["posterior_scales"]:
            card.training["posterior_scales_final_loss"] = round(
                float(history["posterior_scales"][-1]), 6)
    clf = (BayesianClassifier if bayesian else TorchClassifier)(module, card)
    if va.size:
        pred = clf.predict_proba(part(x, va), part(images, va), device=device).argmax(1)
        card.metrics["validation"] = classification_metrics(y[va], pred, classes)
    if ca.size:
        clf.calibration = calibration_table(clf, table[keep[ca]], part(x, ca), y[ca],
                                            part(images, ca))
    return clf


def calibration_table(clf, rows, x, y, cutouts=None):
    """Table of a calibration split: labels, class probabilities and magnitudes.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        The trained model.
    rows : `~astropy.table.Table`
        The calibration rows of the original table (for magnitude columns).
    x : array-like
        Their features.
    y : array-like of int
        Their class indices.
    cutouts : array-like, optional
        Their cutouts.

    Returns
    -------
    calibration : `~astropy.table.Table`
        Columns ``label``, ``prob_<class>`` and, where the table has them,
        ``r`` (observed) and ``dered_r`` magnitudes.
    """
    from astropy.table import Table

    from .features import _Band
    from .columns import ColumnFinder

    proba = clf.predict_proba(x, cutouts)
    out = Table()
    out["label"] = np.array(clf.classes)[y]
    for k, c in enumerate(clf.classes):
        out[f"prob_{c.lower()}"] = proba[:, k].astype(np.float32)
    finder = ColumnFinder(rows)
    band = _Band(finder, "r")
    for col, values in (("r", band.observed_mag()), ("dered_r", band.dered())):
        if values is not None:
            out[col] = values.astype(np.float32)
    return out
