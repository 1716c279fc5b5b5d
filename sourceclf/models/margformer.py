"""MargFormer: photometry as a query attending over image patches.

The MargFormer preprint (MODELS.md) cuts a 5x32x32 stamp into 4x4 patches
(64 tokens), passes MargNet's 24 photometric features through an MLP, and lets
that single feature token attend over the patch tokens with cross-attention.
This implementation keeps that design and makes its cost explicit:

* the patch tokens are embedded once (linear 4x4x5 -> ``dim`` plus a learned
  positional embedding, then an optional ``token_layers`` of self-attention
  over the 64 patches), and
* ``depth`` cross-attention layers update only the single query token, so a
  layer costs two ``dim x dim`` projections of the 64 tokens (keys and values)
  and a little more for the query.

Counted with `count_flops` (multiply-adds as two operations), at ``dim=48``
the patch embedding and feature MLP cost 0.5 MFLOP per source, a
cross-attention layer 0.6 MFLOP and a self-attention layer over the patches
2.4 MFLOP (at ``dim=64``: 0.7, 1.1 and 4.2).  The defaults are the shipped
``margformer-sgq`` configuration: width 48, one self-attention layer, three
cross-attention layers, 4.7 MFLOP and 93k parameters.
``MargFormer(dim=64, depth=12, heads=8, token_layers=0, feature_hidden=(1024,
512, 256))`` has the published size (1.1M parameters; its Linformer
self-attention is not reproduced).
"""

import torch
from torch import nn
from torch.nn import functional as F

from .architectures import register_architecture
from .layers import Standardize
from .margnet_cnn import AsinhNormalise

__all__ = ["MargFormer", "Attention", "CrossAttentionBlock", "SelfAttentionBlock", "count_flops"]


class Attention(nn.Module):
    """Multi-head scaled dot-product attention of queries over keys/values.

    Parameters
    ----------
    dim : int
        Token width.
    heads : int
        Number of heads (``dim`` must be a multiple).
    dropout : float
        Dropout of the attention weights (training only).
    """

    def __init__(self, dim, heads, dropout=0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def _split(self, x):
        n, t, d = x.shape
        return x.view(n, t, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, query, tokens):
        """Attend from ``query`` (n, q, dim) over ``tokens`` (n, t, dim)."""
        n, q, d = query.shape
        k, v = self.kv(tokens).chunk(2, dim=-1)
        attended = F.scaled_dot_product_attention(
            self._split(self.q(query)), self._split(k), self._split(v),
            dropout_p=self.dropout if self.training else 0.0)
        return self.out(attended.transpose(1, 2).reshape(n, q, d))


class _Block(nn.Module):
    """Pre-norm attention + MLP residual block; subclasses choose what is attended."""

    def __init__(self, dim, heads, mlp_ratio=2.0, dropout=0.0):
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))


class SelfAttentionBlock(_Block):
    """Pre-norm transformer block over a set of tokens.

    ``x = x + Attention(LN(x), LN(x), LN(x))``, then ``x = x + MLP(LN(x))``.
    Parameters as `CrossAttentionBlock`.
    """

    def forward(self, x):
        """Update tokens ``x`` (n, t, dim)."""
        normed = self.norm_q(x)
        x = x + self.attn(normed, normed)
        return x + self.mlp(self.norm_mlp(x))


class CrossAttentionBlock(_Block):
    """Pre-norm transformer block in which a query attends over fixed tokens.

    ``q = q + Attention(LN(q), tokens, tokens)``, then ``q = q + MLP(LN(q))``.

    Parameters
    ----------
    dim : int
        Token width.
    heads : int
        Attention heads (``dim`` must be a multiple).
    mlp_ratio : float
        Hidden width of the MLP relative to ``dim``.
    dropout : float
        Dropout of the attention weights and the MLP.
    """

    def forward(self, query, tokens):
        """Update ``query`` (n, q, dim) from ``tokens`` (n, t, dim), already normalised."""
        query = query + self.attn(self.norm_q(query), tokens)
        return query + self.mlp(self.norm_mlp(query))


