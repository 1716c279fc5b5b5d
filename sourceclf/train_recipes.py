"""Recipes that train the models shipped with sourceclf.

Run one with::

    python -m sourceclf.train_recipes margnet-photometry-sg --data-dir ../shared/data

Each recipe reads public SDSS data, splits it with a fixed seed into training,
validation (early stopping), calibration (conformal sets) and test parts,
trains, evaluates on the test part (which it never sees otherwise), and writes
the model directory (card, weights, calibration) into the registry.  The split
functions are importable, so the test suite can check each shipped model on
exactly the rows its recipe held out.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["RECIPES", "recipe_split", "read_recipe_table", "default_data_dir", "main"]

#: Fractions of validation, calibration and test rows (training gets the rest).
SPLIT_FRACTIONS = (0.10, 0.10, 0.20)
SPLIT_SEED = 42

_DATA_FILES = {
    "margnet-photometry-sg": "sdss_dr16_faint_compact_sg.fits",
    "bayesian-margnet-photometry-sg": "sdss_dr16_faint_compact_sg.fits",
    "gbdt-photometry-sg": "sdss_dr16_faint_compact_sg.fits",
    "ugriz-sgq": "sdss_dr14_spectro_ugriz.fits",
    "feature-model": "sdss_dr16_faint_compact_sg.fits",
}


def default_data_dir():
    """``$SOURCECLF_DATA``, else ``../shared/data`` beside the source tree."""
    env = os.environ.get("SOURCECLF_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def read_recipe_table(recipe, data_dir=None):
    """Read the SDSS table a recipe trains on, labels decoded."""
    from astropy.table import Table

    from .columns import decode_strings

    path = Path(data_dir or default_data_dir()) / _DATA_FILES[recipe]
    if not path.is_file():
        raise FileNotFoundError(f"training data '{path}' not found; pass --data-dir")
    table = Table.read(path)
    table["class"] = decode_strings(table["class"])
    return table


def recipe_split(table, label_column="class", seed=SPLIT_SEED):
    """The fixed split of a recipe's table.

    Returns
    -------
    parts : dict
        ``train``, ``validation``, ``calibration``, ``test``: sorted row indices.
    """
    from .training import labels_from_table, split_indices

    _, y = labels_from_table(table, label_column)
    train, val, cal, test = split_indices(y, SPLIT_FRACTIONS, random_state=seed)
    return {"train": train, "validation": val, "calibration": cal, "test": test}


def _train_photometric(name, table, *, architecture, feature_set, config, description,
                       priority, notes="", seed=0, epochs=500, batch_size=256, lr=1e-3,
                       weight_decay=0.0, patience=40, test_data=""):
    import torch

    from . import __version__
    from .features import get_feature_set
    from .models.architectures import build_architecture
    from .models.base import TorchClassifier
    from .models.card import ModelCard
    from .training import (calibration_table, classification_metrics, fit_module,
                           labels_from_table)

    parts = recipe_split(table)
    classes, y = labels_from_table(table)
    x = get_feature_set(feature_set).compute(table).values
    tr, va, ca, te = (parts[k] for k in ("train", "validation", "calibration", "test"))
    torch.manual_seed(seed)
    cfg = {"n_features": x.shape[1], "n_classes": len(classes), **config}
    module = build_architecture(architecture, cfg)
    if cfg.get("standardize", True) and hasattr(module.standardize, "fit"):
        module.standardize.fit(x[tr])
    t0 = time.perf_counter()
    history = fit_module(module, x[tr], y[tr], x[va], y[va], epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                         patience=patience, random_state=seed, device="cpu")
    seconds = time.perf_counter() - t0
    card = ModelCard(
        name=name, version="1.0", description=description, architecture=architecture,
        config=cfg, feature_set=feature_set, uses_images=False, classes=list(classes),
        auto_priority=priority, notes=notes,
        training={
            "data": _DATA_FILES[name], "recipe": f"python -m sourceclf.train_recipes {name}",
            "split": "stratified; fractions train/validation/calibration/test = "
                     f"{1 - sum(SPLIT_FRACTIONS):.2f}/" + "/".join(map(str, SPLIT_FRACTIONS)),
            "split_seed": SPLIT_SEED, "torch_seed": seed,
            "n_train": int(tr.size), "n_validation": int(va.size),
            "n_calibration": int(ca.size), "n_test": int(te.size),
            "optimizer": f"AdamW lr={lr} weight_decay={weight_decay}",
            "batch_size": batch_size, "max_epochs": epochs, "patience": patience,
            "best_epoch": history["best_epoch"], "epochs_run": len(history["val_loss"]),
            "train_seconds_cpu": round(seconds, 1), "sourceclf_version": __version__,
            "torch_version": torch.__version__,
        },
    )
    clf = TorchClassifier(module, card)
    card.metrics["test"] = classification_metrics(y[te], clf.predict_proba(x[te]).argmax(1),
                                                  classes)
    card.metrics["validation"] = classification_metrics(
        y[va], clf.predict_proba(x[va]).argmax(1), classes)
    card.metrics["test_data"] = test_data
    clf.calibration = calibration_table(clf, table[ca], x[ca], y[ca])
    n_params = sum(p.numel() for p in module.parameters())
    card.extra["n_parameters"] = int(n_params)
    return clf


def margnet_photometry_sg(table, *, baseline=True):
    """MargNet's ANN on the 24 features, faint compact SDSS galaxies and stars."""
    description = ("MargNet's ANN (Chaini et al. 2023; 24 -> 1024 -> 256 -> 128 -> 64 -> 32 "
                   "-> 2, sigmoid, dropout 0.25) with input standardisation, trained on "
                   "faint (r > 20) compact SDSS DR16 spectroscopic galaxies and stars.")
    common = dict(architecture="margnet-ann", feature_set="margnet24", priority=20,
                  description=description,
                  test_data="held-out 20% of sdss_dr16_faint_compact_sg.fits",
                  notes="Classes GALAXY and STAR only: quasars are called STAR (point "
                        "sources). Trained on faint (r 20-23) compact sources.")
    clf = _train_photometric("margnet-photometry-sg", table,
                             config={"standardize": True, "dropout": 0.25}, **common)
    if baseline:
        # The published recipe: raw features, batch 2048; measured for the card.
        base = _train_photometric("margnet-photometry-sg", table,
                                  config={"standardize": False, "dropout": 0.25},
                                  batch_size=2048, patience=100, epochs=1500, **common)
        clf.card.metrics["published_recipe_test"] = base.card.metrics["test"]
        clf.card.metrics["published_recipe_note"] = (
            "same split, MargNet's ANN as published: unstandardised inputs, batch 2048, "
            "patience 100")
    return clf


