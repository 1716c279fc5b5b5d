"""A model's calibration table: what it holds, how it is built and read.

A calibration table has one row per held-out labelled source: ``label``
(its true class), ``prob_<class>`` (the model's probabilities, one column
per class, lower case) and, where the sources' table supplied them, the
observed ``r`` and extinction-corrected ``dered_r`` magnitudes (and any
other column a Mondrian calibration groups by).
"""

import numpy as np
from astropy.table import Table

from ..bands import BANDS
from ..columns import ColumnFinder, clean_column, decode_strings
from ..exceptions import InvalidInputError
from ..features import BandMagnitudes

__all__ = ["GROUP_MAGNITUDES", "group_values", "build_calibration_table",
           "read_calibration_table"]

#: Magnitude columns a calibration table keeps for later Mondrian grouping.
GROUP_MAGNITUDES = ("r", "dered_r")


def group_values(table, column):
    """Values of a Mondrian grouping column of a table, NaN where missing.

    ``'r'`` (observed) and ``'dered_r'`` (extinction-corrected) magnitudes, and
    the same for the other bands, are derived as the feature sets derive them
    (e.g. ``dered_r + extinction_r`` for ``r``); other names are looked up
    case-insensitively.

    Parameters
    ----------
    table : `~astropy.table.Table`
        A catalog or a calibration table.
    column : str
        Column name.

    Returns
    -------
    values : `numpy.ndarray` of float64, or None when the table cannot supply it
    """
    finder = ColumnFinder(table)
    key = column.lower()
    if key in BANDS:
        return BandMagnitudes(finder, key).observed_mag()
    if key.startswith("dered_") and key[6:] in BANDS:
        return BandMagnitudes(finder, key[6:]).dered()
    name = finder.find(column)
    if name is None:
        return None
    try:
        return clean_column(table[name], unit="mag", name=name)
    except InvalidInputError:  # not a magnitude: take the numbers as they are
        col = table[name]
        data = getattr(col, "value", col)
        if np.asarray(data).dtype.kind not in "biuf":
            raise InvalidInputError(f"column '{name}' holds {np.asarray(data).dtype.name} "
                                    "values, not numbers: Mondrian calibration (--by) bins a "
                                    "numeric column such as r") from None
        return np.ma.filled(np.ma.asarray(data, dtype=np.float64), np.nan)


def build_calibration_table(classes, labels, proba, rows):
    """A calibration table from labelled rows and the model's probabilities.

    Parameters
    ----------
    classes : sequence of str
        The model's classes, in the column order of ``proba``.
    labels : array-like of str
        True class of each row.
    proba : array-like, shape (n, n_classes)
        The model's probabilities of those rows.
    rows : `~astropy.table.Table`
        Those rows of the catalog, for their `GROUP_MAGNITUDES`.

    Returns
    -------
    calibration : `~astropy.table.Table`
        Columns ``label``, ``prob_<class>`` and, where ``rows`` supply them,
        ``r`` and ``dered_r`` (float32).
    """
    proba = np.asarray(proba)
    out = Table()
    out["label"] = np.asarray(labels).astype(str)
    for k, c in enumerate(classes):
        out[f"prob_{c.lower()}"] = proba[:, k].astype(np.float32)
    for column in GROUP_MAGNITUDES:
        values = group_values(rows, column)
        if values is not None:
            out[column] = values.astype(np.float32)
    return out


def read_calibration_table(calibration, classes, by=None, name="model"):
    """Probabilities, labels and grouping values of a calibration table.

    Parameters
    ----------
    calibration : `~astropy.table.Table`
        A calibration table.
    classes : sequence of str
        The model's classes (upper case), in the wanted column order.
    by : str, optional
        A grouping column (not ``'class'``) whose values are wanted too.
    name : str
        What to call the model in messages.

    Returns
    -------
    proba : `numpy.ndarray` of float64, shape (n, n_classes)
    labels : `numpy.ndarray` of str
        Upper case.
    values : `numpy.ndarray` of float64 or None
        The ``by`` column's values, None without ``by``.

    Raises
    ------
    InvalidInputError
        If a ``label``, ``prob_<class>`` or ``by`` column is missing.
    """
    missing = [f"prob_{c.lower()}" for c in classes
               if f"prob_{c.lower()}" not in calibration.colnames]
    if "label" not in calibration.colnames:
        missing.insert(0, "label")
    if missing:
        raise InvalidInputError(f"calibration table of {name} lacks columns "
                                f"{', '.join(missing)}")
    proba = np.column_stack([np.asarray(calibration[f"prob_{c.lower()}"], dtype=np.float64)
                             for c in classes])
    labels = np.char.upper(decode_strings(calibration["label"]))
    values = None
    if by is not None:
        values = group_values(calibration, by)
        if values is None:
            have = [c for c in calibration.colnames if not c.startswith("prob_")
                    and c != "label"]
            raise InvalidInputError(
                f"the calibration data of {name} have no column '{by}' (they "
                f"have {', '.join(have) or 'none'}); recalibrate with "
                f"sourceclf.calibrate(..., by='{by}')")
    return proba, labels, values
