"""Averaging ensembles of independently trained photometric networks."""

import torch
from torch import nn

from .architectures import register_architecture
from .margnet import PhotometricMLP

__all__ = ["MLPEnsemble"]


@register_architecture("mlp-ensemble")
class MLPEnsemble(nn.Module):
    """Mean of the class probabilities of several `PhotometricMLP` members.

    Members differ only in their random initialisation and data order; each is
    trained on its own (see ``sourceclf.train_recipes``).  The forward pass
    returns the logarithm of the mean probability, so that a softmax of the
    output gives the ensemble's probabilities.

    Parameters
    ----------
    n_features, n_classes : int
        Input and output sizes.
    n_members : int
        Number of members.
    **member_config
        Keyword arguments of each `PhotometricMLP` (``hidden``, ``act``...).
    """

    def __init__(self, n_features, n_classes, n_members=5, **member_config):
        super().__init__()
        self.members = nn.ModuleList(PhotometricMLP(n_features, n_classes, **member_config)
                                     for _ in range(n_members))

    def forward(self, features, images=None):
        """Log of the members' mean class probabilities."""
        probs = torch.stack([torch.softmax(m(features), dim=1) for m in self.members])
        return torch.log(probs.mean(dim=0).clamp_min(1e-30))