def ugriz_sgq(table):
    """An MLP on r and four colours; galaxies, quasars and stars of SDSS DR14."""
    return _train_photometric(
        "ugriz-sgq", table, architecture="mlp", feature_set="ugriz", priority=10,
        config={"hidden": [256, 256, 128], "act": "gelu", "dropout": 0.1,
                "standardize": True},
        weight_decay=1e-4, patience=40,
        description=("A 3-layer MLP (256-256-128, GELU) on the observed model magnitude r "
                     "and colours u-g, g-r, r-i, i-z, trained on SDSS DR14 spectroscopic "
                     "galaxies, quasars and stars (mostly bright)."),
        notes="Trained mostly on bright sources (r < 20); quasars are 8% of its data.",
        test_data="held-out 20% of sdss_dr14_spectro_ugriz.fits")


def feature_model(table, output):
    """Fit the Gaussian mixtures `sourceclf.demo.demo_catalog` samples from."""
    import json

    from .demo import fit_feature_model

    model = fit_feature_model(table)
    with open(output, "w", encoding="utf-8") as fh:
        json.dump(model, fh)
    return output


RECIPES = {
    "margnet-photometry-sg": margnet_photometry_sg,
    "ugriz-sgq": ugriz_sgq,
    "feature-model": feature_model,
}


def main(argv=None):
    """Command line: ``python -m sourceclf.train_recipes NAME [--data-dir D] [--output D]``."""
    from .models.registry import MODEL_DIR

    parser = argparse.ArgumentParser(prog="python -m sourceclf.train_recipes",
                                     description="Train a shipped sourceclf model.")
    parser.add_argument("recipe", choices=sorted(RECIPES))
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="directory of the SDSS tables (default ../shared/data)")
    parser.add_argument("--output", type=Path, default=None,
                        help="model directory to write (default: the package registry)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    table = read_recipe_table(args.recipe, args.data_dir)
    if args.recipe == "feature-model":
        from .demo import FEATURE_MODEL_PATH

        print("wrote", feature_model(table, args.output or FEATURE_MODEL_PATH))
        return 0
    clf = RECIPES[args.recipe](table)
    out = clf.save(args.output or MODEL_DIR / args.recipe, overwrite=True)
    test = clf.card.metrics["test"]
    print(f"{args.recipe}: test accuracy {test['accuracy']:.4f} (n={test['n']}), "
          f"macro F1 {test['f1_macro']:.4f}; wrote {out}")
    if "published_recipe_test" in clf.card.metrics:
        print(f"  published recipe on the same split: "
              f"{clf.card.metrics['published_recipe_test']['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
