"""Recipes that train the shipped photometric models on public SDSS tables.

Run one with::

    python -m sourceclf.train_recipes margnet-photometry-sg --data-dir ../shared/data

Each recipe reads its SDSS table (`sourceclf.recipes.data.read_recipe_table`),
splits it with a fixed seed into training, validation (early stopping),
calibration (conformal sets) and test parts (`sourceclf.recipes.data.recipe_split`),
trains, evaluates on the test part (which it never sees otherwise), and writes
the model directory (card, weights, calibration) into the registry.

``ugriz-sgq`` (4.0) is a blend (`~sourceclf.models.BlendClassifier`) of
gradient-boosted trees and an MLP ensemble trained on the SDSS17 and DR14
tables together; ``blend-photometry-sg`` blends the shipped
``margnet-photometry-sg`` and ``gbdt-photometry-sg`` with weights chosen on
the validation split.  ``python -m sourceclf.train_recipes domains`` fits
the applicability domain (`~sourceclf.models.ApplicabilityDomain`) of the
24-column models from their recipes' training rows, without retraining them.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from ..conformal.thresholds import write_thresholds
from ..demo import FEATURE_MODEL_PATH, fit_feature_model
from ..features import get_feature_set
from ..models.base import TorchClassifier
from ..models.bayesian import BayesianClassifier, elbo_loss, fit_posterior_scales
from ..models.blend import BlendClassifier
from ..models.card import ModelCard
from ..models.classical import SklearnClassifier
from ..models.registry import MODEL_DIR
from ..training import fit_classical, fitting, labels_from_table
from ..utils._threads import blas_threads, torch_threads
from .cards import (DOMAIN_MODELS, accuracy_by_magnitude, calibrate_on, domain_note,
                    faint_compact_domain, fit_domains, held_out_metrics, magnitude_range,
                    mc_metrics, metrics_with_recall, n_parameters, posterior_summary,
                    print_metrics, recipe_domain, software_versions, split_sizes)
from .data import (COMBINED_SPLIT_FRACTIONS, DATA_FILES, DEDUP_ARCSEC, SPLIT_FRACTIONS,
                   SPLIT_SEED, read_recipe_table, recipe_split)

__all__ = ["RECIPES", "GBDT_SG_GRID", "UGRIZ_SGQ_SETTINGS", "DOMAIN_MODELS",
           "fit_network", "fit_network_onecycle", "network_settings", "train_photometric",
           "margnet_photometry_sg", "ugriz_sgq", "bayesian_margnet_photometry_sg",
           "gbdt_photometry_sg", "blend_photometry_sg", "fit_domains", "feature_model", "main"]


#: How the photometric recipes split their table, as their cards say.
_SPLIT_TEXT = ("stratified; fractions train/validation/calibration/test = "
               f"{1 - sum(SPLIT_FRACTIONS):.2f}/" + "/".join(map(str, SPLIT_FRACTIONS)))


def _recipe_inputs(table, feature_set):
    """The split, classes, class indices and feature matrix of a recipe's table."""
    parts = recipe_split(table)
    classes, y = labels_from_table(table)
    x = get_feature_set(feature_set).compute(table).values
    return parts, classes, y, x


def _provenance(name):
    """The first entries of a photometric card's ``training``: data, command, split."""
    return {"data": DATA_FILES[name], "recipe": f"python -m sourceclf.train_recipes {name}",
            "split": _SPLIT_TEXT, "split_seed": SPLIT_SEED}


def fit_network(architecture, config, x_train, y_train, x_val, y_val, *, seed=0, epochs=500,
                batch_size=256, lr=1e-3, weight_decay=0.0, patience=40, loss_fn=None):
    """Build a photometric network and train it with early stopping.

    An ensemble's members are trained one after the other, member ``k`` with
    seed ``seed + k``; each member's input layer (standardisation or
    piecewise-linear encoding) is fitted on ``x_train``
    (`sourceclf.training.fitting.fit_network` with ``by_member=True``).  The
    posterior widths of a Bayesian network are not fitted here (see
    `bayesian_margnet_photometry_sg`).

    Parameters
    ----------
    architecture : str
        Registered architecture name.
    config : dict
        Its keyword arguments.
    x_train, y_train, x_val, y_val : `numpy.ndarray`
        Features and class indices of the training and validation
        (early stopping) rows.
    seed : int
        Seed of the initial weights and of the training.
    epochs, batch_size, lr, weight_decay, patience, loss_fn
        As for `sourceclf.training.fit_module`.

    Returns
    -------
    module : `torch.nn.Module`
        The trained network, in eval mode.
    best_epochs, epochs_run : list of int
        Per member: the epoch whose weights were kept, and the epochs run.
    """
    module = fitting.build_network(architecture, config, random_state=seed)
    history = fitting.fit_network(module, x_train, y_train, x_val, y_val, loss_fn=loss_fn,
                                  by_member=True, fit_posterior=False, epochs=epochs,
                                  batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                  patience=patience, device="cpu", random_state=seed)
    members = history["members"]
    return module, [h["best_epoch"] for h in members], [len(h["val_loss"]) for h in members]


