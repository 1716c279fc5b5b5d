"""Chunked table sources: a catalog's rows as astropy Tables, a slice at a time.

`open_source` picks the source for a file: a `FitsSource` for an uncompressed
FITS binary table (read from the file one slice of rows at a time), a
`ParquetSource` for Parquet (one record batch at a time), else a
`TableSource` over the whole table read into memory.  Each chunk is what
`~astropy.table.Table.read` gives for those rows.
"""

import difflib
import io
import os
import warnings
from copy import deepcopy

import numpy as np
from astropy.io import fits
from astropy.table import Column, Table, vstack
from astropy.table.meta import get_header_from_yaml
from astropy.units import UnitsWarning
from astropy.utils.exceptions import AstropyUserWarning

from ..catalog_units import parse_unit
from ..exceptions import InvalidInputError, SourceclfWarning
from ..tableio import char_width, read_errors, read_table, string_widths
from ..utils._signals import deferred_signals

__all__ = ["STREAMED_INPUT_FORMATS", "TableSource", "FitsSource", "ParquetSource",
           "open_source", "set_units", "all_rows"]

#: Input formats read chunk by chunk (others are read whole).
STREAMED_INPUT_FORMATS = ("fits", "parquet")


class TableSource:
    """Chunks of a table already in memory (read from ``path``, if given)."""

    def __init__(self, table, path=None):
        self.table = table
        self.path = path
        self.n_rows = len(table)

    def chunks(self, chunk_size):
        """Yield tables of at most ``chunk_size`` rows (the empty table if there are none)."""
        if self.n_rows == 0:
            yield self.table
        for start in range(0, self.n_rows, chunk_size):
            yield self.table[start:start + chunk_size]

    def template(self):
        """The table without its rows: its columns' names, types, shapes and units."""
        return self.table[:0]

    def string_widths(self):
        """Character widths of the string columns."""
        return string_widths(self.table)

    def close(self):
        self.table = None


