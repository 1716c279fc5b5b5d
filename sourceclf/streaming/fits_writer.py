"""Writing a FITS binary table chunk by chunk, byte for byte as astropy would.

The header is written first, for the final number of rows (known from the
input), then the rows of each chunk; at the end the header is written again
with the meta of the whole catalog, and a ``.gz`` output is compressed.
String columns must have their widths fixed before the first row:
``pred_flag`` is as wide as the model's longest flag, capped at
`PRED_FLAG_MAX_WIDTH`.
"""

import gzip
import io
import shutil
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Column, MaskedColumn

from ..exceptions import InvalidInputError
from ..features import get_feature_set
from ..tableio import char_width, string_widths
from ..utils._files import replace_head
from .sinks import NotStreamable

__all__ = ["PRED_FLAG_MAX_WIDTH", "flag_width", "FitsSink"]


#: Width (characters) of ``pred_flag`` in streamed FITS outputs, whose string
#: widths must be fixed before the first row is written.  The column is as
#: wide as the longest flag the model can produce (every feature missing), but
#: no wider than this; longer flags (many missing features) are cut to this
#: width and end with ``'...'``.  Other formats keep flags whole.
PRED_FLAG_MAX_WIDTH = 96


_FITS_BLOCK = 2880
# Rows of the first chunk encoded by astropy to make the header and check the fast encoder.
_FITS_SAMPLE_ROWS = 1024
# Rows of FITS records filled at a time by the fast encoder (a few hundred kB).
_ENCODE_BLOCK_ROWS = 2048


def _abbreviate(values, width):
    """Cut strings longer than ``width`` characters, ending them with '...'."""
    values = np.asarray(values)
    long = np.strings.str_len(values) > width
    if long.any():
        values = values.copy()
        values[long] = [v[: width - 3] + "..." for v in values[long].tolist()]
    return values


def flag_width(clf, n_levels=1):
    """Width of ``pred_flag`` in streamed FITS output for a classifier.

    The longest flag the model can produce, capped at `PRED_FLAG_MAX_WIDTH`:
    for an unclassified row 'missing:' and every feature name, for a
    classified one 'out_of_domain', a conformal-set note and
    'empty_set:' with each of the ``n_levels`` confidence levels.
    """
    if clf.feature_set is None or clf.uses_images:
        return PRED_FLAG_MAX_WIDTH
    names = get_feature_set(clf.feature_set).names
    missing = len("missing:") + len(",".join(names)) + len(";no_xxxxxxxx:marginal_set")
    classified = (len("out_of_domain;no_xxxxxxxx:marginal_set;empty_set:")
                  + 6 * max(1, int(n_levels)))
    return min(max(missing, classified), PRED_FLAG_MAX_WIDTH)


class FitsSink:
    """Write a FITS file: primary HDU, table header for the final row count, rows.

    The header and the encoding of the rows are astropy's (``Table.write``) for
    the first chunk.  Later chunks are encoded by a direct numpy conversion to
    the same big-endian records, which is checked byte for byte against
    astropy's encoding on the first chunk and on a fully masked sample of it;
    if they differ anywhere, every chunk is encoded by astropy instead.
    """

    def __init__(self, path, n_rows, widths):
        self.path = path = Path(path)
        # A .gz output: the rows go to an uncompressed sibling, compressed at the end.
        self.compress = path.name.lower().endswith(".gz")
        self.raw_path = path.with_name(path.name + ".raw") if self.compress else path
        self.n_rows = n_rows
        self.widths = widths
        self.fh = None
        self.header = None
        self.sample = None
        self.primary = None
        self.written = 0
        self.fast = False

    @staticmethod
    def _encode(table):
        """Primary HDU bytes, table header and row bytes, as astropy writes ``table``."""
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
                    raise NotStreamable(f"masked column '{name}' of kind {kind}")
            fields.append((name, values))
        out = np.empty(len(table), dtype=self.raw_dtype)
        for a in range(0, len(table), _ENCODE_BLOCK_ROWS):
            block = out[a:a + _ENCODE_BLOCK_ROWS]
            for name, values in fields:
                block[name] = values[a:a + _ENCODE_BLOCK_ROWS]
        return out.tobytes()

    def _fix_widths(self, table):
        for name in string_widths(table):
            width = self.widths.get(name)
            if width is None:
                continue
            col = table[name]
            values = np.ma.getdata(col)
            if char_width(values.dtype) > width:  # values may not fit
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
            self.sample = sample
            self.primary = primary
            self._setup_fast(sample, data, raw)
            del raw
            if len(table) > len(sample):
                data = (self._encode_fast(table) if self.fast else self._checked(table))
            self.fh = open(self.raw_path, "wb")
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
                               "header written from the first chunk: "
                               f"{(diff or ['card count'])[0]}")
        return data

    def close(self, meta=None):
        """End the file; ``meta``, if given, is the table meta its header holds.

        A header whose new meta (counts over the whole catalog) takes as many
        2880-byte blocks as the old one is written over it; otherwise the
        rows are copied after the new header.
        """
        if self.fh is None:
            return
        try:
            if self.written != self.n_rows:
                raise RuntimeError(f"wrote {self.written} rows of {self.n_rows}")
            size = self.header["NAXIS1"] * self.n_rows
            self.fh.write(b"\0" * (-size % _FITS_BLOCK))
            old_header = self.header.tostring().encode("ascii")
            new_header = old_header
            if meta is not None and meta != self.sample.meta:
                sample = self.sample.copy(copy_data=False)
                sample.meta = meta
                header = self._encode(sample)[1]
                header["NAXIS2"] = self.n_rows
                new_header = header.tostring().encode("ascii")
            if len(new_header) == len(old_header):
                self.fh.seek(len(self.primary))
                self.fh.write(new_header)
        finally:
            self.fh.close()
            self.fh = None
        if len(new_header) != len(old_header):
            self._copy_after(new_header, len(self.primary) + len(old_header))
        if self.compress:
            with open(self.raw_path, "rb") as raw, \
                    gzip.open(self.path, "wb", compresslevel=6) as out:
                shutil.copyfileobj(raw, out, 1 << 22)
            self.raw_path.unlink()

    def _copy_after(self, header, data_offset):
        """Rewrite the file as the primary HDU, ``header``, and the rows from ``data_offset``."""
        replace_head(self.raw_path, self.primary + header, data_offset)

    def abort(self):
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        if self.compress:
            self.raw_path.unlink(missing_ok=True)


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
