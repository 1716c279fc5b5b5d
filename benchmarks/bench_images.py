"""Stamps per second of the image models on the CPU (random weights).

Times the forward pass of each registered image architecture (MargNet's CNN
at its published size and at the smaller configuration the shipped weights
use, if any, and MargFormer) on random 5x32x32 stamps, under
``torch.inference_mode``, with sourceclf's default CPU batch for image models.
Shipped image models (cards with ``uses_images``) are timed through
``TorchClassifier.logits``.  Skips what is not installed.

Usage::

    python benchmarks/bench_images.py [--stamps 2048] [--threads N]
"""

import argparse
import time


def stamps_per_second(module, x, batch, features=None, repeat=2):
    import torch

    module.eval()
    with torch.inference_mode():
        module(None if features is None else features[:batch], x[:batch])
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for a in range(0, len(x), batch):
                f = None if features is None else features[a:a + batch]
                module(f, x[a:a + batch])
            best = min(best, time.perf_counter() - t0)
    return len(x) / best


def main():
    import torch

    from sourceclf.models.architectures import ARCHITECTURES, build_architecture
    from sourceclf.models.registry import load_model, model_card, model_names

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stamps", type=int, default=1024)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch", type=int, default=256)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    build_architecture("mlp", {"n_features": 1, "n_classes": 2})  # registers all modules
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.stamps, 5, 32, 32, generator=g) * 0.5
    f = torch.randn(args.stamps, 24, generator=g)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.stamps} stamps, batch {args.batch}")
    configs = []
    if "margnet-cnn" in ARCHITECTURES:
        configs.append(("margnet-cnn (published size)", "margnet-cnn", {"n_classes": 3}))
    if "margformer" in ARCHITECTURES:
        configs.append(("margformer (class defaults)", "margformer", {"n_classes": 3}))
    for label, arch, cfg in configs:
        module = build_architecture(arch, cfg)
        n_params = sum(p.numel() for p in module.parameters())
        try:
            rate = stamps_per_second(module, x, args.batch, f)
        except TypeError:
            rate = stamps_per_second(module, x, args.batch)
        print(f"  {label:<40} {n_params / 1e6:6.2f} M params  {rate:9,.1f} stamps/s")
    for name in model_names():
        card = model_card(name)
        if not card.uses_images:
            continue
        clf = load_model(name)
        feats = f.numpy() if clf.feature_set else None
        clf.logits(feats[:8] if feats is not None else None, x[:8].numpy())
        t0 = time.perf_counter()
        clf.logits(feats, x.numpy())
        rate = len(x) / (time.perf_counter() - t0)
        print(f"  shipped {name:<32} {rate:9,.1f} stamps/s (TorchClassifier.logits)")


if __name__ == "__main__":
    main()
