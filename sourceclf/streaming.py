"""Classify catalogs larger than memory, chunk by chunk.

`classify_file` reads a catalog file in chunks of rows, classifies each chunk
with `sourceclf.classify` (the model is chosen and loaded once, on the first
chunk) and writes the result incrementally, so that peak memory depends on the
chunk size, not on the catalog:

* FITS binary tables are read through a memory map (``fits.open(memmap=True)``),
  one slice of rows at a time, with the same conversions `~astropy.table.Table.read`
  applies (masks for NaN, null values and empty strings, units, column
  descriptions).  Output FITS files are written as the FITS header of the final
  table (its row count is known from the input) followed by the rows, chunk by
  chunk, exactly as astropy encodes them.
* Parquet files are read one record batch at a time (``iter_batches``) and
  written with a `pyarrow.parquet.ParquetWriter`, in the same layout as
  astropy's Parquet writer (column descriptions, units, masks and table meta
  round-trip through `~astropy.table.Table.read`).
* ECSV and CSV outputs are written chunk by chunk as text.
* Other formats (VOTable, HDF5, compressed or ASCII FITS tables ...) are read
  whole; the output is classified in memory when its format cannot be streamed.

Every output is first written to a temporary file beside the destination and
renamed into place only when complete, so an interrupted run (an exception, a
``KeyboardInterrupt``) leaves the previous state: no partial file.
"""

import io
import os
import sys
import tempfile
import time
import warnings
from copy import deepcopy
from pathlib import Path

import numpy as np

from .exceptions import InvalidInputError

__all__ = ["classify_file", "read_table", "StreamSummary", "DEFAULT_CHUNK_SIZE",
           "PRED_FLAG_MAX_WIDTH", "STREAMED_INPUT_FORMATS", "STREAMED_OUTPUT_FORMATS"]

#: Rows per chunk when none is given: about 50-150 MB of working memory for
#: SDSS-like catalogs of a few dozen columns.
DEFAULT_CHUNK_SIZE = 131_072

#: Width (characters) of ``pred_flag`` in streamed FITS outputs, whose string
#: widths must be fixed before the first row is written.  The column is as
#: wide as the longest flag the model can produce (every feature missing), but
#: no wider than this; longer flags (many missing features) are cut to this
#: width and end with ``'...'``.  Other formats keep flags whole.
PRED_FLAG_MAX_WIDTH = 64

#: Input formats read chunk by chunk (others are read whole).
STREAMED_INPUT_FORMATS = ("fits", "parquet")

#: Output formats written chunk by chunk (others are written from memory).
STREAMED_OUTPUT_FORMATS = ("fits", "parquet", "ascii.ecsv", "ascii.csv")

_FITS_BLOCK = 2880
# Rows of the first chunk encoded by astropy to make the header and check the fast encoder.
_FITS_SAMPLE_ROWS = 1024
# Rows of FITS records filled at a time by the fast encoder (a few hundred kB).
_ENCODE_BLOCK_ROWS = 2048


# ----------------------------------------------------------------------------
# Formats and whole-table reading
# ----------------------------------------------------------------------------
def _table_format(path):
    from .cli import CLIError, table_format

    try:
        return table_format(path)
    except CLIError as exc:
        raise InvalidInputError(str(exc)) from None


def _check_input(path):
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"input file '{path}' does not exist")
    if path.is_dir():
        raise InvalidInputError(f"input '{path}' is a directory, not a catalog file")
    return path


def _is_gzip(path):
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