class FitsSource:
    """Row slices of a FITS binary table, read from the file a chunk at a time.

    The table's header is parsed once; each chunk's records are read from the
    file (plain reads at the data offset `astropy.io.fits.HDUList.fileinfo`
    gives, no memory map) and go, with a copy of the header for that many
    rows, through astropy's own FITS table reader (``Table.read`` of a
    `~astropy.io.fits.BinTableHDU`).  A chunk is thus exactly the
    corresponding rows of ``Table.read(path)``, except that a float or string
    column is masked (NaN, empty string) per chunk: a column may be a
    `~astropy.table.MaskedColumn` in one chunk and a plain
    `~astropy.table.Column` in the next.  Each chunk owns its memory, so an
    interrupted run (``KeyboardInterrupt``) can never touch released pages,
    and the resident memory is that of one chunk.  Ctrl-C (and SIGTERM,
    SIGHUP) while a chunk is converted takes effect when the conversion ends,
    a few milliseconds later: raised inside astropy's stripping of string
    columns it can crash the interpreter (NumPy 2.4).

    Attributes
    ----------
    n_rows : int
        Rows in the table.
    streamable : bool
        Whether the first table is a binary table with fixed-width columns
        only (no heap), which this class reads; else the file must be read
        whole (`TableSource`).
    """

    units = {}  #: column -> unit set on every chunk (`set_units`)

    def __init__(self, path):
        self.path = path
        self.file = None
        with read_errors(path, "fits"):
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                tables = [i for i, h in enumerate(hdul)
                          if isinstance(h, (fits.BinTableHDU, fits.TableHDU, fits.GroupsHDU))]
                if not tables:
                    raise ValueError("No table found")
                if len(tables) > 1:
                    named = ", ".join(f"{i} ({hdul[i].name or 'no EXTNAME'})" for i in tables)
                    warnings.warn(f"'{path}' holds {len(tables)} tables, in HDUs {named}; the "
                                  f"first, HDU {tables[0]}, is read as the catalog",
                                  SourceclfWarning)
                hdu = hdul[tables[0]]
                self.header = hdu.header.copy()
                self.columns = hdu.columns
                self._offset = hdul.fileinfo(tables[0])["datLoc"]
                self.streamable = (type(hdu) is fits.BinTableHDU
                                   and self.header.get("PCOUNT", 0) == 0
                                   and self.header.get("GCOUNT", 1) == 1
                                   and self.header.get("NAXIS1", 0) > 0
                                   and not any(c.format.p_format for c in hdu.columns))
        self.n_rows = self.header.get("NAXIS2", 0)
        self._row_bytes = self.header.get("NAXIS1", 0)
        if self.streamable:
            # The records as stored: big-endian numbers (ColDefs.dtype is native).
            self._raw_dtype = self.columns.dtype.newbyteorder(">")
            expected = self._offset + self.n_rows * self._row_bytes
            size = os.path.getsize(path)
            if size < expected:
                raise InvalidInputError(
                    f"'{path}' is truncated or corrupt: its table needs {expected} bytes, "
                    f"the file has {size}")
            self.file = open(path, "rb")

    def _records(self, start, stop):
        """The stored bytes of rows [start, stop)."""
        size = (stop - start) * self._row_bytes
        try:
            self.file.seek(self._offset + start * self._row_bytes)
            data = self.file.read(size)
        except OSError as exc:
            raise InvalidInputError(f"cannot read '{self.path}': {exc.strerror or exc}") from None
        if len(data) != size:
            raise InvalidInputError(f"'{self.path}' is truncated or corrupt: rows {start} to "
                                    f"{stop} could not be read")
        return data

    def _table(self, start, stop):
        """Rows [start, stop) converted by astropy's FITS table reader."""
        header = self.header.copy()
        header["NAXIS2"] = stop - start
        hdu = fits.BinTableHDU.fromstring(header.tostring().encode("ascii")
                                          + self._records(start, stop),
                                          character_as_bytes=True, uint=True)
        with deferred_signals():  # a signal inside astropy's string stripping can SIGSEGV
            return Table.read(hdu, format="fits")

    def template(self):
        """The table without its rows: its columns' names, types, shapes and units."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the first chunk gives the unit warnings
            return _with_units(self._table(0, 0), self.units)

    def chunks(self, chunk_size):
        """Yield tables of at most ``chunk_size`` rows (the empty table if there are none)."""
        starts = range(0, self.n_rows, chunk_size) if self.n_rows else [0]
        for k, start in enumerate(starts):
            stop = min(start + chunk_size, self.n_rows)
            with warnings.catch_warnings():
                if k:  # warnings of the conversion: once, on the first chunk
                    warnings.simplefilter("ignore")
                warnings.filterwarnings("ignore", category=UnitsWarning)  # as read_table
                table = _with_units(self._table(start, stop), self.units)
            yield table
            del table

    def masked_columns(self, chunk_size):
        """Columns ``Table.read`` would mask: TNULL, NaN anywhere, empty strings anywhere."""
        out = {c.name for c in self.columns if c.null is not None}
        candidates = []
        for col in self.columns:
            dt = self._raw_dtype[col.name]
            base = dt.subdtype[0] if dt.subdtype else dt
            if col.name not in out and base.kind in "fcS":
                candidates.append((col.name, base.kind))
        for start in range(0, self.n_rows, chunk_size):
            if not candidates:
                break
            stop = min(start + chunk_size, self.n_rows)
            rows = np.frombuffer(self._records(start, stop), dtype=self._raw_dtype)
            for name, kind in list(candidates):
                values = rows[name]
                if kind == "S":
                    hit = np.any(np.strings.rstrip(values) == b"")
                else:
                    hit = np.any(np.isnan(values))
                if hit:
                    out.add(name)
                    candidates.remove((name, kind))
            del rows
        return out

    def string_widths(self):
        """Character widths of the string columns, as Table.read gives them."""
        out = {}
        for col in self.columns:
            dt = self._raw_dtype[col.name]
            base = dt.subdtype[0] if dt.subdtype else dt
            if base.kind in "SU":
                out[col.name] = char_width(base)
        return out

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


class ParquetSource:
    """Record batches of a Parquet file, converted as astropy's Parquet reader does."""

    units = {}  #: column -> unit set on every chunk (`set_units`)

    def __init__(self, path):
        import pyarrow.parquet as pq

        self.path = path
        with read_errors(path, "parquet"):
            self.file = pq.ParquetFile(path)
            self.schema = self.file.schema_arrow
        self.n_rows = self.file.metadata.num_rows
        md = {k.decode("utf-8"): v.decode("utf-8")
              for k, v in (self.schema.metadata or {}).items()}
        self.md = md
        self.meta_hdr = None
        self.meta = {}
        if "table_meta_yaml" in md:
            self.meta_hdr = get_header_from_yaml(md["table_meta_yaml"].split("\n"))
            self.meta = self.meta_hdr.get("meta", {}) or {}
        self.serialized = "__serialized_columns__" in self.meta
        self.names = list(self.schema.names)
        with read_errors(path, "parquet"):  # both read the file's pages or statistics
            self._widths = self._string_lengths()
            self._nullable = self._columns_with_nulls()

    @staticmethod
    def _is_text(t):
        import pyarrow as pa

        return (pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_binary(t) or pa.types.is_large_binary(t))

    def _value_type(self, name):
        import pyarrow as pa

        t = self.schema.field(name).type
        if isinstance(t, (pa.FixedSizeListType, pa.ListType)):
            return t.value_type
        return t

    def _string_lengths(self):
        """String widths: from astropy's metadata, else the longest value in the file."""
        import pyarrow.compute as pc

        widths, scan = {}, []
        for name in self.names:
            if not self._is_text(self._value_type(name)):
                continue
            key = f"table::len::{name}"
            if key in self.md:
                widths[name] = int(self.md[key])
            else:
                scan.append(name)
        if scan:
            longest = dict.fromkeys(scan, 0)
            for batch in self.file.iter_batches(columns=scan, batch_size=1 << 20):
                for name in scan:
                    col = batch.column(name)
                    if self._is_text(col.type):
                        lengths = (pc.binary_length(col) if "binary" in str(col.type)
                                   else pc.utf8_length(col))
                        m = pc.max(lengths).as_py()
                        if m is not None:
                            longest[name] = max(longest[name], m)
            for name in scan:
                widths[name] = longest[name]
                warnings.warn(f"No table::len::{name} found in metadata. Using longest "
                              f"string ({longest[name]} characters).", AstropyUserWarning)
        return widths

    def _columns_with_nulls(self):
        """Flat columns with a null somewhere (or no statistics to tell)."""
        meta = self.file.metadata
        leaves = {}
        if meta.num_row_groups:
            group = meta.row_group(0)
            leaves = {group.column(j).path_in_schema: j for j in range(group.num_columns)}
        out = set()
        for name in self.names:
            j = leaves.get(name)
            for i in range(meta.num_row_groups):
                stats = None if j is None else meta.row_group(i).column(j).statistics
                if stats is None or not stats.has_null_count or stats.null_count:
                    out.add(name)
                    break
        return out

    def template(self):
        """The table without its rows: its columns' names, types, shapes and units."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _with_units(self._convert(self.schema.empty_table()), self.units)

    def chunks(self, chunk_size):
        if self.n_rows == 0:
            yield _with_units(self._convert(self.schema.empty_table()), self.units)
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the width warnings were issued once above
            batches = self.file.iter_batches(batch_size=chunk_size)
            while True:
                with read_errors(self.path, "parquet"):  # a corrupt page: one line
                    batch = next(batches, None)
                if batch is None:
                    return
                yield _with_units(self._convert(batch), self.units)

    def _convert(self, batch):
        import pyarrow as pa

        if self.serialized:
            return self._convert_via_astropy(batch)
        table = Table(meta=deepcopy(self.meta))
        for name in self.names:
            t = self.schema.field(name).type
            col = batch.column(name)
            values = col.to_numpy(zero_copy_only=False)
            if self._is_text(t):
                values = values.astype(self._dtype(name))
            elif isinstance(t, pa.FixedSizeListType):
                if len(values):
                    values = np.stack(values)
                    if self._is_text(t.value_type):
                        values = values.astype(self._dtype(name))
                else:
                    values = np.zeros((0, t.list_size), dtype=self._dtype(name))
            elif isinstance(t, pa.ListType):
                if self._is_text(t.value_type):
                    values = np.array([row.astype(self._dtype(name)) for row in values],
                                      dtype=np.object_)
            elif name in self._nullable and col.null_count == 0:
                # The whole column, read at once, converts like this.
                if values.dtype.kind in "iu":
                    values = values.astype(np.float64)
                elif values.dtype.kind == "b":
                    values = values.astype(object)
            table.add_column(Column(name=name, data=values))
        if self.meta_hdr is not None:
            header_cols = {x["name"]: x for x in self.meta_hdr["datatype"]}
            for col in table.columns.values():
                for attr in ("description", "format", "unit", "meta"):
                    if attr in header_cols.get(col.name, {}):
                        setattr(col, attr, header_cols[col.name][attr])
        return table

    def _dtype(self, name):
        width = self._widths.get(name, 1)
        return f"U{width}" if "string" in str(self._value_type(name)) else f"|S{width}"

    def _convert_via_astropy(self, batch):
        """Mixin columns: let astropy's reader decode an in-memory Parquet of the batch."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        md = dict(self.schema.metadata or {})
        for name, width in self._widths.items():
            md[f"table::len::{name}".encode()] = str(width).encode()
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        buf = io.BytesIO()
        pq.write_table(batch.replace_schema_metadata(md), buf, compression="none")
        buf.seek(0)
        return Table.read(buf, format="parquet")

    def string_widths(self):
        """Character widths of the string columns."""
        return dict(self._widths)

    def close(self):
        self.file = None


