"""Write the stars and galaxies that `sourceclf.injection_check` draws into a user's frames.

``sourceclf/data/injection_sources.fits`` holds the bright STAR and GALAXY
rows of the image models' simulated population
(`sourceclf.recipes.injection.injection_catalog`: resampled SDSS rows and
parametric galaxies, observed r 16-20.5), drawn with a seed of their own
(neither the training set's nor ``check_fields.py --inject``'s), and only the
columns GalSim draws them from.  Run from the repository root::

    python docs/scripts/make_injection_sources.py --data ../shared/data
"""

import argparse
from pathlib import Path

import numpy as np
from astropy.table import Table

from sourceclf.bands import BANDS
from sourceclf.injection_check import INJECTION_SOURCES_FILE
from sourceclf.recipes.injection import INJECTION, injection_catalog

#: Rows written, and their seed.
N_ROWS, SEED = 2000, 2026


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="the SDSS tables' directory")
    args = parser.parse_args(argv)
    catalog = injection_catalog(N_ROWS, galaxy_fraction=INJECTION["galaxy_fraction"],
                                r_range=INJECTION["r_range"], random_state=SEED,
                                data_dir=args.data)
    out = Table()
    for b in BANDS:
        for column in (f"dered_{b}", f"extinction_{b}", f"deVRad_{b}"):
            out[column] = np.asarray(catalog[column], dtype=np.float32)
    out["class"] = np.asarray(catalog["class"]).astype(str)
    out["r_mag"] = np.asarray(catalog["r_mag"], dtype=np.float32)
    out.meta = {"ORIGIN": "docs/scripts/make_injection_sources.py",
                "COMMENT": f"injection_catalog({N_ROWS}, random_state={SEED}): bright stars "
                           "and galaxies of the image models' simulated population"}
    path = Path(INJECTION_SOURCES_FILE)
    out.write(path, overwrite=True)
    print(f"wrote {path}: {len(out)} rows, "
          + ", ".join(f"{c} {int(np.sum(out['class'] == c))}" for c in ("STAR", "GALAXY")))


if __name__ == "__main__":
    main()
