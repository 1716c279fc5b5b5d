"""Writers of classified chunks: Parquet and text (ECSV, CSV).

A sink receives the classified chunks in order (``write``, each with the
first chunk's meta), then ends the file (``close``, with the meta of the whole
catalog: counts such as ``CLFNOOD`` add up over the chunks) or gives up
(``abort``); the FITS sink is
`~sourceclf.streaming.fits_writer.FitsSink`.  A sink raises `NotStreamable`
on the first chunk when the table cannot be written chunk by chunk; the
catalog is then classified in memory.
"""

import base64
import io

import numpy as np
from astropy.table import Column, MaskedColumn, serialize
from astropy.table.meta import get_yaml_from_table
from astropy.utils.data_info import serialize_context_as

from ..tableio import char_width
from ..utils._files import replace_head

__all__ = ["STREAMED_OUTPUT_FORMATS", "NotStreamable", "ParquetSink", "TextSink"]

#: Output formats written chunk by chunk (others are written from memory).
STREAMED_OUTPUT_FORMATS = ("fits", "parquet", "ascii.ecsv", "ascii.csv")


class NotStreamable(Exception):
    """This table cannot be written chunk by chunk; classify it in memory."""


class ParquetSink:
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

        for name in table.colnames:
            col = table[name]
            if type(col) not in (Column, MaskedColumn) or col.dtype.kind == "O":
                raise NotStreamable(f"column '{name}' ({type(col).__name__})")
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
        self.template = template
        encoded = self._encode_template()
        self.meta_yaml = "\n".join(get_yaml_from_table(encoded))
        self.columns = list(encoded.colnames)
        expected = []
        for name in table.colnames:
            expected.append(name)
            if name in self.masked:
                expected.append(f"{name}.mask")
        if self.columns != expected:
            raise NotStreamable("unexpected column encoding")
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

    def _encode_template(self):
        with serialize_context_as("parquet"):
            return serialize.represent_mixins_as_columns(self.template)

    def _metadata(self):
        md = {}
        for name, base in self.widths.items():
            md[f"table::len::{name}"] = str(char_width(base))
        md["table_meta_yaml"] = self.meta_yaml
        return {k.encode("utf-8"): v.encode("utf-8") for k, v in md.items()}

    def write(self, table):
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            if len(table) == 0:
                raise NotStreamable("empty table")
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
                if char_width(dt) > char_width(old):
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

    def close(self, meta=None):
        """End the file; ``meta``, if given, is the table meta stored in its footer."""
        if self.writer is None:
            return
        if meta is not None:
            self.template.meta = meta
            self.meta_yaml = "\n".join(get_yaml_from_table(self._encode_template()))
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


class TextSink:
    """ECSV or CSV: the first chunk's header, then each chunk's data lines.

    An ECSV header holds the table's meta: if ``close`` is given other meta
    (counts over the whole catalog), the header is written again and the
    data lines are copied after it.
    """

    def __init__(self, path, fmt):
        self.path = path
        self.fmt = fmt
        self.fh = None
        self.header = None
        self.template = None

    def _header(self, table):
        """The header lines of ``table`` and the whole text."""
        buf = io.StringIO()
        table.write(buf, format=self.fmt)
        text = buf.getvalue()
        lines = text.splitlines(keepends=True)
        n_header = 0
        while n_header < len(lines) and lines[n_header].startswith("#"):
            n_header += 1
        n_header += 1  # the line of column names
        return "".join(lines[:n_header]), text

    def write(self, table):
        header, text = self._header(table)
        if self.header is None:
            self.header = header
            self.template = table[:0].copy()
            self.fh = open(self.path, "w", encoding="utf-8", newline="")
            self.fh.write(header)
        elif header != self.header:
            raise NotStreamable("the text header changed between chunks")
        self.fh.write(text[len(header):])

    def close(self, meta=None):
        """End the file; ``meta``, if given, is the table meta an ECSV header holds."""
        if self.fh is None:
            return
        self.fh.close()
        self.fh = None
        if meta is None or self.fmt != "ascii.ecsv" or meta == self.template.meta:
            return
        self.template.meta = meta
        header, _ = self._header(self.template)
        if header == self.header:
            return
        # The data lines, after the new header, into a sibling of the (temporary) file.
        replace_head(self.path, header.encode("utf-8"), len(self.header.encode("utf-8")))

    def abort(self):
        if self.fh is not None:
            self.fh.close()
            self.fh = None