def train_photometric(name, table, *, architecture, feature_set, config, description,
                      priority, notes="", seed=0, epochs=500, batch_size=256, lr=1e-3,
                      weight_decay=0.0, patience=40, test_data="", loss_fn=None,
                      classifier_cls=None, version="1.0"):
    """Train a photometric network the way the shipped ones are trained.

    The table is split by `~sourceclf.recipes.data.recipe_split`; the network
    is fitted by `fit_network` on the training part (early stopping on the
    validation part), tested on the test part and calibrated on the
    calibration part.

    Parameters
    ----------
    name : str
        The recipe's name (it picks the data file named in the card).
    table : `~astropy.table.Table`
        The recipe's table (`~sourceclf.recipes.data.read_recipe_table`).
    architecture : str
        Registered architecture name.
    feature_set : str
        The features the network reads.
    config : dict
        Architecture arguments (``n_features`` and ``n_classes`` are added).
    description, notes : str
        Text of the model card.
    priority : int
        The card's ``auto_priority``.
    seed, epochs, batch_size, lr, weight_decay, patience, loss_fn
        Passed to `fit_network`.
    test_data : str
        What the test metrics were measured on, for the card.
    classifier_cls : type, optional
        The classifier class (default `~sourceclf.models.TorchClassifier`).
    version : str
        The model's version.

    Returns
    -------
    clf : `~sourceclf.models.TorchClassifier`
    """
    parts, classes, y, x = _recipe_inputs(table, feature_set)
    tr, va, ca, te = (parts[k] for k in ("train", "validation", "calibration", "test"))
    cfg = {"n_features": x.shape[1], "n_classes": len(classes), **config}
    t0 = time.perf_counter()
    module, best_epochs, epochs_run = fit_network(
        architecture, cfg, x[tr], y[tr], x[va], y[va], seed=seed, epochs=epochs,
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
        loss_fn=loss_fn)
    seconds = time.perf_counter() - t0
    card = ModelCard(
        name=name, version=version, description=description, architecture=architecture,
        config=cfg, feature_set=feature_set, uses_images=False, classes=list(classes),
        auto_priority=priority, notes=notes,
        training={
            **_provenance(name), "torch_seed": seed, **split_sizes(parts),
            "optimizer": f"AdamW lr={lr} weight_decay={weight_decay}",
            "batch_size": batch_size, "max_epochs": epochs, "patience": patience,
            "best_epoch": best_epochs if len(best_epochs) > 1 else best_epochs[0],
            "epochs_run": epochs_run if len(epochs_run) > 1 else epochs_run[0],
            "train_seconds_cpu": round(seconds, 1), **software_versions(torch),
        },
    )
    clf = (classifier_cls or TorchClassifier)(module, card)
    card.metrics["test"] = held_out_metrics(clf, y, te, x)
    card.metrics["validation"] = held_out_metrics(clf, y, va, x)
    card.metrics["test_data"] = test_data
    calibrate_on(clf, table, y, ca, x)
    card.extra["n_parameters"] = n_parameters(module)
    return clf


def network_settings(name):
    """Architecture, configuration and training settings of a network recipe.

    Parameters
    ----------
    name : str
        ``'margnet-photometry-sg'`` or ``'ugriz-sgq'``.

    Returns
    -------
    settings : dict
        ``architecture``, ``config`` and the keyword arguments of `fit_network`
        (``batch_size``, ``weight_decay``, ``patience``, ``epochs``) the recipe
        uses, so that other studies (e.g. ``docs/scripts/learning_curve.py``)
        train exactly the shipped network.
    """
    if name == "margnet-photometry-sg":
        # Piecewise-linear encoding (16 quantile bins per feature): 94.56% in
        # 5-fold cross-validation (mean of 3 seeds) against 94.25% for these
        # layers on standardised inputs with log radii and 94.06% for version
        # 1.0's MLP (256-128-64, dropout 0.1)
        # (python docs/scripts/learning_curve.py --recipes '' --compare-encodings).
        return dict(architecture="mlp",
                    config={"hidden": [256, 128], "act": "gelu", "dropout": 0.2,
                            "standardize": True, "encoding_bins": 16},
                    batch_size=512, weight_decay=1e-4, patience=25, epochs=300)
    if name == "ugriz-sgq":
        # The MLP ensemble member of the ugriz-sgq blend; its recipe trains it with a
        # one-cycle schedule for a fixed number of epochs (fit_network_onecycle), so
        # ``patience`` equals ``epochs`` here (no early stopping).
        mlp = UGRIZ_SGQ_SETTINGS["mlp"]
        return dict(architecture=mlp["architecture"], config=dict(mlp["config"]),
                    batch_size=mlp["batch_size"], weight_decay=mlp["weight_decay"],
                    patience=mlp["epochs"], epochs=mlp["epochs"])
    raise ValueError(f"no network settings for recipe '{name}'")


