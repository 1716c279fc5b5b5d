"""Catalog files: one-line errors, meta that survives, atomic and exclusive writes."""

import errno
import os
import signal
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from astropy.table import Table

from sourceclf import tableio
from sourceclf.cli import main
from sourceclf.demo import write_demo_catalog
from sourceclf.exceptions import InvalidInputError, SourceclfWarning
from sourceclf.progress import progress_bar, quiet_progress
from sourceclf.tableio import read_table, write_table
from sourceclf.utils import _files
from sourceclf.exceptions import Interrupted
from sourceclf.utils._files import atomic_path
from sourceclf.utils._signals import deferred_signals, interrupt_on_signals

META = {"CLFMODEL": "margnet-photometry-sg", "CLFMVER": "1.0", "CLFCONF": 0.9, "CLFNOOD": 3,
        "CLFSCORE": "lac", "DONE": True, "comments": ["first", "second"]}


def small_table(n=5):
    t = Table({"a": np.arange(n), "b": ["x"] * n, "f": np.linspace(0, 1, n)})
    t.meta.update(META)
    return t


def one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def listing(directory):
    return sorted(p.name for p in directory.iterdir())


# -- meta (item 13) -----------------------------------------------------------------------

def test_votable_keeps_meta_as_param_and_info(tmp_path):
    path = tmp_path / "t.vot"
    write_table(small_table(), path)
    text = path.read_text()
    assert '<PARAM ID="CLFMODEL"' in text and 'datatype="double" name="CLFCONF"' in text
    assert '<INFO ID="comments"' in text
    back = read_table(path)
    assert back.meta == META
    assert back.colnames == ["a", "b", "f"]
    assert len(Table.read(path)) == 5  # still a plain VOTable for other readers


