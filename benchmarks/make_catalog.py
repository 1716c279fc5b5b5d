"""Write a large synthetic SDSS-like catalog for the benchmarks.

Rows are drawn with `sourceclf.demo.demo_catalog` (per-class Gaussian mixtures
fitted to SDSS DR16 faint compact galaxies and stars) in blocks of
``--block`` rows, each block with its own seed, and streamed to a FITS binary
table (header first, then rows) or a Parquet file, so that a 10-million-row
catalog never has to be in memory.  About 0.5% of the rows get a missing value
(NaN, SDSS sentinel -9999) so that masked rows are exercised.

Usage::

    python benchmarks/make_catalog.py 1000000 /tmp/cat_1M.fits
    python benchmarks/make_catalog.py 10000000 /tmp/cat_10M.fits
"""

import argparse
import time

import numpy as np


def catalog_blocks(n_rows, block=250_000, seed=0, bad_fraction=0.005):
    """Yield synthetic catalog blocks (astropy Tables) totalling ``n_rows`` rows."""
    from sourceclf.demo import demo_catalog

    done = 0
    k = 0
    while done < n_rows:
        n = min(block, n_rows - done)
        t = demo_catalog(n, random_state=seed + k)
        t["objid"] += done
        t.meta["SEED"] = seed
        rng = np.random.default_rng(10_000 + seed + k)
        bad = rng.random(n) < bad_fraction
        cols = ["dered_r", "psffwhm_g", "u_g", "deVRad_i", "r"]
        which = rng.integers(0, len(cols), n)
        for j, name in enumerate(cols):
            rows = bad & (which == j)
            t[name][rows] = np.nan if j % 2 else -9999.0
        yield t
        done += n
        k += 1


def write_catalog(path, n_rows, block=250_000, seed=0):
    """Stream ``n_rows`` synthetic rows to ``path`` (.fits or .parquet)."""
    from sourceclf.streaming.fits_writer import FitsSink
    from sourceclf.streaming.sinks import ParquetSink

    path = str(path)
    sink = (FitsSink(path, n_rows, {"class": 6}) if path.endswith(".fits")
            else ParquetSink(path))
    try:
        for t in catalog_blocks(n_rows, block=block, seed=seed):
            sink.write(t)
    finally:
        sink.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n_rows", type=int)
    p.add_argument("path")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t0 = time.perf_counter()
    write_catalog(args.path, args.n_rows, seed=args.seed)
    print(f"wrote {args.n_rows} rows to {args.path} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
