"""Optional tqdm progress bars, and a way to hide those of inner steps."""

import contextlib
import sys
import threading

__all__ = ["progress_bar", "quiet_progress"]

_QUIET = threading.local()


class _NoBar:
    def update(self, n=1):
        pass


@contextlib.contextmanager
def quiet_progress():
    """Hide the progress bars opened within the context, in this thread.

    A long run that shows one bar of its own (a streamed catalog: rows, with
    their rate and the time left) wraps its steps in this context, so that the
    bars of the steps (forward passes over a chunk, timing probes) do not
    flash past under it.
    """
    before = getattr(_QUIET, "depth", 0)
    _QUIET.depth = before + 1
    try:
        yield
    finally:
        _QUIET.depth = before


@contextlib.contextmanager
def progress_bar(total=None, enabled=None, **kwargs):
    """A tqdm bar, or a do-nothing stand-in.

    Parameters
    ----------
    total : int, optional
        Expected number of items.
    enabled : bool or None
        True shows a bar, False hides it, None shows it only when standard
        error is a terminal.  Inside `quiet_progress` no bar is shown.
    **kwargs
        Passed to `tqdm.tqdm`.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled or getattr(_QUIET, "depth", 0):
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, **kwargs) as bar:
        yield bar