class _CaughtWarnings:
    """Record warnings; turn 'truncated' ones into an error; re-emit the rest."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self._cm = warnings.catch_warnings(record=True)
        self.caught = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        if exc[0] is not None:
            return False
        for w in self.caught:
            text = str(w.message)
            if "truncated" in text.lower():
                raise InvalidInputError(f"'{self.path}' is truncated or corrupt: "
                                        f"{text.splitlines()[0]}")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return False


def _unreadable(path, fmt, exc):
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return InvalidInputError(f"cannot read '{path}' as a {fmt} table: {first}")


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

    path = _check_input(path)
    fmt = format or _table_format(path)
    with _CaughtWarnings(path):
        try:
            return Table.read(path, format=fmt)
        except Exception as exc:  # astropy raises many types for unreadable files
            raise _unreadable(path, fmt, exc) from None


# ----------------------------------------------------------------------------
# Sources: iterate over a catalog's rows as astropy Tables
# ----------------------------------------------------------------------------
class _TableSource:
    """Chunks of a table already in memory."""

    def __init__(self, table):
        self.table = table
        self.n_rows = len(table)

    def chunks(self, chunk_size):
        if self.n_rows == 0:
            yield self.table
        for start in range(0, self.n_rows, chunk_size):
            yield self.table[start:start + chunk_size]

    def close(self):
        self.table = None


def _chunk_hdu_class():
    from astropy.io import fits

    class _ChunkHDU(fits.BinTableHDU):
        """The rows [a, b) of a memory-mapped table, as astropy's table reader sees them.

        `astropy.io.fits.connect.read_table_fits` only reads ``data`` and
        ``header`` from an HDU object; this stand-in gives it a slice of the
        memory-mapped records without building a new HDU (which would copy).
        """

        def __init__(self, data, header):  # noqa: D107 - deliberately no super().__init__
            self._chunk = (data, header)

        @property
        def data(self):
            return self._chunk[0]

        @property
        def header(self):
            return self._chunk[1]

    return _ChunkHDU


class _FitsSource:
    """Row slices of a memory-mapped FITS binary table.

    Each chunk goes through astropy's own FITS table conversion, so a chunk is
    exactly the corresponding rows of ``Table.read(path)``, except that a
    float or string column is masked (NaN, empty string) per chunk: a column
    may be a `~astropy.table.MaskedColumn` in one chunk and a plain
    `~astropy.table.Column` in the next.  The pages of finished chunks are
    released from the memory map so that the resident memory stays bounded.
    """

    def __init__(self, path):
        from astropy.io import fits

        self.path = path
        self.hdul = None
        try:
            self._open(path)
        except BaseException:
            self.close()
            raise
        self.header = self.hdu.header
        self.n_rows = 0 if self.data is None else len(self.data)
        self.streamable = (type(self.hdu) is fits.BinTableHDU and self.data is not None
                           and self.header.get("PCOUNT", 0) == 0
                           and not any(c.format.p_format for c in self.hdu.columns)
                           and hasattr(self.data, "_character_as_bytes"))
        self._mmap = getattr(getattr(self.hdul, "_file", None), "_mmap", None)
        self._row_bytes = self.header.get("NAXIS1", 0)
        self._offset = getattr(self.hdu, "_data_offset", None)

    def _open(self, path):
        from astropy.io import fits

        with _CaughtWarnings(path):
            try:
                self.hdul = fits.open(path, memmap=True, character_as_bytes=True)
                tables = [i for i, h in enumerate(self.hdul)
                          if isinstance(h, (fits.BinTableHDU, fits.TableHDU, fits.GroupsHDU))]
                if not tables:
                    raise ValueError("No table found")
                if len(tables) > 1:
                    from astropy.utils.exceptions import AstropyUserWarning

                    warnings.warn("hdu= was not specified but multiple tables are present, "
                                  f"reading in first available table (hdu={tables[0]})",
                                  AstropyUserWarning)
                self.hdu = self.hdul[tables[0]]
                self.data = self.hdu.data
            except InvalidInputError:
                raise
            except Exception as exc:
                raise _unreadable(path, "fits", exc) from None

    def chunks(self, chunk_size):
        from astropy.io.fits.connect import read_table_fits

        chunk_hdu = _chunk_hdu_class()
        starts = range(0, self.n_rows, chunk_size) if self.n_rows else [0]
        for k, start in enumerate(starts):
            stop = min(start + chunk_size, self.n_rows)
            rows = self.data[start:stop]
            rows._character_as_bytes = self.data._character_as_bytes
            with warnings.catch_warnings():
                if k:  # unit warnings and the like: once, on the first chunk
                    warnings.simplefilter("ignore")
                table = read_table_fits(chunk_hdu(rows, self.header))
            del rows
            yield table
            del table
            self._release(start, stop)

    def _release(self, start, stop):
        """Drop the finished rows' pages from this process's resident memory."""
        import mmap

        if self._mmap is None or self._offset is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        page = mmap.PAGESIZE
        begin = (self._offset + start * self._row_bytes) // page * page
        end = (self._offset + stop * self._row_bytes) // page * page
        if end > begin:
            try:
                self._mmap.madvise(mmap.MADV_DONTNEED, begin, end - begin)
            except (OSError, ValueError):  # pragma: no cover - platform specific
                self._mmap = None

    def masked_columns(self, chunk_size):
        """Columns ``Table.read`` would mask: TNULL, NaN anywhere, empty strings anywhere."""
        out = {c.name for c in self.hdu.columns if c.null is not None}
        candidates = []
        for col in self.hdu.columns:
            dt = self.data.dtype[col.name]
            base = dt.subdtype[0] if dt.subdtype else dt
            if col.name not in out and base.kind in "fcS":
                candidates.append((col.name, base.kind))
        for start in range(0, self.n_rows, chunk_size):
            if not candidates:
                break
            stop = min(start + chunk_size, self.n_rows)
            rows = self.data[start:stop]
            rows._character_as_bytes = self.data._character_as_bytes
            for name, kind in list(candidates):
                values = rows[name]
                if kind == "S":
                    hit = np.any(np.strings.rstrip(values) == b"")
                else:
                    hit = np.any(np.isnan(values))
                if hit:
                    out.add(name)
                    candidates.remove((name, kind))
            del rows, values
            self._release(start, stop)
        return out

    def string_widths(self):
        """Character widths of the string columns, as Table.read gives them."""
        out = {}
        for col in self.hdu.columns:
            dt = self.data.dtype[col.name]
            base = dt.subdtype[0] if dt.subdtype else dt
            if base.kind in "SU":
                out[col.name] = base.itemsize // (4 if base.kind == "U" else 1)
        return out

    def close(self):
        # When the memory-mapped records are deleted, astropy copies every column
        # that a Column object still points to into memory (the whole file):
        # detach the columns first.
        for owner in (getattr(self, "data", None), getattr(self, "hdu", None)):
            for col in getattr(owner, "columns", None) or ():
                try:
                    del col.array
                except AttributeError:  # pragma: no cover - other astropy versions
                    pass
        self.data = None
        self.hdu = None
        if self.hdul is not None:
            self.hdul.close()
            self.hdul = None


class _ParquetSource:
    """Record batches of a Parquet file, converted as astropy's Parquet reader does."""

    def __init__(self, path):
        import pyarrow.parquet as pq

        self.path = path
        try:
            self.file = pq.ParquetFile(path)
            self.schema = self.file.schema_arrow
        except Exception as exc:
            raise _unreadable(path, "parquet", exc) from None
        self.n_rows = self.file.metadata.num_rows
        md = {k.decode("utf-8"): v.decode("utf-8")
              for k, v in (self.schema.metadata or {}).items()}
        self.md = md
        self.meta_hdr = None
        self.meta = {}
        if "table_meta_yaml" in md:
            from astropy.table import meta

            self.meta_hdr = meta.get_header_from_yaml(md["table_meta_yaml"].split("\n"))
            self.meta = self.meta_hdr.get("meta", {}) or {}
        self.serialized = "__serialized_columns__" in self.meta
        self.names = list(self.schema.names)
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
            from astropy.utils.exceptions import AstropyUserWarning

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

    def chunks(self, chunk_size):
        if self.n_rows == 0:
            yield self._convert(self.schema.empty_table())
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the width warnings were issued once above
            for batch in self.file.iter_batches(batch_size=chunk_size):
                yield self._convert(batch)

    def _convert(self, batch):
        import pyarrow as pa
        from astropy.table import Column, Table

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
        from astropy.table import Table

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
        return dict(self._widths)

    def close(self):
        self.file = None


