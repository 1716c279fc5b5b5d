"""Writing files so that a reader never sees a partial one."""

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path, *, suffix=None, mode=0o666):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file is removed if the body raises (or is interrupted), so
    ``path`` is either the old file or the complete new one.

    Parameters
    ----------
    path : path-like
        The final file.
    suffix : str, optional
        Suffix of the temporary file (writers that pick the format from the
        name need the right one, e.g. ``'.fits.gz'``); default: ``path``'s
        last extension.
    mode : int
        Permissions of the written file before the process umask is applied,
        as for ``open()`` (``mkstemp`` makes files private; outputs are for
        collaborators too).
    """
    path = Path(path)
    if suffix is None:
        suffix = path.suffix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".part{suffix}")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, mode & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
