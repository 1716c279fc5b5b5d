"""Small building blocks shared by the architectures."""

import torch
from torch import nn

__all__ = ["Standardize", "LogColumns", "activation"]


class LogColumns(nn.Module):
    """Replace some input columns ``x`` by ``log10(max(x, 0) + offset)``.

    Radii such as SDSS ``deVRad`` span nine decades (1e-9 arcsec for point
    sources to arcseconds for galaxies); a logarithm makes them usable by a
    network after standardisation.

    Parameters
    ----------
    n_features : int
        Number of input features.
    columns : sequence of int
        Indices of the columns to transform.
    offset : float
        Added before the logarithm; values much smaller than it are all alike.
    """

    def __init__(self, n_features, columns=(), offset=1e-3):
        super().__init__()
        mask = torch.zeros(n_features, dtype=torch.bool)
        mask[list(columns)] = True
        self.register_buffer("mask", mask, persistent=False)
        self.offset = float(offset)
        # A Python bool, not mask.any(): no device sync per batch, no graph break
        # under torch.compile.
        self.active = bool(mask.any())

    def forward(self, x):
        if not self.active:
            return x
        logged = torch.log10(x.clamp_min(0) + self.offset)
        return torch.where(self.mask, logged, x)


class Standardize(nn.Module):
    """Subtract a stored mean and divide by a stored scale, feature by feature.

    The statistics are buffers, saved with the weights, so a model carries its
    own input normalisation.  Columns named in ``log_columns`` are first
    replaced by their logarithm (see `LogColumns`).

    Parameters
    ----------
    n_features : int
        Number of input features.
    log_columns : sequence of int
        Columns to take the logarithm of before standardising.
    """

    def __init__(self, n_features, log_columns=()):
        super().__init__()
        self.log = LogColumns(n_features, log_columns)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, x):
        """Set the statistics from a training matrix ``x`` (n_rows, n_features)."""
        x = self.log(torch.as_tensor(x, dtype=torch.float32))
        self.mean.copy_(x.mean(dim=0))
        scale = x.std(dim=0)
        self.scale.copy_(torch.where(scale > 0, scale, torch.ones_like(scale)))
        return self

    def forward(self, x):
        return (self.log(x) - self.mean) / self.scale


def activation(name):
    """Return a fresh activation module by name."""
    table = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU,
             "tanh": nn.Tanh}
    return table[name]()