def margnet_photometry_sg(table, *, baseline=True):
    """A lean network on MargNet's 24 features; faint compact SDSS galaxies and stars.

    MargNet's published ANN (24 -> 1024 -> 256 -> 128 -> 64 -> 32, sigmoid, raw
    inputs) is trained on the same split for comparison and its test metrics
    are stored in the card as ``published_recipe_test``.
    """
    description = (
        "An MLP on MargNet's 24 photometric features (Chaini et al. 2023), each encoded "
        "piecewise-linearly in 16 quantile bins of the training data (Gorishniy et al. "
        "2022; 384 inputs -> 256 -> 128 -> 2, GELU, dropout 0.2), trained on faint "
        "(r > 20) compact SDSS DR16 spectroscopic galaxies and stars.  It replaces "
        "MargNet's ANN (24 -> 1024 -> 256 -> 128 -> 64 -> 32, sigmoid, raw inputs): about "
        "2.5 times fewer operations per source and better held-out accuracy on the same "
        "split (see published_recipe_test in the metrics).")
    notes = ("Classes GALAXY and STAR only: quasars are called STAR (point sources). "
             "Trained on faint (r 20-23) compact sources; use it on brighter or "
             "extended sources only after checking with your own labels "
             "(sourceclf.calibrate).  Its input encoding saturates outside the range of "
             "its training data: values beyond a feature's training minimum or maximum "
             "all look alike to it.")
    # 1.1: piecewise-linear input encoding (1.0: standardised inputs, log radii).
    common = dict(feature_set="margnet24", priority=20, description=description, notes=notes,
                  test_data="held-out 20% of sdss_dr16_faint_compact_sg.fits")
    clf = train_photometric("margnet-photometry-sg", table, version="1.1",
                            **network_settings("margnet-photometry-sg"), **common)
    if baseline:
        # MargNet's ANN as published: raw features, sigmoid, batch 2048.
        base = train_photometric("margnet-photometry-sg", table, architecture="margnet-ann",
                                 config={"standardize": False, "dropout": 0.25},
                                 batch_size=2048, patience=50, epochs=300, **common)
        clf.card.metrics["published_recipe_test"] = base.card.metrics["test"]
        clf.card.metrics["published_recipe_note"] = (
            "same split and data: MargNet's ANN as published (24 -> 1024 -> 256 -> 128 -> "
            "64 -> 32, sigmoid, dropout 0.25, unstandardised inputs, Adam, batch 2048), with "
            "early-stopping patience 50 and at most 300 epochs (the paper: patience 100)")
    return clf


#: How the ugriz-sgq 4.0 settings were chosen (its card's ``training.cv_note``).
_UGRIZ_SGQ_CV_NOTE = (
    "3-fold cross-validation on the training rows only (python docs/scripts/ugriz_sgq_cv.py; "
    "out of fold SDSS17 / DR14, log-loss): 3.0 88.78% / 96.80%, 0.2886; 4.0 88.96% / 96.84%, "
    "0.2858 (paired SDSS17 gain +0.18 +- 0.05 points).  Weights equal, as for 3.0, whose "
    "ten colours had beaten 2.0's four the same way (88.63% / 96.93%, 0.2899).")
#: Settings of the ugriz-sgq 4.0 recipe (3.0: ``ugriz10``, learning rate 0.05, 16 bins).
UGRIZ_SGQ_SETTINGS = {
    "version": "4.0",
    "feature_set": "ugriz15",
    "hgb": dict(learning_rate=0.03, max_iter=2000, max_leaf_nodes=63, min_samples_leaf=40,
                l2_regularization=1.0, max_features=0.5, early_stopping=True,
                validation_fraction=0.1, n_iter_no_change=30, random_state=42),
    "mlp": dict(architecture="mlp-ensemble",
                config={"n_members": 3, "hidden": [256, 256, 256], "act": "silu",
                        "dropout": 0.1, "standardize": True, "encoding_bins": 32},
                epochs=30, batch_size=512, lr=2e-3, weight_decay=1e-4),
    "hgb_weight": 0.5,
}