# ----------------------------------------------------------------------------
# Sinks: write classified chunks
# ----------------------------------------------------------------------------
def _string_columns(table):
    for name in table.colnames:
        col = table[name]
        dt = getattr(col, "dtype", None)
        if dt is not None and dt.kind in "SU":
            yield name, col


def _char_width(dtype):
    return dtype.itemsize // (4 if dtype.kind == "U" else 1)


def _abbreviate(values, width):
    """Cut strings longer than ``width`` characters, ending them with '...'."""
    values = np.asarray(values)
    long = np.strings.str_len(values) > width
    if long.any():
        values = values.copy()
        values[long] = [v[: width - 3] + "..." for v in values[long].tolist()]
    return values


def flag_width(clf):
    """Width of ``pred_flag`` in streamed FITS output for a classifier.

    The longest flag the model can produce ('missing:' and every feature
    name, plus a conformal-set note), capped at `PRED_FLAG_MAX_WIDTH`.
    """
    from .features import get_feature_set

    if clf.feature_set is None or clf.uses_images:
        return PRED_FLAG_MAX_WIDTH
    names = get_feature_set(clf.feature_set).names
    longest = len("missing:") + len(",".join(names)) + len(";no_xxxxxxxx:marginal_set")
    return min(longest, PRED_FLAG_MAX_WIDTH)


