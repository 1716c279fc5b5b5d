"""Small building blocks shared by the architectures."""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Standardize", "LogColumns", "PiecewiseLinearEncoding", "activation"]


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


class PiecewiseLinearEncoding(nn.Module):
    """Encode each feature by its position within quantile bins.

    The piecewise-linear encoding of Gorishniy, Rubachev & Babenko (2022, "On
    Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS):
    each feature's training distribution is cut at its quantiles into
    ``n_bins`` bins, and a value ``x`` becomes ``n_bins`` numbers, bin ``t``
    giving ``clip((x - lo_t) / (hi_t - lo_t), 0, 1)``: 1 for the bins below
    ``x``, the fraction of its own bin, 0 above.  A network on this encoding
    draws sharp, tree-like thresholds where the data are dense (radii of point
    sources piled up at zero, the stellar locus) while staying continuous in
    its input, and the encoding standardises the features as a side effect.

    The edges are buffers, saved with the weights.  `fit` sets them from
    training rows; bins that collapse (repeated quantiles, e.g. many radii at
    exactly zero) act as steps.  Values outside the training range saturate:
    every value below the training minimum encodes as the minimum, every
    value above the maximum as the maximum (including infinities), so a
    network on this encoding does not extrapolate.  NaN stays NaN.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_bins : int
        Bins per feature; the output has ``n_features * n_bins`` columns.
    """

    def __init__(self, n_features, n_bins=16):
        super().__init__()
        self.n_bins = int(n_bins)
        grid = torch.linspace(0, 1, self.n_bins + 1)[:-1]
        self.register_buffer("lower", grid.repeat(n_features, 1))
        self.register_buffer("width", torch.full((n_features, self.n_bins), 1 / self.n_bins))

    @torch.no_grad()
    def fit(self, x):
        """Set the bin edges from the quantiles of a training matrix ``x``.

        Raises
        ------
        ValueError
            If ``x`` has non-finite values (drop or impute those rows first).
        """
        x = torch.as_tensor(x, dtype=torch.float32)
        bad = ~torch.isfinite(x).all(dim=0)
        if bad.any():
            columns = ", ".join(str(int(i)) for i in torch.nonzero(bad).flatten())
            raise ValueError(f"PiecewiseLinearEncoding.fit: non-finite values in column(s) "
                             f"{columns} of the training rows")
        q = torch.linspace(0, 1, self.n_bins + 1, dtype=torch.float64)
        edges = torch.quantile(x.double(), q, dim=0).T.float()
        self.lower.copy_(edges[:, :-1])
        self.width.copy_(edges.diff(dim=1))
        return self

    def forward(self, x):
        # A collapsed bin (width 0) is a step at its edge.
        step = self.width <= 0
        scaled = (x.unsqueeze(-1) - self.lower) / torch.where(step, torch.ones_like(self.width),
                                                              self.width)
        scaled = torch.where(step, (scaled >= 0).to(scaled.dtype), scaled)
        return scaled.clamp(0, 1).flatten(1)

    def linear(self, x, layer):
        """``layer(self(x))`` without materialising the encoding.

        On the encoding, a linear layer is piecewise linear in each feature:
        for ``x`` in bin ``s`` of feature ``j`` the bins below contribute
        their weights' sum, bin ``s`` a slope times ``x - lo_s``, the bins
        above nothing.  So each row needs two gathers of ``n_features`` rows
        of per-segment tables (`torch.nn.functional.embedding_bag`) instead of
        a ``n_features * n_bins``-wide matrix product: the cost of a plain
        first layer.  Equal to the explicit form to float32 rounding (relative
        to the bin's width, as the explicit form), and differentiable in the
        layer's weights.

        Parameters
        ----------
        x : `torch.Tensor`
            Feature rows (n_rows, n_features).
        layer : `torch.nn.Linear`
            A layer with ``n_features * n_bins`` inputs.

        Returns
        -------
        out : `torch.Tensor`
            ``(n_rows, layer.out_features)``.
        """
        n_features, n_bins = self.lower.shape
        if layer.in_features != n_features * n_bins:
            raise ValueError(f"linear: the layer has {layer.in_features} inputs, the "
                             f"encoding {n_features} x {n_bins} = {n_features * n_bins}")
        weight = layer.weight.view(-1, n_features, n_bins).permute(1, 2, 0)  # (F, T, H)
        positive = self.width > 0
        inv_width = torch.where(positive, 1 / torch.where(positive, self.width, 1.0), 0.0)
        slope = weight * inv_width.unsqueeze(-1)
        # Bins below the value's bin count fully; so do collapsed bins at its
        # edge (a value is never inside a collapsed bin, see searchsorted below).
        below = weight.cumsum(dim=1) - weight
        offset = torch.where(positive.unsqueeze(-1), below, below + weight)
        zeros = torch.zeros_like(weight[:, :1])
        # Segments: below the first edge, the n_bins bins, above the last edge.
        offset = torch.cat([zeros, offset, weight.sum(dim=1, keepdim=True)], dim=1)
        slope = torch.cat([zeros, slope, zeros], dim=1)
        lower = torch.cat([self.lower[:, :1], self.lower, self.lower[:, -1:]], dim=1)
        edges = torch.cat([self.lower, (self.lower[:, -1] + self.width[:, -1])[:, None]], dim=1)
        segment = torch.searchsorted(edges, x.T.contiguous(), right=True).T  # 0 .. n_bins + 1
        index = segment.clamp(0, n_bins + 1) + torch.arange(
            n_features, device=x.device)[None, :] * (n_bins + 2)
        # Position within the bin; 0 outside the edges (so that infinities
        # saturate), NaN kept (so that it propagates).
        inside = ((segment >= 1) & (segment <= n_bins)) | torch.isnan(x)
        position = torch.where(inside, x - lower.reshape(-1)[index], 0.0)
        hidden = offset.shape[-1]
        out = F.embedding_bag(index, offset.reshape(-1, hidden), mode="sum")
        out = out + F.embedding_bag(index, slope.reshape(-1, hidden), mode="sum",
                                    per_sample_weights=position.to(slope.dtype))
        if layer.bias is not None:
            out = out + layer.bias
        return out


def activation(name):
    """Return a fresh activation module by name."""
    table = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU,
             "tanh": nn.Tanh}
    return table[name]()
