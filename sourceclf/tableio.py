"""Catalog files: formats, reading and writing whole tables.

The format of a catalog file follows from its extension (`FORMATS`).  Reading
turns every failure into one `~sourceclf.exceptions.InvalidInputError` line
(a missing file, a file astropy cannot read, a truncated one, a CSV file
whose rows were not all read); writing goes through a temporary file beside
the destination, published only when complete, so that a reader never sees a
partial output, and turns failures (a full disk, a missing writer package)
into one line too.
"""

import contextlib
import csv
import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np

from astropy.units import UnitsWarning

from .exceptions import InvalidInputError, SourceclfWarning
from .utils._files import atomic_path
from .utils._signals import deferred_signals

__all__ = ["FORMATS", "FORMAT_LIBRARIES", "HDF5_TABLE_PATH", "split_extension", "table_format",
           "check_format_library", "check_input_path", "check_output_path", "read_errors",
           "write_errors", "warn_csv_meta", "read_table", "write_table", "update_meta",
           "char_width", "string_widths", "check_writable_columns"]

#: Astropy format name of each catalog file extension (lower case).
FORMATS = {
    ".fits": "fits", ".fit": "fits", ".fts": "fits", ".fits.gz": "fits", ".fit.gz": "fits",
    ".ecsv": "ascii.ecsv", ".csv": "ascii.csv",
    ".vot": "votable", ".votable": "votable", ".xml": "votable",
    ".parquet": "parquet", ".parq": "parquet",
    ".hdf5": "hdf5", ".h5": "hdf5",
}

#: Package that astropy needs to read or write each format, with its pip name.
FORMAT_LIBRARIES = {"hdf5": "h5py", "parquet": "pyarrow"}
#: Where `write_table` puts a table in an HDF5 file (any reader finds a lone table).
HDF5_TABLE_PATH = "catalog"


def split_extension(path):
    """Split a file name into its stem and its catalog extension.

    Extensions of `FORMATS` are matched whole (``'.fits.gz'``), case
    insensitively; any other name splits at its last dot.

    Parameters
    ----------
    path : str or path-like
        A file path.

    Returns
    -------
    stem, extension : str
        As spelled in the name.

    Examples
    --------
    >>> split_extension("data/cat.FITS.gz")
    ('cat', '.FITS.gz')
    """
    name = Path(path).name
    lower = name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if lower.endswith(ext):
            return name[: len(lower) - len(ext)], name[len(lower) - len(ext):]
    return Path(path).stem, Path(path).suffix


def table_format(path):
    """The astropy format name for a file, from its extension.

    Parameters
    ----------
    path : str or path-like
        A catalog file.

    Returns
    -------
    format : str
        A value of `FORMATS`.

    Raises
    ------
    InvalidInputError
        If the extension is not one of `FORMATS`.
    """
    _, ext = split_extension(path)
    try:
        return FORMATS[ext.lower()]
    except KeyError:
        known = ", ".join(sorted(set(FORMATS)))
        raise InvalidInputError(f"cannot tell the table format of '{path}' from its "
                                f"extension; use one of {known}") from None


def check_format_library(format, path):
    """Check that the package astropy needs for a table format is installed.

    Parameters
    ----------
    format : str
        Astropy format name.
    path : str or path-like
        The file, for the message.

    Raises
    ------
    InvalidInputError
        If the package (`FORMAT_LIBRARIES`) is missing.
    """
    library = FORMAT_LIBRARIES.get(format)
    if library is not None and importlib.util.find_spec(library) is None:
        raise InvalidInputError(f"'{path}' is a {format} file, which needs the {library} "
                                f"package: pip install {library} (or choose another format)")


