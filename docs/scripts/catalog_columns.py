"""How measured MargNet columns scatter, and what the catalog models make of real stars.

Prints the figures docs/images.rst quotes on the image models that read
MargNet's 24 columns:

* for the simulated training set (`sourceclf.recipes.image_training_set`),
  per class and rendered r magnitude, the measured minus rendered r
  magnitude (median and median absolute deviation), the scatter of the
  measured g - r, and the 50th / 90th percentiles of the measured and
  rendered r-band de Vaucouleurs radius; and the DR16 stars' own catalog
  radii (``sdss_dr16_faint_compact_sg.fits``);
* for each model given with ``--models``, how many of the 161 calibObj stars
  of SDSS field 4510-4-0030 (SDSS's own PSF and model fluxes,
  `sourceclf.recipes.frame_checks.real_frame_catalog`) it calls GALAXY per r
  magnitude.

Run from the repository root::

    python docs/scripts/catalog_columns.py --data ../shared/data --models margnet-sgq
"""

import argparse
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table

import sourceclf
from sourceclf.models import load_model
from sourceclf.recipes.data import FAINT_COMPACT_SG_FILE
from sourceclf.recipes.frame_checks import real_frame_catalog
from sourceclf.recipes.image_training_set import simulated_training_set

from check_fields import SHARED_DATA  # beside this script

MAGNITUDE_BINS = ((11.0, 15.0), (15.0, 19.0), (19.0, 20.5), (20.5, 22.0), (22.0, 24.0))
STAR_BINS = ((0.0, 19.0), (19.0, 20.5), (20.5, 21.5), (21.5, 30.0))


def _mad(values):
    return float(np.median(np.abs(values - np.median(values))))


def simulated_scatter(data_dir):
    """Print the measured columns' scatter on the simulated training set."""
    table, _ = simulated_training_set(data_dir=data_dir)
    classes = np.asarray(table["class"]).astype(str)
    r = np.asarray(table["rendered_dered_r"], float)
    rendered_gr = (np.asarray(table["rendered_dered_g"]) + np.asarray(table["extinction_g"])
                   - np.asarray(table["rendered_dered_r"]) - np.asarray(table["extinction_r"]))
    print("class   r range      n     dr med  dr MAD  g-r MAD  deVRad_r p50/p90 measured"
          "  (rendered)")
    for cls in ("STAR", "QSO", "GALAXY"):
        for low, high in MAGNITUDE_BINS:
            rows = (classes == cls) & (r >= low) & (r < high)
            if not rows.any():
                continue
            dr = np.asarray(table["dered_r"])[rows] - r[rows]
            dgr = np.asarray(table["g_r"])[rows] - rendered_gr[rows]
            measured = np.percentile(np.asarray(table["deVRad_r"])[rows], [50, 90])
            rendered = np.percentile(np.asarray(table["rendered_deVRad_r"])[rows], [50, 90])
            print(f"{cls:7s} {low:4.1f}-{high:4.1f} {rows.sum():6d}  {np.median(dr):6.3f}  "
                  f"{_mad(dr):6.3f}  {_mad(dgr):6.3f}   {measured[0]:.2f} / {measured[1]:.2f}"
                  f"  ({rendered[0]:.2f} / {rendered[1]:.2f})")
    sg = Table.read(Path(data_dir) / FAINT_COMPACT_SG_FILE)
    stars = np.char.strip(np.asarray(sg["class"]).astype(str)) == "STAR"
    radius = np.percentile(np.asarray(sg["deVRad_r"])[stars], [50, 90])
    print(f"SDSS DR16 faint compact stars (r 20-23), catalog deVRad_r p50/p90: "
          f"{radius[0]:.2f} / {radius[1]:.2f}")


def calibobj_stars(models, data_dir):
    """Print how many calibObj stars each model calls GALAXY, per r magnitude."""
    catalog, frames = real_frame_catalog(data_dir)
    r = np.asarray(catalog["dered_r"], float)
    for name in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = sourceclf.classify(catalog, images=frames, model=load_model(name),
                                     confidence=None, progress=False)
        galaxy = np.asarray(out["pred_class"]) == "GALAXY"
        parts = [f"r {low:g}-{high:g}: {int(galaxy[(r >= low) & (r < high)].sum())} of "
                 f"{int(((r >= low) & (r < high)).sum())}" for low, high in STAR_BINS]
        print(f"{name}: calibObj stars called GALAXY, " + "; ".join(parts)
              + f"; all: {1 - galaxy.mean():.3f} called point sources")


def main(argv=None):
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=SHARED_DATA,
                        help="folder of the shared SDSS data")
    parser.add_argument("--models", type=lambda text: text.split(","), default=[],
                        help="comma-separated model names or directories to try on the "
                             "calibObj stars")
    args = parser.parse_args(argv)
    simulated_scatter(args.data)
    calibobj_stars(args.models, args.data)


if __name__ == "__main__":
    main()
