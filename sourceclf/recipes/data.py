"""The public SDSS tables the recipes train on, and their fixed split.

Each recipe splits its table with a fixed seed into training, validation
(early stopping), calibration (conformal sets) and test parts; `recipe_split`
is importable, so the test suite can check each shipped model on exactly the
rows its recipe held out.

Most recipes read one table, split stratified by class
(`SPLIT_FRACTIONS`).  ``ugriz-sgq`` reads two (`COMBINED_RECIPES`): the
SDSS17 and DR14 spectroscopic tables, stacked with a ``dataset`` column,
SDSS17 rows duplicating an object of the DR14 table (or an earlier SDSS17
row) within 1 arcsec removed, and split stratified by dataset and class with
`COMBINED_SPLIT_FRACTIONS` (`stratified_split`), so that each table has its
own held-out rows.
"""

import os
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

from ..columns import decode_strings
from ..training import labels_from_table, split_indices

__all__ = ["SPLIT_FRACTIONS", "SPLIT_SEED", "FAINT_COMPACT_SG_FILE", "DR14_SPECTRO_FILE",
           "SDSS17_FILE", "DATA_FILES", "COMBINED_RECIPES", "COMBINED_SPLIT_FRACTIONS",
           "DEDUP_ARCSEC", "default_data_dir", "read_labelled_table", "read_recipe_table",
           "recipe_split",
           "stratified_split"]

#: Fractions of validation, calibration and test rows (training gets the rest).
SPLIT_FRACTIONS = (0.10, 0.10, 0.20)
SPLIT_SEED = 42

#: Faint (r > 20) compact SDSS DR16 spectroscopic galaxies and stars, MargNet's 24 columns.
FAINT_COMPACT_SG_FILE = "sdss_dr16_faint_compact_sg.fits"
#: SDSS DR14 spectroscopic galaxies, quasars and stars with ugriz magnitudes.
DR14_SPECTRO_FILE = "sdss_dr14_spectro_ugriz.fits"
#: SDSS DR17 spectroscopic galaxies, quasars and stars of all magnitudes (r 14-23).
SDSS17_FILE = "sdss17_ugriz_sgq.fits"

#: The file each photometric recipe reads from the data directory.
DATA_FILES = {
    "margnet-photometry-sg": FAINT_COMPACT_SG_FILE,
    "bayesian-margnet-photometry-sg": FAINT_COMPACT_SG_FILE,
    "gbdt-photometry-sg": FAINT_COMPACT_SG_FILE,
    "blend-photometry-sg": FAINT_COMPACT_SG_FILE,
    "ugriz-sgq": f"{SDSS17_FILE} + {DR14_SPECTRO_FILE}",
    "feature-model": FAINT_COMPACT_SG_FILE,
}

#: Recipes reading several tables: recipe -> {dataset name: file}, stacked in this order.
COMBINED_RECIPES = {
    "ugriz-sgq": {"sdss17": SDSS17_FILE, "dr14": DR14_SPECTRO_FILE},
}
#: Train/validation/calibration/test fractions of the combined recipes' split.
COMBINED_SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.05, "calibration": 0.10,
                            "test": 0.15}
#: SDSS17 rows within this distance (arcsec) of a DR14 row, or of an earlier
#: SDSS17 row, are dropped from the combined table (the same object twice
#: could fall in the training and the test split).
DEDUP_ARCSEC = 1.0
#: Columns kept from each table of a combined recipe (never redshift).
_COMBINED_COLUMNS = ("ra", "dec", "u", "g", "r", "i", "z", "class")


