"""Interrupting and killing a streamed run: the previous output survives, nothing is left.

``sourceclf-classify`` runs in a subprocess on a catalog that takes a while in
small chunks; a signal is sent early (as soon as the temporary output exists)
or mid-stream (once it holds several chunks).  SIGINT, SIGTERM and SIGHUP
must remove the temporary file and exit with 128 + the signal number; SIGKILL
cannot be caught, so its temporary file must be removed, with a warning, by
the next run that writes the same output.  The previous output must keep the
same bytes throughout.  Also: Ctrl-C while a FITS input is read chunk by
chunk never crashes the interpreter (it used to SIGSEGV: NumPy 2.4 crashes when
Ctrl-C lands inside astropy's stripping of a string column, so a signal is held
while a chunk is converted).
"""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sourceclf.demo import demo_catalog

PREVIOUS = b"the previous output, which must survive"
MODEL = "margnet-photometry-sg"


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("catalogs")
    big = directory / "big.fits"
    demo_catalog(20_000, random_state=0).write(big)
    small = directory / "small.fits"
    demo_catalog(50, random_state=1).write(small)
    return big, small


def start(input_path, output):
    return subprocess.Popen(
        [sys.executable, "-m", "sourceclf.cli", str(input_path), "-o", str(output),
         "--overwrite", "--model", MODEL, "--chunk-size", "200", "--threads", "1",
         "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def temporaries(output):
    return [p for p in output.parent.iterdir()
            if p.name.startswith(f".{output.name}.sourceclf-")]


def wait_for_temporary(proc, output, min_bytes, timeout=300):
    """Wait until the run's temporary output holds ``min_bytes``; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        for path in temporaries(output):
            try:
                if path.stat().st_size >= min_bytes:
                    return True
            except FileNotFoundError:
                pass
        time.sleep(0.02)
    raise AssertionError("the run wrote no temporary output in time")


def interrupt(catalogs, tmp_path, signum, min_bytes):
    """Run, send ``signum`` once the temporary file holds ``min_bytes``; (code, stderr)."""
    big, _ = catalogs
    output = tmp_path / "out.fits"
    proc = start(big, output)
    try:
        if not wait_for_temporary(proc, output, min_bytes):
            pytest.fail("the run ended before it could be interrupted: "
                        + proc.communicate()[1][-500:])
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert output.read_bytes() == PREVIOUS  # never a partial or replaced output
    return proc.returncode, err


def check_signal(catalogs, tmp_path, signum, min_bytes):
    (tmp_path / "out.fits").write_bytes(PREVIOUS)
    code, err = interrupt(catalogs, tmp_path, signum, min_bytes)
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert len(temporaries(tmp_path / "out.fits")) == 1  # nothing can clean up
    else:
        assert code == 128 + signum, err
        assert f"interrupted ({signal.Signals(signum).name})" in err
        assert "Traceback" not in err and "Segmentation" not in err
        assert temporaries(tmp_path / "out.fits") == []
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "out.fits"]


def finish(catalogs, tmp_path, expect_removed):
    """A later, successful run replaces the output and leaves no temporary file."""
    _, small = catalogs
    output = tmp_path / "out.fits"
    proc = start(small, output)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert ("removed 1 temporary file(s)" in err) == expect_removed, err
    assert temporaries(output) == []
    assert output.read_bytes() != PREVIOUS and f"wrote {output}" in out


def test_sigterm_and_sigkill_mid_stream(catalogs, tmp_path):
    check_signal(catalogs, tmp_path, signal.SIGTERM, 150_000)
    check_signal(catalogs, tmp_path, signal.SIGKILL, 150_000)
    finish(catalogs, tmp_path, expect_removed=True)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                    signal.SIGKILL], ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("when", ["early", "mid-stream"])
def test_signals_at_several_points(catalogs, tmp_path, signum, when):
    check_signal(catalogs, tmp_path, signum, 0 if when == "early" else 400_000)
    finish(catalogs, tmp_path, expect_removed=signum == signal.SIGKILL)


READ_AND_INTERRUPT = """
import signal, sys, threading
import numpy as np
from astropy.table import Table
from sourceclf.streaming.sources import FitsSource

signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with '&'

n = 300_000
t = Table({f"c{k}": np.random.default_rng(k).normal(size=n) for k in range(6)})
t["s"] = np.where(np.arange(n) % 3 == 0, "", "abcdef")
t.write(sys.argv[1])
interrupted = 0
for delay in [0.03 + 0.04 * k for k in range(12)]:
    timer = threading.Timer(delay, signal.raise_signal, (signal.SIGINT,))
    source = FitsSource(sys.argv[1])
    timer.start()
    try:
        for _ in range(20):
            for chunk in source.chunks(16_384):
                chunk["s"].astype(str)
    except KeyboardInterrupt:
        interrupted += 1
    finally:
        timer.join()
        source.close()
print("interrupted", interrupted)
"""


def test_ctrl_c_while_reading_fits_chunks(tmp_path):
    proc = subprocess.run([sys.executable, "-c", READ_AND_INTERRUPT, str(tmp_path / "t.fits")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.split() == ["interrupted", "12"]


def test_a_signal_during_chunk_conversion_waits_for_the_chunk(tmp_path, monkeypatch, ctrl_c):
    """Deterministic half of the test above: Ctrl-C inside astropy's reader is held."""
    from astropy.table import Table

    from sourceclf.streaming import sources

    path = tmp_path / "t.fits"
    Table({"a": np.arange(10.0), "s": ["x", "", "yy  "] * 3 + ["z"]}).write(path)
    original = Table.read
    converted = []

    def read_with_ctrl_c(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # would raise here without the hold
        table = original(*args, **kwargs)
        converted.append(len(table))
        return table

    monkeypatch.setattr(sources.Table, "read", read_with_ctrl_c)
    source = sources.FitsSource(path)
    try:
        with pytest.raises(KeyboardInterrupt):
            next(source.chunks(4))
    finally:
        source.close()
    assert converted == [4]  # the chunk was converted whole, then Ctrl-C took effect
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
