"""Property tests: corrupt catalog files through `classify_file` and the CLI.

Hypothesis writes small catalogs as FITS, ECSV, CSV, VOTable and Parquet,
then corrupts them (truncated, bytes overwritten, garbage appended, a stray
quote, empty, misnamed) and classifies them, with or without an existing
output.  The property: either every row the file holds is written (the count
read by an independent parser: Python's ``csv`` module, the FITS header,
Parquet metadata, VOTable rows), or the run is refused with one
`~sourceclf.exceptions.SourceclfError` line (CLI: exit 2, one error line on
standard error, no traceback); a refused run leaves no output behind, an
existing output byte for byte as it was, and never a temporary file.
"""

import contextlib
import csv
import io
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sourceclf.cli import main
from sourceclf.exceptions import SourceclfError
from sourceclf.streaming import classify_file
from test_properties_tables import EXAMPLES, assert_one_line, save_tiny_photometric
from test_properties_tables import one_thread  # noqa: F401  (autouse fixture)

#: Extension -> astropy format of the files written.
FORMATS = {".fits": "fits", ".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".vot": "votable",
           ".parquet": "parquet"}
TEXT = (".ecsv", ".csv", ".vot")
OLD_OUTPUT = b"an output from an earlier run\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny ugriz model directory (the CLI takes a path)."""
    return save_tiny_photometric(tmp_path_factory.mktemp("tiny-files") / "ugriz", "ugriz",
                                 ["GALAXY", "QSO", "STAR"])


@pytest.fixture(scope="module")
def model(model_dir):
    from sourceclf import load_model

    return load_model(model_dir)


def catalog(n, seed):
    """u g r i z with a few NaN, sentinels and masked values, an id and a label column."""
    rng = np.random.default_rng(seed)
    table = Table({"rowid": np.arange(n)})
    for band in "ugriz":
        values = rng.uniform(15, 22, n)
        values[rng.random(n) < 0.1] = -9999.0
        values[rng.random(n) < 0.05] = np.nan
        table[band] = MaskedColumn(values, mask=rng.random(n) < 0.05)
    table["label"] = rng.choice(["STAR", "GALAXY", "QSO, bright"], n)
    return table


@st.composite
def corrupted_files(draw):
    """(bytes, extension written, extension named, what was done) of a catalog file."""
    n = draw(st.integers(0, 25))
    table = catalog(n, draw(st.integers(0, 1000)))
    ext = draw(st.sampled_from(sorted(FORMATS)))
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        path = Path(tmp) / f"catalog{ext}"
        table.write(path, format=FORMATS[ext])
        data = path.read_bytes()
    how = draw(st.sampled_from(["none", "none", "truncate", "overwrite", "append", "quote",
                                "empty", "garbage", "misnamed"]))
    named = ext
    if how == "truncate" and data:
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif how == "overwrite" and data:
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = bytes(data)
    elif how == "append":
        data += draw(st.binary(min_size=1, max_size=64))
    elif how == "quote":
        lines = data.split(b"\n")
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        col = draw(st.integers(0, len(lines[at])))
        lines[at] = lines[at][:col] + b'"' + lines[at][col:]
        data = b"\n".join(lines)
    elif how == "empty":
        data = b""
    elif how == "garbage":
        data = draw(st.binary(min_size=1, max_size=300))
    elif how == "misnamed":
        named = draw(st.sampled_from([e for e in FORMATS if e != ext]))
    return data, ext, named, how


def rows_in_file(path, ext):
    """Rows the file holds by an independent reading, or None if it cannot be read."""
    data = path.read_bytes()
    try:
        if ext in (".csv", ".ecsv"):
            text = data.decode("utf-8")
            lines = [x for x in text.splitlines(True) if not x.startswith("#")]
            reader = csv.reader(lines, strict=True, delimiter="," if ext == ".csv" else " ",
                                skipinitialspace=False)
            records = [r for r in reader if r]
            return len(records) - 1 if records else None
        if ext == ".vot":
            import xml.etree.ElementTree as ET

            root = ET.fromstring(data)
            return sum(1 for el in root.iter() if el.tag.endswith("TR"))
        if ext == ".fits":
            from astropy.io import fits

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return int(fits.getheader(io.BytesIO(data), 1)["NAXIS2"])
        import pyarrow.parquet as pq

        return pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
    except Exception:  # noqa: BLE001 - any failure means "this parser cannot read it"
        return None