def _is_gzip(path):
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_source(path, fmt):
    """The source of a catalog file's rows.

    Parameters
    ----------
    path : `pathlib.Path`
        An existing catalog file.
    fmt : str
        Its astropy format name.

    Returns
    -------
    source : `FitsSource`, `ParquetSource` or `TableSource`
        A `FitsSource` when the file is an uncompressed FITS binary table that
        can be read slice by slice, a `ParquetSource` for Parquet, else a
        `TableSource` over the whole table.
    """
    if fmt == "fits" and not _is_gzip(path):
        source = FitsSource(path)
        if source.streamable:
            return source
    elif fmt == "parquet":
        return ParquetSource(path)
    return TableSource(read_table(path, format=fmt), path)


def set_units(source, units):
    """Give the catalog's columns these units as they are read (a CSV file holds none).

    Parameters
    ----------
    source : `TableSource`, `FitsSource` or `ParquetSource`
        The catalog.
    units : dict or None
        Column name (exact, or in any case when unambiguous) -> unit, as
        astropy or `sourceclf.catalog_units` reads it (``'nmgy'``,
        ``'nanomaggies'``, ``'Jy'``, ``'mag'``, ``'arcsec'``, ``'deg'``);
        it replaces the file's own.

    Raises
    ------
    InvalidInputError
        For a column the catalog lacks, one that holds no numbers, or a
        unit that nobody knows (one line each).
    """
    if not units:
        return
    if not hasattr(units, "items"):
        raise InvalidInputError(f"units must be a dict {{column: unit}}, got "
                                f"{type(units).__name__}")
    template = source.template()
    by_lower = {}
    for name in template.colnames:
        by_lower.setdefault(name.lower(), []).append(name)
    resolved = {}
    for name, unit in units.items():
        matches = [name] if name in template.colnames else by_lower.get(str(name).lower(), [])
        if len(matches) != 1:
            close = difflib.get_close_matches(str(name), template.colnames, n=1)
            raise InvalidInputError(f"units: the catalog has no column '{name}'"
                                    + (f" (did you mean '{close[0]}'?)" if close else ""))
        column = matches[0]
        if not isinstance(template[column], Column) or template[column].dtype.kind not in "fiuUS":
            raise InvalidInputError(f"units: column '{column}' holds no numbers to give a unit")
        parse_unit(str(unit), f"units: column '{column}'")  # one line for an unknown unit
        resolved[column] = str(unit)
    if isinstance(source, TableSource):
        _with_units(source.table, resolved)
    else:
        source.units = resolved


def _with_units(table, units):
    """``table`` with ``units`` (column -> unit) set on its columns."""
    for name, unit in units.items():
        table[name].unit = unit
    return table


def all_rows(source):
    """The rows of a source as one table."""
    if isinstance(source, TableSource):
        return source.table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        parts = list(source.chunks(max(source.n_rows, 1)))
    return parts[0] if len(parts) == 1 else vstack(parts)
