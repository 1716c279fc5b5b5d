"""MargNet's published dataset arrays (Zenodo record 6659435), read lazily."""

import glob
import os
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Column, Table

from ..bands import BANDS, COLOURS, MARGNET_FEATURES
from ..columns import ColumnFinder, decode_strings
from ..exceptions import InvalidInputError, MissingColumnsError
from .splits import check_experiment, split_experiment

__all__ = ["MARGNET_FEATURES", "MARGNET_CLASSES", "column_unit", "load_margnet", "LazyStamps"]

#: Class names in the order of MargNet's one-hot labels (``pandas.factorize``
#: with ``sort=True``, i.e. alphabetical); the star/galaxy task drops QSO.
MARGNET_CLASSES = ("GALAXY", "QSO", "STAR")


def column_unit(name):
    """Unit of a column of MargNet's tables.

    Parameters
    ----------
    name : str
        Column name: ``ra``, ``dec``, or one of `MARGNET_FEATURES`.

    Returns
    -------
    unit : `~astropy.units.Unit` or None
        deg, arcsec (``deVRad_<b>``, ``psffwhm_<b>``) or mag; None for
        other columns.
    """
    if name in ("ra", "dec"):
        return u.deg
    kind = name.split("_")[0]
    if kind in ("deVRad", "psffwhm"):
        return u.arcsec
    if kind in ("dered", "extinction") or name in COLOURS:
        return u.mag
    return None


class LazyStamps:
    """Some rows of a memory-mapped stamp array, read only when indexed.

    Behaves like a read-only (n_rows, 5, H, W) array for ``len``, ``shape``,
    ``dtype``, indexing and `numpy.asarray`; indexing reads just the rows
    asked for from disk.

    Parameters
    ----------
    base : `numpy.ndarray`
        The full (N, 5, H, W) array (usually a memory-mapped view).
    rows : array-like of int
        Rows of ``base``, in order.
    """

    def __init__(self, base, rows):
        self.base = base
        self.rows = np.asarray(rows, dtype=np.intp)

    @property
    def shape(self):
        return (len(self.rows),) + tuple(self.base.shape[1:])

    @property
    def dtype(self):
        return self.base.dtype

    @property
    def ndim(self):
        return self.base.ndim

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        return np.asarray(self.base[(self.rows[first],) + tuple(rest)])

    def __iter__(self):
        for row in self.rows:
            yield np.asarray(self.base[row])

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.base[self.rows])
        return out if dtype is None else out.astype(dtype)

    def __repr__(self):
        return f"<LazyStamps shape={self.shape} dtype={self.dtype}>"


_STEMS = {"images": "X", "features": "dnnx", "labels": "y", "objids": "objlist"}
_KINDS = tuple(_STEMS)


def _candidate_names(kind, experiment, task, split):
    stem, n, t = _STEMS[kind], experiment, task
    if split is not None:
        suffixes = [f"_{t}_exp{n}_{split}", f"_exp{n}_{t}_{split}", f"_exp{n}_{split}",
                    f"_{t}_{split}", f"_{split}"]
        return [f"{stem}{s}.npy" for s in suffixes]
    suffixes = [f"_{t}_exp{n}", f"_exp{n}_{t}", f"_v{n}", f"_exp{n}", f"_{t}", ""]
    names = [f"{stem}{s}.npy" for s in suffixes] + [f"paper{stem}.npy"]
    if kind == "features":
        names += ["paperDF.csv", f"DF_exp{n}.csv", f"DF_v{n}.csv"]
    return names


def _find_file(directory, kind, pattern):
    path = Path(pattern)
    if not path.is_absolute():
        path = directory / path
    matches = sorted(glob.glob(str(path)))
    if len(matches) > 1:
        raise InvalidInputError(f"pattern '{pattern}' for {kind} matches {len(matches)} files "
                                f"in {directory}: {', '.join(Path(m).name for m in matches)}")
    if not matches:
        raise InvalidInputError(f"no {kind} file matches '{pattern}' in {directory}")
    return Path(matches[0])


