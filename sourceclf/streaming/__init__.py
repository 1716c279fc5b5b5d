"""Classify catalogs larger than memory, chunk by chunk.

`classify_file` reads a catalog file in chunks of rows, classifies each chunk
with `sourceclf.classify` (the model is chosen and loaded once, on the first
chunk) and writes the result incrementally, so that peak memory depends on the
chunk size, not on the catalog:

* FITS binary tables are read one slice of rows at a time (plain reads at the
  table's data offset, no memory map) and converted by astropy's own FITS table
  reader (masks for NaN, null values and empty strings, units, column
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
published only when complete, so an interrupted run (an exception, Ctrl-C,
SIGTERM or SIGHUP) leaves the previous state: no partial file (see
`sourceclf.utils._files.atomic_path`).
"""

from ..tableio import read_table
from .api import DEFAULT_CHUNK_SIZE, classify_file
from .fits_writer import PRED_FLAG_MAX_WIDTH, flag_width
from .sinks import STREAMED_OUTPUT_FORMATS
from .sources import STREAMED_INPUT_FORMATS
from .summary import StreamSummary

__all__ = ["classify_file", "read_table", "StreamSummary", "DEFAULT_CHUNK_SIZE",
           "PRED_FLAG_MAX_WIDTH", "STREAMED_INPUT_FORMATS", "STREAMED_OUTPUT_FORMATS",
           "flag_width"]
