"""MargNet's photometric network (Chaini et al. 2023, MNRAS 518, 3123).

The published ANN is ``24 -> 1024 -> 256 -> 128 -> 64 -> 32 -> classes`` with
sigmoid activations and dropout 0.25 after every hidden layer, on raw
(unstandardised) features.  `MargNetANN` reproduces it, and adds an optional
input standardisation layer, which trains faster and generalises better on the
SDSS data shipped with sourceclf (see the model card of
``margnet-photometry-sg``).
"""

from torch import nn

from .architectures import register_architecture
from .layers import PiecewiseLinearEncoding, Standardize, activation

__all__ = ["MargNetANN", "PhotometricMLP"]


class PhotometricMLP(nn.Module):
    """A fully connected classifier on photometric features.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_classes : int
        Number of classes.
    hidden : sequence of int
        Widths of the hidden layers.
    act : str
        Activation: ``'sigmoid'``, ``'relu'``, ``'gelu'``, ``'silu'`` or ``'tanh'``.
    dropout : float
        Dropout probability after each hidden layer.
    standardize : bool
        Whether the network standardises its inputs with stored statistics.
    log_columns : sequence of int
        Input columns replaced by ``log10(max(x, 0) + 1e-3)`` before
        standardisation (e.g. radii); needs ``standardize``.
    encoding_bins : int
        If positive, the inputs are encoded by a `PiecewiseLinearEncoding`
        with this many quantile bins per feature instead of being
        standardised; needs ``standardize`` (which fits the bins) and no
        ``log_columns`` (the bins follow each feature's own distribution).

    Notes
    -----
    The input layer (`Standardize` or `PiecewiseLinearEncoding`) is the
    ``standardize`` attribute; training code fits it with
    ``module.standardize.fit(x_train)``.
    """

    def __init__(self, n_features, n_classes, hidden=(256, 128), act="gelu", dropout=0.1,
                 standardize=True, log_columns=(), encoding_bins=0):
        super().__init__()
        if encoding_bins and not standardize:
            raise ValueError("encoding_bins needs standardize=True (the bins are fitted "
                             "with the standardisation)")
        if encoding_bins and len(log_columns):
            raise ValueError("encoding_bins and log_columns exclude each other: the "
                             "encoding replaces the standardisation")
        if encoding_bins:
            self.standardize = PiecewiseLinearEncoding(n_features, encoding_bins)
            width = n_features * int(encoding_bins)
        else:
            self.standardize = Standardize(n_features, log_columns) if standardize \
                else nn.Identity()
            width = n_features
        layers = []
        for h in hidden:
            layers += [nn.Linear(width, h), activation(act)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, features, images=None):
        """Class logits for a batch of feature rows; ``images`` is ignored."""
        if isinstance(self.standardize, PiecewiseLinearEncoding) and \
                type(self.net[0]) is nn.Linear:
            # The encoding and the first layer together, at a plain layer's cost.
            return self.net[1:](self.standardize.linear(features, self.net[0]))
        return self.net(self.standardize(features))


@register_architecture("margnet-ann")
class MargNetANN(PhotometricMLP):
    """MargNet's ANN: 24 -> 1024 -> 256 -> 128 -> 64 -> 32 -> classes.

    Parameters
    ----------
    n_features : int
        Number of input features (24 for MargNet's feature set).
    n_classes : int
        Number of classes.
    standardize : bool
        Standardise inputs (not in the paper; False reproduces it exactly).
    dropout : float
        Dropout after each hidden layer (0.25 in the paper).
    """

    def __init__(self, n_features=24, n_classes=3, standardize=True, dropout=0.25,
                 hidden=(1024, 256, 128, 64, 32), act="sigmoid"):
        super().__init__(n_features, n_classes, hidden=hidden, act=act, dropout=dropout,
                         standardize=standardize)


register_architecture("mlp")(PhotometricMLP)