@register_architecture("margformer")
class MargFormer(nn.Module):
    """Photometric query token with cross-attention over 4x4 image patches.

    Parameters
    ----------
    n_features : int
        Photometric features (24: MargNet's ``margnet24`` set), standardised
        with stored statistics.
    n_classes : int
        Number of classes.
    n_channels : int
        Bands of the stamps (5).
    image_size : int
        Stamp side in pixels (32).
    patch_size : int
        Side of the square patches (4: 64 tokens of a 32x32 stamp).
    dim : int
        Width of every token.
    depth : int
        Cross-attention layers updating the query.
    heads : int
        Attention heads.
    token_layers : int
        Self-attention layers over the patch tokens before the cross-attention
        (each costs about six cross-attention layers).
    feature_hidden : sequence of int
        Hidden widths of the MLP mapping the features to the query token.
    mlp_ratio : float
        Hidden width of the transformer MLPs relative to ``dim``.
    dropout : float
        Dropout in attention and MLPs.
    sky_border : int
        Subtract each stamp's own sky, the median of this border, before
        the scaling (`~sourceclf.models.margnet_cnn.AsinhNormalise`; 0: none).
    """

    uses_features = True
    uses_images = True

    def __init__(self, n_features=24, n_classes=3, n_channels=5, image_size=32, patch_size=4,
                 dim=48, depth=3, heads=4, token_layers=1, feature_hidden=(128,),
                 mlp_ratio=2.0, dropout=0.1, sky_border=0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size "
                             f"{patch_size}")
        n_tokens = (image_size // patch_size) ** 2
        self.normalise = AsinhNormalise(n_channels, sky_border)
        self.patch_embed = nn.Conv2d(n_channels, dim, patch_size, stride=patch_size)
        self.position = nn.Parameter(torch.zeros(1, n_tokens, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.token_encoder = nn.ModuleList(SelfAttentionBlock(dim, heads, mlp_ratio, dropout)
                                           for _ in range(token_layers))
        self.token_norm = nn.LayerNorm(dim)
        self.standardize = Standardize(n_features)
        layers, width = [], n_features
        for h in feature_hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, dim))
        self.feature_mlp = nn.Sequential(*layers)
        self.blocks = nn.ModuleList(CrossAttentionBlock(dim, heads, mlp_ratio, dropout)
                                    for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_classes))

    def fit_image_normalisation(self, images):
        """Set the input scaling from training cutouts (see `AsinhNormalise.fit`)."""
        self.normalise.fit(images)
        return self

    def tokens(self, images):
        """Normalised patch tokens (n, n_tokens, dim) of stamps (n, 5, H, W)."""
        x = self.patch_embed(self.normalise(images)).flatten(2).transpose(1, 2)
        x = x + self.position
        for layer in self.token_encoder:
            x = layer(x)
        return self.token_norm(x)

    def forward(self, features, images):
        """Class logits for features (n, n_features) and stamps (n, 5, H, W)."""
        tokens = self.tokens(images)
        query = self.feature_mlp(self.standardize(features))[:, None, :]
        for block in self.blocks:
            query = block(query, tokens)
        return self.head(query[:, 0])


def count_flops(module, n_features=24, image_shape=(5, 32, 32), batch=64):
    """Floating-point operations of one forward pass per source.

    Counted by `torch.utils.flop_counter.FlopCounterMode` (a multiply-add is
    two operations; elementwise operations are not counted).

    Parameters
    ----------
    module : `torch.nn.Module`
        A network with ``forward(features, images)``.
    n_features : int or None
        Feature columns (None: the module reads no features).
    image_shape : tuple of int
        Shape of one stamp.
    batch : int
        Batch the count is averaged over.

    Returns
    -------
    flops : float
        Per source.
    """
    from torch.utils.flop_counter import FlopCounterMode

    feats = None if n_features is None else torch.zeros(batch, n_features)
    images = torch.zeros(batch, *image_shape)
    was_training = module.training
    module.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(feats, images)
    module.train(was_training)
    return counter.get_total_flops() / batch