def test_csv_warns_that_it_drops_meta_and_ecsv_keeps_it(tmp_path):
    with pytest.warns(SourceclfWarning, match=r"CSV cannot hold.*CLFMODEL.*\.ecsv"):
        write_table(small_table(), tmp_path / "t.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_table(small_table(), tmp_path / "t.ecsv")
        plain = Table({"a": [1, 2]})
        write_table(plain, tmp_path / "plain.csv")  # nothing to lose: no warning
    assert read_table(tmp_path / "t.ecsv").meta == META


@pytest.mark.parametrize("name", ["t.fits", "t.fits.gz", "t.ecsv", "t.vot", "t.parquet",
                                  "t.hdf5"])
def test_meta_added_to_a_written_file(tmp_path, name):
    """update_meta adds keys and leaves the rows, the other keys and FITS bytes as they were."""
    fmt = tableio.table_format(name)
    if fmt in tableio.FORMAT_LIBRARIES:
        pytest.importorskip(tableio.FORMAT_LIBRARIES[fmt])
    path = tmp_path / name
    table = small_table()
    del table.meta["comments"]  # FITS would hold them as COMMENT cards
    write_table(table, path)
    before = read_table(path)
    assert tableio.update_meta(path, {"CLFINJBA": 0.871, "CLFINJOK": False},
                               comments={"CLFINJBA": "balanced"}) is True
    after = read_table(path)
    assert after.meta["CLFINJBA"] == 0.871
    assert not after.meta["CLFINJOK"] and np.ndim(after.meta["CLFINJOK"]) == 0
    assert {k: v for k, v in after.meta.items() if not k.startswith("CLFINJ")} == before.meta
    for column in before.colnames:
        assert np.array_equal(after[column], before[column])
    assert listing(tmp_path) == [name]
    if fmt == "fits":
        from astropy.io import fits

        with fits.open(path) as hdul:
            assert hdul[1].header.comments["CLFINJBA"] == "balanced"
            assert hdul[1].header["CLFMODEL"] == META["CLFMODEL"]


def test_meta_not_added_to_csv_nor_half_written(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    Table({"a": [1, 2]}).write(path)
    text = path.read_text()
    assert tableio.update_meta(path, {"CLFINJBA": 0.9}) is False
    assert path.read_text() == text
    # A write that fails leaves the old file.
    from astropy.io import fits

    fits_path = tmp_path / "t.fits"
    write_table(small_table(), fits_path)
    old = fits_path.read_bytes()

    def full(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fits.HDUList, "writeto", full)
    with pytest.raises(InvalidInputError, match="No space left on device"):
        tableio.update_meta(fits_path, {"CLFINJBA": 0.9})
    assert fits_path.read_bytes() == old
    assert listing(tmp_path) == ["t.csv", "t.fits"]
    monkeypatch.undo()
    with pytest.raises(InvalidInputError, match="cannot write CLFINJBA = nan into the header"):
        tableio.update_meta(fits_path, {"CLFINJBA": float("nan")})
    assert fits_path.read_bytes() == old
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(tmp_path / "image.fits")
    with pytest.raises(InvalidInputError, match="image.fits' holds no table HDU"):
        tableio.update_meta(tmp_path / "image.fits", {"CLFINJBA": 0.9})


# -- silent row loss (item 8) -------------------------------------------------------------

def test_csv_with_an_unterminated_quote_is_refused(tmp_path):
    path = tmp_path / "cat.csv"
    Table({"a": np.arange(2000), "b": ["x"] * 2000}).write(path, format="ascii.csv")
    lines = path.read_text().splitlines()
    lines[10] = '9,"x'
    path.write_text("\n".join(lines) + "\n")
    assert len(Table.read(path, format="ascii.csv")) < 2000  # what astropy alone does
    with pytest.raises(InvalidInputError, match=r"cat\.csv.*line.*unterminated quote"):
        read_table(path)
    assert main([str(path), "-o", str(tmp_path / "out.fits"), "--no-progress"]) == 2


def test_csv_row_count_is_checked(tmp_path, monkeypatch):
    path = tmp_path / "cat.csv"
    path.write_text('a,b\n1,"two\nlines"\n\n3,x\n')  # a quoted newline, a blank line
    assert len(read_table(path)) == 2
    real = Table.read

    def lossy(*args, **kwargs):
        return real(*args, **kwargs)[:1]

    monkeypatch.setattr(Table, "read", lossy)
    with pytest.raises(InvalidInputError, match=r"read 1 rows from '.*cat\.csv' but it holds 2"):
        read_table(path)


# -- one-line errors (item 6, I/O) --------------------------------------------------------

@pytest.fixture
def fits_file(tmp_path):
    path = tmp_path / "cat.fits"
    small_table(2000).write(path)
    return path


@pytest.fixture
def demo_fits(tmp_path):
    from sourceclf.demo import demo_catalog

    path = tmp_path / "cat.fits"
    demo_catalog(40, random_state=1).write(path)
    return path


def test_unreadable_inputs(tmp_path, fits_file, monkeypatch, capsys):
    raw = fits_file.read_bytes()
    cases = {}
    cases["garbage.fits"] = b"\x00garbage!" * 400
    cases["short_header.fits"] = raw[:4000]
    cases["short_data.fits"] = raw[:-5000]
    bad = bytearray(raw)
    at = bad.find(b"TFORM1  = ")
    bad[at + 10:at + 30] = b"'QQQ'".ljust(20)
    cases["tform.fits"] = bytes(bad)
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InvalidInputError, match=name.replace(".", r"\.")):
            read_table(tmp_path / name)
        code = main([str(tmp_path / name), "-o", str(tmp_path / "out.fits"), "--no-progress"])
        assert code == 2, name
        assert name in one_line(capsys)
    (tmp_path / "dir.fits").mkdir()
    assert main([str(tmp_path / "dir.fits"), "--no-progress"]) == 2
    assert "directory" in one_line(capsys)

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(tableio, "open", denied, raising=False)
    with pytest.raises(InvalidInputError, match="cannot read input file .*Permission denied"):
        read_table(fits_file)
    assert "out.fits" not in listing(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs file permissions that apply (not root)")
def test_input_without_read_permission(fits_file):
    fits_file.chmod(0)
    try:
        with pytest.raises(InvalidInputError, match="Permission denied"):
            read_table(fits_file)
    finally:
        fits_file.chmod(0o644)


def test_output_places_that_cannot_be_written(tmp_path, fits_file, monkeypatch, capsys):
    (tmp_path / "afile").write_text("x")
    for output, message in [(tmp_path / "afile" / "out.fits", "not a directory"),
                            (tmp_path / "nodir" / "out.fits", "does not exist")]:
        with pytest.raises(InvalidInputError, match=message):
            write_table(small_table(), output)
        assert main([str(fits_file), "-o", str(output), "--no-progress"]) == 2
        assert message in one_line(capsys)
    with monkeypatch.context() as patched:
        patched.setattr(tableio.os, "access", lambda path, mode: False)
        with pytest.raises(InvalidInputError, match="cannot write to output directory"):
            write_table(small_table(), tmp_path / "out.fits")
    assert listing(tmp_path) == ["afile", "cat.fits"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs file permissions that apply (not root)")
def test_output_directory_without_write_permission(tmp_path, fits_file, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main([str(fits_file), "-o", str(locked / "o.fits"), "--no-progress"]) == 2
        assert "permission denied" in one_line(capsys)
    finally:
        locked.chmod(0o755)


def test_missing_writer_package(tmp_path, fits_file, monkeypatch, capsys):
    monkeypatch.setitem(tableio.FORMAT_LIBRARIES, "hdf5", "no_such_package_for_tests")
    with pytest.raises(InvalidInputError, match="needs the no_such_package_for_tests package"):
        write_table(small_table(), tmp_path / "x.h5")
    assert main([str(fits_file), "-o", str(tmp_path / "x.h5"), "--no-progress"]) == 2
    assert "pip install no_such_package_for_tests" in one_line(capsys)
    assert listing(tmp_path) == ["cat.fits"]


def test_object_column_to_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    t = small_table(2)
    t["o"] = np.array([{"a": 1}, None], dtype=object)
    with pytest.raises(InvalidInputError, match="column 'o' holds Python objects"):
        write_table(t, tmp_path / "x.parquet")
    assert listing(tmp_path) == []


def test_disk_full_keeps_the_old_file(tmp_path, demo_fits, monkeypatch, capsys):
    out = tmp_path / "out.fits"
    out.write_bytes(b"previous output")

    def full(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Table, "write", full)
    with pytest.raises(InvalidInputError, match="No space left on device"):
        write_table(small_table(), out, overwrite=True)
    assert out.read_bytes() == b"previous output"
    assert listing(tmp_path) == ["cat.fits", "out.fits"]
    monkeypatch.undo()

    # A streamed run: the sink's writes fail.
    from sourceclf.streaming.fits_writer import FitsSink

    def full_sink(self, table):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(FitsSink, "write", full_sink)
    code = main([str(demo_fits), "-o", str(out), "--overwrite", "--no-progress",
                 "--model", "margnet-photometry-sg", "--chunk-size", "16", "--threads", "1"])
    assert code == 2 and "No space left on device" in one_line(capsys)
    assert out.read_bytes() == b"previous output"
    assert listing(tmp_path) == ["cat.fits", "out.fits"]


# -- atomic, exclusive publication (items 2 and 4) ----------------------------------------

def test_exclusive_publication_keeps_a_file_that_appeared(tmp_path):
    out = tmp_path / "out.fits"
    with pytest.raises(InvalidInputError, match="created by someone else"):
        with atomic_path(out, overwrite=False) as tmp:
            tmp.write_bytes(b"mine")
            out.write_bytes(b"theirs")
    assert out.read_bytes() == b"theirs"
    assert listing(tmp_path) == ["out.fits"]


def test_threads_writing_one_new_file(tmp_path):
    out = tmp_path / "out.ecsv"
    n = 4
    barrier = threading.Barrier(n)
    outcome = [None] * n

    class Slow(Table):
        def write(self, *args, **kwargs):
            super().write(*args, **kwargs)
            barrier.wait(timeout=30)  # every thread past its existence check

    def write(k):

        t = Slow(small_table(3 + k))
        try:
            write_table(t, out)
            outcome[k] = "ok"
        except InvalidInputError as exc:
            outcome[k] = str(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcome.count("ok") == 1, outcome
    assert all("created by someone else" in o for o in outcome if o != "ok")
    winner = outcome.index("ok")
    assert len(read_table(out)) == 3 + winner
    assert listing(tmp_path) == ["out.ecsv"]


def test_processes_writing_one_new_file(tmp_path):
    out = tmp_path / "out.ecsv"
    script = (
        "import sys, time\n"
        "from astropy.table import Table\n"
        "from sourceclf.tableio import write_table\n"
        "from sourceclf.exceptions import InvalidInputError\n"
        "t = Table({'a': list(range(int(sys.argv[1])))})\n"
        "start = float(sys.argv[2])\n"
        "class Slow(Table):\n"
        "    def write(self, *a, **k):\n"
        "        super().write(*a, **k)\n"
        "        time.sleep(max(0.0, start - time.time()))\n"
        "try:\n"
        "    write_table(Slow(t), sys.argv[3])\n"
        "except InvalidInputError as exc:\n"
        "    print(exc, file=sys.stderr); sys.exit(2)\n")
    import time

    start = time.time() + 8.0
    procs = [subprocess.Popen([sys.executable, "-c", script, str(3 + k), str(start), str(out)],
                              stderr=subprocess.PIPE, text=True) for k in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2, 2, 2], errors
    assert len(read_table(out)) == 3 + codes.index(0)
    assert listing(tmp_path) == ["out.ecsv"]


def test_temporary_names_and_fsync(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    out = tmp_path / "out.fits"
    with atomic_path(out) as tmp:
        assert tmp.name.startswith(f".out.fits.sourceclf-{_files._host()}-{os.getpid()}-")
        assert tmp.name.endswith(".part.fits")
        tmp.write_bytes(b"data")
    assert len(synced) == 2  # the file, then its directory
    assert out.read_bytes() == b"data"


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    host = _files._host()
    stale = tmp_path / f".out.fits.sourceclf-{host}-{dead_pid}-0123abcd.part.fits"
    stale_gz = tmp_path / f".out.fits.sourceclf-{host}-{dead_pid}-0123abce.part.fits.raw"
    alive = tmp_path / f".out.fits.sourceclf-{host}-{os.getppid()}-0123abcd.part.fits"
    elsewhere = tmp_path / f".out.fits.sourceclf-otherhost-{dead_pid}-0123abcd.part.fits"
    other = tmp_path / f".other.fits.sourceclf-{host}-{dead_pid}-0123abcd.part.fits"
    for p in (stale, stale_gz, alive, elsewhere, other):
        p.write_bytes(b"partial")
    with pytest.warns(SourceclfWarning, match=r"removed 2 temporary file\(s\) of .*out\.fits"):
        write_table(small_table(), tmp_path / "out.fits")
    assert listing(tmp_path) == sorted(p.name for p in (alive, elsewhere, other)) + ["out.fits"]


def test_terminating_signals_raise_and_clean_up(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out.fits"
    out.write_bytes(b"old")
    with pytest.raises(Interrupted) as info:
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"new, partial")
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
    assert info.value.signum == signal.SIGTERM
    assert isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is before
    assert listing(tmp_path) == ["out.fits"] and out.read_bytes() == b"old"
    # A signal the caller ignores (nohup ignores SIGHUP) stays ignored.
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with interrupt_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)


def test_deferred_signals_hold_then_deliver(ctrl_c):
    """A signal inside the body is delivered once it ends, once, by its own handler."""
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # twice: still one KeyboardInterrupt
            reached.append("end of body")
    assert reached == ["end of body"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with interrupt_on_signals():
        handler = signal.getsignal(signal.SIGTERM)
        with pytest.raises(Interrupted) as info:
            with deferred_signals():
                signal.raise_signal(signal.SIGTERM)
                reached.append("again")
        assert info.value.signum == signal.SIGTERM and reached[-1] == "again"
        assert signal.getsignal(signal.SIGTERM) is handler
    with deferred_signals():  # nothing held: nothing raised, handlers untouched
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_deferred_signals_leave_default_and_ignored_actions_alone():
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with deferred_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
            signal.raise_signal(signal.SIGHUP)  # ignored, as before
    finally:
        signal.signal(signal.SIGHUP, old)


# -- the demo (item 4) --------------------------------------------------------------------

def test_demo_never_replaces_a_catalog(tmp_path, capsys, monkeypatch):
    mine = tmp_path / "my_catalog.fits"
    small_table(8000).write(mine)
    before = mine.read_bytes()
    assert main(["--demo", str(mine), "--no-progress"]) == 2
    assert "is not the demo catalog" in one_line(capsys)
    assert mine.read_bytes() == before
    assert listing(tmp_path) == ["my_catalog.fits"]
    # The demo file of an earlier demo run is used again, not rewritten.
    demo = tmp_path / "demo.ecsv"
    _, written = write_demo_catalog(demo, 20)
    stamp = demo.stat().st_mtime_ns
    table, written = write_demo_catalog(demo, 20)
    assert not written and len(table) == 20 and demo.stat().st_mtime_ns == stamp
    _, written = write_demo_catalog(mine, 20, overwrite=True)
    assert written and len(read_table(mine)) == 20


# -- progress bars (item 18) --------------------------------------------------------------

def test_quiet_progress_hides_inner_bars():
    with progress_bar(total=3, enabled=True, disable=True) as outer:
        with quiet_progress():
            with progress_bar(total=3, enabled=True) as inner:
                assert type(inner).__name__ == "_NoBar"
        assert type(outer).__name__ != "_NoBar"


def test_a_csv_with_a_byte_order_mark_keeps_its_first_column_name(tmp_path):
    """Excel's "CSV UTF-8" starts the file with a byte-order mark."""
    from sourceclf.tableio import read_table

    path = tmp_path / "excel.csv"
    path.write_text("ra,dec,r\n10.0,1.0,18.5\n11.0,2.0,19.5\n", encoding="utf-8-sig")
    table = read_table(path)
    assert table.colnames == ["ra", "dec", "r"]
    assert list(table["ra"]) == [10.0, 11.0]


@pytest.mark.parametrize("separator, said", [(";", "semicolons"), ("\t", "tabs")])
def test_a_csv_not_separated_by_commas_is_named(tmp_path, separator, said):
    path = tmp_path / "europe.csv"
    path.write_text(separator.join(["ra", "dec", "r"]) + "\n"
                    + separator.join(["10.0", "1.0", "18.5"]) + "\n")
    with pytest.raises(InvalidInputError) as excinfo:
        read_table(path)
    message = str(excinfo.value)
    assert "\n" not in message and f"separated by {said}, not commas" in message


def test_a_fits_file_of_several_tables_says_which_is_read(tmp_path):
    """One line naming the tables, not astropy's warning, when the catalog may not be first."""
    from astropy.io import fits

    from sourceclf.streaming.sources import open_source

    first = fits.BinTableHDU(Table({"ra": [10.0], "dec": [1.0]}), name="SOURCES")
    second = fits.BinTableHDU(Table({"x": [1]}), name="OTHER")
    path = tmp_path / "two.fits"
    fits.HDUList([fits.PrimaryHDU(), first, second]).writeto(path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        source = open_source(path, "fits")
        source.close()
    texts = [str(w.message) for w in record if issubclass(w.category, SourceclfWarning)]
    assert texts == [f"'{path}' holds 2 tables, in HDUs 1 (SOURCES), 2 (OTHER); the first, "
                     "HDU 1, is read as the catalog"]


@pytest.mark.parametrize("text, rows", [
    ("# a survey's preamble, with a comma\n# another line\nra,dec,r\n10.0,1.0,18.5\n", 1),
    ("#ra,dec,r\n10.0,1.0,18.5\n11.0,2.0,19.5\n", 2),  # the header written as a comment
])
def test_csv_comment_lines_above_the_header(tmp_path, text, rows):
    path = tmp_path / "commented.csv"
    path.write_text(text)
    table = read_table(path)
    assert table.colnames == ["ra", "dec", "r"] and len(table) == rows


def test_a_unit_fits_cannot_hold_is_refused_before_the_run(tmp_path, monkeypatch):
    """ra in hourangle, written to FITS: it failed after classifying the whole catalog."""
    from sourceclf import classification
    from sourceclf.streaming import classify_file

    table = Table({"u": [19.5], "g": [18.2], "r": [17.6], "i": [17.4], "z": [17.3],
                   "ra": [10.0]})
    table["ra"].unit = "hourangle"
    table["r"] = [100.0]
    table["r"].unit = "nmgy"  # not FITS either, but written as text: no error
    table.write(tmp_path / "cat.ecsv")

    def no_run(*args, **kwargs):
        raise AssertionError("classified before the output was checked")

    monkeypatch.setattr(classification, "classify", no_run)
    with pytest.raises(InvalidInputError) as excinfo:
        classify_file(tmp_path / "cat.ecsv", tmp_path / "out.fits", model="ugriz-sgq",
                      progress=False)
    message = str(excinfo.value)
    assert "\n" not in message and "cannot be FITS" in message and "column 'ra'" in message
    assert not (tmp_path / "out.fits").exists()


@pytest.mark.parametrize("suffix", [".fits", ".parquet", ".ecsv"])
def test_a_per_band_array_column_csv_cannot_hold_is_refused_before_the_run(
        tmp_path, monkeypatch, suffix):
    """SDSS's 5-value modelMag column, written to CSV: it failed only at the write,
    after classifying the whole catalog (streamed inputs, FITS and Parquet)."""
    from sourceclf import classification
    from sourceclf.streaming import classify_file

    table = Table({"modelMag": [[19.5, 18.2, 17.6, 17.4, 17.3]] * 3})
    table.write(tmp_path / f"cat{suffix}")

    def no_run(*args, **kwargs):
        raise AssertionError("classified before the output was checked")

    monkeypatch.setattr(classification, "classify", no_run)
    with pytest.raises(InvalidInputError) as excinfo:
        classify_file(tmp_path / f"cat{suffix}", tmp_path / "out.csv", model="ugriz-sgq",
                      progress=False)
    message = str(excinfo.value)
    assert "\n" not in message and "column 'modelMag' holds 5 values per row" in message
    assert "CSV cannot store" in message
    assert not (tmp_path / "out.csv").exists()


def test_a_column_name_fits_cannot_hold_is_one_line(tmp_path):
    """astropy raises an AssertionError for a column name longer than a FITS card."""
    from sourceclf.tableio import check_writable_columns

    table = Table({"x" * 80: [1.0]})
    with pytest.raises(InvalidInputError) as excinfo:
        check_writable_columns(table, "fits", tmp_path / "out.fits")
    message = str(excinfo.value)
    assert "\n" not in message and "cannot be FITS" in message


def test_an_empty_file_is_said_to_be_empty(tmp_path):
    """A 0-byte CSV got 'read 0 rows ... holds 0 records; check its quotes'."""
    path = tmp_path / "cat.csv"
    path.touch()
    with pytest.raises(InvalidInputError, match=r"^input file '.*cat.csv' is empty \(0 bytes\)$"):
        read_table(path)
    assert main([str(path), "-o", str(tmp_path / "out.fits")]) == 2


def test_astropys_unit_warnings_are_not_repeated_for_every_column(tmp_path, capsys):
    """astropy's UnitsWarning: three lines for each column, also for units sourceclf reads
    (nanomaggies, DEGREES) and for columns never read; one read as an input with a unit
    nobody knows is refused with one line."""
    from astropy.io import fits

    from sourceclf.streaming import classify_file

    cols = [fits.Column(name=b, format="E", unit="nanomaggies", array=np.full(3, 100.0))
            for b in "ugriz"]
    cols += [fits.Column(name="x", format="E", unit="furlongs", array=np.ones(3)),
             fits.Column(name="ra", format="E", unit="DEGREES", array=np.ones(3))]
    fits.BinTableHDU.from_columns(cols).writeto(tmp_path / "cat.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's own, reading here
        Table.read(tmp_path / "cat.fits").write(tmp_path / "cat.ecsv")
    for name in ("cat.fits", "cat.ecsv"):  # streamed, read whole
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = classify_file(tmp_path / name, tmp_path / f"out-{name}",
                                   model="ugriz-sgq", progress=False)
        assert [str(w.message) for w in caught if "unit" in str(w.message).lower()] == []
        assert result.n_rows == 3
    out = Table.read(tmp_path / "out-cat.fits", unit_parse_strict="silent")
    np.testing.assert_allclose(out["r"], 100.0)  # the input, as it was
    assert str(out["x"].unit) == "furlongs"
    with fits.open(tmp_path / "cat.fits") as hdul:
        hdul[1].columns.change_unit("r", "furlongs")
        hdul.writeto(tmp_path / "bad.fits")
    assert main([str(tmp_path / "bad.fits"), "-o", str(tmp_path / "x.fits")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "column 'r' has unit 'furlongs'" in err[0], err
