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

``--precision bf16`` (or ``auto``) and ``--compile`` run the sourceclf rows
in that mode (`TorchClassifier.logits` with ``precision=`` and ``compile=``)
and add, for the default model, an fp32 eager row timed interleaved with it in
the same process, with the largest probability difference and the share of
rows whose class changes.  ``--device cuda`` runs the sourceclf rows on a GPU
(the published-way rows stay on the CPU).

With ``--train`` each lean candidate is also trained with the
``margnet-photometry-sg`` recipe's split (`sourceclf.train_recipes.recipe_split`
on ``../shared/data/sdss_dr16_faint_compact_sg.fits``; same optimiser,
patience and seed) and its held-out test accuracy printed next to the
default model's card value.

Usage::

    python benchmarks/bench_models.py [--rows 1000000] [--threads 2] [--train]
    python benchmarks/bench_models.py --rows 200000 --threads 1 --precision bf16
    python benchmarks/bench_models.py --device cuda --precision bf16 --compile
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


def interleaved_rows_per_second(fns, n_rows, repeat=3):
    """Best of ``repeat`` timings of each of ``fns``, run in turn (a shared machine).

    Each function is called once first (warm-up; compilation with ``--compile``),
    and that first call's seconds are returned too.
    """
    first = []
    for fn in fns:
        t0 = time.perf_counter()
        fn()
        first.append(time.perf_counter() - t0)
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return [n_rows / b for b in best], first


def softmax(logits):
    import numpy as np

    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


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
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"),
                   help="precision of the sourceclf rows (default fp32)")
    p.add_argument("--compile", action="store_true",
                   help="run the sourceclf rows through torch.compile")
    p.add_argument("--device", default="cpu", help="device of the sourceclf rows (cpu, cuda)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per row (best kept)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from sourceclf.device import resolve_device

    device = resolve_device(args.device)
    options = {"device": device, "precision": args.precision, "compile": args.compile}
    special = args.precision != "fp32" or args.compile or device.type != "cpu"
    mode = f"{args.precision}{', torch.compile' if args.compile else ''}, {device}"
    tag = f", {mode}" if special else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, rows {args.rows}, "
          f"sourceclf rows: {mode}")

    from bench_common import synthetic_features

    x = synthetic_features(args.rows)

    default = load_model(args.model)
    results = {}
    if special:
        reference = load_model(args.model)  # its own module: compile caches stay apart
        (fast, slow), first = interleaved_rows_per_second(
            [lambda: default.logits(x, **options),
             lambda: reference.logits(x, device=device)], len(x), args.repeat)
        results[f"{default.name} (sourceclf logits{tag})"] = fast
        results[f"{default.name} (sourceclf logits, fp32 eager, {device})"] = slow
        compiled = ""
        if args.compile:
            compiled = ", compiled" if default.is_compiled(device) else ", compile FAILED"
        p_fast = softmax(default.logits(x, **options))
        p_ref = softmax(reference.logits(x, device=device))
        diff = abs(p_fast - p_ref)
        changed = (p_fast.argmax(1) != p_ref.argmax(1)).mean()
        print(f"{default.name}: {mode} runs in "
              f"{default.resolve_precision(args.precision, device)}{compiled}; first call "
              f"{first[0]:.2f} s (fp32 eager {first[1]:.2f} s); max |p - p_fp32| "
              f"{diff.max():.2e}, mean {diff.mean():.1e}; class changed on {changed:.3%} "
              "of rows")
    else:
        results[f"{default.name} (sourceclf logits)"] = rows_per_second(
            lambda: default.logits(x), len(x), args.repeat)
    ann = MargNetANN(24, len(default.classes), standardize=False).eval()
    results["MargNet ANN, published way (DataLoader, batch 2048, fp32)"] = rows_per_second(
        lambda: published_way(ann, x), len(x), args.repeat)
    published = load_model(args.model).module  # on the CPU, eager
    results[f"{default.name} network, published way"] = rows_per_second(
        lambda: published_way(published, x), len(x), args.repeat)
    for name, config in CANDIDATES.items():
        cfg = {"n_features": 24, "n_classes": len(default.classes), **config}
        card = ModelCard(name=name, architecture="mlp", config=cfg, feature_set="margnet24",
                         classes=list(default.classes))
        clf = TorchClassifier(PhotometricMLP(**cfg), card)
        results[f"{name} (sourceclf logits{tag})"] = rows_per_second(
            lambda: clf.logits(x, **options), len(x), args.repeat)
    ref = results["MargNet ANN, published way (DataLoader, batch 2048, fp32)"]
    width = max(map(len, results))
    print("\nrows/s on the same rows, same process")
    for name, value in results.items():
        print(f"  {name:<{width}}  {value:>12,.0f}  ({value / ref:5.2f}x published ANN)")

    if args.train:
        train_candidates(args.data_dir, default)


def train_candidates(data_dir, default):
    from sourceclf.train_recipes import train_photometric, read_recipe_table

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
        clf = train_photometric("margnet-photometry-sg", table, architecture="mlp",
                                feature_set="margnet24", config=config, description=name,
                                priority=0, batch_size=512, weight_decay=1e-4, patience=25,
                                epochs=300)
        m = clf.card.metrics["test"]
        print(f"  {name}: {m['accuracy']:.4f} (macro F1 {m['f1_macro']:.4f}, "
              f"{clf.card.training['epochs_run']} epochs, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
