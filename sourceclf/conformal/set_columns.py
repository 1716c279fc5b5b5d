"""Names and contents of the prediction-set columns of a classified table.

One level writes ``pred_set`` and ``pred_set_size``; several levels write
``pred_set_<L>`` and ``pred_set_size_<L>`` with ``<L>`` the level in percent
and a ``'p'`` for a decimal point (`level_suffix`).  This module is the one
place that makes and parses those names.
"""

import re

import numpy as np

from ..columns import decode_strings
from ..exceptions import InvalidInputError

__all__ = ["EMPTY_SET_FLAG", "level_suffix", "parse_level_suffix", "set_columns",
           "parse_set_column", "set_column_names", "format_sets", "empty_set_flags",
           "set_membership", "probability_classes"]

#: ``pred_flag`` reason of a classified row whose prediction set is empty at some
#: level: ``empty_set:<L>[,<L>...]`` with each such level's `level_suffix`.
EMPTY_SET_FLAG = "empty_set"

_SET_COLUMN = re.compile(r"^pred_set(?P<size>_size)?(?:_(?P<suffix>\d+(?:p\d+)?))?$")


def level_suffix(level):
    """Column-name suffix of a confidence level: percent, ``'p'`` for the point.

    Examples
    --------
    >>> level_suffix(0.9), level_suffix(0.95), level_suffix(0.975)
    ('90', '95', '97p5')
    """
    return f"{100 * float(level):.6g}".replace(".", "p")


def parse_level_suffix(suffix):
    """Inverse of `level_suffix`: ``'97p5'`` -> 0.975."""
    return round(float(suffix.replace("p", ".")) / 100, 10)


def set_columns(levels):
    """Names of the (set, size) columns for each level, as `add_prediction_sets` writes them."""
    levels = list(levels)
    if len(levels) == 1:
        return [("pred_set", "pred_set_size")]
    return [(f"pred_set_{level_suffix(c)}", f"pred_set_size_{level_suffix(c)}") for c in levels]


def parse_set_column(name):
    """What a prediction-set column holds, from its name.

    Parameters
    ----------
    name : str
        A column name.

    Returns
    -------
    parsed : (str, float or None) or None
        ``('set', level)`` for a set column, ``('size', level)`` for a size
        column, with ``level`` None when the name carries no level (one
        level: see ``meta['CLFCONF']``); None for any other column.

    Examples
    --------
    >>> parse_set_column("pred_set_size_97p5"), parse_set_column("pred_set")
    (('size', 0.975), ('set', None))
    >>> parse_set_column("pred_set_group") is None
    True
    """
    match = _SET_COLUMN.match(name)
    if match is None:
        return None
    suffix = match["suffix"]
    return ("size" if match["size"] else "set",
            None if suffix is None else parse_level_suffix(suffix))


def set_column_names(table, level=None):
    """The (set, size) column names of one level of a classified table.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Output of `sourceclf.classify`.
    level : float, optional
        Which level; may be omitted when the table has one.

    Returns
    -------
    set_column, size_column : str

    Raises
    ------
    InvalidInputError
        If the table has no sets at ``level``, or sets at several levels and
        ``level`` is None.
    """
    if level is None:
        if "pred_set" in table.colnames:
            return "pred_set", "pred_set_size"
        found = [c for c in table.colnames if c.startswith("pred_set_size_")]
        if len(found) == 1:
            suffix = found[0][len("pred_set_size_"):]
            return f"pred_set_{suffix}", found[0]
        raise InvalidInputError("table has prediction sets at several levels "
                                f"({', '.join(found) or 'none'}); pass level=")
    suffix = level_suffix(level)
    if f"pred_set_{suffix}" in table.colnames:
        return f"pred_set_{suffix}", f"pred_set_size_{suffix}"
    conf = table.meta.get("CLFCONF")
    if "pred_set" in table.colnames and conf is not None and np.isclose(float(conf), level):
        return "pred_set", "pred_set_size"
    raise InvalidInputError(f"table has no prediction sets at level {level}")


