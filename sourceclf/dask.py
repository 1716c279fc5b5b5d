"""Classify Dask DataFrames and LSDB catalogs, partition by partition.

`classify_dask` maps `sourceclf.classify` over the partitions of a
`dask.dataframe.DataFrame` or an `lsdb.Catalog`.  Each partition (a pandas
DataFrame) is turned into an astropy Table, classified, and the new columns are
appended to the partition.  Each worker process loads the model once and keeps
it (`get_classifier`), and torch in a worker uses as many threads as the worker
has, so that several workers on one machine do not oversubscribe its cores.

Output columns and their pandas dtypes (rows that could not be classified are
missing values, where `sourceclf.classify` would mask them):

====================  ============  ====================================
column                dtype         unclassified rows
====================  ============  ====================================
``pred_class``        ``string``    ``<NA>``
``prob_<class>``      ``float32``   ``NaN``
``pred_set*``         ``string``    ``<NA>`` (``''`` is an empty set)
``pred_set_size*``    ``Int16``     ``<NA>``
``pred_flag``         ``string``    never missing; ``''`` when fine
====================  ============  ====================================

(``string`` is `pandas.StringDtype` with ``pd.NA`` as missing value, stored
with pyarrow when it is installed.)  The model name, version and confidence,
which `classify` writes into the table's ``meta``, are in the ``attrs`` of each
classified partition (and of the computed frame, where pandas keeps them).

A partition raises no shift alarm (one partition's sets are no catalog's);
`shift_alarm` tests the whole classified catalog once.
"""

import json
import threading
import warnings
from pathlib import Path

import numpy as np

from .classification import choose_model, classify
from .columns import map_columns
from .conformal.set_columns import set_columns
from .conformal.shift import check_set_shift
from .exceptions import InvalidInputError, ShiftAlarmWarning
from .model_choice import CHOICE_SAMPLE_ROWS
from .models.base import SourceClassifier
from .models.registry import load_model
from .streaming.summary import StreamSummary, group_set_sizes
from .utils._validation import check_confidence_levels

__all__ = ["classify_dask", "classify_partition", "get_classifier", "output_meta",
           "shift_alarm"]

_MODELS = {}
_LOCK = threading.Lock()


#: ``meta`` keys of `sourceclf.classify` that describe one partition only.
PER_PARTITION_META = ("CLFNOOD", "CLFSHIFT", "CLFSHREF", "CLFSHFLG")


def _model_key(model):
    if isinstance(model, SourceClassifier):
        return ("object", model.name, model.card.version, model.card.weights_sha256,
                id(model) if not model.card.weights_sha256 else None)
    if isinstance(model, Path):
        return ("path", str(model.resolve()))
    return ("name", str(model))


def get_classifier(model):
    """Load a classifier once per process and keep it.

    The first call in a process (a Dask worker, say) loads the model; later
    calls with the same name, path or classifier return the same object.  In a
    `distributed` worker, torch is also limited to the worker's number of
    threads.

    Parameters
    ----------
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        A shipped model's name, a model directory or a classifier.

    Returns
    -------
    classifier : `~sourceclf.models.SourceClassifier`
    """
    key = _model_key(model)
    with _LOCK:
        clf = _MODELS.get(key)
        if clf is None:
            clf = load_model(model)
            _limit_torch_threads()
            _MODELS[key] = clf
    return clf


def _limit_torch_threads():
    try:
        from distributed import get_worker

        nthreads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return
    import torch

    if torch.get_num_threads() > nthreads:
        torch.set_num_threads(max(1, nthreads))


def _string_dtype():
    import pandas as pd

    try:
        import pyarrow  # noqa: F401

        return pd.StringDtype("pyarrow")
    except ImportError:  # pragma: no cover
        return pd.StringDtype("python")


def _flat_columns(df):
    """Columns that become plain astropy columns (not nested or list-valued)."""
    import pandas as pd

    out = []
    for name, dtype in df.dtypes.items():
        if isinstance(dtype, pd.ArrowDtype):
            import pyarrow as pa

            if pa.types.is_nested(dtype.pyarrow_dtype):
                continue
        elif type(dtype).__module__.startswith("nested_pandas"):
            continue
        out.append(name)
    return out