def fit_network_onecycle(module, x, y, *, seed=0, epochs=30, batch_size=512, lr=2e-3,
                         weight_decay=1e-4):
    """Train a photometric network for a fixed number of epochs with a one-cycle schedule.

    AdamW with `torch.optim.lr_scheduler.OneCycleLR` (peak ``lr``), no early
    stopping: the last weights are kept.  The members of an averaging
    ensemble (``module.members``) are trained one after the other, member
    ``k`` with seed ``seed + k``; each network's input layer is fitted on
    ``x`` first.

    Parameters
    ----------
    module : `torch.nn.Module`
        An untrained `~sourceclf.models.PhotometricMLP` or
        `~sourceclf.models.ensemble.MLPEnsemble`.
    x, y : `numpy.ndarray`
        Training features (finite) and class indices.
    seed, epochs, batch_size, lr, weight_decay
        Training settings.

    Returns
    -------
    module : `torch.nn.Module`
        The trained network, in eval mode.
    """
    nets = list(module.members) if hasattr(module, "members") else [module]
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    steps = epochs * int(np.ceil(len(yt) / batch_size))
    for k, net in enumerate(nets):
        torch.manual_seed(seed + k)
        if hasattr(net.standardize, "fit"):
            net.standardize.fit(xt)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        gen = torch.Generator().manual_seed(seed + k)
        net.train()
        for _ in range(epochs):
            order = torch.randperm(len(yt), generator=gen)
            for start in range(0, len(yt), batch_size):
                batch = order[start:start + batch_size]
                loss = torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    return module.eval()