def check_input_path(path):
    """The path of an existing, readable catalog file.

    Raises
    ------
    InvalidInputError
        If ``path`` does not exist, is a directory, is empty or cannot be opened.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"input file '{path}' does not exist")
    if path.is_dir():
        raise InvalidInputError(f"input '{path}' is a directory, not a catalog file")
    if path.is_file() and path.stat().st_size == 0:
        raise InvalidInputError(f"input file '{path}' is empty (0 bytes)")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InvalidInputError(f"cannot read input file '{path}': "
                                f"{exc.strerror or exc}") from None
    return path


def check_output_path(path, overwrite=False, format=None):
    """The path of a file that may be written.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    overwrite : bool
        Whether an existing file may be replaced.
    format : str, optional
        Astropy format name (default from the extension, when it is one of
        `FORMATS`): its package must be installed.

    Raises
    ------
    InvalidInputError
        If ``path`` exists and ``overwrite`` is false, or is a directory; if
        its directory does not exist, is not a directory or cannot be
        written to; if the format's package is missing.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"output '{path}' is a directory")
    if path.exists() and not overwrite:
        raise InvalidInputError(f"output file '{path}' exists; pass --overwrite "
                                "(overwrite=True) to replace it")
    parent = path.parent
    if not parent.exists():
        raise InvalidInputError(f"output directory '{parent}' does not exist")
    if not parent.is_dir():
        raise InvalidInputError(f"output directory '{parent}' is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"cannot write to output directory '{parent}': "
                                "permission denied")
    format = format or FORMATS.get(split_extension(path)[1].lower())
    check_format_library(format, path)
    return path


@contextlib.contextmanager
def read_errors(path, format):
    """Report a failure to read ``path`` as one line.

    Within the context, an exception (other than an `InvalidInputError`)
    becomes ``InvalidInputError("cannot read '<path>' as a <format> table:
    <first line>")``, and a warning that mentions truncation becomes
    ``InvalidInputError("'<path>' is truncated or corrupt: ...")``; other
    warnings are issued again when the context ends, but for astropy's
    `~astropy.units.UnitsWarning` (three lines per column with a unit the
    format's standard lacks, for columns never read too): an input read from
    such a column is refused with one line naming it
    (`sourceclf.catalog_units.parse_unit`).

    Parameters
    ----------
    path : str or path-like
        The file being read.
    format : str
        Its format, for the message.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except InvalidInputError:
            raise
        except Exception as exc:  # astropy raises many types for unreadable files
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InvalidInputError(f"cannot read '{path}' as a {format} table: "
                                    f"{first}") from None
    for w in caught:
        text = str(w.message)
        if "truncated" in text.lower():
            raise InvalidInputError(f"'{path}' is truncated or corrupt: "
                                    f"{text.splitlines()[0]}")
        if not issubclass(w.category, UnitsWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@contextlib.contextmanager
def write_errors(path, format, *, passthrough=()):
    """Report a failure to write ``path`` as one line.

    Within the context, an exception (other than an `InvalidInputError`)
    becomes ``InvalidInputError("cannot write '<path>' ...: <first line>")``:
    a full disk or a permission error (`OSError`), a writer package that is
    missing, a table the format cannot hold.

    Parameters
    ----------
    path : str or path-like
        The file being written.
    format : str
        Its format, for the message.
    passthrough : tuple of exception classes
        Exceptions the caller handles: raised as they are.

    Notes
    -----
    astropy's `~astropy.units.UnitsWarning` for a unit the format's standard
    lacks (``nanomaggies`` in FITS: written as its text, as read) is
    silenced within the context, as `read_table` silences it.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UnitsWarning)
            yield
    except (InvalidInputError, *passthrough):
        raise
    except OSError as exc:
        raise InvalidInputError(f"cannot write '{path}': {exc.strerror or exc}") from None
    except Exception as exc:  # astropy's writers raise many types for tables they cannot hold
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InvalidInputError(f"cannot write '{path}' as a {format} table: "
                                f"{first}") from None