def _to_table(df):
    from astropy.table import Table

    flat = df[_flat_columns(df)]
    return Table.from_pandas(flat, index=False)


def _to_pandas_columns(out, new_names, index):
    """The new columns of a classified Table as pandas Series with fixed dtypes."""
    import pandas as pd

    strings = _string_dtype()
    columns = {}
    for name in new_names:
        col = out[name]
        mask = np.ma.getmaskarray(col)
        values = np.ma.getdata(col)
        kind = values.dtype.kind
        if kind in "SU":
            if kind == "S":
                values = np.char.decode(values, "utf-8")
            obj = values.astype(object)
            obj[mask] = None
            series = pd.Series(pd.array(obj, dtype=strings), index=index)
        elif kind == "f":
            data = values.astype(np.float32)
            data[mask] = np.nan
            series = pd.Series(data, index=index)
        elif kind in "iu":
            bits = max(16, values.dtype.itemsize * 8)
            data = np.where(mask, 0, values).astype(f"{'u' if kind == 'u' else ''}int{bits}")
            series = pd.Series(pd.arrays.IntegerArray(data, mask.copy()), index=index)
        elif kind == "b":
            series = pd.Series(pd.arrays.BooleanArray(values.astype(bool), mask.copy()),
                               index=index)
        else:  # pragma: no cover - classify adds no other kinds
            series = pd.Series(values, index=index)
        columns[name] = series
    return columns


def classify_partition(df, model="auto", confidence=0.9, columns=None, **classify_kwargs):
    """Classify one pandas partition; return it with the new columns appended.

    Parameters
    ----------
    df : `pandas.DataFrame`
        A partition (SDSS-style column names, plain floats in mag / arcsec).
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        Loaded once per process with `get_classifier`.
    confidence : float, sequence of float or None
        Confidence level(s) of the prediction sets.
    columns : dict, optional
        The partition's own names for sourceclf's inputs (``{'u': 'umag'}``),
        as for `sourceclf.classify`.
    **classify_kwargs
        Passed on to `sourceclf.classify` (``score``, ``by``, ``device``...).

    Returns
    -------
    classified : `pandas.DataFrame`
        ``df`` (same index and class) with the new columns; see the module
        documentation for their dtypes.
    """
    table = _to_table(df)
    if isinstance(model, str) and model == "auto":
        model = choose_model(map_columns(table, columns))
    clf = get_classifier(model)
    with warnings.catch_warnings():
        # One partition's prediction sets are no catalog's: no shift alarm per partition.
        warnings.simplefilter("ignore", ShiftAlarmWarning)
        out = classify(table, model=clf, confidence=confidence, progress=False,
                       columns=columns, **classify_kwargs)
    new = [n for n in out.colnames
           if n not in table.colnames or n.startswith(("pred_", "prob_"))]
    columns = _to_pandas_columns(out, new, df.index)
    result = df.drop(columns=[n for n in new if n in df.columns])
    for name, series in columns.items():
        result[name] = series
    # Per-partition counts, alarms and their references (CLFNOOD, CLFSHIFT, CLFSHREF, CLFSHFLG:
    # weighted to each partition's magnitudes) differ between partitions,
    # and pandas keeps attrs only where all partitions agree: leave them out.
    result.attrs.update({k: v for k, v in out.meta.items()
                         if k.startswith("CLF") and k not in PER_PARTITION_META})
    return result


def _empty_meta(data):
    """The empty pandas frame describing a Dask DataFrame's or LSDB catalog's partitions."""
    import pandas as pd
    from dask.dataframe.utils import make_meta

    for attr in ("_meta", "meta"):  # dask DataFrame, LSDB catalog
        meta = getattr(data, attr, None)
        if isinstance(meta, pd.DataFrame):
            return meta
    return make_meta(data)