def format_sets(membership, classes):
    """Join the classes of each row's set with ``'|'``, vectorised.

    Parameters
    ----------
    membership : array-like of bool, shape (n, n_classes)
        Whether each class is in each row's set.
    classes : sequence of str
        Class labels in column order.

    Returns
    -------
    sets : `numpy.ndarray` of str, shape (n,)
        ``''`` for an empty set.

    Examples
    --------
    >>> format_sets([[True, False, True], [False, False, False]], ["GALAXY", "QSO", "STAR"])
    array(['GALAXY|STAR', ''], dtype='<U15')
    """
    membership = np.asarray(membership, dtype=bool)
    classes = [str(c) for c in classes]
    n_classes = len(classes)
    if membership.ndim != 2 or membership.shape[1] != n_classes:
        raise InvalidInputError(f"membership must have shape (n, {n_classes}), "
                                f"got {membership.shape}")
    codes = membership.astype(np.int64) @ (1 << np.arange(n_classes, dtype=np.int64))
    width = max(1, len("|".join(classes)))
    lookup = np.array(["|".join(c for k, c in enumerate(classes) if code >> k & 1)
                       for code in range(1 << n_classes)], dtype=f"<U{width}")
    return lookup[codes]


def empty_set_flags(sizes, levels):
    """``pred_flag`` reasons of rows whose prediction set is empty at some level.

    An empty set means that no class is probable enough to enter the set at
    that level (with the ``'lac'`` score, no class has a probability of at
    least one minus the level's threshold); ``pred_class`` is then the
    model's best guess, right less often than for rows with a one-class set.

    Parameters
    ----------
    sizes : array-like of int, shape (n, n_levels)
        Set size of each row at each level.
    levels : sequence of float
        The levels, in the order of the columns of ``sizes``.

    Returns
    -------
    flags : `numpy.ndarray` of object (str), shape (n,)
        ``'empty_set:<L>,...'`` listing the levels (`level_suffix`) at which
        the row's set is empty; ``''`` for rows without an empty set.

    Examples
    --------
    >>> empty_set_flags([[0, 1], [0, 0], [1, 2]], [0.68, 0.9]).tolist()
    ['empty_set:68', 'empty_set:68,90', '']
    """
    sizes = np.asarray(sizes)
    levels = list(levels)
    if sizes.ndim != 2 or sizes.shape[1] != len(levels):
        raise InvalidInputError(f"sizes must have shape (n, {len(levels)}), got {sizes.shape}")
    flags = np.full(len(sizes), "", dtype=object)
    # One text per pattern of empty levels, as format_sets does for classes.
    codes = (sizes == 0).astype(np.int64) @ (1 << np.arange(len(levels), dtype=np.int64))
    for code in np.unique(codes[codes > 0]):
        flags[codes == code] = EMPTY_SET_FLAG + ":" + ",".join(
            level_suffix(c) for k, c in enumerate(levels) if code >> k & 1)
    return flags


def set_membership(table, classes=None, level=None):
    """Boolean (n, n_classes) membership of the prediction sets of a classified table.

    Works on tables read back from FITS or ECSV, whose readers mask empty
    strings: a masked ``pred_set`` with a ``pred_set_size`` of 0 is an empty
    set; rows whose size is masked (unclassified) are all False.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Output of `sourceclf.classify`.
    classes : sequence of str, optional
        Class order; default: the ``prob_<class>`` columns' classes, upper case.
    level : float, optional
        Which level, when the table has several.

    Returns
    -------
    membership : `numpy.ndarray` of bool
    """
    if classes is None:
        classes = probability_classes(table)
    set_col, size_col = set_column_names(table, level)
    strings = np.ma.getdata(table[set_col])
    text = decode_strings(strings)
    text = np.where(np.ma.getmaskarray(table[set_col]), "", text)
    padded = np.char.add(np.char.add("|", text.astype(str)), "|")
    out = np.column_stack([np.char.find(padded, f"|{c}|") >= 0 for c in classes]) \
        if len(text) else np.zeros((0, len(classes)), dtype=bool)
    size = table[size_col]
    out[np.ma.getmaskarray(size)] = False
    return out


def probability_classes(table):
    """The classes of a classified table's ``prob_<class>`` columns, upper case, in column
    order (``prob_<class>_std`` of Bayesian models left out).

    Examples
    --------
    >>> from astropy.table import Table
    >>> probability_classes(Table(names=["ra", "prob_galaxy", "prob_star", "prob_star_std"]))
    ['GALAXY', 'STAR']
    """
    return [c[5:].upper() for c in table.colnames
            if c.startswith("prob_") and not c.endswith("_std")]