def _leading_comment_lines(path):
    """How many lines starting with ``#`` a CSV file has above its header; 0 when the last
    of them has as many fields as the next line (then it is the header, ``#ra,dec,...``)."""
    count, last = 0, ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.lstrip().startswith("#"):
                return count if count and last.count(",") != line.count(",") else 0
            count, last = count + 1, line
    return 0


def _check_csv_rows(path, n_rows, comments=0):
    """Check that a CSV file holds as many records as were read from it.

    astropy's reader takes an unterminated quote as a field running to the
    end of the file and drops the rows after it without a word; Python's
    strict CSV parser counts the records instead.  ``comments``: the lines
    starting with ``#`` above the header, which are not counted then.
    """
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, strict=True)
        try:
            # Blank lines are skipped by both readers; the first record is the header.
            records = sum(1 for row in reader if len(row) > 1 or (row and row[0].strip()))
            records -= comments
        except csv.Error as exc:
            raise InvalidInputError(f"'{path}' is not valid CSV near line {reader.line_num}: "
                                    f"{exc} (an unterminated quote?)") from None
    if records - 1 != n_rows:
        raise InvalidInputError(f"read {n_rows} rows from '{path}' but it holds "
                                f"{max(records - 1, 0)} records; check its quotes")


def _read_votable(path):
    """A VOTable's first table, with its INFO and PARAM elements in ``meta``."""
    from astropy.io import votable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", votable.exceptions.VOWarning)
        element = votable.parse(path).get_first_table()
    table = element.to_table()
    for info in element.infos:
        try:
            table.meta[info.name] = json.loads(info.value)
        except (TypeError, ValueError):
            table.meta[info.name] = info.value
    for param in element.params:
        value = np.ma.getdata(param.value)
        table.meta[param.name] = value.item() if np.ndim(value) == 0 else value.tolist()
    return table


def read_table(path, format=None):
    """Read a whole catalog file, with one-line errors for unreadable files.

    A VOTable's INFO and PARAM elements (where `write_table` keeps the
    table's ``meta``) go into ``meta``.  The number of rows read from a CSV
    file is checked against the records the file holds, and a byte-order
    mark before its first column's name is dropped.

    Parameters
    ----------
    path : str or path-like
        The catalog.
    format : str, optional
        Astropy format name; default from the file extension.

    Returns
    -------
    table : `~astropy.table.Table`

    Raises
    ------
    InvalidInputError
        If the file does not exist, cannot be read in that format, or is
        truncated; if its format's package is missing; if a CSV file holds
        more or fewer records than were read (an unterminated quote), or its
        values are separated by semicolons, tabs or bars.
    """
    from astropy.table import Table

    path = check_input_path(path)
    format = format or table_format(path)
    check_format_library(format, path)
    with read_errors(path, format):
        if format == "votable":
            table = _read_votable(path)
        elif format == "fits":
            # Astropy strips FITS string columns with a NumPy call that Ctrl-C can crash in.
            with deferred_signals():
                table = Table.read(path, format=format)
        elif format == "ascii.csv" and _leading_comment_lines(path):
            # '# ...' lines above the header (a survey's preamble): comments, as in ECSV.
            table = Table.read(path, format=format, comment="#")
        else:
            table = Table.read(path, format=format)
        if format == "ascii.csv":
            _check_csv_rows(path, len(table), comments=_leading_comment_lines(path))
    if format == "ascii.csv" and len(table.colnames) == 1:
        name = table.colnames[0]
        for separator, said in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if separator in name:
                raise InvalidInputError(f"'{path}' was read as one column named '{name[:60]}': "
                                        f"its values are separated by {said}, not commas; "
                                        "save it with commas")
    if format.startswith("ascii") and table.colnames and table.colnames[0].startswith("\ufeff"):
        # A byte-order mark (Excel's "CSV UTF-8") is no part of the first column's name.
        table.rename_column(table.colnames[0], table.colnames[0].lstrip("\ufeff"))
    first = table.colnames[0] if table.colnames else ""
    if format == "ascii.csv" and first.startswith("#") and first.lstrip("# ") \
            and first.lstrip("# ") not in table.colnames:
        # A header written as a comment ('#ra,dec,...'): '#' is no part of the name.
        table.rename_column(first, first.lstrip("# "))
    return table


