"""How accuracy grows with training rows: the shipped photometric recipes.

Prints the tables quoted in ``docs/training.rst`` ("How far the bundled data
goes").  Run from the repository root::

    python docs/scripts/learning_curve.py [--data-dir ../shared/data] [--threads 1]
    python docs/scripts/learning_curve.py --recipes '' --compare-encodings

For each of ``margnet-photometry-sg`` (faint compact DR16 galaxies and stars,
24 features) and ``ugriz-sgq`` (DR14 galaxies, quasars and stars, r and four
colours), the rows its recipe did not hold out for testing (training,
validation and calibration splits of `sourceclf.train_recipes.recipe_split`)
are cut into five stratified folds.  Each fold is predicted by models trained
on 25%, 50% and 100% of the other four folds:

- the recipe's own network, with its exact settings
  (`sourceclf.train_recipes.network_settings`; one eighth of the training rows
  is set aside for early stopping), and
- gradient-boosted trees with the hyper-parameters of the shipped
  ``gbdt-photometry-sg`` (scikit-learn's HistGradientBoostingClassifier, its
  own 10% early-stopping split).

With ``--compare-encodings`` it also cross-validates, on all of each fold's
share, ``margnet-photometry-sg``'s network (1.1: piecewise-linear encoding,
256-128, dropout 0.2) against the same layers on standardised inputs with
log10 radii (the encoding's own share of the change), against the network it
replaced (1.0: standardised, 256-128-64, dropout 0.1) and against the trees,
once per seed of ``--seeds`` (the seed picks the folds and the training
seeds; all share them).

The recipes' test splits are never touched.  The last lines extrapolate the
gain of the last doubling of the training rows to the project's accuracy
targets (95.5% and 97.5%): a rough figure, since gains shrink with each
doubling.
"""

import argparse
import math
import time

import numpy as np

TARGETS = {"margnet-photometry-sg": 0.955, "ugriz-sgq": 0.975}
FEATURE_SETS = {"margnet-photometry-sg": "margnet24", "ugriz-sgq": "ugriz"}
FRACTIONS = (0.25, 0.5, 1.0)


#: margnet-photometry-sg 1.0's network (standardised inputs; log10 radii added by
#: `compare_encodings`).
STANDARDISED_V10 = {"hidden": [256, 128, 64], "act": "gelu", "dropout": 0.1,
                    "standardize": True}
#: 1.1's layers and dropout on 1.0's standardised inputs: what the encoding alone adds.
STANDARDISED_V11_LAYERS = {"hidden": [256, 128], "act": "gelu", "dropout": 0.2,
                           "standardize": True}


def _cv_data(recipe, data_dir, n_folds, seed):
    """A recipe's features, labels, the rows outside its test split and their folds."""
    from sklearn.model_selection import StratifiedKFold

    from sourceclf.features import get_feature_set
    from sourceclf.train_recipes import read_recipe_table, recipe_split
    from sourceclf.training import labels_from_table

    table = read_recipe_table(recipe, data_dir)
    parts = recipe_split(table)
    _, y = labels_from_table(table)
    x = get_feature_set(FEATURE_SETS[recipe]).compute(table).values.astype(np.float32)
    pool = np.sort(np.concatenate([parts["train"], parts["validation"],
                                   parts["calibration"]]))
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(pool, y[pool])
    return x, y, pool, [(pool[a], pool[b]) for a, b in folds]


def _gbdt_params():
    """Hyper-parameters of the shipped gbdt-photometry-sg (from its card)."""
    from sourceclf.models import model_card

    return dict(model_card("gbdt-photometry-sg").config)


def _network_proba(recipe, x, y, train, predict, seed, config=None):
    import torch

    from sourceclf.train_recipes import fit_network, network_settings

    settings = network_settings(recipe)
    if config is not None:
        settings["config"] = dict(config)
    rng = np.random.default_rng(seed)
    train = rng.permutation(train)
    n_stop = len(train) // 8
    fit, stop = train[n_stop:], train[:n_stop]
    config = {"n_features": x.shape[1], "n_classes": int(y.max()) + 1,
              **settings.pop("config")}
    module, _, _ = fit_network(settings.pop("architecture"), config, x[fit], y[fit],
                               x[stop], y[stop], seed=seed, **settings)
    with torch.inference_mode():
        return torch.softmax(module(torch.as_tensor(x[predict])), 1).numpy()


def _gbdt_proba(x, y, train, predict, seed, params):
    from sklearn.ensemble import HistGradientBoostingClassifier

    estimator = HistGradientBoostingClassifier(random_state=seed, **params)
    return estimator.fit(x[train], y[train]).predict_proba(x[predict])