def default_data_dir():
    """``$SOURCECLF_DATA``, else ``../shared/data`` beside the source tree."""
    env = os.environ.get("SOURCECLF_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def read_labelled_table(path):
    """Read one of the shared labelled tables, its ``class`` column as str.

    Parameters
    ----------
    path : path-like
        A FITS table with a ``class`` column (e.g. a file of `DATA_FILES`).

    Returns
    -------
    table : `~astropy.table.Table`
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training data '{path}' not found; pass --data-dir")
    table = Table.read(path)
    table["class"] = decode_strings(table["class"])
    return table


def _unit_vectors(ra, dec):
    ra, dec = np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float))
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _duplicates(table, first, radius_arcsec):
    """Rows of dataset ``first`` that repeat an object of another dataset or an earlier row."""
    from sklearn.neighbors import BallTree

    xyz = _unit_vectors(table["ra"], table["dec"])
    radius = 2 * np.sin(np.radians(radius_arcsec / 3600.0) / 2)  # chord length
    is_first = np.asarray(table["dataset"]) == first
    drop = np.zeros(len(table), bool)
    drop[is_first] = BallTree(xyz[~is_first]).query_radius(
        xyz[is_first], r=radius, count_only=True) > 0
    rows = np.flatnonzero(is_first)
    for row, near in zip(rows, BallTree(xyz[is_first]).query_radius(xyz[is_first], r=radius)):
        if np.any(rows[near] < row):
            drop[row] = True
    return drop


def read_recipe_table(recipe, data_dir=None):
    """Read the SDSS table a recipe trains on, labels decoded.

    For a combined recipe (`COMBINED_RECIPES`) the tables are stacked (their
    ``ra dec u g r i z class`` columns) with a ``dataset`` column, and
    SDSS17 duplicates are removed (`DEDUP_ARCSEC`); ``meta['recipe']`` names
    the recipe, so that `recipe_split` splits it the recipe's way.
    """
    data_dir = Path(data_dir or default_data_dir())
    if recipe not in COMBINED_RECIPES:
        return read_labelled_table(data_dir / DATA_FILES[recipe])
    parts = []
    for name, file in COMBINED_RECIPES[recipe].items():
        t = read_labelled_table(data_dir / file)
        t = Table([t[c] for c in _COMBINED_COLUMNS])
        t.meta.clear()
        t["dataset"] = name
        parts.append(t)
    table = vstack(parts, metadata_conflicts="silent")
    first = next(iter(COMBINED_RECIPES[recipe]))
    drop = _duplicates(table, first, DEDUP_ARCSEC)
    table = table[~drop]
    table.meta["recipe"] = recipe
    table.meta["n_duplicates_dropped"] = int(drop.sum())
    return table


def stratified_split(strata, fractions, seed=SPLIT_SEED):
    """Assign each row to a part, separately inside each stratum.

    Inside a stratum of ``n`` rows (strata in sorted order, one seeded
    generator for all) the rows are shuffled and cut at the rounded
    cumulative fractions, so every part has the same mix of strata to within
    a row.

    Parameters
    ----------
    strata : array-like of str
        Stratum of each row (e.g. dataset and class).
    fractions : dict
        Part name -> fraction, in order.
    seed : int
        Seed of the generator.

    Returns
    -------
    parts : dict
        Part name -> sorted row indices.
    """
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    names = list(fractions)
    cum = np.cumsum([fractions[k] for k in names])
    cum = cum / cum[-1]
    out = np.full(len(strata), -1)
    for stratum in np.unique(strata):
        idx = np.flatnonzero(strata == stratum)
        idx = idx[rng.permutation(len(idx))]
        start = 0
        for k, stop in enumerate(np.round(cum * len(idx)).astype(int)):
            out[idx[start:stop]] = k
            start = stop
    return {name: np.flatnonzero(out == k) for k, name in enumerate(names)}


def recipe_split(table, label_column="class", seed=SPLIT_SEED, recipe=None):
    """The fixed split of a recipe's table.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The recipe's table (`read_recipe_table`).
    label_column : str
        The class column.
    seed : int
        Seed of the split.
    recipe : str, optional
        The recipe; default ``table.meta['recipe']``.  Combined recipes
        (`COMBINED_RECIPES`) split stratified by ``dataset`` and class with
        `COMBINED_SPLIT_FRACTIONS`; the others stratified by class with
        `SPLIT_FRACTIONS`.

    Returns
    -------
    parts : dict
        ``train``, ``validation``, ``calibration``, ``test``: sorted row indices.
    """
    classes, y = labels_from_table(table, label_column)
    recipe = recipe or table.meta.get("recipe")
    if recipe in COMBINED_RECIPES:
        strata = np.char.add(np.asarray(table["dataset"]).astype(str), y.astype(str))
        return stratified_split(strata, COMBINED_SPLIT_FRACTIONS, seed)
    train, val, cal, test = split_indices(y, SPLIT_FRACTIONS, random_state=seed)
    return {"train": train, "validation": val, "calibration": cal, "test": test}
