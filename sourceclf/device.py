"""Choosing the torch device and batch size."""

import numpy as np

from .exceptions import InvalidInputError

__all__ = ["resolve_device", "default_batch_size", "CPU_ACTIVATION_BYTES", "PRECISIONS",
           "check_precision", "resolve_precision", "check_compile"]

#: Values of the ``precision`` option of the torch inference path.
PRECISIONS = ("fp32", "bf16", "auto")


def resolve_device(device="auto"):
    """Return a `torch.device` for a user's ``device`` argument.

    Parameters
    ----------
    device : str or `torch.device`
        ``'auto'`` (CUDA when available, else CPU), ``'cpu'``, ``'cuda'``,
        ``'cuda:N'`` or ``'mps'``.

    Returns
    -------
    device : `torch.device`
    """
    import torch

    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(
            f"invalid device '{device}'; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("device 'cuda' requested but torch finds no CUDA GPU; "
                                "use --device cpu or install a CUDA build of torch")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError("device 'mps' requested but it is not available")
    return dev


#: Bytes of float32 activations per layer that a CPU batch of a photometric model
#: aims at: small enough to stay in cache and keep peak memory low, large enough
#: to amortise the per-batch overhead.
CPU_ACTIVATION_BYTES = 16 * 2**20


def default_batch_size(uses_images, device, width=None):
    """A batch size suited to the model kind, its width and the device.

    Photometric models are cheap per row, so large batches amortise the Python
    overhead; on the CPU the batch is sized so that the widest layer's
    activations take about `CPU_ACTIVATION_BYTES` (4096 rows for MargNet's
    1024-wide first layer), which keeps them in cache and memory use low.
    Image models are limited by memory.

    Parameters
    ----------
    uses_images : bool
        Whether the model reads cutouts.
    device : `torch.device`
        Where it runs.
    width : int, optional
        Widest layer of a photometric model (outputs per row).

    Returns
    -------
    batch_size : int
    """
    if uses_images:
        return 1024 if device.type == "cuda" else 256
    if device.type != "cpu" or not width:
        return 65536
    rows = max(1, int(CPU_ACTIVATION_BYTES // (4 * int(width))))
    return max(1024, min(65536, 1 << (rows.bit_length() - 1)))


def check_precision(precision):
    """Validate a user's ``precision`` argument.

    Parameters
    ----------
    precision : str
        ``'fp32'``, ``'bf16'`` or ``'auto'`` (case-insensitive).

    Returns
    -------
    precision : str
        The value in lower case.

    Raises
    ------
    InvalidInputError
        For any other value.
    """
    if isinstance(precision, str) and precision.lower() in PRECISIONS:
        return precision.lower()
    raise InvalidInputError(f"invalid precision {precision!r}; use 'fp32', 'bf16' or 'auto'")


def check_compile(compile):
    """Validate a user's ``compile`` argument (a bool); return it as a bool."""
    if isinstance(compile, (bool, np.bool_)):
        return bool(compile)
    raise InvalidInputError(f"compile must be True or False, got {compile!r}")


def _cuda_bf16(device):
    """Whether a CUDA device computes bfloat16 natively (compute capability >= 8.0)."""
    import torch

    try:
        return torch.cuda.get_device_capability(device) >= (8, 0)
    except (RuntimeError, AssertionError, ValueError):  # pragma: no cover - odd builds
        return False


def resolve_precision(precision, device):
    """The floating-point format a forward pass runs in, for a ``precision`` argument.

    Parameters
    ----------
    precision : str
        ``'fp32'`` (float32 everywhere), ``'bf16'`` (the forward pass under
        ``torch.autocast(device_type, dtype=torch.bfloat16)``) or ``'auto'``:
        bf16 on a CUDA device that computes it natively
        (``torch.cuda.is_bf16_supported()``, compute capability 8.0 or more),
        fp32 on anything else (the CPU, MPS, older GPUs).
    device : `torch.device`
        Where the forward pass runs (see `resolve_device`).

    Returns
    -------
    precision : str
        ``'fp32'`` or ``'bf16'``.

    Raises
    ------
    InvalidInputError
        For an unknown ``precision``, or ``'bf16'`` on a CUDA device that has
        no bfloat16 support at all.
    """
    import torch

    precision = check_precision(precision)
    device = torch.device(device)
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported() and _cuda_bf16(device):
            return "bf16"
        return "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidInputError(f"precision 'bf16' requested but {device} does not support "
                                "bfloat16; use precision 'fp32' or 'auto'")
    return precision