def _write_votable(table, path):
    """Write a VOTable whose TABLE carries ``meta``: scalars as PARAM, others as INFO."""
    from astropy.io.votable.tree import Info, Param, VOTableFile

    votable = VOTableFile.from_table(table)
    element = votable.get_first_table()
    for key, value in table.meta.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (bool, int, float, str)):
            if isinstance(value, bool):
                datatype = "boolean"
            elif isinstance(value, int):
                datatype = "long"
            elif isinstance(value, float):
                datatype = "double"
            else:
                datatype = "unicodeChar"
            param = Param(votable, name=str(key), ID=None, datatype=datatype, value=value,
                          arraysize="*" if datatype == "unicodeChar" else None)
            element.params.append(param)
        else:
            element.infos.append(Info(name=str(key), value=json.dumps(value, default=str)))
    votable.to_xml(str(path))


def warn_csv_meta(table, path):
    """Warn that a CSV file cannot keep ``table.meta`` (model, confidence...)."""
    keys = [k for k in table.meta if k != "comments"]
    if keys:
        warnings.warn(f"CSV cannot hold the table's meta ({', '.join(map(str, keys[:6]))}"
                      f"{'...' if len(keys) > 6 else ''}: the model, confidence and score); "
                      f"'{path}' is written without it: write .ecsv to keep it",
                      SourceclfWarning, stacklevel=3)


def check_writable_columns(table, format, path):
    """One line for the columns a format cannot store, before anything is written.

    Python objects in Parquet; columns of several values per row (SDSS's
    per-band arrays) in CSV; in FITS, what astropy's FITS conversion
    refuses (a unit of a scale FITS cannot write, such as hourangle), tried
    on the columns without their rows.  `sourceclf.streaming.classify_file`
    calls it on the catalog before classifying, `write_table` on what it
    writes.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table, or the catalog whose columns the output will hold.
    format : str
        Astropy format name of the output.
    path : str or path-like
        The output, for the message.

    Raises
    ------
    InvalidInputError
        Naming the column and what to do.
    """
    if format == "fits":
        from astropy.io.fits import table_to_hdu
        from astropy.table import serialize
        from astropy.time import Time

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # units FITS lacks are written as text, with a word
            try:  # mixins (SkyCoord...) as astropy's FITS writer stores them, then the rest
                table_to_hdu(serialize.represent_mixins_as_columns(table[:0],
                                                                   exclude_classes=(Time,)))
            except Exception as exc:  # astropy raises many types (AssertionError for a long name)
                raise InvalidInputError(f"'{path}' cannot be FITS: {str(exc).splitlines()[0]} "
                                        "(write .ecsv, .parquet or .vot, or convert the "
                                        "column)") from None
    if format == "ascii.csv":
        for name in table.colnames:
            shape = getattr(table[name], "shape", ())
            if len(shape) > 1:
                raise InvalidInputError(
                    f"column '{name}' holds {' x '.join(map(str, shape[1:]))} values per row, "
                    f"which CSV cannot store: write '{path}' as .ecsv, .fits, .parquet or "
                    ".vot, or remove the column")
    if format != "parquet":
        return
    for name in table.colnames:
        if getattr(table[name], "dtype", None) is not None and table[name].dtype.kind == "O":
            raise InvalidInputError(
                f"column '{name}' holds Python objects, which Parquet cannot store: convert "
                f"it (e.g. to str) or write another format than '{path}'")