class _FitsSink:
    """Write a FITS file: primary HDU, table header for the final row count, rows.

    The header and the encoding of the rows are astropy's (``Table.write``) for
    the first chunk.  Later chunks are encoded by a direct numpy conversion to
    the same big-endian records, which is checked byte for byte against
    astropy's encoding on the first chunk and on a fully masked sample of it;
    if they differ anywhere, every chunk is encoded by astropy instead.
    """

    def __init__(self, path, n_rows, widths):
        self.path = path
        self.n_rows = n_rows
        self.widths = widths
        self.fh = None
        self.header = None
        self.written = 0
        self.fast = False

    @staticmethod
    def _encode(table):
        """Primary HDU bytes, table header and row bytes, as astropy writes ``table``."""
        from astropy.io import fits

        buf = io.BytesIO()
        table.write(buf, format="fits")
        raw = buf.getvalue()
        p_end = _header_end(raw, 0)
        p_end += _data_size(fits.Header.fromstring(raw[:p_end].decode("ascii")))
        h_end = _header_end(raw, p_end)
        header = fits.Header.fromstring(raw[p_end:h_end].decode("ascii"))
        if header.get("PCOUNT", 0):
            raise InvalidInputError("variable-length array columns cannot be streamed")
        n_bytes = header["NAXIS1"] * header["NAXIS2"]
        return raw[:p_end], header, raw[h_end:h_end + n_bytes], raw

    def _setup_fast(self, table, data, raw):
        """Prepare the numpy encoding; keep it only if it reproduces astropy's bytes."""
        from astropy.io import fits
        from astropy.table import Column, MaskedColumn

        try:
            with fits.open(io.BytesIO(raw)) as hdul:
                cols = hdul[1].columns
        except Exception:  # pragma: no cover - exotic headers
            return
        if any(c.bzero not in (None, 0) or c.bscale not in (None, 1) or c.format.p_format
               for c in cols):
            return
        if any(type(table[n]) not in (Column, MaskedColumn) for n in table.colnames):
            return
        if [c.name for c in cols] != table.colnames:
            return
        self.raw_dtype = np.dtype([(c.name, np.dtype(cols.dtype[c.name]).newbyteorder(">")
                                    if cols.dtype[c.name].kind in "iufc"
                                    else cols.dtype[c.name]) for c in cols])
        self.nulls = {c.name: c.null for c in cols}
        self.logical = {c.name for c in cols if c.format.format == "L"}
        self.dtypes = {n: table[n].dtype for n in table.colnames}
        try:
            ok = self._encode_fast(table) == data
            probe = table[: min(len(table), 8)].copy()
            for name in probe.colnames:
                if isinstance(probe[name], MaskedColumn):
                    probe[name].mask = True
            ok = ok and self._encode_fast(probe) == self._encode(probe)[2]
        except Exception:
            ok = False
        self.fast = bool(ok)

    def _encode_fast(self, table):
        # Each column is first made contiguous in its FITS type (cast, byte swap, nulls),
        # then copied into the records block by block, so that the strided writes of
        # one block stay in the CPU cache.
        fields = []
        for name in table.colnames:
            col = table[name]
            values = np.ma.getdata(col).view(np.ndarray)
            mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else None
            has_masked = mask is not None and bool(mask.any())
            target = self.raw_dtype[name]
            if name in self.logical:
                fill = bool(col.fill_value) if mask is not None else True
                values = np.where(values, ord("T"), ord("F")).astype(np.int8)
                if has_masked:
                    values[mask] = ord("T") if fill else ord("F")
            else:
                kind = values.dtype.kind
                if kind in "SU":
                    values = _ascii(values, target)
                    if has_masked:
                        values[mask] = b""
                elif kind in "iufc":
                    values = values.astype(target, copy=has_masked)
                    if has_masked:
                        values[mask] = np.nan if kind in "fc" else self.nulls[name]
                elif has_masked:
                    raise _NotStreamable(f"masked column '{name}' of kind {kind}")
            fields.append((name, values))
        out = np.empty(len(table), dtype=self.raw_dtype)
        for a in range(0, len(table), _ENCODE_BLOCK_ROWS):
            block = out[a:a + _ENCODE_BLOCK_ROWS]
            for name, values in fields:
                block[name] = values[a:a + _ENCODE_BLOCK_ROWS]
        return out.tobytes()

    def _fix_widths(self, table):
        for name, col in list(_string_columns(table)):
            width = self.widths.get(name)
            if width is None:
                continue
            values = np.ma.getdata(col)
            if _char_width(values.dtype) > width:  # values may not fit
                if name == "pred_flag":
                    values = _abbreviate(values, width)
                elif values.size and np.strings.str_len(values).max() > width:
                    raise InvalidInputError(
                        f"column '{name}' has values longer than the {width} characters "
                        "fixed for it by the first chunk; write this table without chunks")
            dtype = np.dtype(f"{col.dtype.kind}{width}")
            if values.dtype != dtype:
                values = values.astype(dtype)
                if hasattr(col, "mask"):
                    values = np.ma.MaskedArray(values, mask=np.ma.getmaskarray(col))
                table.replace_column(name, col.copy(data=values))
        return table

    def write(self, table):
        table = self._fix_widths(table.copy(copy_data=False))
        if self.header is None:
            # Header and encoding from a sample of the first chunk: the header does
            # not depend on the number of rows (NAXIS2 aside).
            sample = table[:_FITS_SAMPLE_ROWS]
            primary, header, data, raw = self._encode(sample)
            header["NAXIS2"] = self.n_rows
            self.header = header
            self._setup_fast(sample, data, raw)
            del raw
            if len(table) > len(sample):
                data = (self._encode_fast(table) if self.fast else self._checked(table))
            self.fh = open(self.path, "wb")
            self.fh.write(primary)
            self.fh.write(header.tostring().encode("ascii"))
        elif self.fast and table.colnames == list(self.dtypes) and all(
                table[n].dtype.newbyteorder("=") == self.dtypes[n].newbyteorder("=")
                for n in table.colnames):
            data = self._encode_fast(table)
        else:
            data = self._checked(table)
        self.fh.write(data)
        self.written += len(table)
        if self.written > self.n_rows:
            raise RuntimeError("more rows than the input declared")

    def _checked(self, table):
        """Astropy's encoding of the rows, after checking the header is the same."""
        _, header, data, _ = self._encode(table)
        header["NAXIS2"] = self.n_rows
        if header.tostring() != self.header.tostring():
            diff = [f"{a.image.strip()!r} != {b.image.strip()!r}"
                    for a, b in zip(self.header.cards, header.cards) if a.image != b.image]
            raise RuntimeError(f"the chunk at row {self.written} does not fit the FITS "
                               f"header written from the first chunk: "
                               f"{(diff or ['card count'])[0]}")
        return data

    def close(self):
        if self.fh is None:
            return
        try:
            if self.written != self.n_rows:
                raise RuntimeError(f"wrote {self.written} rows of {self.n_rows}")
            size = self.header["NAXIS1"] * self.n_rows
            self.fh.write(b"\0" * (-size % _FITS_BLOCK))
        finally:
            self.fh.close()
            self.fh = None

    def abort(self):
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _ascii(values, dtype):
    """Strings as ASCII bytes of ``dtype`` (``'S<n>'``), as astropy encodes them."""
    if values.dtype.kind == "U" and values.dtype.itemsize // 4 == dtype.itemsize and len(values):
        codes = values.view(np.uint32).reshape(len(values), dtype.itemsize)
        if codes.max() < 128:  # ASCII: keep the low byte of each UTF-32 code
            return codes.astype(np.uint8).view(dtype).reshape(len(values))
    return values.astype(dtype)  # raises for non-ASCII text, as astropy does


def _header_end(raw, start):
    """Offset just past the 2880-byte block holding the END card of a header at ``start``."""
    pos = start
    while pos < len(raw):
        block = raw[pos:pos + _FITS_BLOCK]
        for card in range(0, _FITS_BLOCK, 80):
            if block[card:card + 8] == b"END     ":
                return pos + _FITS_BLOCK
        pos += _FITS_BLOCK
    raise RuntimeError("no END card in FITS header")


def _data_size(header):
    naxis = header.get("NAXIS", 0)
    if not naxis:
        return 0
    size = abs(header["BITPIX"]) // 8
    for k in range(1, naxis + 1):
        size *= header[f"NAXIS{k}"]
    size = (size + header.get("PCOUNT", 0)) * header.get("GCOUNT", 1)
    return size + (-size % _FITS_BLOCK)


