"""Peak resident memory of ``sourceclf-classify`` on catalogs of growing size.

Runs the CLI (FITS in, FITS out, default model, conformal sets at 0.9,
default chunk size) in a fresh subprocess per catalog and prints its peak RSS
(``ru_maxrss`` of the child), wall time and rows/s, then the ratio of the
largest to the smallest catalog's peak (target: 10M rows within 1.2x of 1M,
and below 1.5 GB).

Usage::

    python benchmarks/make_catalog.py 1000000 /tmp/cat_1M.fits
    python benchmarks/make_catalog.py 10000000 /tmp/cat_10M.fits
    python benchmarks/bench_memory.py /tmp/cat_1M.fits /tmp/cat_10M.fits [--model NAME]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def peak_rss_of(cmd):
    """Run ``cmd``; return (seconds, peak RSS in MB of that child, stdout)."""
    code = ("import resource, subprocess, sys, time; t0 = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:]); dt = time.perf_counter() - t0; "
            "m = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
            "print(f'@@ {dt} {m}'); sys.exit(r.returncode)")
    res = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"failed: {res.stderr}")
    line = [x for x in res.stdout.splitlines() if x.startswith("@@ ")][-1]
    seconds, kb = line.split()[1:]
    return float(seconds), int(kb) / 1024, res.stdout


def n_rows(path):
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdul:
        return hdul[1].header["NAXIS2"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("catalogs", nargs="+")
    p.add_argument("--model", default=None)
    p.add_argument("--chunk-size", type=int, default=None)
    args = p.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    baseline_s, baseline_mb, _ = peak_rss_of(
        [sys.executable, "-c", "import torch, astropy.table, sourceclf.conformal, "
         "sourceclf.models, sourceclf.streaming"])
    print(f"imports alone (torch, astropy, sourceclf): {baseline_mb:.0f} MB")
    peaks = []
    for catalog in args.catalogs:
        out = Path(tempfile.mkdtemp()) / "classified.fits"
        cmd = [sys.executable, "-m", "sourceclf.cli", catalog, "-o", str(out), "--overwrite",
               "--no-progress"]
        if args.model:
            cmd += ["--model", args.model]
        if args.chunk_size:
            cmd += ["--chunk-size", str(args.chunk_size)]
        seconds, mb, _ = peak_rss_of(cmd)
        rows = n_rows(catalog)
        size = os.path.getsize(catalog) / 2**20
        print(f"{catalog}: {rows:>10} rows ({size:,.0f} MB file): peak RSS {mb:7.0f} MB, "
              f"{seconds:7.1f} s, {rows / seconds:9,.0f} rows/s")
        peaks.append(mb)
        out.unlink(missing_ok=True)
    if len(peaks) > 1:
        print(f"peak RSS ratio last/first: {peaks[-1] / peaks[0]:.3f} (target <= 1.2; "
              f"and < 1536 MB)")


if __name__ == "__main__":
    main()
