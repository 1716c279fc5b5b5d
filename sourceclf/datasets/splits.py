"""The selections and train / validation / test splits of MargNet's experiments."""

import numpy as np
from astropy.table import Table

from ..bands import BANDS
from ..columns import ColumnFinder, decode_strings
from ..exceptions import InvalidInputError, MissingColumnsError

__all__ = ["compact_mask", "faint_mask", "split_experiment", "check_experiment"]

_SPLITS = ("train", "validation", "test")
# test_size of the two train_test_split calls in the authors' notebooks.
_SPLIT_SIZES = {1: (0.125, 0.1428), 2: (0.1, 0.1111111)}


def _check_choice(value, name, choices):
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                                f"got {value!r}")


def check_experiment(experiment, task, split=None):
    """Check the names of a MargNet experiment, task and split.

    Parameters
    ----------
    experiment : {1, 2, 3}
        The experiment.
    task : {'sgq', 'sg'}
        Star/galaxy/quasar or star/galaxy.
    split : {'train', 'validation', 'test'}, optional
        A part of the experiment's rows; None for all of them.

    Raises
    ------
    InvalidInputError
        If one of them is not a known name.
    """
    _check_choice(experiment, "experiment", (1, 2, 3))
    _check_choice(task, "task", ("sg", "sgq"))
    if split is not None:
        _check_choice(split, "split", _SPLITS)


def compact_mask(table, *, threshold=0.5):
    """True for compact rows: mean over ugriz of deVRad / psffwhm below ``threshold``.

    Rows with a missing or non-positive PSF width, or a missing radius, are
    False.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With ``deVRad_<b>`` and ``psffwhm_<b>`` (arcsec) for ugriz.
    threshold : float
        MargNet's cut is 0.5.

    Returns
    -------
    mask : `numpy.ndarray` of bool
    """
    finder = ColumnFinder(table)
    ratios, missing = [], []
    for b in BANDS:
        dev = finder.values(f"deVRad_{b}", unit="arcsec")
        psf = finder.values(f"psffwhm_{b}", unit="arcsec")
        if dev is None:
            missing.append(f"deVRad_{b}")
        if psf is None:
            missing.append(f"psffwhm_{b}")
        if dev is not None and psf is not None:
            psf = np.where(psf > 0, psf, np.nan)
            ratios.append(dev / psf)
    if missing:
        raise MissingColumnsError(f"compact_mask needs columns {', '.join(missing)}")
    mean = np.mean(ratios, axis=0)
    return np.asarray(np.nan_to_num(mean, nan=np.inf) < threshold)


def faint_mask(table, *, r_limit=20.0):
    """True for rows fainter than ``r_limit`` in observed r (model magnitude).

    Observed r is ``dered_r + extinction_r`` when the table has both, else a
    ``modelMag_r`` or ``r`` column.  Missing values give False.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With ``dered_r`` and ``extinction_r``, or an observed r column.
    r_limit : float
        MargNet's faint set is r > 20.

    Returns
    -------
    mask : `numpy.ndarray` of bool
    """
    finder = ColumnFinder(table)
    dered, ext = finder.values("dered_r"), finder.values("extinction_r")
    if dered is not None and ext is not None:
        r = dered + ext
    else:
        r = finder.values("modelMag_r", "r")
    if r is None:
        raise MissingColumnsError("faint_mask needs dered_r and extinction_r, or modelMag_r "
                                  "or r")
    return np.asarray(np.nan_to_num(r, nan=-np.inf) > r_limit)


def _classes(table, label_column):
    finder = ColumnFinder(table)
    name = finder.find(label_column)
    if name is None:
        raise MissingColumnsError(f"table has no label column '{label_column}'")
    return np.char.upper(decode_strings(np.ma.filled(np.ma.asarray(table[name]), "")))