def _resolve_files(directory, experiment, task, split, files):
    files = dict(files or {})
    unknown = sorted(set(files) - set(_KINDS))
    if unknown:
        raise InvalidInputError(f"files keys must be among {', '.join(_KINDS)}, got "
                                f"{', '.join(unknown)}")
    found = {kind: _find_file(directory, kind, files[kind]) for kind in files}

    def search(kind, split_names):
        names = _candidate_names(kind, experiment, task, split_names)
        hits = [n for n in names if (directory / n).is_file()]
        return (directory / hits[0] if hits else None), names

    if "images" not in found and split is not None:
        # Pre-split arrays (X_train.npy...) are used as they are when present.
        hit, _ = search("images", split)
        if hit is not None:
            found["images"] = hit
    presplit = split is not None and "images" in found and \
        found["images"].stem.endswith(f"_{split}")
    for kind in _KINDS:
        if kind in found:
            continue
        hit, names = search(kind, split if presplit else None)
        if hit is None and kind != "labels":  # labels may come from a table's 'class'
            raise InvalidInputError(f"no {kind} file in {directory}; looked for "
                                    f"{', '.join(names)} (pass files={{'{kind}': NAME}})")
        found[kind] = hit
    return found, presplit


def _load_npy(path, kind, *, mmap, allow_pickle):
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path} ({kind}): {exc}") from None
    if magic != b"\x93NUMPY":
        raise InvalidInputError(f"cannot read {path.name} ({kind}): not a .npy file")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=allow_pickle)
    except ValueError as exc:
        msg = str(exc)
        if "allow_pickle" in msg or "Python objects" in msg:
            if not allow_pickle:
                raise InvalidInputError(
                    f"{path.name} ({kind}) holds Python objects; numpy would unpickle them, "
                    "which can run code: pass allow_pickle=True only for files you trust"
                ) from None
            return np.load(path, allow_pickle=True)
        raise InvalidInputError(f"cannot read {path.name} ({kind}): {msg}") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path} ({kind}): {exc}") from None


def _default_class_names(k):
    if k == 3:
        return MARGNET_CLASSES
    if k == 2:
        return ("GALAXY", "STAR")
    raise InvalidInputError(f"labels have {k} classes; pass class_names to name them")


