"""Choosing torch's number of CPU threads for a streamed run, by timing the model."""

import time

from ..device import resolve_device
from ..exceptions import InvalidInputError
from ..features import get_feature_set

__all__ = ["ThreadChooser"]


class ThreadChooser:
    """Choose torch's number of CPU threads by timing the model on a sample.

    With ``'auto'``, the forward pass of a sample of the first chunk's rows
    (`probe_rows`) is timed with torch's current number of threads and with a
    single thread, a few times each; the faster is used for the next `every`
    chunks, then the timing is repeated.  One thread often wins on a machine
    whose cores are shared with other jobs: OpenMP threads wait for each other
    at every layer.  Results do not depend on the number of threads.  Chunks
    of fewer than `probe_rows` rows (a small catalog) are not worth the
    timing: torch's setting stays for them.

    Parameters
    ----------
    threads : int or 'auto'
        A fixed number of threads, or ``'auto'`` to time the candidates.
    device : str or `torch.device`
        Where the model runs; threads are timed on the CPU only.
    precision : {'fp32', 'bf16', 'auto'}
        Floating-point format of the timed forward passes.
    compile : bool
        Whether the timed forward passes go through `torch.compile`.

    Raises
    ------
    InvalidInputError
        If ``threads`` is neither a positive number nor ``'auto'``.
    """

    every = 16
    probe_rows = 4096
    repeats = 3

    def __init__(self, threads, device, precision="fp32", compile=False):
        self.options = {"precision": precision, "compile": compile}
        self.device = device
        self.fixed = None
        if threads not in (None, "auto"):
            try:
                self.fixed = int(threads)
            except (TypeError, ValueError):
                self.fixed = 0
            if self.fixed < 1:
                raise InvalidInputError("threads must be a positive number or 'auto', "
                                        f"got {threads!r}")
        self.torch = None  # imported for torch models only
        self.candidates = []
        self.sample = None
        self.k = 0

    def before(self, clf, chunk):
        """Set the number of threads for this chunk (timing the candidates if due).

        Models that do not run in torch (scikit-learn) are left alone, and
        torch is not imported for them.
        """
        if self.k == 0:
            self._start(clf)
        self.k += 1
        if self.torch is None:
            return
        due = (self.k - 1) % self.every == 0 and len(chunk) >= self.probe_rows
        if self.candidates and due:
            if self.sample is None:
                self.sample = self._sample(clf, chunk)
            if self.sample is not None and len(self.sample):
                self.best = min(self.candidates, key=lambda t: self._time(clf, t))
        if self.best != self.torch.get_num_threads():
            self.torch.set_num_threads(self.best)

    def _start(self, clf):
        if clf.resolve_precision("fp32", "cpu") is None:  # not a torch model
            return
        import torch

        self.torch = torch
        self.initial = torch.get_num_threads()
        if self.fixed is None and self.initial > 1 and \
                resolve_device(self.device).type == "cpu":
            self.candidates = [self.initial, 1]
        self.best = self.fixed or self.initial

    def _sample(self, clf, chunk):
        if clf.uses_images or clf.feature_set is None or not clf.has_logits:
            self.candidates = []
            return None
        fm = get_feature_set(clf.feature_set).compute(chunk[: self.probe_rows])
        return fm.values[fm.valid]

    def _time(self, clf, threads):
        self.torch.set_num_threads(threads)
        best = float("inf")
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            clf.logits(self.sample, batch_size=len(self.sample), device="cpu", progress=False,
                       **self.options)
            best = min(best, time.perf_counter() - t0)
        return best

    def restore(self):
        """Set torch's number of threads back to what it was before."""
        if self.torch is not None and self.torch.get_num_threads() != self.initial:
            self.torch.set_num_threads(self.initial)