def learning_curve(recipe, data_dir=None, n_folds=5, seed=0):
    """Cross-validated accuracy against the number of training rows.

    Returns
    -------
    rows : list of dict
        One per (model, fraction): ``model``, ``fraction``, ``n_train``,
        ``accuracy`` (pooled over the folds) and ``fold_std``.
    n_pool : int
        Rows outside the test split (those cross-validated).
    """
    x, y, pool, folds = _cv_data(recipe, data_dir, n_folds, seed)
    gbdt_params = _gbdt_params()
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("network", "gbdt"):
        for fraction in FRACTIONS:
            correct, fold_acc, n_train = np.zeros(len(y), bool), [], []
            for k, (train, test) in enumerate(folds):
                train = rng.permutation(train)[:int(round(fraction * len(train)))]
                n_train.append(len(train))
                if model == "network":
                    proba = _network_proba(recipe, x, y, train, test, seed + k)
                else:
                    proba = _gbdt_proba(x, y, train, test, seed + k, gbdt_params)
                correct[test] = proba.argmax(1) == y[test]
                fold_acc.append(correct[test].mean())
            rows.append({"model": model, "fraction": fraction,
                         "n_train": int(np.mean(n_train)),
                         "accuracy": float(correct[pool].mean()),
                         "fold_std": float(np.std(fold_acc))})
    return rows, len(pool)


def compare_encodings(data_dir=None, n_folds=5, seed=0):
    """Cross-validated accuracy of the shipped network, the ones it replaced, the trees.

    Same folds and seeds for all four, all of each fold's share.

    Returns
    -------
    accuracy : dict
        Accuracy by label: the shipped network (1.1), its layers on 1.0's
        standardised inputs, 1.0's network, and ``gbdt-photometry-sg``'s trees.
    """
    from sourceclf.features import get_feature_set

    recipe = "margnet-photometry-sg"
    x, y, pool, folds = _cv_data(recipe, data_dir, n_folds, seed)
    gbdt_params = _gbdt_params()
    radii = [i for i, name in enumerate(get_feature_set("margnet24").names)
             if name.startswith("deVRad_")]
    out = {}
    for label, config in (("1.1: encoded, 256-128, dropout 0.2", None),
                          ("standardised, 256-128, dropout 0.2",
                           {**STANDARDISED_V11_LAYERS, "log_columns": radii}),
                          ("1.0: standardised, 256-128-64, dropout 0.1",
                           {**STANDARDISED_V10, "log_columns": radii}),
                          ("gbdt-photometry-sg's trees", "gbdt")):
        correct = np.zeros(len(y), bool)
        for k, (train, test) in enumerate(folds):
            if config == "gbdt":
                proba = _gbdt_proba(x, y, train, test, seed + k, gbdt_params)
            else:
                proba = _network_proba(recipe, x, y, train, test, seed + k, config=config)
            correct[test] = proba.argmax(1) == y[test]
        out[label] = float(correct[pool].mean())
    return out


def doublings_to_target(rows, target):
    """Rows needed to reach ``target`` if the last doubling's gain repeated."""
    last, before = rows[-1], rows[-2]
    gain = last["accuracy"] - before["accuracy"]
    if last["accuracy"] >= target:
        return last["n_train"]
    if gain <= 0:
        return math.inf
    return last["n_train"] * 2 ** ((target - last["accuracy"]) / gain)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--recipes", default="margnet-photometry-sg,ugriz-sgq",
                        help="comma-separated; '' for none")
    parser.add_argument("--compare-encodings", action="store_true",
                        help="also compare margnet-photometry-sg's input encodings")
    parser.add_argument("--seeds", default="0,1,2",
                        help="seeds of the encoding comparison (comma-separated)")
    args = parser.parse_args(argv)

    import torch

    from sourceclf.models import model_card

    torch.set_num_threads(args.threads)
    if args.compare_encodings:
        print("margnet-photometry-sg's data, 5-fold CV on the rows outside the test split "
              "(folds and training seeds from each seed):")
        results = {seed: compare_encodings(args.data_dir, seed=seed)
                   for seed in map(int, args.seeds.split(","))}
        for label in results[min(results)]:
            values = [100 * r[label] for r in results.values()]
            print(f"  {label:44s} " + "  ".join(f"{v:.2f}%" for v in values)
                  + f"   mean {np.mean(values):.2f}%")
    for recipe in filter(None, args.recipes.split(",")):
        t0 = time.perf_counter()
        rows, n_pool = learning_curve(recipe, args.data_dir)
        target = TARGETS[recipe]
        test = model_card(recipe).metrics["test"]["accuracy"]
        print(f"\n{recipe}: 5-fold CV on the {n_pool} rows outside the test split; "
              f"shipped model's test accuracy {100 * test:.2f}%, target {100 * target:.1f}%")
        print(f"{'model':8s} {'fraction':>8s} {'n_train':>8s} {'CV accuracy':>12s} "
              f"{'fold std':>9s}")
        for row in rows:
            print(f"{row['model']:8s} {row['fraction']:8.2f} {row['n_train']:8d} "
                  f"{100 * row['accuracy']:11.2f}% {100 * row['fold_std']:8.2f}%")
        for model in ("network", "gbdt"):
            mine = [r for r in rows if r["model"] == model]
            gain = mine[-1]["accuracy"] - mine[-2]["accuracy"]
            need = doublings_to_target(mine, target)
            print(f"{model}: last doubling gained {100 * gain:+.2f} points; at that rate "
                  f"{target:.1%} needs about {need:,.0f} training rows"
                  if math.isfinite(need) else
                  f"{model}: last doubling gained {100 * gain:+.2f} points; no extrapolation")
        print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