class _ParquetSink:
    """Write Parquet in astropy's layout, chunk by chunk.

    The schema is fixed by the first chunk: each `~astropy.table.MaskedColumn`
    (and each column that may be masked in a later chunk) is stored as data and
    ``<name>.mask`` columns, as astropy does for masked columns with masked
    values; string widths (``table::len::`` metadata) are the longest seen and
    are written into the footer when the file is closed.
    """

    def __init__(self, path, maybe_masked=()):
        self.path = path
        self.maybe_masked = set(maybe_masked)
        self.writer = None

    def _setup(self, table):
        import pyarrow as pa
        from astropy.table import Column, MaskedColumn, meta, serialize
        from astropy.utils.data_info import serialize_context_as

        for name in table.colnames:
            col = table[name]
            if type(col) not in (Column, MaskedColumn) or col.dtype.kind == "O":
                raise _NotStreamable(f"column '{name}' ({type(col).__name__})")
        self.masked = [n for n in table.colnames
                       if isinstance(table[n], MaskedColumn) or n in self.maybe_masked]
        # Let astropy describe the table, with every masked column holding a masked value.
        template = table[:1].copy()
        for name in self.masked:
            col = template[name]
            if not isinstance(col, MaskedColumn):
                template[name] = MaskedColumn(col, mask=np.ones(len(col), bool))
            else:
                col.mask = True
        with serialize_context_as("parquet"):
            encoded = serialize.represent_mixins_as_columns(template)
        self.meta_yaml = "\n".join(meta.get_yaml_from_table(encoded))
        self.columns = list(encoded.colnames)
        expected = []
        for name in table.colnames:
            expected.append(name)
            if name in self.masked:
                expected.append(f"{name}.mask")
        if self.columns != expected:
            raise _NotStreamable("unexpected column encoding")
        fields = []
        self.widths = {}
        for name in self.columns:
            dt = encoded[name].dtype
            if len(dt.shape):
                arrow = pa.list_(pa.from_numpy_dtype(dt.subdtype[0].type),
                                 int(np.prod(dt.shape)))
            else:
                arrow = pa.from_numpy_dtype(dt.type)
            base = dt.subdtype[0] if dt.subdtype else dt
            if base.kind in "SU":
                self.widths[name] = base
            fields.append((name, arrow))
        self.schema = pa.schema(fields, metadata=self._metadata())

    def _metadata(self):
        md = {}
        for name, base in self.widths.items():
            md[f"table::len::{name}"] = str(_char_width(base))
        md["table_meta_yaml"] = self.meta_yaml
        return {k.encode("utf-8"): v.encode("utf-8") for k, v in md.items()}

    def write(self, table):
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            if len(table) == 0:
                raise _NotStreamable("empty table")
            self._setup(table)
            self._initial = self._metadata()
            self.writer = pq.ParquetWriter(self.path, self.schema, version="2.4")
        arrays = []
        for name in table.colnames:
            col = table[name]
            data = np.ma.getdata(col)
            dt = data.dtype
            if dt.kind in "SU":
                old = self.widths[name]
                if _char_width(dt) > _char_width(old):
                    self.widths[name] = dt
            elif name not in self.masked and np.ma.is_masked(col):
                raise RuntimeError(f"column '{name}' became masked after the first chunk")
            arrays.append(self._array(data, self.schema.field(name).type))
            if name in self.masked:
                arrays.append(pa.array(np.ma.getmaskarray(col)))
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    @staticmethod
    def _array(data, arrow_type):
        import pyarrow as pa

        dt_new = data.dtype.newbyteorder("<")
        if len(data.dtype.shape) or data.ndim > 1:
            val = (np.split(data.ravel().astype(dt_new.base, copy=False), len(data))
                   if len(data) else [])
        else:
            val = data.astype(dt_new, copy=False)
        return pa.array(val, type=arrow_type)

    def close(self):
        if self.writer is None:
            return
        import base64

        final = self._metadata()
        if final != self._initial:
            schema = self.schema.with_metadata(final)
            md = {k.decode(): v.decode() for k, v in final.items()}
            # The reader takes the schema (and its metadata) from ARROW:schema.
            md["ARROW:schema"] = base64.b64encode(schema.serialize().to_pybytes()).decode()
            self.writer.add_key_value_metadata(md)
        self.writer.close()
        self.writer = None

    def abort(self):
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # pragma: no cover - the file is deleted anyway
                pass
            self.writer = None


class _TextSink:
    """ECSV or CSV: the first chunk's header, then each chunk's data lines."""

    def __init__(self, path, fmt):
        self.path = path
        self.fmt = fmt
        self.fh = None
        self.header = None

    def write(self, table):
        buf = io.StringIO()
        table.write(buf, format=self.fmt)
        text = buf.getvalue()
        lines = text.splitlines(keepends=True)
        n_header = 0
        while n_header < len(lines) and lines[n_header].startswith("#"):
            n_header += 1
        n_header += 1  # the line of column names
        header = "".join(lines[:n_header])
        if self.header is None:
            self.header = header
            self.fh = open(self.path, "w", encoding="utf-8", newline="")
            self.fh.write(header)
        elif header != self.header:
            raise _NotStreamable("the text header changed between chunks")
        self.fh.write(text[len(header):])

    def close(self):
        if self.fh is not None:
            self.fh.close()
            self.fh = None

    abort = close


class _NotStreamable(Exception):
    """This table cannot be written chunk by chunk; classify it in memory."""


