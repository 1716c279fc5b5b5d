"""Choosing the torch device and batch size."""

from .exceptions import InvalidInputError

__all__ = ["resolve_device", "default_batch_size"]


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


def default_batch_size(uses_images, device):
    """A batch size suited to the model kind and device.

    Photometric models are cheap per row, so large batches amortise the Python
    overhead; image models are limited by memory.
    """
    if uses_images:
        return 1024 if device.type == "cuda" else 256
    return 65536