def write_table(table, path, *, format=None, overwrite=False):
    """Write a table atomically: to a temporary file, published when complete.

    The file appears only once complete (see
    `sourceclf.utils._files.atomic_path`); without ``overwrite`` it is
    published with an exclusive link, so a file that another process created
    at ``path`` meanwhile is never replaced.  The table's ``meta`` is kept
    where the format allows: VOTable files carry it as PARAM (scalars) and
    INFO (others) elements; CSV cannot (a warning recommends ECSV).

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table.
    path : str or path-like
        The file to write.
    format : str, optional
        Astropy format name; default from the file extension.  HDF5 files
        keep the table's meta and column attributes (``serialize_meta``),
        the table under the path `HDF5_TABLE_PATH`.
    overwrite : bool
        Replace an existing file.

    Raises
    ------
    InvalidInputError
        For an unknown extension, an existing file without ``overwrite``, a
        directory that does not exist or cannot be written to, a missing
        writer package, a table the format cannot hold, a failed write (a
        full disk: the previous file stays as it was).
    """
    format = format or table_format(path)
    path = check_output_path(path, overwrite, format)
    check_writable_columns(table, format, path)
    if format == "ascii.csv":
        warn_csv_meta(table, path)
    # HDF5: a named path (astropy warns at each write under its default name).
    kwargs = {"serialize_meta": True, "path": HDF5_TABLE_PATH} if format == "hdf5" else {}
    with atomic_path(path, suffix=split_extension(path)[1], overwrite=overwrite) as tmp:
        with write_errors(path, format):
            if format == "votable":
                _write_votable(table, tmp)
            else:
                table.write(tmp, format=format, overwrite=True, **kwargs)


def update_meta(path, meta, *, comments=None, format=None):
    """Add keys to the ``meta`` of a catalog file already written, atomically.

    A FITS file's table HDU gains the keys as header keywords, its data and
    other HDUs copied as they were read; a file of another format is read and
    written again with them (`read_table`, `write_table`).  Either way the new
    file replaces the old one only once complete: if anything fails, the
    old file stays as it was.

    Parameters
    ----------
    path : str or path-like
        The catalog file.
    meta : dict
        Keys and values to add (FITS: keywords of at most 8 characters).
    comments : dict, optional
        FITS header comments of some keys.
    format : str, optional
        Astropy format name; default from the file extension.

    Returns
    -------
    updated : bool
        False for a CSV file, which holds no meta (left as it is).

    Raises
    ------
    InvalidInputError
        If the file cannot be read or written again, or a FITS file holds no
        table.
    """
    path = check_input_path(path)
    format = format or table_format(path)
    if format == "ascii.csv":
        return False
    if format != "fits":
        table = read_table(path, format=format)
        table.meta.update(meta)
        write_table(table, path, format=format, overwrite=True)
        return True
    from astropy.io import fits

    comments = comments or {}
    with atomic_path(path, suffix=split_extension(path)[1], overwrite=True) as tmp:
        with read_errors(path, format):
            hdul = fits.open(path)
            tables = [h for h in hdul if isinstance(h, (fits.BinTableHDU, fits.TableHDU))]
        try:  # closed before it is replaced
            if not tables:
                raise InvalidInputError(f"'{path}' holds no table HDU to add "
                                        f"{', '.join(meta)} to")
            for key, value in meta.items():
                try:
                    tables[0].header[key] = (value, comments.get(key, ""))
                except (ValueError, TypeError) as exc:  # NaN, a key of 9 characters...
                    raise InvalidInputError(f"cannot write {key} = {value!r} into the header "
                                            f"of '{path}': {exc}") from None
            with write_errors(path, format):
                hdul.writeto(tmp, overwrite=True)
        finally:
            hdul.close()
    return True


def char_width(dtype):
    """Characters per element of a numpy bytes (``'S'``) or unicode (``'U'``) dtype."""
    return dtype.itemsize // (4 if dtype.kind == "U" else 1)


def string_widths(table):
    """Character widths of the string columns of a table, by column name."""
    widths = {}
    for name in table.colnames:
        dtype = getattr(table[name], "dtype", None)
        if dtype is not None and dtype.kind in "SU":
            widths[name] = char_width(dtype)
    return widths
