"""Rows per second of photometric models, and held-out accuracy of lean candidates.

In one process, on the same synthetic rows (``sourceclf.demo`` feature
distributions), this times:

* the default photometric model (``margnet-photometry-sg``, or ``--model``)
  as sourceclf runs it: ``TorchClassifier.logits`` (float32, batches sized from
  the model width, ``torch.inference_mode``);
* MargNet's ANN run the published way: float32, a ``torch.utils.data.DataLoader``
  over a ``TensorDataset`` with batch 2048, under ``torch.no_grad()``, as a
  Keras ``model.predict(x, batch_size=2048)`` does;
* lean ``mlp`` candidates (random weights: speed does not depend on them).

With ``--train`` each lean candidate is also trained with the
``margnet-photometry-sg`` recipe's split (`sourceclf.train_recipes.recipe_split`
on ``../shared/data/sdss_dr16_faint_compact_sg.fits``; same optimiser,
patience and seed) and its held-out test accuracy printed next to the
default model's card value.

Usage::

    python benchmarks/bench_models.py [--rows 1000000] [--threads 2] [--train]
"""

import argparse
import time


#: MargNet feature columns holding de Vaucouleurs radii (log10 inside the network, as in
#: the shipped margnet-photometry-sg).
RADII = [1, 5, 9, 13, 17]

#: Leaner 'mlp' candidates than the shipped default (256-128-64), trained with its recipe.
CANDIDATES = {
    "mlp-128-64-gelu": {"hidden": [128, 64], "act": "gelu", "dropout": 0.1,
                        "standardize": True, "log_columns": RADII},
    "mlp-64-32-gelu": {"hidden": [64, 32], "act": "gelu", "dropout": 0.1,
                       "standardize": True, "log_columns": RADII},
    "mlp-32-16-relu": {"hidden": [32, 16], "act": "relu", "dropout": 0.0,
                       "standardize": True, "log_columns": RADII},
}


def rows_per_second(fn, n_rows, repeat=3):
    """Best of ``repeat`` timings of ``fn()`` over ``n_rows`` rows."""
    fn()  # warm up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_rows / best


def published_way(module, x, batch_size=2048):
    """MargNet's ANN inference as published: DataLoader, batch 2048, fp32."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(torch.as_tensor(x)), batch_size=batch_size,
                        shuffle=False)
    outs = []
    module.eval()
    with torch.no_grad():
        for (xb,) in loader:
            outs.append(torch.softmax(module(xb), dim=1))
    return torch.cat(outs).numpy()


def main():
    import torch

    from sourceclf.models.base import TorchClassifier
    from sourceclf.models.card import ModelCard
    from sourceclf.models.margnet import MargNetANN, PhotometricMLP
    from sourceclf.models.registry import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--model", default="margnet-photometry-sg")
    p.add_argument("--train", action="store_true", help="train the candidates for accuracy")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, rows {args.rows}")

    from bench_common import synthetic_features

    x = synthetic_features(args.rows)

    default = load_model(args.model)
    results = {}
    results[f"{default.name} (sourceclf logits)"] = rows_per_second(
        lambda: default.logits(x), len(x))
    ann = MargNetANN(24, len(default.classes), standardize=False).eval()
    results["MargNet ANN, published way (DataLoader, batch 2048, fp32)"] = rows_per_second(
        lambda: published_way(ann, x), len(x))
    results[f"{default.name} network, published way"] = rows_per_second(
        lambda: published_way(default.module, x), len(x))
    for name, config in CANDIDATES.items():
        cfg = {"n_features": 24, "n_classes": len(default.classes), **config}
        card = ModelCard(name=name, architecture="mlp", config=cfg, feature_set="margnet24",
                         classes=list(default.classes))
        clf = TorchClassifier(PhotometricMLP(**cfg), card)
        results[f"{name} (sourceclf logits)"] = rows_per_second(lambda: clf.logits(x), len(x))
    ref = results["MargNet ANN, published way (DataLoader, batch 2048, fp32)"]
    width = max(map(len, results))
    print("\nrows/s on the same rows, same process")
    for name, value in results.items():
        print(f"  {name:<{width}}  {value:>12,.0f}  ({value / ref:5.2f}x published ANN)")

    if args.train:
        train_candidates(args.data_dir, default)


def train_candidates(data_dir, default):
    from sourceclf.train_recipes import _train_photometric, read_recipe_table

    table = read_recipe_table("margnet-photometry-sg", data_dir)
    test = default.card.metrics.get("test", {})
    print(f"\nheld-out test accuracy (recipe_split of {len(table)} rows)")
    print(f"  {default.name} (card): {test.get('accuracy', float('nan')):.4f} "
          f"(n={test.get('n')})")
    published = default.card.metrics.get("published_recipe_test")
    if published:
        print(f"  MargNet ANN, published recipe (card): {published['accuracy']:.4f}")
    for name, config in CANDIDATES.items():
        t0 = time.perf_counter()
        # The margnet-photometry-sg recipe's optimiser settings and split.
        clf = _train_photometric("margnet-photometry-sg", table, architecture="mlp",
                                 feature_set="margnet24", config=config, description=name,
                                 priority=0, batch_size=512, weight_decay=1e-4, patience=25,
                                 epochs=300)
        m = clf.card.metrics["test"]
        print(f"  {name}: {m['accuracy']:.4f} (macro F1 {m['f1_macro']:.4f}, "
              f"{clf.card.training['epochs_run']} epochs, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