def check_run(directory, source, output, expected_rows, had_output, run):
    """Run ``run()``; check the files left in ``directory`` either way."""
    before = set(os.listdir(directory))
    refused = run()
    after = set(os.listdir(directory))
    if refused is not None:
        if had_output:
            assert output.read_bytes() == OLD_OUTPUT, "a refused run changed the old output"
        else:
            assert not output.exists(), "a refused run left an output"
        assert after == before, f"files left behind: {sorted(after - before)}"
        event(f"refused: {refused[:50]}")
        return
    assert after == before | {output.name}, f"files left behind: {sorted(after - before)}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written = Table.read(output, format=FORMATS[output.suffix])
    event("written")
    assert expected_rows is not None, (
        f"{source.name} is unreadable to an independent parser, yet it was classified into "
        f"{len(written)} rows")
    assert len(written) == expected_rows, (
        f"{len(written)} rows written from a file of {expected_rows} rows")
    assert "pred_class" in written.colnames and "pred_flag" in written.colnames


def _setup(directory, data, ext, named, out_ext, had_output):
    source = directory / f"catalog{named}"
    source.write_bytes(data)
    output = directory / f"classified{out_ext}"
    if had_output:
        output.write_bytes(OLD_OUTPUT)
    return source, output, rows_in_file(source, ext) if named == ext else None


_OUTPUT = st.sampled_from(sorted(FORMATS))
_CHUNK = st.sampled_from([None, 1, 4])


@settings(max_examples=2 * EXAMPLES)
@given(file=corrupted_files(), out_ext=_OUTPUT, had_output=st.booleans(),
       overwrite=st.booleans(), chunk_size=_CHUNK)
def test_classify_file_on_corrupt_files(model, file, out_ext, had_output, overwrite,
                                        chunk_size):
    data, ext, named, how = file
    event(f"{ext} {how}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        source, output, rows = _setup(directory, data, ext, named, out_ext, had_output)

        def run():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    classify_file(source, output, model=model, chunk_size=chunk_size,
                                  overwrite=overwrite, progress=False, threads=1)
            except SourceclfError as exc:
                assert_one_line(exc)
                return str(exc)
            assert overwrite or not had_output, "an existing output replaced without overwrite"
            return None

        check_run(directory, source, output, rows, had_output, run)


@settings(max_examples=EXAMPLES)
@given(file=corrupted_files(), out_ext=_OUTPUT, had_output=st.booleans(),
       overwrite=st.booleans(), chunk_size=_CHUNK)
def test_cli_on_corrupt_files(model_dir, file, out_ext, had_output, overwrite, chunk_size):
    data, ext, named, how = file
    event(f"{ext} {how}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        source, output, rows = _setup(directory, data, ext, named, out_ext, had_output)
        argv = [str(source), "-o", str(output), "--model", str(model_dir), "--no-progress",
                "--threads", "1"]
        argv += ["--overwrite"] if overwrite else []
        argv += ["--chunk-size", str(chunk_size)] if chunk_size else []

        def run():
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    status = main(argv)
            return cli_outcome(status, stderr.getvalue(), overwrite or not had_output)

        check_run(directory, source, output, rows, had_output, run)


def cli_outcome(status, stderr, may_write):
    """None for a success, the error line for a refusal; asserts the CLI's contract."""
    assert "Traceback" not in stderr, stderr
    errors = [x for x in stderr.splitlines() if x.startswith("sourceclf-classify: error:")]
    if status == 0:
        assert may_write, "an existing output replaced without --overwrite"
        assert not errors, stderr
        return None
    assert status == 2, f"exit status {status}: {stderr}"
    assert len(errors) == 1 and stderr.splitlines()[-1] == errors[0], stderr
    return errors[0]


def _subprocess_file(directory, how):
    source = directory / ("catalog.fits" if how == "truncated FITS" else "catalog.csv")
    table = catalog(2000, 0)
    if how == "truncated FITS":
        table.write(source)
        source.write_bytes(source.read_bytes()[:20000])
    elif how == "unterminated quote":
        table.write(source, format="ascii.csv")
        lines = source.read_bytes().split(b"\n")
        lines[10] = b'"' + lines[10]
        source.write_bytes(b"\n".join(lines))
    else:
        source.write_bytes(b"")
    return source


@pytest.mark.parametrize("how", [
    "truncated FITS", "unterminated quote", "empty CSV"])
def test_cli_subprocess_on_corrupt_files(model_dir, tmp_path, how):
    """The installed command: exit 2, one line on stderr, the old output intact."""
    source = _subprocess_file(tmp_path, how)
    output = tmp_path / "out.fits"
    output.write_bytes(OLD_OUTPUT)
    before = set(os.listdir(tmp_path))
    run = subprocess.run([sys.executable, "-m", "sourceclf.cli", str(source), "-o", str(output),
                          "--model", str(model_dir), "--overwrite", "--no-progress",
                          "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert cli_outcome(run.returncode, run.stderr, True) is not None, run.stdout
    assert output.read_bytes() == OLD_OUTPUT
    assert set(os.listdir(tmp_path)) == before
