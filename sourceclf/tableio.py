"""Catalog files: formats, reading and writing whole tables.

The format of a catalog file follows from its extension (`FORMATS`).  Reading
turns every failure into one `~sourceclf.exceptions.InvalidInputError` line
(a missing file, a file astropy cannot read, a truncated one); writing goes
through a temporary file beside the destination, renamed into place only
when complete, so that a reader never sees a partial output.
"""

import contextlib
import warnings
from pathlib import Path

from .exceptions import InvalidInputError
from .utils._files import atomic_path

__all__ = ["FORMATS", "split_extension", "table_format", "check_input_path",
           "check_output_path", "read_errors", "read_table", "write_table", "char_width",
           "string_widths"]

#: Astropy format name of each catalog file extension (lower case).
FORMATS = {
    ".fits": "fits", ".fit": "fits", ".fts": "fits", ".fits.gz": "fits", ".fit.gz": "fits",
    ".ecsv": "ascii.ecsv", ".csv": "ascii.csv",
    ".vot": "votable", ".votable": "votable", ".xml": "votable",
    ".parquet": "parquet", ".parq": "parquet",
    ".hdf5": "hdf5", ".h5": "hdf5",
}


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


def check_input_path(path):
    """The path of an existing catalog file.

    Raises
    ------
    InvalidInputError
        If ``path`` does not exist or is a directory.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"input file '{path}' does not exist")
    if path.is_dir():
        raise InvalidInputError(f"input '{path}' is a directory, not a catalog file")
    return path


def check_output_path(path, overwrite=False):
    """The path of a file that may be written.

    Raises
    ------
    InvalidInputError
        If ``path`` exists and ``overwrite`` is false, is a directory, or
        its directory does not exist.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidInputError(f"output file '{path}' exists; pass --overwrite "
                                "(overwrite=True) to replace it")
    if not path.parent.exists():
        raise InvalidInputError(f"output directory '{path.parent}' does not exist")
    if path.is_dir():
        raise InvalidInputError(f"output '{path}' is a directory")
    return path


@contextlib.contextmanager
def read_errors(path, format):
    """Report a failure to read ``path`` as one line.

    Within the context, an exception (other than an `InvalidInputError`)
    becomes ``InvalidInputError("cannot read '<path>' as a <format> table:
    <first line>")``, and a warning that mentions truncation becomes
    ``InvalidInputError("'<path>' is truncated or corrupt: ...")``; other
    warnings are issued again when the context ends.

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
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def read_table(path, format=None):
    """Read a whole catalog file, with one-line errors for unreadable files.

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
        truncated.
    """
    from astropy.table import Table

    path = check_input_path(path)
    format = format or table_format(path)
    with read_errors(path, format):
        return Table.read(path, format=format)


def write_table(table, path, *, format=None, overwrite=False):
    """Write a table atomically: to a temporary file, renamed into place when complete.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table.
    path : str or path-like
        The file to write.
    format : str, optional
        Astropy format name; default from the file extension.  HDF5 files
        keep the table's meta and column attributes (``serialize_meta``).
    overwrite : bool
        Replace an existing file.

    Raises
    ------
    InvalidInputError
        For an unknown extension, an existing file without ``overwrite``, or
        a directory that does not exist.
    """
    path = check_output_path(path, overwrite)
    format = format or table_format(path)
    kwargs = {"serialize_meta": True} if format == "hdf5" else {}
    with atomic_path(path, suffix=split_extension(path)[1]) as tmp:
        table.write(tmp, format=format, overwrite=True, **kwargs)


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
