"""Limiting the CPU threads of torch and of the BLAS libraries."""

import contextlib

__all__ = ["torch_threads", "blas_threads"]


@contextlib.contextmanager
def torch_threads(n):
    """Run the body with torch limited to ``n`` CPU threads (None or < 1: unchanged).

    The previous number is restored afterwards.
    """
    if n is None or int(n) < 1:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before != int(n):
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def blas_threads(n):
    """A context limiting the BLAS/OpenMP pools (scikit-learn) to ``n`` threads.

    None or < 1: no limit.
    """
    if n is None or int(n) < 1:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(n))
