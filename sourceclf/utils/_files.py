"""Writing files so that a reader never sees a partial one.

`atomic_path` hands out a temporary file beside the destination and publishes
it (``fsync``, then a rename or an exclusive hard link) only when the body
succeeds.  Its name says which host and process wrote it
(``.<name>.sourceclf-<host>-<pid>-<token>.part<ext>``), so that a later write
to the same destination removes the temporary files of processes that were
killed (SIGKILL cannot be caught) and says so.  While a temporary file is
open, SIGTERM and SIGHUP raise `Interrupted` (a `KeyboardInterrupt`) as
Ctrl-C does, so that the cleanup runs for them too.
"""

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import stat
import warnings
from pathlib import Path

from ..exceptions import InvalidInputError, SourceclfWarning
from ._signals import interrupt_on_signals

__all__ = ["atomic_path", "temporary_name", "remove_stale_temporaries", "replace_head"]

# Errors of os.link on file systems without hard links.
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOSYS, errno.ENOTSUP,
                  errno.EOPNOTSUPP}


def _host():
    """This machine's name, in the characters a temporary file name may hold."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def temporary_name(path):
    """The name of a new temporary file for ``path``, written by this process.

    Parameters
    ----------
    path : path-like
        The destination.

    Returns
    -------
    name : str
        ``.<name>.sourceclf-<host>-<pid>-<token>.part`` (the caller adds the
        extension its writer needs).
    """
    return f".{Path(path).name}.sourceclf-{_host()}-{os.getpid()}-{secrets.token_hex(4)}.part"


def _pid_is_running(pid):
    """Whether a process ``pid`` exists on this machine (True when it cannot be told)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would stop the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def remove_stale_temporaries(path):
    """Remove the temporary files of ``path`` left by dead processes of this host.

    Returns
    -------
    removed : list of str
        The names of the files removed.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.sourceclf-{re.escape(_host())}"
                         r"-(\d+)-[0-9a-f]{8}\.part")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        if not _pid_is_running(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):  # another run removed it first
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def _fsync(path, directory=False):
    """Flush a file's (or a directory's) data and metadata to the disk."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:  # Windows cannot open directories
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if not directory or exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _publish_exclusive(tmp, path):
    """Put ``tmp`` at ``path`` only if ``path`` does not exist; raise FileExistsError if it does."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except (OSError, AttributeError, NotImplementedError) as exc:
        if isinstance(exc, OSError) and exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here: claim the name exclusively, then move the file onto it.
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(path)
            raise
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path, *, suffix=None, mode=0o666, overwrite=True):
    """Yield a temporary path beside ``path``; publish it at ``path`` on success.

    The temporary file is removed if the body raises or is interrupted
    (Ctrl-C, and SIGTERM or SIGHUP, see ``_signals.interrupt_on_signals``), so ``path``
    is either the old file or the complete new one.  Before it is published,
    the file and then its directory are flushed to the disk (``fsync``).
    Temporary files of ``path`` left by processes of this machine that no
    longer run (killed with SIGKILL, say) are removed first, with a
    `~sourceclf.exceptions.SourceclfWarning` naming them.

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
        as for ``open()``.
    overwrite : bool
        Replace an existing ``path`` (an atomic rename).  If false, the file
        is published with an exclusive hard link, which fails if ``path``
        appeared while the body ran (another process writing the same file).

    Raises
    ------
    InvalidInputError
        Without ``overwrite``, if ``path`` exists when the file is published
        (that file is left as it is); if the temporary file cannot be created
        or published (permissions, a full disk).
    """
    path = Path(path)
    if suffix is None:
        suffix = path.suffix
    removed = remove_stale_temporaries(path)
    if removed:
        warnings.warn(f"removed {len(removed)} temporary file(s) of '{path}' left by "
                      f"processes that no longer run: {', '.join(removed)}",
                      SourceclfWarning, stacklevel=3)
    with interrupt_on_signals():
        tmp = path.with_name(temporary_name(path) + suffix)
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
        except OSError as exc:
            raise InvalidInputError(f"cannot create a file in '{path.parent}': "
                                    f"{exc.strerror or exc}") from None
        try:
            # The permissions the umask gives (read without changing the umask,
            # which other threads may depend on); writers may recreate the file.
            permissions = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        try:
            yield tmp
            try:
                os.chmod(tmp, permissions)
                _fsync(tmp)
                if overwrite:
                    os.replace(tmp, path)
                else:
                    _publish_exclusive(tmp, path)
                _fsync(path.parent, directory=True)
            except FileExistsError:
                raise InvalidInputError(
                    f"output file '{path}' was created by someone else while this run "
                    "wrote it; it was left as it is (pass --overwrite, overwrite=True, "
                    "to replace it)") from None
            except OSError as exc:
                raise InvalidInputError(f"cannot write '{path}': {exc.strerror or exc}") from None
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


def replace_head(path, head, keep_from):
    """Rewrite ``path`` as ``head`` followed by its own bytes from offset ``keep_from``.

    The new file is written beside ``path`` (``<name>.meta``) and renamed over
    it; on any failure the sibling is removed and ``path`` is left as it was.
    Used to put a header of another length in front of streamed rows.
    """
    path = Path(path)
    rewritten = path.with_name(path.name + ".meta")
    try:
        with open(path, "rb") as old, open(rewritten, "wb") as new:
            new.write(head)
            old.seek(keep_from)
            shutil.copyfileobj(old, new, 1 << 22)
        os.replace(rewritten, path)
    except BaseException:
        rewritten.unlink(missing_ok=True)
        raise
