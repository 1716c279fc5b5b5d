"""Choosing the torch device and batch size."""

from .exceptions import InvalidInputError

__all__ = ["resolve_device", "default_batch_size", "CPU_ACTIVATION_BYTES"]


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