# ----------------------------------------------------------------------------
# Summary of a classified catalog, accumulated chunk by chunk
# ----------------------------------------------------------------------------
class StreamSummary:
    """Counts over a classified catalog, accumulated chunk by chunk.

    Attributes
    ----------
    path : `pathlib.Path` or None
        The output file.
    n_rows : int
        Rows classified (including rows that could not be).
    meta : dict
        The output table's ``meta`` (model name, version, confidence...).
    counts : dict
        Predicted class -> number of rows.
    n_masked : int
        Rows that could not be classified.
    n_flagged : int
        Classified rows with a non-empty ``pred_flag``.
    set_sizes : dict
        Set-size column name -> {size: count}.
    truth_column : str or None
        Column of true classes, if any.
    n_true, n_correct : int
        With ``truth_column``: rows with both a prediction and a true class,
        and how many of them agree.
    chunk_size : int or None
        Rows per chunk used (None: classified in one piece).
    """

    def __init__(self, truth_column=None):
        self.truth_column = truth_column
        self.path = None
        self.n_rows = 0
        self.meta = {}
        self.counts = {}
        self.n_masked = 0
        self.n_flagged = 0
        self.set_sizes = {}
        self.n_true = 0
        self.n_correct = 0
        self.chunk_size = None

    @classmethod
    def from_table(cls, table, truth_column=None):
        """The summary of a whole classified table."""
        s = cls(truth_column)
        s.add(table)
        return s

    def add(self, table):
        """Add the counts of one classified chunk."""
        from .columns import decode_strings

        if not self.meta:
            self.meta = dict(table.meta)
        self.n_rows += len(table)
        pred = table["pred_class"]
        mask = np.ma.getmaskarray(pred)
        values, counts = np.unique(np.ma.getdata(pred)[~mask], return_counts=True)
        names = decode_strings(values) if len(values) else np.array([], str)
        for v, c in zip(names, counts):
            self.counts[str(v)] = self.counts.get(str(v), 0) + int(c)
        self.n_masked += int(mask.sum())
        flags = np.ma.getdata(table["pred_flag"])
        empty = b"" if flags.dtype.kind == "S" else ""
        self.n_flagged += int(np.sum((flags != empty) & ~np.ma.getmaskarray(table["pred_flag"])
                                     & ~mask))
        for name in table.colnames:
            if name.startswith("pred_set_size"):
                size = np.ma.masked_array(table[name]).compressed()
                hist = self.set_sizes.setdefault(name, {})
                for k, c in zip(*np.unique(size, return_counts=True)):
                    hist[int(k)] = hist.get(int(k), 0) + int(c)
        truth_name = self.truth_column
        if truth_name is not None and truth_name in table.colnames and len(table):
            truth = table[truth_name]
            ok = ~mask & ~np.ma.getmaskarray(truth)
            t_values, t_inverse = np.unique(np.ma.getdata(truth)[ok], return_inverse=True)
            p_values, p_inverse = np.unique(np.ma.getdata(pred)[ok], return_inverse=True)
            t_names = decode_strings(t_values) if len(t_values) else np.array([], str)
            p_names = decode_strings(p_values) if len(p_values) else np.array([], str)
            self.n_true += int(ok.sum())
            self.n_correct += int(np.sum(p_names[p_inverse] == t_names[t_inverse]))

    @property
    def accuracy(self):
        """Fraction of classified rows whose prediction equals ``class`` (NaN if none)."""
        return self.n_correct / self.n_true if self.n_true else float("nan")

    def lines(self):
        """Human-readable lines, as printed by ``sourceclf-classify``."""
        model = f"model: {self.meta.get('CLFMODEL')} v{self.meta.get('CLFMVER')}"
        options = []
        if self.meta.get("CLFPREC", "fp32") != "fp32":
            options.append(str(self.meta["CLFPREC"]))
        if "CLFCOMP" in self.meta:
            options.append("torch.compile" if self.meta["CLFCOMP"] else
                           "torch.compile failed: eager")
        if options:
            model += f" ({', '.join(options)})"
        lines = [model, f"rows: {self.n_rows}"]
        lines.append("predicted: " + (", ".join(f"{v} {c}" for v, c in sorted(
            self.counts.items())) or "none"))
        lines.append(f"not classified (see pred_flag): {self.n_masked}")
        if self.n_flagged:
            lines.append(f"classified but flagged: {self.n_flagged}")
        if self.set_sizes:
            from .conformal import parse_level_suffix
        for name, hist in self.set_sizes.items():
            if hist:
                suffix = name[len("pred_set_size"):].lstrip("_")
                level = (f"{parse_level_suffix(suffix):g}" if suffix else
                         str(self.meta.get("CLFCONF", "")))
                text = ", ".join(f"{k}: {hist.get(k, 0)}" for k in range(max(hist) + 1))
                lines.append(f"prediction sets at {level}: sizes {text}; "
                             f"empty sets {hist.get(0, 0)}")
        return lines


# ----------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------
class _ThreadChooser:
    """Choose torch's number of CPU threads by timing the model on a sample.

    With ``'auto'``, the forward pass of a sample of the first chunk's rows
    (`probe_rows`) is timed with torch's current number of threads and with a
    single thread, a few times each; the faster is used for the next `every`
    chunks, then the timing is repeated.  One thread often wins on a machine
    whose cores are shared with other jobs: OpenMP threads wait for each other
    at every layer.  Results do not depend on the number of threads.
    """

    every = 16
    probe_rows = 4096
    repeats = 3

    def __init__(self, threads, device, precision="fp32", compile=False):
        import torch

        self.torch = torch
        self.options = {"precision": precision, "compile": compile}
        self.initial = torch.get_num_threads()
        self.fixed = None
        self.candidates = []
        if threads not in (None, "auto"):
            try:
                self.fixed = int(threads)
            except (TypeError, ValueError):
                self.fixed = 0
            if self.fixed < 1:
                raise InvalidInputError(f"threads must be a positive number or 'auto', "
                                        f"got {threads!r}")
        elif self.initial > 1:
            from .device import resolve_device

            if resolve_device(device).type == "cpu":
                self.candidates = [self.initial, 1]
        self.best = self.fixed or self.initial
        self.sample = None
        self.k = 0

    def before(self, clf, chunk):
        """Set the number of threads for this chunk (timing the candidates if due)."""
        if self.candidates and self.k % self.every == 0:
            if self.sample is None:
                self.sample = self._sample(clf, chunk)
            if self.sample is not None and len(self.sample):
                self.best = min(self.candidates, key=lambda t: self._time(clf, t))
        if self.best != self.torch.get_num_threads():
            self.torch.set_num_threads(self.best)
        self.k += 1

    def _sample(self, clf, chunk):
        if clf.uses_images or clf.feature_set is None or not hasattr(clf, "logits"):
            self.candidates = []
            return None
        from .features import get_feature_set

        fm = get_feature_set(clf.feature_set).compute(chunk[: self.probe_rows])
        return fm.values[fm.valid]

    def _time(self, clf, threads):
        self.torch.set_num_threads(threads)
        best = float("inf")
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            clf.logits(self.sample, batch_size=len(self.sample), device="cpu", **self.options)
            best = min(best, time.perf_counter() - t0)
        return best

    def restore(self):
        if self.torch.get_num_threads() != self.initial:
            self.torch.set_num_threads(self.initial)


