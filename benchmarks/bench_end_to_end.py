"""End-to-end rows/s through ``sourceclf-classify`` next to the bare model forward.

In one run, on the same synthetic catalog (``make_catalog.py``):

1. ``sourceclf-classify CATALOG -o OUT --overwrite --no-progress`` in a
   subprocess (default model chosen by ``auto``, conformal sets at 0.9; FITS
   in, FITS out, streamed in chunks): wall time and rows/s (peak memory:
   ``bench_memory.py``).
2. The bare pass of the same model over the same rows, in this process:
   features computed beforehand (not timed), then ``TorchClassifier.logits``
   (what classify runs) and, for reference, a plain loop of ``module(batch)``
   over batches of the default size; for models that are not one torch
   network (the trees, and the default blend of a network and trees on
   MargNet's 24 columns) their ``predict_proba``.
3. MargNet's ANN (random weights: speed does not depend on them) over the
   same rows, run the published way (fp32, a ``DataLoader`` with batch 2048,
   ``torch.no_grad``; ``bench_models.published_way``), with torch's threads
   and with one thread, the faster counting (as for sourceclf's own forward
   pass): the end-to-end run against it is the headline ratio (target <= 0.45x).
4. The lower bound of the run: Python start-up with torch and astropy
   (``python -c "import torch, astropy.table"``), reading the input chunk by
   chunk (`sourceclf.streaming` sources, as the CLI reads it), the fastest
   bare forward pass of step 2 and writing the CLI's output again chunk by
   chunk (its FITS writer), each timed in this run.
5. With ``--profile``, a cProfile of ``sourceclf.classify_file`` on the same
   catalog (top functions by cumulative and by own time), to show where the
   rest goes.

``--precision {fp32,bf16,auto}``, ``--compile`` and ``--device`` are passed to
the CLI and to the bare forward pass (``TorchClassifier.logits`` and the
module loop run under the same autocast and compiled module), so that on a GPU
machine one run tells whether bf16 and ``torch.compile`` pay off end to end;
the compilation happens in the warm-up call of the bare forward and inside
each CLI run (where it counts: a user pays it once per run).

Usage::

    python benchmarks/make_catalog.py 1000000 /tmp/cat_1M.fits
    python benchmarks/bench_end_to_end.py /tmp/cat_1M.fits [--model NAME] [--profile]
    python benchmarks/bench_end_to_end.py /tmp/cat_1M.fits --device cuda --precision bf16 \
        --compile
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


class BareForward:
    """The model's own pass over the catalog's classifiable rows, features precomputed.

    For torch models, ``TorchClassifier.logits`` (what classify runs) and a
    plain ``module(batch)`` loop; for other models (scikit-learn trees, blends
    of networks and trees) ``predict_proba``, which is then the model pass.
    """

    def __init__(self, catalog, model, device="cpu", precision="fp32", compile=False):
        import numpy as np
        import torch
        from astropy.table import Table

        from sourceclf.classification import choose_model
        from sourceclf.device import default_batch_size, resolve_device
        from sourceclf.features import get_feature_set
        from sourceclf.models.base import _widest_layer
        from sourceclf.models.registry import load_model

        table = Table.read(catalog)
        self.clf = load_model(model or choose_model(table))
        fm = get_feature_set(self.clf.feature_set).compute(table)
        self.x = np.ascontiguousarray(fm.values[fm.valid])
        self.device = resolve_device(device)
        self.precision = self.clf.resolve_precision(precision, self.device)
        self.compile = compile
        self.options = {"device": self.device, "precision": precision, "compile": compile}
        self.is_torch = self.clf.has_logits and hasattr(self.clf, "module")
        self.xt = torch.as_tensor(self.x).to(self.device)
        self.batch = (default_batch_size(False, self.device, _widest_layer(self.clf.module))
                      if self.is_torch else None)
        t0 = time.perf_counter()
        # Full and ragged batches: with --compile, every shape the runs see gets compiled.
        self._pass(self.x[: 2 * (self.batch or 65536) + 1])
        self.warmup = time.perf_counter() - t0

    @property
    def what(self):
        """What `logits` times, in words."""
        return ("TorchClassifier.logits" if self.is_torch
                else f"{type(self.clf).__name__}.predict_proba")

    def _pass(self, x):
        if self.is_torch:
            return self.clf.logits(x, **self.options)
        return self.clf.predict_proba(x, **self.options)

    def logits(self, threads=None):
        return self.timed(lambda: self._pass(self.x), threads)

    @staticmethod
    def timed(fn, threads=None):
        """Seconds ``fn()`` takes with ``threads`` torch threads (default: torch's)."""
        import torch

        initial = torch.get_num_threads()
        torch.set_num_threads(threads or initial)
        try:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        finally:
            torch.set_num_threads(initial)

    def module_loop(self):
        """Seconds of a plain ``module(batch)`` loop (torch models; None for others)."""
        import torch

        if not self.is_torch:
            return None
        module = self.clf.module.to(self.device)
        t0 = time.perf_counter()
        with torch.inference_mode(), self.clf._autocast(self.precision, self.device):
            for a in range(0, len(self.xt), self.batch):
                out = self.clf._forward(module, self.device, self.compile,
                                        self.xt[a:a + self.batch], None)
            out.float().cpu()  # wait for the GPU
        return time.perf_counter() - t0


def read_seconds(catalog, chunk_size):
    """Seconds to read the catalog chunk by chunk, as ``classify_file`` reads it."""
    from sourceclf.streaming.api import DEFAULT_CHUNK_SIZE
    from sourceclf.streaming.sources import open_source
    from sourceclf.tableio import table_format

    t0 = time.perf_counter()
    source = open_source(Path(catalog), table_format(catalog))
    try:
        for chunk in source.chunks(chunk_size or DEFAULT_CHUNK_SIZE):
            del chunk
    finally:
        source.close()
    return time.perf_counter() - t0


def write_seconds(classified, chunk_size):
    """Seconds to write a classified FITS table again, chunk by chunk, with the CLI's writer.

    The chunks are read first (not timed); the sink gets the string widths
    of the file.
    """
    from sourceclf.streaming.api import DEFAULT_CHUNK_SIZE
    from sourceclf.streaming.fits_writer import FitsSink
    from sourceclf.streaming.sources import open_source

    source = open_source(Path(classified), "fits")
    try:
        chunks = list(source.chunks(chunk_size or DEFAULT_CHUNK_SIZE))
        widths = source.string_widths()
    finally:
        source.close()
    target = Path(classified).with_name("rewritten.fits")
    t0 = time.perf_counter()
    sink = FitsSink(target, sum(len(c) for c in chunks), widths)
    for chunk in chunks:
        sink.write(chunk)
    sink.close()
    seconds = time.perf_counter() - t0
    target.unlink()
    return seconds


def profile(catalog, model, output, top=25, **options):
    from sourceclf.streaming import classify_file

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    classify_file(catalog, output, model=model or "auto", overwrite=True, progress=False,
                  **options)
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
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda...")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = p.parse_args()
    import torch

    from sourceclf import __version__

    n_rows = _n_rows(args.catalog)
    print(f"sourceclf {__version__}, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"catalog {args.catalog}: {n_rows} rows")
    out = Path(tempfile.mkdtemp()) / "classified.fits"
    extra = ["--chunk-size", str(args.chunk_size)] if args.chunk_size else []
    extra += ["--device", args.device, "--precision", args.precision]
    extra += ["--compile"] if args.compile else []
    bare = BareForward(args.catalog, args.model, args.device, args.precision, args.compile)
    print(f"forward pass: {bare.device}, {bare.precision}"
          f"{', torch.compile' if args.compile else ''}"
          f"{'' if not args.compile or bare.clf.is_compiled(bare.device) else ' (FAILED)'}; "
          f"warm-up (compilation) {bare.warmup:.2f} s")
    from bench_models import published_way

    from sourceclf.models.margnet import MargNetANN

    ann = MargNetANN(24, len(bare.clf.classes), standardize=False).eval()
    published_way(ann, bare.x[:4096])  # warm up
    cli, logits, logits1, loop, annt, startup, read, write = ([] for _ in range(8))
    for _ in range(args.repeat):  # interleaved, best of each: the machine may be shared
        seconds, _, stdout = run_cli(args.catalog, out, args.model, extra)
        cli.append(seconds)
        logits.append(bare.logits())
        logits1.append(bare.logits(threads=1))
        loop.append(bare.module_loop())
        for threads in (None, 1):  # as for sourceclf's forward: the faster setting counts
            annt.append(bare.timed(lambda: published_way(ann, bare.x), threads))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, astropy.table"], check=True)
        startup.append(time.perf_counter() - t0)
        read.append(read_seconds(args.catalog, args.chunk_size))
        write.append(write_seconds(out, args.chunk_size))
    print(stdout.strip())
    n_valid = len(bare.x)
    batch = bare.batch or "the model's default"
    print(f"\nmodel {bare.clf.name}; {n_valid} classifiable rows; batch {batch}; "
          f"best of {args.repeat} interleaved runs")
    print(f"  CLI end to end (FITS -> FITS, sets at 0.9): {min(cli):7.2f} s  "
          f"{n_rows / min(cli):10,.0f} rows/s "
          f"(runs: {', '.join(f'{t:.2f}' for t in cli)} s)")
    print(f"  bare model pass, {bare.what}:       {min(logits):7.2f} s  "
          f"{n_valid / min(logits):10,.0f} rows/s "
          f"(runs: {', '.join(f'{t:.2f}' for t in logits)} s)")
    print(f"  bare model pass, {bare.what}, 1 thread: {min(logits1):7.2f} s  "
          f"{n_valid / min(logits1):10,.0f} rows/s "
          f"(runs: {', '.join(f'{t:.2f}' for t in logits1)} s)")
    if bare.is_torch:
        print(f"  bare forward, module(batch) loop:           {min(loop):7.2f} s  "
              f"{n_valid / min(loop):10,.0f} rows/s")
    print(f"  MargNet ANN, published way (DataLoader, batch 2048, fp32, faster of "
          f"{torch.get_num_threads()} threads and 1): {min(annt):7.2f} s  "
          f"{n_valid / min(annt):10,.0f} rows/s "
          f"(runs: {', '.join(f'{t:.2f}' for t in annt)} s)")
    best = min(min(logits), min(logits1))
    print(f"  end to end / fastest bare model pass: {min(cli) / best:.2f}x")
    print(f"  end to end / MargNet ANN published-way forward: {min(cli) / min(annt):.2f}x "
          "(target <= 0.45x)")
    bound = min(startup) + min(read) + best + min(write)
    print(f"  lower bound {bound:.2f} s = start-up with torch and astropy {min(startup):.2f} s"
          f" + reading {min(read):.2f} s + model pass {best:.2f} s + writing {min(write):.2f} s; "
          f"end to end / lower bound: {min(cli) / bound:.2f}x")
    if args.profile:
        profile(args.catalog, args.model, out, device=args.device,
                precision=args.precision, compile=args.compile)
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
