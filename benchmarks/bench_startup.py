"""Start-up: a 1,000-row ``sourceclf-classify`` run against importing torch and astropy.

In one run, interleaved (best of ``--repeat`` of each; the machine may be
shared), each in a fresh Python process:

* ``python -c "import torch, astropy.table"``: the floor of any torch model
  that reads a table;
* ``sourceclf-classify CAT -o OUT --overwrite --no-progress`` on a
  1,000-row catalog (``make_catalog.py``; default model unless ``--model``;
  sets at 0.9, FITS in and out);
* ``--help``, ``--list-models``, ``--show-model NAME`` and
  ``python -c "import sourceclf"``.

Prints each wall time and the ratio of the 1,000-row run to the import floor
(target <= 1.6x).

Usage::

    python benchmarks/bench_startup.py [--model margnet-photometry-sg] [--repeat 5]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd):
    """Seconds ``cmd`` takes in a subprocess (it must succeed)."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr}")
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model of the 1,000-row run (default: auto)")
    p.add_argument("--show", default="margnet-photometry-sg", help="model for --show-model")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from make_catalog import write_catalog

    from sourceclf import __version__

    tmp = Path(tempfile.mkdtemp())
    catalog, out = tmp / "cat_1k.fits", tmp / "out.fits"
    write_catalog(catalog, 1000)
    py = sys.executable
    cli = [py, "-m", "sourceclf.cli"]
    run_1k = cli + [str(catalog), "-o", str(out), "--overwrite", "--no-progress"]
    if args.model:
        run_1k += ["--model", args.model]
    commands = {
        'python -c "import torch, astropy.table"': [py, "-c", "import torch, astropy.table"],
        "sourceclf-classify (1,000 rows)": run_1k,
        "sourceclf-classify --help": cli + ["--help"],
        "sourceclf-classify --list-models": cli + ["--list-models"],
        f"sourceclf-classify --show-model {args.show}": cli + ["--show-model", args.show],
        'python -c "import sourceclf"': [py, "-c", "import sourceclf"],
        'python -c "pass"': [py, "-c", "pass"],
    }
    times = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, cmd in commands.items():
            times[name].append(wall(cmd))
    print(f"sourceclf {__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; best of {args.repeat} interleaved runs")
    width = max(map(len, times))
    for name, values in times.items():
        print(f"  {name:<{width}}  {min(values):6.2f} s  "
              f"(runs: {', '.join(f'{t:.2f}' for t in values)})")
    floor = min(times['python -c "import torch, astropy.table"'])
    ratio = min(times["sourceclf-classify (1,000 rows)"]) / floor
    print(f"  1,000-row run / import torch, astropy.table: {ratio:.2f}x (target <= 1.6x)")


if __name__ == "__main__":
    main()