# ----------------------------------------------------------------------------
# classify_file
# ----------------------------------------------------------------------------
def _split_ext(path):
    from .cli import _split_ext

    return _split_ext(path)


def _temp_path(path):
    _, ext = _split_ext(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".part{ext}")
    os.close(fd)
    return Path(tmp)


def _open_source(path, fmt):
    if fmt == "fits" and not _is_gzip(path):
        source = _FitsSource(path)
        if source.streamable:
            try:  # astropy's reader on a slice of the memory map (see _chunk_hdu_class)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    next(iter(source.chunks(1)))
                return source
            except Exception:  # pragma: no cover - an astropy this code does not know
                pass
        source.close()
    elif fmt == "parquet":
        return _ParquetSource(path)
    return _TableSource(read_table(path, format=fmt))


def _fixed_widths(source, clf, levels):
    """Character widths of string columns for FITS output."""
    widths = dict(source.string_widths()) if hasattr(source, "string_widths") else {}
    if isinstance(source, _TableSource):
        widths = {n: _char_width(c.dtype) for n, c in _string_columns(source.table)}
    classes = list(clf.classes)
    widths["pred_class"] = max(len(c) for c in classes)
    set_width = max(1, len("|".join(classes)))
    from .conformal import set_columns

    for set_name, _ in set_columns(levels) if levels else []:
        widths[set_name] = set_width
    widths["pred_flag"] = flag_width(clf)
    return widths


