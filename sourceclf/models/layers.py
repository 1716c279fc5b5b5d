"""Small building blocks shared by the architectures."""

import torch
from torch import nn

__all__ = ["Standardize", "activation"]


class Standardize(nn.Module):
    """Subtract a stored mean and divide by a stored scale, feature by feature.

    The statistics are buffers, saved with the weights, so a model carries its
    own input normalisation.

    Parameters
    ----------
    n_features : int
        Number of input features.
    """

    def __init__(self, n_features):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    @torch.no_grad()
    def fit(self, x):
        """Set the statistics from a training matrix ``x`` (n_rows, n_features)."""
        x = torch.as_tensor(x, dtype=torch.float32)
        self.mean.copy_(x.mean(dim=0))
        scale = x.std(dim=0)
        self.scale.copy_(torch.where(scale > 0, scale, torch.ones_like(scale)))
        return self

    def forward(self, x):
        return (x - self.mean) / self.scale


def activation(name):
    """Return a fresh activation module by name."""
    table = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU,
             "tanh": nn.Tanh}
    return table[name]()
