"""Output files get the permissions of the umask, like any file a program creates.

Outputs are written to a temporary file and renamed into place
(`sourceclf.utils._files.atomic_path`); `tempfile.mkstemp` alone would make
them 0600 whatever the umask, unreadable to collaborators.
"""

import os
import stat

import pytest

from sourceclf import classify_file
from sourceclf.demo import demo_catalog

FORMATS = ["fits", "parquet", "csv", "ecsv", "vot"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "cat.fits"
    demo_catalog(40, random_state=2).write(path)
    return path


@pytest.fixture
def umask():
    """Set a umask for the test (the process-wide one is restored afterwards)."""
    old = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask)
    finally:
        os.umask(old)


@pytest.mark.filterwarnings("ignore::sourceclf.exceptions.SourceclfWarning")
@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_outputs_get_the_umask_permissions(catalog, tmp_path, umask, ext, mask, mode):
    if ext == "parquet":
        pytest.importorskip("pyarrow")
    umask(mask)
    out = tmp_path / f"out.{ext}"
    classify_file(catalog, out, model="margnet-photometry-sg", progress=False, threads=1)
    assert stat.S_IMODE(out.stat().st_mode) == mode, oct(out.stat().st_mode)
    # Nothing else is left beside the output (no temporary file).
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