def classify_file(input, output, *, chunk_size=None, model="auto", confidence=0.9,
                  overwrite=False, progress=None, threads="auto", truth_column=None,
                  precision="fp32", compile=False, **classify_kwargs):
    """Classify a catalog file chunk by chunk and write the result to another file.

    Peak memory depends on ``chunk_size``, not on the size of the catalog,
    when the input is FITS (binary table, uncompressed) or Parquet and the
    output is FITS, Parquet, ECSV or CSV.  Other formats are read (and, for
    outputs, written) whole.  The result is the same as
    ``classify(Table.read(input), ...)`` written with ``Table.write``: same
    rows, values, masks, units, descriptions and meta (see Notes for the
    exceptions).

    Parameters
    ----------
    input : str or path-like
        Catalog file; the format follows from the extension (``.fits``,
        ``.parquet``, ``.ecsv``, ``.csv``, ``.vot``, ``.hdf5``...).
    output : str or path-like
        File to write, format from its extension.  Written to a temporary
        file first and renamed into place when complete.
    chunk_size : int, optional
        Rows per chunk (default `DEFAULT_CHUNK_SIZE`).
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        As for `sourceclf.classify`; ``'auto'`` chooses from the first chunk's
        columns and the same model classifies every chunk.
    confidence : float, sequence of float or None
        Confidence level(s) of the prediction sets.
    overwrite : bool
        Replace an existing ``output``.
    progress : bool, optional
        Show a tqdm progress bar over rows (default: when standard error is a
        terminal).
    threads : int or 'auto'
        torch's number of CPU threads during the run (restored afterwards).
        ``'auto'`` times the model on a sample of rows with torch's current
        setting and with a single thread, uses the faster and times again
        every 16 chunks (one thread is often several times faster on a machine
        shared with other jobs); the results do not depend on it.
    truth_column : str, optional
        A column of true classes: the summary then counts how many
        predictions agree with it (`StreamSummary.accuracy`).
    precision : {'fp32', 'bf16', 'auto'}
        Floating-point format of the forward pass of torch models, as for
        `sourceclf.classify`: ``'fp32'`` (default), ``'bf16'`` (autocast to
        bfloat16) or ``'auto'`` (bf16 on a CUDA GPU that supports it, else
        fp32).  The thread-choice probes run in the same format.
    compile : bool
        Run the torch model through `torch.compile`, compiled once for the
        whole file (see `sourceclf.classify`).
    **classify_kwargs
        Passed on to `sourceclf.classify` (``score``, ``by``, ``device``,
        ``batch_size``, ``images``, ``cutouts``, ``mc_samples``,
        ``random_state``).  ``cutouts`` must be an array-like with one cutout
        per row (it is sliced with the chunks), else the catalog is
        classified in memory.

    Returns
    -------
    summary : `StreamSummary`
        Row counts, predicted classes, set sizes and the output meta.

    Raises
    ------
    InvalidInputError
        For unreadable or truncated inputs, an existing output without
        ``overwrite``, an output path equal to the input, unknown formats.

    Notes
    -----
    * In FITS output, string columns must have widths fixed before the first
      row is written: ``pred_class`` and ``pred_set`` are as wide as the model's
      classes allow, and ``pred_flag`` as wide as the model's longest possible
      flag, capped at `PRED_FLAG_MAX_WIDTH` characters (longer flags end with
      ``'...'``).  Their values are otherwise those of the in-memory result.
    * When a FITS input goes to a Parquet output, the input is scanned once
      beforehand for NaN and empty strings, so that the columns astropy would
      mask are stored as masked columns in every chunk.
    * Monte Carlo passes (``mc_samples``) and randomised conformity scores draw
      their random numbers per chunk: results are reproducible for a given
      ``chunk_size`` but differ from the in-memory ones.
    * On the CPU, photometric models give bit-identical probabilities whatever
      the chunking (batches are padded to whole blocks of rows), in fp32
      without ``compile`` at least: compiled kernels may differ in the last
      bit between the batch shapes they were compiled for.

    Examples
    --------
    >>> from sourceclf import classify_file
    >>> from sourceclf.demo import demo_catalog
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> demo_catalog(200).write(d / "cat.fits")
    >>> s = classify_file(d / "cat.fits", d / "out.fits", chunk_size=64, progress=False)
    >>> s.n_rows
    200
    """
    from .classification import _levels, choose_model, classify
    from .device import check_compile, check_precision
    from .models.registry import load_model
    from .progress import progress_bar

    input_path = _check_input(input)
    output = Path(output)
    in_fmt = _table_format(input_path)
    out_fmt = _table_format(output)
    if output.resolve() == input_path.resolve() or (
            output.exists() and os.path.samefile(output, input_path)):
        raise InvalidInputError("output path equals the input path; choose another output")
    if output.exists() and not overwrite:
        raise InvalidInputError(f"output file '{output}' exists; pass --overwrite "
                                "(overwrite=True) to replace it")
    if not output.parent.exists():
        raise InvalidInputError(f"output directory '{output.parent}' does not exist")
    if output.is_dir():
        raise InvalidInputError(f"output '{output}' is a directory")
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be positive, got {chunk_size}")
    levels = _levels(confidence)
    check_precision(precision)
    check_compile(compile)
    if levels:
        from . import conformal  # noqa: F401  (a slow import: before any chunk is timed)

    classify_kwargs.update(precision=precision, compile=compile)
    chooser = _ThreadChooser(threads, classify_kwargs.get("device", "auto"), precision,
                             compile)
    cutouts = classify_kwargs.pop("cutouts", None)
    with_images = cutouts is not None or classify_kwargs.get("images") is not None
    source = _open_source(input_path, in_fmt)
    sink = None
    tmp = None
    summary = StreamSummary(truth_column)
    summary.path = output
    try:
        whole = out_fmt not in STREAMED_OUTPUT_FORMATS
        if cutouts is not None and not (hasattr(cutouts, "__len__")
                                        and hasattr(cutouts, "__getitem__")
                                        and not isinstance(cutouts, (str, bytes, os.PathLike))
                                        and len(cutouts) == source.n_rows):
            whole = True
        if whole:
            table = _all_rows(source)
            result = classify(table, cutouts, model=model, confidence=confidence,
                              progress=progress, **classify_kwargs)
            summary.add(result)
            _write_whole(result, output, out_fmt)
            return summary
        clf = None
        tmp = _temp_path(output)
        with progress_bar(total=source.n_rows, enabled=progress, unit="src",
                          desc="classify", file=sys.stderr) as bar:
            start = 0
            for chunk in source.chunks(chunk_size):
                if clf is None:
                    if isinstance(model, str) and model == "auto":
                        model = choose_model(chunk, with_images=with_images)
                    clf = load_model(model)
                    sink = _make_sink(tmp, out_fmt, source, clf, levels, chunk_size)
                sub_cutouts = None if cutouts is None else cutouts[start:start + len(chunk)]
                chooser.before(clf, chunk)
                result = classify(chunk, sub_cutouts, model=clf, confidence=confidence,
                                  progress=False, **classify_kwargs)
                del chunk
                try:
                    sink.write(result)
                except _NotStreamable:
                    if start:
                        raise RuntimeError("a later chunk could not be streamed") from None
                    sink.abort()
                    return _fallback(source, output, tmp, summary, clf, confidence, cutouts,
                                     classify_kwargs, progress)
                summary.add(result)
                summary.chunk_size = chunk_size
                start += len(result)
                bar.update(len(result))
                del result
        sink.close()
        os.replace(tmp, output)
        tmp = None
        return summary
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        chooser.restore()
        source.close()
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _make_sink(tmp, fmt, source, clf, levels, chunk_size):
    if fmt == "fits":
        return _FitsSink(tmp, source.n_rows, _fixed_widths(source, clf, levels))
    if fmt == "parquet":
        maybe = ()
        if isinstance(source, _FitsSource):
            # astropy masks the NaN floats and empty strings of FITS tables, so a
            # column is masked in some chunks only: find those masked anywhere.
            maybe = source.masked_columns(chunk_size)
        return _ParquetSink(tmp, maybe)
    return _TextSink(tmp, fmt)


def _all_rows(source):
    """The whole input as one table."""
    if isinstance(source, _TableSource):
        return source.table
    from astropy.table import vstack

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        parts = list(source.chunks(max(source.n_rows, 1)))
    return parts[0] if len(parts) == 1 else vstack(parts)


def _fallback(source, output, tmp, summary, clf, confidence, cutouts, kwargs, progress):
    from .classification import classify

    table = _all_rows(source)
    result = classify(table, cutouts, model=clf, confidence=confidence, progress=progress,
                      **kwargs)
    summary.__init__(summary.truth_column)
    summary.path = output
    summary.add(result)
    _write_whole(result, output, _table_format(output))
    return summary


def _write_whole(table, output, fmt):
    tmp = _temp_path(output)
    try:
        kwargs = {"serialize_meta": True} if fmt == "hdf5" else {}
        table.write(tmp, format=fmt, overwrite=True, **kwargs)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
