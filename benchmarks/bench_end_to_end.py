"""End-to-end rows/s through ``sourceclf-classify`` next to the bare model forward.

In one run, on the same synthetic catalog (``make_catalog.py``):

1. ``sourceclf-classify CATALOG -o OUT --overwrite --no-progress`` in a
   subprocess (default model chosen by ``auto``, conformal sets at 0.9; FITS
   in, FITS out, streamed in chunks): wall time, rows/s and peak RSS.
2. The bare forward pass of the same model over the same rows, in this
   process: features computed beforehand (not timed), then
   ``TorchClassifier.logits`` (what classify runs) and, for reference, a plain
   loop of ``module(batch)`` over batches of the default size.
3. A cProfile of ``sourceclf.classify_file`` on the same catalog (top
   functions by cumulative and by own time), to show where the rest goes.

Usage::

    python benchmarks/make_catalog.py 1000000 /tmp/cat_1M.fits
    python benchmarks/bench_end_to_end.py /tmp/cat_1M.fits [--model NAME] [--profile]
"""

import argparse
import cProfile
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_cli(catalog, output, model=None, extra=()):
    """Run the CLI in a subprocess; return (seconds, peak RSS MB, stdout)."""
    cmd = [sys.executable, "-m", "sourceclf.cli", str(catalog), "-o", str(output),
           "--overwrite", "--no-progress", *extra]
    if model:
        cmd += ["--model", model]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"CLI failed ({res.returncode}): {res.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(before, after) / 1024, res.stdout


def bare_forward(catalog, model, repeat=2):
    """Seconds of the model forward over the catalog's classifiable rows."""
    import numpy as np
    import torch
    from astropy.table import Table

    from sourceclf.classification import choose_model
    from sourceclf.device import default_batch_size
    from sourceclf.features import get_feature_set
    from sourceclf.models.base import _widest_layer
    from sourceclf.models.registry import load_model

    table = Table.read(catalog)
    name = model or choose_model(table)
    clf = load_model(name)
    fm = get_feature_set(clf.feature_set).compute(table)
    x = np.ascontiguousarray(fm.values[fm.valid])
    del table
    clf.logits(x[:10000])
    best_logits = best_loop = float("inf")
    bs = default_batch_size(False, torch.device("cpu"), _widest_layer(clf.module))
    xt = torch.as_tensor(x)
    for _ in range(repeat):
        t0 = time.perf_counter()
        clf.logits(x)
        best_logits = min(best_logits, time.perf_counter() - t0)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for a in range(0, len(xt), bs):
                clf.module(xt[a:a + bs])
        best_loop = min(best_loop, time.perf_counter() - t0)
    return clf.name, len(x), best_logits, best_loop, bs


def profile(catalog, model, output, top=25):
    from sourceclf.streaming import classify_file

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    classify_file(catalog, output, model=model or "auto", overwrite=True, progress=False)
    prof.disable()
    print(f"\ncProfile of classify_file (in process, {time.perf_counter() - t0:.1f} s):")
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("catalog")
    p.add_argument("--model", default=None, help="model name or directory (default: auto)")
    p.add_argument("--profile", action="store_true", help="also print a cProfile")
    p.add_argument("--chunk-size", type=int, default=None)
    args = p.parse_args()
    import torch

    from sourceclf import __version__

    n_rows = _n_rows(args.catalog)
    print(f"sourceclf {__version__}, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"catalog {args.catalog}: {n_rows} rows")
    out = Path(tempfile.mkdtemp()) / "classified.fits"
    extra = ["--chunk-size", str(args.chunk_size)] if args.chunk_size else []
    cli_s, rss, stdout = run_cli(args.catalog, out, args.model, extra)
    name, n_valid, logits_s, loop_s, bs = bare_forward(args.catalog, args.model)
    cli_s2, rss2, _ = run_cli(args.catalog, out, args.model, extra)  # bracket the forward
    cli_best = min(cli_s, cli_s2)
    print(stdout.strip())
    print(f"\nmodel {name}; {n_valid} classifiable rows; batch {bs}")
    print(f"  CLI end to end (FITS -> FITS, sets at 0.9): {cli_best:7.2f} s  "
          f"{n_rows / cli_best:10,.0f} rows/s  peak RSS {max(rss, rss2):.0f} MB "
          f"(runs: {cli_s:.2f} s, {cli_s2:.2f} s)")
    print(f"  bare forward, TorchClassifier.logits:       {logits_s:7.2f} s  "
          f"{n_valid / logits_s:10,.0f} rows/s")
    print(f"  bare forward, module(batch) loop:           {loop_s:7.2f} s  "
          f"{n_valid / loop_s:10,.0f} rows/s")
    print(f"  end to end / bare forward (logits): {cli_best / logits_s:.2f}x "
          f"(target <= 1.25x); / module loop: {cli_best / loop_s:.2f}x")
    if args.profile:
        profile(args.catalog, args.model, out)
    out.unlink(missing_ok=True)


def _n_rows(path):
    from astropy.io import fits

    if str(path).endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with fits.open(path, memmap=True) as hdul:
        return hdul[1].header["NAXIS2"]


if __name__ == "__main__":
    main()
