"""Inference speed, parameters and FLOPs of sourceclf's image models.

Run::

    python benchmarks/bench_image_models.py [--threads 2] [--n 8192] [--seconds 10]
    python benchmarks/bench_image_models.py --device cuda [--precision bf16] [--compile]

For each shipped image model (and, for reference, the published MargNet CNN
and the published-size MargFormer), it prints parameters, FLOPs per source
(counted by `torch.utils.flop_counter`) and sources per second of
``TorchClassifier.logits`` on random 5x32x32 stamps and 24 features (a PSF
of 1.3" for ``margnet-cnn-sgq``, which reads each band's PSF FWHM), with
``torch.set_num_threads(threads)`` on ``--device`` (the CPU by default; on
a GPU the rate includes copying the stamps to it and the logits back, as
`sourceclf.classify` does), and sources per CPU-second of the process.  It
then times the crowding count that ``classify`` adds to every image model's
rows (`sourceclf.crowding.count_neighbours`) on the same stamps,
as a rate and as a share of ``margnet-cnn-sgq``'s time per source, and the
per-stamp sky check that stamps given without frames get
(`sourceclf.sky.stamp_sky_rows` and `~sourceclf.sky.sky_row_flags`), as a
share of the crowding count's.  The load
average is printed too: on a shared machine the wall-clock rates are lower
bounds.
"""

import argparse
import os
import time

import numpy as np


def rate(clf, features, images, seconds, batch_size, device="cpu", precision="fp32",
         compile=False):
    """Sources per second of ``clf.logits``: median and best wall-clock rate of
    repeated passes, and sources per CPU-second of the process (all threads)."""
    options = dict(device=device, precision=precision, compile=compile)
    head = None if features is None else features[:batch_size]
    clf.logits(head, images[:batch_size], **options)  # warm up (and compile)
    rates, start = [], time.perf_counter()
    cpu0, n_done = time.process_time(), 0
    while time.perf_counter() - start < seconds or len(rates) < 3:
        t0 = time.perf_counter()
        clf.logits(features, images, batch_size=batch_size, **options)
        rates.append(len(images) / (time.perf_counter() - t0))
        n_done += len(images)
    per_cpu = n_done / (time.process_time() - cpu0)
    return float(np.median(rates)), float(np.max(rates)), per_cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=8192, help="sources per pass")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per model")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--reference", action="store_true",
                        help="also time the published-size MargNet CNN (slow)")
    args = parser.parse_args(argv)

    import torch

    from sourceclf.features import get_feature_set
    from sourceclf.models import load_model, model_card, model_names
    from sourceclf.models.base import TorchClassifier
    from sourceclf.models.card import ModelCard
    from sourceclf.models.margformer import MargFormer, count_flops
    from sourceclf.models.margnet_cnn import MargNetCNN

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(args.n, 24)).astype(np.float32)
    images = rng.normal(scale=0.05, size=(args.n, 5, 32, 32)).astype(np.float32)
    where = (torch.cuda.get_device_name(torch.device(args.device))
             if args.device.startswith("cuda") else "CPU")
    print(f"torch {torch.__version__}, {where}, {args.precision}"
          f"{', compiled' if args.compile else ''}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'model':28s} {'params':>10s} {'MFLOP/src':>10s} {'src/s med':>10s} "
          f"{'src/s max':>10s} {'src/CPU-s':>10s}")
    models = [load_model(n) for n in model_names() if model_card(n).uses_images]
    reference = [("margformer (published size)",
                  MargFormer(dim=64, depth=12, heads=8, token_layers=0,
                             feature_hidden=(1024, 512, 256)),
                  "margnet24")]
    if args.reference:
        reference.append(("margnet-cnn (published)", MargNetCNN(), None))
    for name, module, fset in reference:
        card = ModelCard(name=name, architecture=module.architecture_name, feature_set=fset,
                         uses_images=True, classes=["GALAXY", "QSO", "STAR"])
        models.append(TorchClassifier(module, card))
    rates = {}
    for clf in models:
        module = clf.module
        n_feat = None if clf.feature_set is None else len(get_feature_set(clf.feature_set).names)
        flops = count_flops(module, n_feat)
        params = sum(p.numel() for p in module.parameters())
        n = args.n if "published" not in clf.name else min(args.n, 1024)
        feats = None if n_feat is None else features[:n, :n_feat]
        if n_feat and get_feature_set(clf.feature_set).reads_image_psf:
            # the PSF's FWHMs (arcsec) and Moffat indices, not standard normals
            feats = np.tile([1.3 if f.startswith("psf_fwhm_") else 4.0
                             for f in get_feature_set(clf.feature_set).names],
                            (n, 1)).astype(np.float32)
        med, best, per_cpu = rate(clf, feats, images[:n], args.seconds, args.batch_size,
                                  args.device, args.precision, args.compile)
        print(f"{clf.name:28s} {params:10,d} {flops / 1e6:10.2f} {med:10.0f} {best:10.0f} "
              f"{per_cpu:10.0f}", flush=True)
        rates[clf.name] = med
    from sourceclf.bands import BANDS
    from sourceclf.crowding import count_neighbours
    from sourceclf.sky import sky_row_flags

    count = stage_rate(count_neighbours, images, args.seconds)
    cnn = rates.get("margnet-cnn-sgq")
    print(f"crowding count (count_neighbours, r band): {count:.0f} sources/s"
          + (f", {cnn / count:.2f} x the time per source of margnet-cnn-sgq" if cnn else ""))
    trained = {b: (0.03, 0.06) for b in BANDS}  # about the stamps' noise: few measured again
    sky = stage_rate(lambda s: sky_row_flags(s, None, trained), images, args.seconds)
    print(f"per-stamp sky (sky_row_flags, 5 bands): {sky:.0f} sources/s, "
          f"{count / sky:.2f} x the crowding count's time per source")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def stage_rate(stage, images, seconds):
    """Median sources per second of ``stage(images)`` (a per-row stage of the image path)."""
    stage(images[:256])  # warm up (imports scipy and astropy.stats)
    rates, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(rates) < 3:
        t0 = time.perf_counter()
        stage(images)
        rates.append(len(images) / (time.perf_counter() - t0))
    return float(np.median(rates))


if __name__ == "__main__":
    main()