def _labels_to_classes(y, path, class_names):
    name = path.name if path is not None else "labels"
    arr = np.asarray(y)
    if arr.dtype.kind in "USO":
        if arr.ndim != 1:
            raise InvalidInputError(f"{name}: string labels must be 1-D, got shape {arr.shape}")
        return np.char.upper(decode_strings(arr)), None
    if arr.dtype.kind not in "iufb":
        raise InvalidInputError(f"{name}: labels must be strings, integers or one-hot, "
                                f"got dtype {arr.dtype}")
    if arr.ndim == 2:
        k = arr.shape[1]
        names = tuple(class_names) if class_names is not None else _default_class_names(k)
        if len(names) != k:
            raise InvalidInputError(f"{name}: one-hot labels have {k} columns but "
                                    f"class_names has {len(names)}")
        onehot = np.isin(arr, (0, 1)).all(axis=1) & (arr.sum(axis=1) == 1)
        if not onehot.all():
            raise InvalidInputError(f"{name}: row {int(np.flatnonzero(~onehot)[0])} is not "
                                    "one-hot")
        return np.asarray(names)[np.argmax(arr, axis=1)], names
    if arr.ndim != 1:
        raise InvalidInputError(f"{name}: labels must be (N,) or one-hot (N, K), "
                                f"got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise InvalidInputError(f"{name}: integer labels expected, got fractions")
    ints = arr.astype(np.int64)
    if ints.size and ints.min() < 0:
        raise InvalidInputError(f"{name}: labels must not be negative")
    k = int(ints.max()) + 1 if ints.size else 0
    names = tuple(class_names) if class_names is not None else \
        _default_class_names(max(k, 2))
    if k > len(names):
        raise InvalidInputError(f"{name}: label {k - 1} but only {len(names)} class_names")
    return np.asarray(names)[ints], names


def _read_feature_table(path, objids):
    """Features (and classes) of ``objids`` from a table keyed by its first column."""
    fmt = "ascii.csv" if path.suffix.lower() == ".csv" else None
    try:
        tab = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as exc:  # noqa: BLE001 - any reader error is a bad file
        raise InvalidInputError(f"cannot read {path.name} (features): {exc}") from None
    finder = ColumnFinder(tab)
    key = finder.find("objid", "objID") or tab.colnames[0]
    missing = [f for f in MARGNET_FEATURES if finder.find(f) is None]
    if missing:
        raise MissingColumnsError(f"{path.name} lacks feature columns {', '.join(missing)}")
    ids = np.asarray(tab[key])
    if ids.dtype.kind not in "iu":
        raise InvalidInputError(f"{path.name}: key column '{key}' must hold integer objids")
    ids = ids.astype(np.int64)
    order = np.argsort(ids, kind="stable")
    pos = np.searchsorted(ids[order], objids)
    pos = np.clip(pos, 0, len(ids) - 1)
    found = ids[order][pos] == objids if len(ids) else np.zeros(len(objids), bool)
    if not found.all():
        raise InvalidInputError(f"{path.name} lacks {int((~found).sum())} of the objids, "
                                f"e.g. {int(objids[~found][0])}")
    rows = order[pos]
    values = np.column_stack([np.asarray(tab[finder.find(f)], dtype=np.float64)[rows]
                              for f in MARGNET_FEATURES])
    cls = finder.find("class")
    classes = None if cls is None else np.asarray(tab[cls])[rows]
    return values, classes


def _dataset_dir(path, experiment):
    path = Path(os.fspath(path)).expanduser()
    if not path.is_dir():
        raise InvalidInputError(f"MargNet dataset directory {path} does not exist")
    nested = path / f"Experiment {experiment}" / "dataset"
    return nested if nested.is_dir() else path


def load_margnet(path, *, experiment=1, task="sgq", split=None, mmap=True, class_names=None,
                 files=None, allow_pickle=False):
    """Read MargNet's published dataset arrays.

    The published layout (Zenodo 10.5281/zenodo.6659435, ``Experiment
    N/dataset/``) holds, per experiment:

    ======== ====================== ===================== ==============================
    array    experiment 1           experiment 2          experiment 3
    ======== ====================== ===================== ==============================
    images   ``paperX.npy``         ``X_v2.npy``          ``X_{task}_exp3.npy``
    features ``paperDF.csv``        ``dnnx_v2.npy``       ``dnnx_{task}_exp3.npy``
    labels   ``papery.npy``         ``y_v2.npy``          ``y_{task}_exp3.npy``
    objids   ``paperobjlist.npy``   ``objlist_v2.npy``    ``objlist_{task}_exp3.npy``
    ======== ====================== ===================== ==============================

    Images are (N, 32, 32, 5) channels last; features (N, 24) in the order of
    `MARGNET_FEATURES`; labels class-name strings (experiments 1, 2) or
    one-hot (experiment 3); objids the SDSS objIDs of the rows.  For each
    array the first existing name of this list is used: ``{stem}_{task}_exp{N}``,
    ``{stem}_exp{N}_{task}``, ``{stem}_v{N}``, ``{stem}_exp{N}``,
    ``{stem}_{task}``, ``{stem}``, ``paper{stem}`` (``.npy``; stems ``X``,
    ``dnnx``, ``y``, ``objlist``), then for features a CSV table
    (``paperDF.csv``: objid first, then columns named as the features, and
    ``class``) read by objid.  ``files`` overrides any of them.

    Parameters
    ----------
    path : path-like
        The dataset directory, or the root holding ``Experiment N/dataset``.
    experiment : {1, 2, 3}
        Which experiment's arrays to read.
    task : {'sgq', 'sg'}
        Star/galaxy/quasar or star/galaxy.  With ``'sg'`` on a file that also
        holds quasars (experiments 1 and 2), the QSO rows are dropped, keeping
        the order, as the authors' notebooks did.
    split : {'train', 'validation', 'test'}, optional
        Return only these rows: read from pre-split files when present
        (``X_{split}.npy``, ``X_exp{N}_{split}.npy``...), otherwise the rows
        `split_experiment` gives (experiment 3 has only 'test': its models are
        trained on experiment 1).
    mmap : bool
        Memory-map the images (``np.load(mmap_mode='r')``) instead of reading
        them: experiment 1's 240,000 stamps are 4.9 GB in float32.
    class_names : sequence of str, optional
        Names of integer or one-hot label columns, in order.  By default the
        classes present, sorted (``('GALAXY', 'QSO', 'STAR')`` for 3 classes,
        ``('GALAXY', 'STAR')`` for 2), which is what ``pandas.factorize(...,
        sort=True)`` gave in the notebooks.
    files : dict, optional
        File name or glob pattern (relative to the dataset directory, or
        absolute) per array: keys ``'images'``, ``'features'``, ``'labels'``,
        ``'objids'``.
    allow_pickle : bool
        Let numpy unpickle object arrays (the published string labels are
        saved that way).  Only for files you trust: unpickling can run code.

    Returns
    -------
    table : `~astropy.table.Table`
        Columns ``objid``, ``class`` and the 24 features; ``meta`` records
        the experiment, task, split, class names and files read.
    cutouts : `numpy.ndarray` or `LazyStamps`
        Stamps channels first, (N, 5, 32, 32), in the table's row order.
        With every row this is a view of the memory-mapped file
        (``np.moveaxis``: no copy, nothing read until used); with a subset
        of rows (``split``, or ``task='sg'`` dropping quasars) a `LazyStamps`
        that reads the rows it is indexed with.

    Raises
    ------
    InvalidInputError
        If a file is missing, unreadable, ambiguous, or its shape does not fit.
    """
    check_experiment(experiment, task, split)
    directory = _dataset_dir(path, experiment)
    found, presplit = _resolve_files(directory, experiment, task, split, files)

    objids = np.asarray(_load_npy(found["objids"], "objids", mmap=False,
                                  allow_pickle=allow_pickle))
    if objids.ndim != 1:
        raise InvalidInputError(f"{found['objids'].name}: objids must be 1-D, "
                                f"got shape {objids.shape}")
    if objids.dtype.kind == "O":
        objids = np.array([int(o) for o in objids])
    if objids.dtype.kind not in "iu":
        raise InvalidInputError(f"{found['objids'].name}: objids must be integers, "
                                f"got dtype {objids.dtype}")
    objids = objids.astype(np.int64)
    n = len(objids)

    images = _load_npy(found["images"], "images", mmap=mmap, allow_pickle=False)
    name = found["images"].name
    if images.ndim != 4 or len(BANDS) not in (images.shape[1], images.shape[3]):
        raise InvalidInputError(f"{name}: images must be (N, H, W, 5) or (N, 5, H, W), "
                                f"got shape {images.shape}")
    if images.dtype.kind not in "fiu":
        raise InvalidInputError(f"{name}: images must be numeric, got dtype {images.dtype}")
    channels_last = images.shape[3] == len(BANDS)
    stamps = np.moveaxis(images, -1, 1) if channels_last else images

    classes_from_table = None
    fpath = found["features"]
    if fpath.suffix.lower() == ".npy":
        features = np.asarray(_load_npy(fpath, "features", mmap=False, allow_pickle=False))
        if features.ndim != 2 or features.shape[1] != len(MARGNET_FEATURES):
            raise InvalidInputError(f"{fpath.name}: features must be (N, "
                                    f"{len(MARGNET_FEATURES)}), got shape {features.shape}")
    else:
        features, classes_from_table = _read_feature_table(fpath, objids)

    if found["labels"] is not None:
        y = _load_npy(found["labels"], "labels", mmap=False, allow_pickle=allow_pickle)
        classes, names = _labels_to_classes(y, found["labels"], class_names)
    elif classes_from_table is not None:
        classes, names = _labels_to_classes(classes_from_table, fpath, class_names)
    else:
        raise InvalidInputError(f"no labels file in {directory} and {fpath.name} has no "
                                "'class' column (pass files={'labels': NAME})")

    sizes = {"objids": (found["objids"].name, n), "images": (name, len(stamps)),
             "features": (fpath.name, len(features)), "labels": (
                 found["labels"].name if found["labels"] is not None else fpath.name,
                 len(classes))}
    if len({v[1] for v in sizes.values()}) != 1:
        listing = ", ".join(f"{f} has {k}" for f, k in sizes.values())
        raise InvalidInputError(f"arrays disagree on the number of rows: {listing}")

    table = Table()
    table["objid"] = objids
    table["class"] = np.asarray(classes, dtype=str)
    for j, feature in enumerate(MARGNET_FEATURES):
        table[feature] = Column(np.asarray(features[:, j], dtype=np.float64),
                                unit=column_unit(feature))
    # FITS-safe meta: short keys, scalar values.
    table.meta.update({
        "MNEXPT": experiment, "MNTASK": task, "MNSPLIT": split or "all",
        "MNCLASS": ",".join(names if names is not None else sorted(set(table["class"]))),
    })
    for kind, key in (("images", "MNIMAGES"), ("features", "MNFEATS"),
                      ("labels", "MNLABELS"), ("objids", "MNOBJIDS")):
        table.meta[key] = str(found[kind]) if found[kind] is not None else ""

    rows = np.arange(n)
    if task == "sg":
        rows = rows[table["class"] != "QSO"]
    if split is not None and not presplit:
        if experiment == 3:
            if split != "test":
                raise InvalidInputError("experiment 3 tests experiment-1 models on the faint "
                                        "set; load experiment=1 for train/validation rows")
        else:
            sub = table[rows]
            idx = split_experiment(sub, experiment=experiment, task=task)[split]
            rows = rows[idx]
    if len(rows) == n:
        return table, stamps
    return table[rows], LazyStamps(stamps, rows)
