"""Optional tqdm progress bars."""

import contextlib
import sys

__all__ = ["progress_bar"]


class _NoBar:
    def update(self, n=1):
        pass


@contextlib.contextmanager
def progress_bar(total=None, enabled=None, **kwargs):
    """A tqdm bar, or a do-nothing stand-in.

    Parameters
    ----------
    total : int, optional
        Expected number of items.
    enabled : bool or None
        True shows a bar, False hides it, None shows it only when standard
        error is a terminal.
    **kwargs
        Passed to `tqdm.tqdm`.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, **kwargs) as bar:
        yield bar