def output_meta(meta, model="auto", confidence=0.9, **classify_kwargs):
    """The empty frame describing `classify_partition`'s output for input ``meta``.

    It is computed by classifying two rows of made-up values with the same
    model and options (so that the columns are exactly those the partitions
    get) and keeping no row.

    Parameters
    ----------
    meta : `pandas.DataFrame`
        Empty (or not) frame with the input's columns and dtypes.
    model, confidence, **classify_kwargs
        As for `classify_partition`.

    Returns
    -------
    meta : `pandas.DataFrame`
        With no rows.
    """
    from dask.dataframe.utils import meta_nonempty

    sample = meta_nonempty(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = classify_partition(sample, model=model, confidence=confidence,
                                 **classify_kwargs)
    return out.iloc[:0]


def _first_rows(data, meta):
    """Up to `~sourceclf.model_choice.CHOICE_SAMPLE_ROWS` rows of the first partition."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "insufficient elements for head"
            rows = data.head(CHOICE_SAMPLE_ROWS)
    except (AttributeError, TypeError, ValueError, NotImplementedError):
        return meta
    return rows if len(rows) else meta


def classify_dask(data, model="auto", confidence=0.9, columns=None, **classify_kwargs):
    """Classify every row of a Dask DataFrame or an LSDB catalog, lazily.

    Parameters
    ----------
    data : `dask.dataframe.DataFrame` or `lsdb.Catalog`
        The catalog, with SDSS-style photometric columns (plain floats taken
        as magnitudes / arcsec).
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        A shipped model's name, a model directory (it must be readable by the
        workers) or a classifier object (sent to the workers with the tasks;
        a name or path is cheaper).  ``'auto'`` chooses once, before
        anything else runs, from ``data``'s columns and the rows of its first
        partition (see `sourceclf.model_choice`).
    confidence : float, sequence of float or None
        Confidence level(s) of the prediction sets.
    columns : dict, optional
        The catalog's own names for sourceclf's inputs (``{'u': 'umag'}``),
        as for `sourceclf.classify`; the new columns are added beside the
        catalog's own.
    **classify_kwargs
        Passed on to `sourceclf.classify` (``score``, ``by``, ``device``,
        ``batch_size``, ``random_state``).  Image inputs are not supported
        here.

    Returns
    -------
    classified : `dask.dataframe.DataFrame` or `lsdb.Catalog`
        ``data`` with the new columns (same type, partitions and index);
        nothing is computed until you ask (``.compute()``,
        ``.to_parquet()``, ``.to_hats()``...).

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> from sourceclf.dask import classify_dask
    >>> from sourceclf.demo import demo_catalog
    >>> df = demo_catalog(30).to_pandas()
    >>> ddf = dd.from_pandas(df, npartitions=3)
    >>> out = classify_dask(ddf, model="ugriz-sgq", confidence=None)
    >>> out["pred_class"].dtype
    <StringDtype(na_value=<NA>)>
    >>> len(out.compute())
    30
    """
    for key in ("cutouts", "images"):
        if classify_kwargs.get(key) is not None:
            raise InvalidInputError(f"classify_dask does not take {key}; classify "
                                    "cutouts with sourceclf.classify")
    is_lsdb = type(data).__module__.startswith("lsdb")
    meta = _empty_meta(data)
    if isinstance(model, str) and model == "auto":
        # The choice weighs how many rows each model's domain holds: look at the
        # first partition's rows (once), not just the columns.
        model = choose_model(map_columns(_to_table(_first_rows(data, meta)), columns))
    out_meta = output_meta(meta, model=model, confidence=confidence, columns=columns,
                           **classify_kwargs)
    kwargs = dict(model=model, confidence=confidence, columns=columns, **classify_kwargs)
    if is_lsdb:
        return data.map_partitions(classify_partition, meta=out_meta, **kwargs)
    if not hasattr(data, "map_partitions"):
        raise InvalidInputError(f"classify_dask takes a Dask DataFrame or an LSDB catalog, "
                                f"got {type(data).__name__}")
    return data.map_partitions(classify_partition, meta=out_meta, **kwargs)


def _shift_counts(df, model, levels, columns, score, by):
    """One classified partition's counts for the shift alarm, as JSON text: the
    references `sourceclf.conformal.check_set_shift` gives its rows and their set sizes
    per group (`sourceclf.streaming.summary.group_set_sizes`)."""
    clf = get_classifier(model)
    table = _to_table(df)
    names = [size for _, size in set_columns(levels)]
    missing = [name for name in names + ["pred_flag"] if name not in table.colnames]
    if missing:
        raise InvalidInputError(f"shift_alarm needs the columns classify_dask adds at "
                                f"confidence {levels}; missing: {', '.join(missing)}")
    rows = np.flatnonzero(~np.ma.getmaskarray(table[names[0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShiftAlarmWarning)  # one partition's: not the catalog's
        check_set_shift(table, clf, rows, levels, score=score, by=by,
                        source=map_columns(table, columns))
    return json.dumps({"meta": {k: table.meta[k] for k in ("CLFSHREF", "CLFSHFLG")
                                if k in table.meta},
                       "sizes": group_set_sizes(table, flags=clf.flag_calibrations or {})})


def shift_alarm(classified, model, confidence=0.9, *, columns=None, score=None, by=None):
    """The shift alarm over a whole classified Dask DataFrame or LSDB catalog.

    `classify_dask` leaves the alarm out of each partition (one partition's
    sets are no catalog's).  This computes, partition by partition, what
    `sourceclf.classify` compares (each row's set size and the set-size
    rates of the rows its set was calibrated on, weighted to the rows'
    magnitudes: `sourceclf.conformal.check_set_shift`), adds them up and
    tests the whole catalog once, as a streamed ``sourceclf-classify`` run
    does.  It reads the classified columns and computes ``classified``
    partition by partition: a lazy `classify_dask` result is classified
    again here, so persist it first, or pass what you wrote.

    Parameters
    ----------
    classified : `dask.dataframe.DataFrame` or `lsdb.Catalog`
        `classify_dask`'s output, or the catalog it wrote, read back.
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        The model `classify_dask` used (not ``'auto'``: pass the model it
        chose, ``attrs['CLFMODEL']`` of a computed partition).
    confidence : float or sequence of float
        The levels given to `classify_dask`.
    columns : dict, optional
        As given to `classify_dask` (where the magnitudes are read).
    score, by : str, optional
        As given to `classify_dask`.

    Returns
    -------
    message : str or None
        The alarm (also given as a `~sourceclf.exceptions.ShiftAlarmWarning`),
        or None when the catalog's sets are like those of the rows they were
        calibrated on.

    Raises
    ------
    InvalidInputError
        If ``model`` is ``'auto'``, no level is given, or the partitions lack
        the set-size columns of those levels.
    """
    import dask

    if isinstance(model, str) and model == "auto":
        raise InvalidInputError("shift_alarm needs the model classify_dask used, not 'auto' "
                                "(a computed partition's attrs['CLFMODEL'] names it)")
    levels = check_confidence_levels(confidence, required=True)
    clf = get_classifier(model)
    if not hasattr(classified, "to_delayed"):
        raise InvalidInputError(f"shift_alarm takes a Dask DataFrame or an LSDB catalog, got "
                                f"{type(classified).__name__}")
    parts = [dask.delayed(_shift_counts)(part, model, levels, columns, score, by)
             for part in classified.to_delayed()]
    summary = StreamSummary()
    summary.meta = {"CLFMODEL": clf.name,
                    "CLFCONF": levels[0] if len(levels) == 1 else
                    ",".join(f"{c:g}" for c in levels)}
    for text in dask.compute(*parts):
        counts = json.loads(text)
        summary.add_shift_counts(counts["meta"], counts["sizes"])
    message = summary.shift_alarm()
    if message:
        warnings.warn(message, ShiftAlarmWarning, stacklevel=2)
    return message
