"""Signals during a run: SIGTERM and SIGHUP as Ctrl-C, and code Ctrl-C must not split.

`interrupt_on_signals` makes SIGTERM and SIGHUP raise `Interrupted` (a
`KeyboardInterrupt`), so that the cleanup Ctrl-C triggers runs for them too.

`deferred_signals` holds SIGINT, SIGTERM and SIGHUP while its body runs and
delivers them when it ends.  It guards third-party calls that are not safe
to interrupt: NumPy 2.4 string ufuncs on astropy's ``chararray`` (which FITS
string columns are) can crash the interpreter (SIGSEGV) when a
``KeyboardInterrupt`` is raised from inside them, as astropy's FITS table
reader does on every string column.  A held signal waits for the body only,
a few milliseconds for a chunk of rows.
"""

import contextlib
import signal
import threading

from ..exceptions import Interrupted

__all__ = ["interrupt_on_signals", "deferred_signals"]

# Signals that end a run the way Ctrl-C does (those this platform has).
_TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                             if hasattr(signal, name))


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def _in_main_thread():
    # Python runs signal handlers, and lets them be set, in the main thread only.
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _handlers_replaced(signums, handler):
    """Within the context, ``handler`` handles ``signums``; the previous handlers come back.

    Yields ``{signum: previous handler}``, empty outside the main thread
    (where Python neither runs nor lets one set signal handlers).
    """
    previous = {}
    if _in_main_thread():
        for signum in signums:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield previous
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def interrupt_on_signals():
    """Within the context, SIGTERM and SIGHUP raise `Interrupted`, as SIGINT does.

    Only signals left at their default action (which kills the process
    without any cleanup) are taken over, and only in the main thread, where
    Python runs signal handlers; the previous handlers are restored on exit.
    A signal ignored by the caller (``nohup`` ignores SIGHUP) stays ignored.
    """
    taken = [s for s in _TERMINATING_SIGNALS if signal.getsignal(s) is signal.SIG_DFL]
    with _handlers_replaced(taken, _raise_interrupted):
        yield


@contextlib.contextmanager
def deferred_signals():
    """Hold SIGINT, SIGTERM and SIGHUP during the body; deliver them on exit.

    Only signals with a Python handler are held (Ctrl-C's default handler,
    `interrupt_on_signals`' handler, a caller's own); a signal at its default
    or ignored action is left alone, since no Python code runs for it.  On
    exit the handlers are restored and each held signal is passed, once and
    in the order it came, to its handler, which then raises as it would have
    (``KeyboardInterrupt``, `Interrupted`).  Outside the main thread this
    does nothing: signals are handled in the main thread only.
    """
    held = []

    def hold(signum, frame):
        if signum not in held:
            held.append(signum)

    python_handled = [s for s in (signal.SIGINT,) + _TERMINATING_SIGNALS
                      if callable(signal.getsignal(s))]
    previous = {}
    try:
        with _handlers_replaced(python_handled, hold) as previous:
            yield
    finally:
        for signum in held:  # after the handlers are back, even if the body raised
            previous[signum](signum, None)