def ugriz_sgq(table):
    """Trees and an MLP ensemble on ugriz magnitudes and colours; SDSS17 + DR14 objects.

    The table is the SDSS17 and DR14 tables stacked
    (`~sourceclf.recipes.data.read_recipe_table`), split stratified by data set
    and class (`~sourceclf.recipes.data.recipe_split`).  Rows with a missing
    magnitude (none in these tables) would be left out of every part, as
    `sourceclf.classify` leaves them unclassified.
    """
    name = "ugriz-sgq"
    settings = UGRIZ_SGQ_SETTINGS
    feature_set = settings["feature_set"]
    parts, classes, y, x = _recipe_inputs(table, feature_set)
    names = list(get_feature_set(feature_set).names)
    finite = np.isfinite(x).all(axis=1)
    parts = {k: v[finite[v]] for k, v in parts.items()}
    tr, va, ca, te = (parts[k] for k in ("train", "validation", "calibration", "test"))
    dataset = np.asarray(table["dataset"]).astype(str)
    r = x[:, names.index("r")].astype(float)
    versions = {**software_versions(sklearn), "torch_version": torch.__version__}

    t0 = time.perf_counter()
    hgb = HistGradientBoostingClassifier(**settings["hgb"]).fit(x[tr], y[tr])
    hgb_seconds = time.perf_counter() - t0
    hgb_card = ModelCard(
        name=f"{name}-hgb", version=settings["version"], kind="sklearn", architecture="gbdt",
        description="The gradient-boosted trees of ugriz-sgq (a member of its blend).",
        config=settings["hgb"], feature_set=feature_set, classes=list(classes),
        training={"estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                  "n_iter": int(hgb.n_iter_), "train_seconds_cpu": round(hgb_seconds, 1)})
    hgb_clf = SklearnClassifier(hgb, hgb_card)
    print(f"{name}: trees {hgb.n_iter_} iterations, {hgb_seconds:.0f} s", flush=True)

    mlp = settings["mlp"]
    cfg = {"n_features": x.shape[1], "n_classes": len(classes), **mlp["config"]}
    module = fitting.build_network(mlp["architecture"], cfg, random_state=0)
    t0 = time.perf_counter()
    fit_network_onecycle(module, x[tr], y[tr], seed=0, epochs=mlp["epochs"],
                         batch_size=mlp["batch_size"], lr=mlp["lr"],
                         weight_decay=mlp["weight_decay"])
    mlp_seconds = time.perf_counter() - t0
    mlp_card = ModelCard(
        name=f"{name}-mlp", version=settings["version"], architecture=mlp["architecture"],
        config=cfg,
        feature_set=feature_set, classes=list(classes),
        description="The MLP ensemble of ugriz-sgq (a member of its blend).",
        training={"optimizer": f"AdamW, one-cycle schedule, peak lr={mlp['lr']} "
                               f"weight_decay={mlp['weight_decay']}",
                  "epochs": mlp["epochs"], "batch_size": mlp["batch_size"],
                  "torch_seed": 0, "train_seconds_cpu": round(mlp_seconds, 1)})
    mlp_clf = TorchClassifier(module, mlp_card)
    mlp_clf.card.extra["n_parameters"] = n_parameters(module)
    print(f"{name}: MLP ensemble ({cfg['n_members']} members) {mlp_seconds:.0f} s", flush=True)

    w = settings["hgb_weight"]
    card = ModelCard(
        name=name, version=settings["version"], kind="blend", architecture="blend",
        feature_set=feature_set, classes=list(classes), auto_priority=10,
        description=(
            f"The mean ({w:g} / {1 - w:g}) of the class probabilities of gradient-boosted "
            "trees (scikit-learn HistGradientBoostingClassifier) and an ensemble of "
            f"{cfg['n_members']} MLPs (inputs encoded piecewise-linearly in "
            f"{cfg['encoding_bins']} quantile bins, 3 x 256 SiLU) on the "
            f"{get_feature_set(feature_set).description}, "
            "trained on SDSS DR17 and DR14 spectroscopic galaxies, quasars and stars of "
            "r 14-23."),
        notes=(
            "Version 4.0: u, g, i, z as inputs too, retuned trees, finer input encoding "
            "(+0.18 points on SDSS17 over 3.0 in 3-fold cross-validation on the training "
            "rows, see training.cv_note); 3.0 added all ten colours; 2.0 trained on SDSS17 + "
            "DR14 (1.0: DR14 only, 53% on unseen SDSS17).  Accuracy falls "
            "with magnitude (see test_by_magnitude): faint stars and quasars are the hard "
            "cases.  Inputs are observed (not dereddened) SDSS model magnitudes; other "
            "photometric systems need converting first.  Never uses redshift.  Not tuned "
            "to, and poor on, faint compact star/galaxy samples: on the 15,217 faint compact "
            "DR16 objects (r 20-23) it is right for 59.5% and calls 22.9% QSO "
            "(docs/scripts/ugriz_elsewhere.py), with almost none flagged out_of_domain; use "
            "MargNet's 24 columns there."),
        training={
            "data": DATA_FILES[name], "recipe": f"python -m sourceclf.train_recipes {name}",
            "split": ("stratified by data set and class; fractions train/validation/"
                      "calibration/test = " + "/".join(
                          f"{v:.2f}" for v in COMBINED_SPLIT_FRACTIONS.values())),
            "split_seed": SPLIT_SEED,
            "deduplication": (f"{table.meta.get('n_duplicates_dropped', 0)} SDSS17 rows "
                              f"within {DEDUP_ARCSEC:g} arcsec of a DR14 row or of an "
                              "earlier SDSS17 row dropped"),
            "rows_with_missing_magnitudes_left_out": int((~finite).sum()),
            **split_sizes(parts),
            "n_train_by_data": {d: int(np.sum(dataset[tr] == d)) for d in ("sdss17", "dr14")},
            "members": {"hgb": {"weight": w, "params": settings["hgb"],
                                "n_iter": int(hgb.n_iter_)},
                        "mlp": {"weight": 1 - w, **{k: v for k, v in mlp.items()}}},
            "train_seconds_cpu": round(hgb_seconds + mlp_seconds, 1), "cv_note": _UGRIZ_SGQ_CV_NOTE,
            **versions,
        })
    clf = BlendClassifier([hgb_clf, mlp_clf], [w, 1 - w], card, sources=["hgb", "mlp"])
    card.metrics["test"] = metrics_with_recall(clf, y, te, x)
    card.metrics["test_data"] = ("held-out 15% of sdss17_ugriz_sgq.fits and of "
                                 "sdss_dr14_spectro_ugriz.fits")
    card.metrics["test_by_data"] = {d: metrics_with_recall(clf, y, te[dataset[te] == d], x, r)
                                    for d in ("sdss17", "dr14")}
    card.metrics["test_by_magnitude"] = card.metrics["test"]["by_magnitude"] = \
        accuracy_by_magnitude(y[te], clf.predict_proba(x[te]).argmax(1), r[te])
    card.metrics["validation_by_data"] = {
        d: {"n": int(np.sum(dataset[va] == d)),
            "accuracy": metrics_with_recall(clf, y, va[dataset[va] == d], x)["accuracy"]}
        for d in ("sdss17", "dr14")}
    card.metrics["members_validation_by_data"] = {
        member: {d: metrics_with_recall(m, y, va[dataset[va] == d], x)["accuracy"]
                 for d in ("sdss17", "dr14")}
        for member, m in (("hgb", hgb_clf), ("mlp", mlp_clf))}
    card.metrics["members_test_by_data"] = {
        member: {d: metrics_with_recall(m, y, te[dataset[te] == d], x)["accuracy"]
                 for d in ("sdss17", "dr14")}
        for member, m in (("hgb", hgb_clf), ("mlp", mlp_clf))}
    calibrate_on(clf, table, y, ca, x)

    clf.domain = recipe_domain(x, names, parts)
    card.domain = {
        "description": (
            "SDSS-like ugriz model magnitudes (observed, not dereddened) of galaxies, "
            "quasars and stars of any morphology, r about 14-23: objects like the SDSS "
            "DR17 and DR14 spectroscopic samples.  Not for other photometric systems, "
            "objects fainter than r 23 or saturated bright stars."),
        "magnitudes": {"r": magnitude_range(r[tr])}}
    card.metrics["domain_check"] = {
        "test_flagged": {d: round(float(np.mean(clf.outside_domain(
            x[te[dataset[te] == d]]))), 5) for d in ("sdss17", "dr14")}}
    return clf


def bayesian_margnet_photometry_sg(table, *, mc_samples=50):
    """The network of ``margnet-photometry-sg`` with a variational output layer.

    Trained like ``margnet-photometry-sg`` (same split, features, architecture
    body, optimiser and early stopping) with the loss of
    `sourceclf.models.bayesian.elbo_loss`: cross-entropy plus the KL divergence
    of the variational layer weighted by 1 / n_train.
    """
    name = "bayesian-margnet-photometry-sg"
    settings = network_settings("margnet-photometry-sg")
    settings["architecture"] = "bayesian-mlp"
    settings["config"].update(prior_scale=1.0, rho_init=-5.0)
    clf = train_photometric(
        name, table, feature_set="margnet24", priority=5, version="1.1", **settings,
        loss_fn=elbo_loss(), classifier_cls=BayesianClassifier,
        description=("The MLP of margnet-photometry-sg (24 features, piecewise-linear "
                     "encoding in 16 quantile bins each, 384 -> 256 -> 128 -> 2, GELU, "
                     "dropout 0.2) whose "
                     "output layer is a mean-field variational layer (Gaussian posterior per "
                     "weight, sigma = softplus(rho), trainable Gaussian prior), trained on "
                     "faint (r > 20) compact SDSS DR16 spectroscopic galaxies and stars by "
                     "minimising cross-entropy + KL / n_train.  classify(..., mc_samples=N) "
                     "averages N weight draws and adds prob_<class>_std, pred_entropy and "
                     "pred_mutual_info."),
        notes="Classes GALAXY and STAR only: quasars are called STAR (point sources). "
              "Trained on faint (r 20-23) compact sources; its input encoding saturates "
              "outside the range of its training data.  Without mc_samples the posterior "
              "mean weights are used; the stored calibration probabilities are posterior-mean "
              "ones.",
        test_data="held-out 20% of sdss_dr16_faint_compact_sg.fits")
    clf.card.training["loss"] = "cross_entropy + KL(posterior || prior) / n_train"
    parts, _, y, features = _recipe_inputs(table, "margnet24")
    tr, te = parts["train"], parts["test"]
    x = features[te]
    before = clf.predict_proba(x)
    t0 = time.perf_counter()
    history = fit_posterior_scales(clf.module, features[tr], y[tr], epochs=100, lr=1e-2,
                                   batch_size=512, random_state=0)
    if not np.array_equal(before, clf.predict_proba(x)):  # pragma: no cover
        raise RuntimeError("fitting the posterior widths changed the posterior mean")
    clf.card.training["posterior_scales"] = posterior_summary(
        clf.module.net[-1], history, epochs=100, lr=1e-2, batch_size=512,
        seconds_cpu=round(time.perf_counter() - t0, 1))
    clf.card.metrics[f"test_mc{mc_samples}"] = mc_metrics(clf, y, te, features,
                                                          n_samples=mc_samples)
    return clf


#: Grid searched by the gbdt-photometry-sg recipe (3-fold CV on its training rows).
GBDT_SG_GRID = {"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31, 63],
                "l2_regularization": [0.0, 1.0], "max_features": [0.5, 1.0]}


def gbdt_photometry_sg(table, *, search=True, n_jobs=1):
    """Gradient-boosted trees on the 24 features; faint compact galaxies and stars.

    scikit-learn's `~sklearn.ensemble.HistGradientBoostingClassifier` (no
    optional dependency), hyper-parameters chosen by `GBDT_SG_GRID` with a
    3-fold grid search scored on accuracy, as the published XGBoost baseline
    was; same split as ``margnet-photometry-sg`` (`recipe_split`).
    """
    name = "gbdt-photometry-sg"
    parts, classes, y, x = _recipe_inputs(table, "margnet24")
    tr, va, ca, te = (parts[k] for k in ("train", "validation", "calibration", "test"))
    t0 = time.perf_counter()
    estimator, info = fit_classical("gbdt", x[tr], y[tr], search=search,
                                    param_grid=GBDT_SG_GRID, random_state=0, n_jobs=n_jobs)
    seconds = time.perf_counter() - t0
    card = ModelCard(
        name=name, version="1.0", kind="sklearn", architecture="gbdt",
        description=("Gradient-boosted decision trees (scikit-learn "
                     "HistGradientBoostingClassifier) on MargNet's 24 photometric features, "
                     "hyper-parameters chosen by a 3-fold grid search on accuracy, trained on "
                     "faint (r > 20) compact SDSS DR16 spectroscopic galaxies and stars."),
        config=info["params"], feature_set="margnet24", uses_images=False,
        classes=list(classes), auto_priority=8,
        notes="Classes GALAXY and STAR only: quasars are called STAR (point sources). "
              "Trained on faint (r 20-23) compact sources.",
        training={
            **_provenance(name), "random_state": 0, **split_sizes(parts),
            "estimator": info["estimator"], "grid_search": {
                k: info[k] for k in ("param_grid", "cv", "scoring", "best_params",
                                     "best_cv_score") if k in info},
            "n_iter": info.get("n_iter"), "train_seconds_cpu": round(seconds, 1),
            **software_versions(sklearn),
        },
    )
    clf = SklearnClassifier(estimator, card)
    card.metrics["test"] = held_out_metrics(clf, y, te, x)
    card.metrics["validation"] = held_out_metrics(clf, y, va, x)
    card.metrics["test_data"] = "held-out 20% of sdss_dr16_faint_compact_sg.fits"
    if "cv_results" in info:
        card.extra["cv_results"] = info["cv_results"]
    calibrate_on(clf, table, y, ca, x)
    return clf


#: Members of blend-photometry-sg (shipped models, kept by reference).
BLEND_SG_MEMBERS = ("margnet-photometry-sg", "gbdt-photometry-sg")


def blend_photometry_sg(table, *, step=0.05):
    """The network and the trees on MargNet's 24 features, blended.

    The shipped ``margnet-photometry-sg`` and ``gbdt-photometry-sg`` (kept by
    reference: their weights are not copied) on the same split; the weight
    of the trees is the one of ``0, step, ..., 1`` with the lowest log-loss on
    the validation split (ties: the one nearest 0.5).  The test split is used
    only to report the blend's accuracy and its members' on the same rows.
    """
    from .. import models

    name = "blend-photometry-sg"
    members = [models.load_model(m) for m in BLEND_SG_MEMBERS]
    parts, classes, y, x = _recipe_inputs(table, "margnet24")
    for m in members:
        if tuple(m.classes) != tuple(classes) or \
                m.card.training.get("n_test") != parts["test"].size:
            raise RuntimeError(f"{m.name}: classes or split differ from this table's")
    va, te, ca = parts["validation"], parts["test"], parts["calibration"]
    p_net, p_trees = (m.predict_proba(x[va]) for m in members)
    grid = np.round(np.arange(0, 1 + step / 2, step), 6)
    rows = np.arange(len(va))

    def log_loss(w):
        p = (1 - w) * p_net + w * p_trees
        return float(-np.mean(np.log(np.clip(p[rows, y[va]], 1e-12, 1))))

    losses = {float(w): log_loss(w) for w in grid}
    w = min(losses, key=lambda v: (round(losses[v], 6), abs(v - 0.5)))
    val_acc = {float(v): round(float(np.mean(((1 - v) * p_net + v * p_trees).argmax(1)
                                             == y[va])), 5) for v in grid}
    card = ModelCard(
        name=name, version="1.0", kind="blend", architecture="blend",
        feature_set="margnet24", classes=list(classes), auto_priority=25,
        description=(
            f"The mean ({1 - w:g} / {w:g}) of the class probabilities of the shipped "
            "margnet-photometry-sg network and gbdt-photometry-sg gradient-boosted trees "
            "on MargNet's 24 photometric features, trained on faint (r > 20) compact SDSS "
            "DR16 spectroscopic galaxies and stars; the weight was chosen on the "
            "validation split."),
        notes=("Classes GALAXY and STAR only: quasars are called STAR (point sources).  "
               "Its members are the shipped models of those names (loaded by reference; "
               "the blend refuses to load if their weights change)."),
        training={
            **_provenance(name), **split_sizes(parts), "members": list(BLEND_SG_MEMBERS),
            "weight_choice": ("trees weight with the lowest validation log-loss on a grid of "
                              f"step {step:g} (ties: nearest 0.5)"),
            "trees_weight": w,
            "validation_log_loss": {f"{v:g}": round(l, 5) for v, l in losses.items()},
            "validation_accuracy": {f"{v:g}": a for v, a in val_acc.items()},
            "validation_caveat": ("the network's early stopping watched the same "
                                  "validation rows"),
            "sourceclf_version": software_versions(sklearn)["sourceclf_version"]})
    clf = BlendClassifier(members, [1 - w, w], card,
                          sources=[f"registry:{m}" for m in BLEND_SG_MEMBERS])
    card.metrics["test"] = metrics_with_recall(clf, y, te, x)
    card.metrics["test_data"] = "held-out 20% of sdss_dr16_faint_compact_sg.fits"
    card.metrics["validation"] = metrics_with_recall(clf, y, va, x)
    card.metrics["members_test"] = {m.name: metrics_with_recall(m, y, te, x)["accuracy"]
                                    for m in members}
    calibrate_on(clf, table, y, ca, x)
    domain, check = faint_compact_domain(clf, table, parts, x)
    card.domain = domain
    card.metrics["domain_check"] = check
    card.notes = f"{card.notes} {domain_note(check)}"
    return clf


def feature_model(table, output):
    """Fit the Gaussian mixtures `sourceclf.demo.demo_catalog` samples from."""
    model = fit_feature_model(table)
    with open(output, "w", encoding="utf-8") as fh:
        json.dump(model, fh)
    return output


RECIPES = {
    "margnet-photometry-sg": margnet_photometry_sg,
    "ugriz-sgq": ugriz_sgq,
    "gbdt-photometry-sg": gbdt_photometry_sg,
    "bayesian-margnet-photometry-sg": bayesian_margnet_photometry_sg,
    "blend-photometry-sg": blend_photometry_sg,
    "feature-model": feature_model,
}


def main(argv=None):
    """Command line: ``python -m sourceclf.train_recipes NAME [--data-dir D] [--output D]``."""
    parser = argparse.ArgumentParser(prog="python -m sourceclf.train_recipes",
                                     description="Train a shipped sourceclf model.")
    parser.add_argument("recipe", choices=sorted([*RECIPES, "domains"]),
                        help="a model to train, or 'domains': fit the applicability "
                             f"domains of {', '.join(DOMAIN_MODELS)} (weights untouched)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="directory of the SDSS tables (default ../shared/data)")
    parser.add_argument("--output", type=Path, default=None,
                        help="model directory to write (default: the package registry)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads of torch and of OpenMP (the trees); default 1: "
                             "these small models gain little from more, and on a busy "
                             "machine more are up to 10 times slower")
    args = parser.parse_args(argv)
    if args.recipe == "domains":
        fit_domains(args.data_dir, model_dir=args.output)
        return 0
    with torch_threads(args.threads), blas_threads(args.threads):
        table = read_recipe_table(args.recipe, args.data_dir)
        if args.recipe == "feature-model":
            print("wrote", feature_model(table, args.output or FEATURE_MODEL_PATH))
            return 0
        clf = RECIPES[args.recipe](table)
    members = clf.card.metrics.get("members_test")
    if members and args.output is None and \
            clf.card.metrics["test"]["accuracy"] <= max(members.values()):
        print(f"{args.recipe}: test accuracy {clf.card.metrics['test']['accuracy']:.4f} "
              f"does not beat its members ({members}); not written into the registry "
              "(pass --output to write it elsewhere)")
        return 0
    out = clf.save(args.output or MODEL_DIR / args.recipe, overwrite=True)
    write_thresholds(out)  # the shipped conformal thresholds follow the new calibration
    test = clf.card.metrics["test"]
    print(f"{args.recipe}: test accuracy {test['accuracy']:.4f} (n={test['n']}), "
          f"macro F1 {test['f1_macro']:.4f}; wrote {out}")
    print_metrics(clf.card.metrics)
    if "published_recipe_test" in clf.card.metrics:
        print(f"  published recipe on the same split: "
              f"{clf.card.metrics['published_recipe_test']['accuracy']:.4f}")
    return 0
