"""ugriz-sgq on a table it was not tuned to: faint compact SDSS DR16 objects.

Prints the figures quoted in ``docs/training.rst``.  Run from the repository
root::

    python docs/scripts/ugriz_elsewhere.py [--data-dir ../shared/data]

``sdss_dr16_faint_compact_sg.fits`` (15,217 galaxies and stars, r 20-23,
compact) never entered ``ugriz-sgq``'s training; its observed magnitudes are
``dered_<b> + extinction_<b>``.  Accuracy, the share called QSO, and point
source (STAR or QSO) against galaxy, per r bin.
"""

import argparse
from pathlib import Path

import numpy as np

from sourceclf import classify
from sourceclf.recipes.data import read_recipe_table

BINS = (20.0, 20.5, 21.0, 21.5, 22.0, 23.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    table = read_recipe_table("margnet-photometry-sg", args.data_dir)
    out = classify(table, model="ugriz-sgq", confidence=None)
    pred = np.asarray(out["pred_class"], dtype=str)
    true = np.asarray(table["class"], dtype=str)
    r = np.asarray(table["dered_r"]) + np.asarray(table["extinction_r"])
    flagged = np.char.find(np.asarray(out["pred_flag"], dtype=str), "out_of_domain") >= 0
    print(f"{len(table)} rows: accuracy {np.mean(pred == true):.3f}, called QSO "
          f"{np.mean(pred == 'QSO'):.1%}, point source vs galaxy "
          f"{np.mean((pred != 'GALAXY') == (true == 'STAR')):.3f}, out_of_domain "
          f"{flagged.mean():.1%}")
    print("  r bin       n  accuracy  point-vs-galaxy")
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        sel = (r >= lo) & (r < hi)
        if sel.any():
            print(f"  {lo:4.1f}-{hi:<4.1f} {sel.sum():5d}  {np.mean(pred[sel] == true[sel]):8.3f}  "
                  f"{np.mean((pred[sel] != 'GALAXY') == (true[sel] == 'STAR')):8.3f}")


if __name__ == "__main__":
    main()
