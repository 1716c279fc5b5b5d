"""Candidates for ugriz-sgq, by 3-fold cross-validation on its training rows only.

Prints the out-of-fold figures quoted in ``docs/training.rst`` (how 4.0 was
chosen).  Run from the repository root::

    python docs/scripts/ugriz_sgq_cv.py [--data-dir ../shared/data] [--no-mlp]

The rows are the recipe's (`sourceclf.recipes.data.read_recipe_table`,
`~sourceclf.recipes.data.recipe_split`); only its training rows are used, in
three folds stratified by data set and class, so the validation, calibration
and test rows stay untouched.  Each candidate's trees use the recipe's
settings with the changes listed in `TREES`; the MLP ensemble is the
recipe's, on the candidate's inputs, with the encodings in `CANDIDATES`.
The blend is the mean of the two members' probabilities (weight 0.5, as
shipped), compared row for row with 3.0 (``ugriz10`` inputs, the 3.0
recipe's trees, 16 bins): the paired gain and
its standard error on the SDSS17 rows.  The MLP folds take about 3 minutes
each on one core, 30 minutes in all (``--no-mlp``: trees only, a few minutes).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from sourceclf.features import get_feature_set
from sourceclf.recipes.data import read_recipe_table, recipe_split
from sourceclf.recipes.photometric import UGRIZ_SGQ_SETTINGS, fit_network_onecycle
from sourceclf.training import labels_from_table

#: Inputs of the candidates (feature sets): 3.0's ``ugriz10`` (r and the ten
#: colours) and 4.0's ``ugriz15`` (those, then u, g, i, z), each with the MLP
#: input encodings tried (quantile bins per feature).
CANDIDATES = {"ugriz10": (16,), "ugriz15": (16, 32)}

#: Changes to the recipe's (4.0's) tree settings: 3.0's, and others tried.
TREES = {
    "3.0": {"learning_rate": 0.05, "max_iter": 1000, "max_features": 1.0},
    "lr 0.03": {"learning_rate": 0.03, "max_iter": 2000, "max_features": 1.0},
    "lr 0.03, half the features per split": {
        "learning_rate": 0.03, "max_iter": 2000, "max_features": 0.5},
    "lr 0.02, 20 rows per leaf": {"learning_rate": 0.02, "max_iter": 3000,
                                  "min_samples_leaf": 20, "max_features": 1.0},
}


def _trees_oof(x, y, folds, changes):
    from sklearn.ensemble import HistGradientBoostingClassifier

    oof = np.zeros((len(y), int(y.max()) + 1))
    for fit, held in folds:
        params = {**UGRIZ_SGQ_SETTINGS["hgb"], **changes}
        oof[held] = HistGradientBoostingClassifier(**params).fit(x[fit], y[fit]) \
            .predict_proba(x[held])
    return oof


def _mlp_oof(x, y, folds, bins):
    import torch

    from sourceclf.training import fitting

    mlp = UGRIZ_SGQ_SETTINGS["mlp"]
    oof = np.zeros((len(y), int(y.max()) + 1))
    for fit, held in folds:
        cfg = {"n_features": x.shape[1], "n_classes": oof.shape[1], **mlp["config"],
               "encoding_bins": bins}
        module = fitting.build_network(mlp["architecture"], cfg, random_state=0)
        fit_network_onecycle(module, x[fit], y[fit], seed=0, epochs=mlp["epochs"],
                             batch_size=mlp["batch_size"], lr=mlp["lr"],
                             weight_decay=mlp["weight_decay"])
        with torch.no_grad():
            logits = module.eval()(torch.as_tensor(x[held], dtype=torch.float32))
            oof[held] = torch.softmax(logits, dim=1).double().numpy()
    return oof


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--no-mlp", action="store_true", help="trees only")
    args = parser.parse_args(argv)
    from sklearn.model_selection import StratifiedKFold

    table = read_recipe_table("ugriz-sgq", args.data_dir)
    train = recipe_split(table)["train"]  # the recipe's split: its training rows only
    _, y = labels_from_table(table)
    table, y = table[train], y[train]
    dataset = np.asarray(table["dataset"]).astype(str)
    strata = np.char.add(dataset, y.astype(str))
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(y, strata))
    sdss17 = dataset == "sdss17"

    def line(label, proba, reference=None):
        right = proba.argmax(1) == y
        text = (f"{label:<58} SDSS17 {100 * right[sdss17].mean():6.2f}%  DR14 "
                f"{100 * right[~sdss17].mean():6.2f}%  log-loss "
                f"{-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1))):.4f}")
        if reference is not None:
            gain = right[sdss17].astype(float) - reference[sdss17]
            text += (f"  SDSS17 gain {100 * gain.mean():+.2f} +- "
                     f"{100 * gain.std() / np.sqrt(sdss17.sum()):.2f}")
        print(text, flush=True)
        return right

    print(f"{len(y)} training rows ({sdss17.sum()} SDSS17), 3 folds; out of fold:")
    shipped = None
    for feature_set, encodings in CANDIDATES.items():
        x = get_feature_set(feature_set).compute(table).values
        for name, changes in TREES.items():
            TREE_OOF[feature_set, name] = _trees_oof(x, y, folds, changes)
            line(f"{feature_set}: trees, {name}", TREE_OOF[feature_set, name])
        for bins in () if args.no_mlp else encodings:
            t0 = time.perf_counter()
            mlp = _mlp_oof(x, y, folds, bins)
            line(f"{feature_set}: MLPs alone, {bins} bins "
                 f"({time.perf_counter() - t0:.0f} s)", mlp)
            for name in TREES:
                right = line(f"{feature_set}: blend, trees {name}, {bins} bins",
                             0.5 * TREE_OOF[feature_set, name] + 0.5 * mlp, shipped)
                if shipped is None:  # ugriz10, 3.0's trees, 16 bins: 3.0
                    shipped = right.astype(float)


#: Out-of-fold tree probabilities by (feature set, tree settings).
TREE_OOF = {}


if __name__ == "__main__":
    main()
