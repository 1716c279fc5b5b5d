"""The public SDSS tables the recipes train on, and their fixed split.

Each recipe splits its table with a fixed seed into training, validation
(early stopping), calibration (conformal sets) and test parts; `recipe_split`
is importable, so the test suite can check each shipped model on exactly the
rows its recipe held out.
"""

import os
from pathlib import Path

from astropy.table import Table

from ..columns import decode_strings
from ..training import labels_from_table, split_indices

__all__ = ["SPLIT_FRACTIONS", "SPLIT_SEED", "FAINT_COMPACT_SG_FILE", "DR14_SPECTRO_FILE",
           "DATA_FILES", "default_data_dir", "read_recipe_table", "recipe_split"]

#: Fractions of validation, calibration and test rows (training gets the rest).
SPLIT_FRACTIONS = (0.10, 0.10, 0.20)
SPLIT_SEED = 42

#: Faint (r > 20) compact SDSS DR16 spectroscopic galaxies and stars, MargNet's 24 columns.
FAINT_COMPACT_SG_FILE = "sdss_dr16_faint_compact_sg.fits"
#: SDSS DR14 spectroscopic galaxies, quasars and stars with ugriz magnitudes.
DR14_SPECTRO_FILE = "sdss_dr14_spectro_ugriz.fits"

#: The file each photometric recipe reads from the data directory.
DATA_FILES = {
    "margnet-photometry-sg": FAINT_COMPACT_SG_FILE,
    "bayesian-margnet-photometry-sg": FAINT_COMPACT_SG_FILE,
    "gbdt-photometry-sg": FAINT_COMPACT_SG_FILE,
    "ugriz-sgq": DR14_SPECTRO_FILE,
    "feature-model": FAINT_COMPACT_SG_FILE,
}


def default_data_dir():
    """``$SOURCECLF_DATA``, else ``../shared/data`` beside the source tree."""
    env = os.environ.get("SOURCECLF_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def read_recipe_table(recipe, data_dir=None):
    """Read the SDSS table a recipe trains on, labels decoded."""
    path = Path(data_dir or default_data_dir()) / DATA_FILES[recipe]
    if not path.is_file():
        raise FileNotFoundError(f"training data '{path}' not found; pass --data-dir")
    table = Table.read(path)
    table["class"] = decode_strings(table["class"])
    return table


def recipe_split(table, label_column="class", seed=SPLIT_SEED):
    """The fixed split of a recipe's table.

    Returns
    -------
    parts : dict
        ``train``, ``validation``, ``calibration``, ``test``: sorted row indices.
    """
    _, y = labels_from_table(table, label_column)
    train, val, cal, test = split_indices(y, SPLIT_FRACTIONS, random_state=seed)
    return {"train": train, "validation": val, "calibration": cal, "test": test}