def _two_way(rows, experiment, random_state):
    from sklearn.model_selection import train_test_split

    test_size, val_size = _SPLIT_SIZES[experiment]
    if len(rows) < 3:
        raise InvalidInputError(f"{len(rows)} rows are too few to split into train, "
                                "validation and test")
    train, test = train_test_split(rows, test_size=test_size, random_state=random_state)
    train, val = train_test_split(train, test_size=val_size, random_state=random_state)
    return {"train": train, "validation": val, "test": test}


def split_experiment(table, experiment=1, task="sgq", random_state=42, faint_table=None,
                     label_column="class", *, apply_cuts=False, as_tables=False):
    """Train / validation / test rows of MargNet's experiments.

    Reproduces the authors' notebooks exactly: with ``task='sg'`` the QSO
    rows are dropped first (order kept), then

    * experiment 1 (compact objects): ``train_test_split(test_size=0.125,
      random_state=42)``, then the training part again with
      ``test_size=0.1428``, i.e. 75 / 12.5 / 12.5 %;
    * experiment 2 (faint compact objects): ``test_size=0.1`` then
      ``0.1111111``, i.e. 80 / 10 / 10 %;
    * experiment 3: train and validation are experiment 1's split of
      ``table`` (the compact set) and the test set is all of ``faint_table``.
      The published faint set shares about 27% of its objects with
      experiment 1's training set, so it is not a clean test set; remove
      the shared ``objid`` yourself for an honest one.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The rows to split, in the published order (experiment 3: the compact
        training set).
    experiment : {1, 2, 3}
        Which experiment's split.
    task : {'sgq', 'sg'}
        Star/galaxy/quasar, or star/galaxy (QSO rows dropped).
    random_state : int
        The published splits use 42.
    faint_table : `~astropy.table.Table`, optional
        Experiment 3's test set.
    label_column : str
        Column of class names (matched case-insensitively).
    apply_cuts : bool
        Keep only rows passing the experiment's selection before splitting
        (`compact_mask`; and `faint_mask` for experiment 2 and for
        ``faint_table``).  Off by default: the published sets are already
        cut, and recomputing a cut can drop borderline rows and change the
        split.
    as_tables : bool
        Return Tables instead of index arrays.

    Returns
    -------
    splits : dict
        ``'train'``, ``'validation'``, ``'test'``: integer row indices into
        ``table`` (for experiment 3's ``'test'``: into ``faint_table``), in
        the order ``train_test_split`` returns them; or the Tables of those
        rows with ``as_tables``.

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"class": ["GALAXY", "STAR", "QSO"] * 8})
    >>> parts = split_experiment(t, experiment=1, task="sgq")
    >>> [len(parts[k]) for k in ("train", "validation", "test")]
    [18, 3, 3]
    """
    check_experiment(experiment, task)
    if not isinstance(table, Table):
        raise InvalidInputError(f"expected an astropy Table, got {type(table).__name__}")

    def selected(tab, faint):
        rows = np.arange(len(tab))
        keep = np.ones(len(tab), dtype=bool)
        if task == "sg":
            keep &= _classes(tab, label_column) != "QSO"
        if apply_cuts:
            keep &= compact_mask(tab)
            if faint:
                keep &= faint_mask(tab)
        return rows[keep]

    if experiment in (1, 2):
        if faint_table is not None:
            raise InvalidInputError(f"faint_table is for experiment 3, not {experiment}")
        parts = _two_way(selected(table, experiment == 2), experiment, random_state)
        sources = dict.fromkeys(_SPLITS, table)
    else:
        if faint_table is None:
            raise InvalidInputError("experiment 3 needs faint_table, the faint test set")
        if not isinstance(faint_table, Table):
            raise InvalidInputError(f"faint_table must be an astropy Table, got "
                                    f"{type(faint_table).__name__}")
        parts = _two_way(selected(table, False), 1, random_state)
        parts["test"] = selected(faint_table, True)
        sources = {"train": table, "validation": table, "test": faint_table}
    parts = {k: np.asarray(parts[k], dtype=np.intp) for k in _SPLITS}
    if as_tables:
        return {k: sources[k][parts[k]] for k in _SPLITS}
    return parts
