"""MargNet's image network and its stacked ensemble (Chaini et al. 2023, MNRAS 518, 3123).

`MargNetCNN` is the Inception-style CNN MargNet runs on 5-band 32x32 stamps.
Its defaults are the published architecture (about 24M parameters, almost all
in the first dense layer, and about 1.6 GFLOP per stamp: a GPU network).
``width`` scales every convolution's channel count and ``dense`` sets the
dense layers, so that a network that trains on a CPU is the same class in a
documented smaller configuration (see the cards of ``margnet-cnn-sgq`` and
``margnet-sgq``).

`MargNetStack` is the published stacked ensemble: the softmax outputs of a
frozen `~sourceclf.models.MargNetANN` (photometric features) and of a frozen
`MargNetCNN` (images), concatenated, go through a dense layer of 10 ReLU units
to the classes; that head is trained on a split the members were not trained
on.  One module, ``forward(features, images)``, runs the whole ensemble.

Both take raw stamps in nanomaggies (sky subtracted, as in SDSS frames) and
normalise them themselves with `AsinhNormalise`, whose per-band statistics are
buffers saved with the weights.
"""

import torch
from torch import nn

from .architectures import register_architecture
from .margnet import MargNetANN

__all__ = ["AsinhNormalise", "InceptionBlock", "MargNetCNN", "MargNetStack"]


class AsinhNormalise(nn.Module):
    """Per-band ``asinh(flux / softening)`` scaling of raw cutouts.

    With the softening set to each band's sky noise (`fit`), sky pixels come
    out with unit scatter, faint sources linearly, and bright ones
    logarithmically: a 14th-magnitude star's peak is about 10, not 10,000,
    times the noise.  Non-finite pixels (masked, off the frame) are read as
    sky (zero flux); finite pixels so large that ``flux / softening``
    overflows float32 saturate at asinh(float32 max), about 89, instead of
    turning the network's outputs into NaN.

    With ``sky_border`` each stamp's own sky is subtracted first, band by
    band: the median of its pixels within ``sky_border`` pixels of its edge.
    Missing pixels, non-finite or exactly zero (`sourceclf.cutouts` fills the
    part of a stamp beyond a frame's edge, and replaces non-finite pixels,
    with 0, as shifted training stamps are filled), are neither read as sky
    nor moved: they stay zero.  A frame whose sky is a fraction of its noise
    off zero then gives the network the same input as one whose sky is
    exactly zero, at a frame's edge too (without it,
    a quarter of a sigma below zero turned most galaxies into point sources
    for ``margnet-cnn-sgq``: ``docs/scripts/sky_offset_check.py``).  A model
    trained with it must be used with it, and the other way round: it is part
    of the architecture's configuration, saved in the model's card.

    Parameters
    ----------
    n_channels : int
        Number of bands.
    sky_border : int
        Width in pixels of the border whose median is each stamp's sky (0:
        none subtracted, as published and as the models trained before it
        were; the shipped image models use `sourceclf.sky.STAMP_BORDER`, 3).
    """

    def __init__(self, n_channels=5, sky_border=0):
        super().__init__()
        try:
            whole = (not isinstance(sky_border, (bool, str))
                     and float(sky_border).is_integer() and sky_border >= 0)
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise ValueError(f"sky_border must be a whole number of pixels >= 0, "
                             f"got {sky_border!r}")
        self.sky_border = int(sky_border)
        self.register_buffer("softening", torch.ones(n_channels))

    def border_sky(self, images):
        """Each stamp's sky per band: the median of the pixels of its border that are not
        missing (non-finite or exactly zero).

        Parameters
        ----------
        images : `torch.Tensor`, shape (n, n_channels, height, width)

        Returns
        -------
        sky : `torch.Tensor`, shape (n, n_channels)
            Zero where ``sky_border`` is 0, the stamp is too small to have a
            border and an inside, or its border has no pixel that is not
            missing (non-finite or exactly zero).
        """
        n, c, height, width = images.shape
        b = self.sky_border
        if not b or min(height, width) <= 2 * b:
            return images.new_zeros(n, c)
        # (n, c, border pixels), cut by slices (fixed shapes, which torch.compile keeps in
        # one graph) rather than a boolean mask
        pixels = torch.cat([images[..., :b, :].flatten(2), images[..., height - b:, :].flatten(2),
                            images[..., b:height - b, :b].flatten(2),
                            images[..., b:height - b, width - b:].flatten(2)], dim=-1)
        pixels = torch.where(_missing(pixels), torch.nan, pixels)
        return torch.nan_to_num(torch.nanmedian(pixels, dim=-1).values, nan=0.0)

    def without_sky(self, images):
        """The stamps less their `border_sky`, missing pixels (non-finite or exactly zero)
        left as they are (the stamps as given without ``sky_border``)."""
        if not self.sky_border:
            return images
        moved = images - self.border_sky(images)[..., None, None]
        return torch.where(_missing(images), images, moved)

    @torch.no_grad()
    def fit(self, images, max_pixels=4_000_000):
        """Set each band's softening to the robust (MAD) scatter of its pixels.

        Parameters
        ----------
        images : array-like, shape (n, n_channels, height, width)
            Training cutouts in flux units.  Sky dominates the pixels of a stamp,
            so the median absolute deviation measures the sky noise (of the
            stamps less their own sky, with ``sky_border``).
        max_pixels : int
            Use an evenly spaced subset of the stamps beyond this many pixels.
        """
        images = torch.as_tensor(images, dtype=torch.float32)
        n, c = images.shape[:2]
        step = max(1, (n * images[0].numel()) // max_pixels)
        pix = self.without_sky(images[::step]).transpose(0, 1).reshape(c, -1)
        sigma = torch.empty(c)
        for k in range(c):
            values = pix[k][torch.isfinite(pix[k])]
            if values.numel() == 0:
                sigma[k] = 1.0
                continue
            med = values.median()
            sigma[k] = 1.4826 * (values - med).abs().median()
        self.softening.copy_(torch.where(sigma > 0, sigma, torch.ones_like(sigma)))
        return self

    def forward(self, images):
        images = torch.nan_to_num(self.without_sky(images), nan=0.0, posinf=0.0, neginf=0.0)
        scaled = images / self.softening[:, None, None]
        limit = torch.finfo(scaled.dtype).max
        return torch.asinh(scaled.clamp(-limit, limit))


def _missing(pixels):
    """Pixels that hold no flux measurement: non-finite, or exactly zero (the fill of
    `sourceclf.cutouts` and of shifted training stamps)."""
    return ~torch.isfinite(pixels) | (pixels == 0)


def _conv(cin, cout, k, batch_norm=False):
    """Convolution with "same" padding, optional batch normalisation, ReLU."""
    layers = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers, nn.ReLU(inplace=True))


class InceptionBlock(nn.Module):
    """An Inception module as in MargNet (ReLU everywhere, "same" padding).

    For kernels ``(1, 3, 5)``: a 1x1 convolution to ``out`` channels straight
    from the input; 1x1 reductions to ``reduce`` channels followed by 3x3 and
    5x5 convolutions to ``out``; and one more 1x1 reduction passed through.
    The outputs are concatenated: ``len(kernels) * out + reduce`` channels.

    Parameters
    ----------
    in_channels : int
        Input channels.
    reduce : int
        Channels of the 1x1 reductions.
    out : int
        Channels of each convolution branch.
    kernels : sequence of int
        Kernel sizes of the branches; 1 is the direct 1x1 branch.
    batch_norm : bool
        Batch normalisation after each convolution (not in MargNet).
    """

    def __init__(self, in_channels, reduce, out, kernels=(1, 3, 5), batch_norm=False):
        super().__init__()

        def conv(cin, cout, k):
            return _conv(cin, cout, k, batch_norm)

        self.branches = nn.ModuleList(
            conv(in_channels, out, 1) if k == 1
            else nn.Sequential(conv(in_channels, reduce, 1), conv(reduce, out, k))
            for k in kernels)
        self.passthrough = conv(in_channels, reduce, 1)
        self.out_channels = len(kernels) * out + reduce

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches] + [self.passthrough(x)], dim=1)


@register_architecture("margnet-cnn")
class MargNetCNN(nn.Module):
    """MargNet's Inception-style CNN on 5-band stamps (image-only classifier).

    Published architecture (the defaults): conv 5x5 -> 64; Inception blocks of
    (reduce, out) = (48, 64), (64, 92), 2x2 average pool, (92, 128),
    (92, 128), 2x2 average pool, and a last block with 1x1 and 3x3 branches
    (92, 128); flatten (348 x 8 x 8 = 22,272) -> dense 1024 -> dense 1024 ->
    classes, ReLU throughout.

    Parameters
    ----------
    n_classes : int
        Number of classes.
    n_channels : int
        Bands of the stamps (5: ugriz).
    image_size : int
        Stamp side in pixels (32).
    width : float
        Multiplier of every convolution's channel count (1.0 as published).
    dense : sequence of int
        Widths of the dense layers after flattening ((1024, 1024) as published).
    dropout : float
        Dropout before each dense layer (not in the paper: 0).
    batch_norm : bool
        Batch normalisation after every convolution (not in the paper:
        False).  It makes small networks train in far fewer epochs.
    psf_inputs : int
        Number of PSF widths the network reads as ``features`` (0, as
        published: images only; 5: the FWHM in arcsec of each band's PSF,
        the ``psf_fwhm`` feature set; 10: those FWHMs, then the Moffat index
        of each band's PSF, the ``psf_shape`` feature set).  Their logarithms relative to
        ``psf_reference`` pass through a dense layer of ``psf_units`` ReLU
        units whose output joins the flattened convolution features, so that
        the dense layers judge a source's size against the PSF it was seen
        through (not in the paper).
    psf_reference : float
        FWHM (arcsec) that maps to 0.
    psf_units : int
        Width of the PSF embedding.
    n_features : int, optional
        Accepted and ignored (the PSF inputs are set by ``psf_inputs``), so
        that generic training code may pass it.
    sky_border : int
        Subtract each stamp's own sky, the median of this border, before
        the scaling (`AsinhNormalise`; 0, as published: none).
    """

    uses_features = False
    uses_images = True

    def __init__(self, n_classes=3, n_channels=5, image_size=32, width=1.0,
                 dense=(1024, 1024), dropout=0.0, batch_norm=False, psf_inputs=0,
                 psf_reference=1.3, psf_units=32, n_features=None, sky_border=0):
        super().__init__()
        self.psf_inputs = int(psf_inputs)
        self.psf_reference = float(psf_reference)
        if self.psf_inputs:
            self.uses_features = True  # this instance reads the PSF widths
            self.psf = nn.Sequential(nn.Linear(self.psf_inputs, psf_units), nn.ReLU())

        def ch(n):
            return max(1, int(round(n * width)))

        self.normalise = AsinhNormalise(n_channels, sky_border)
        self.stem = _conv(n_channels, ch(64), 5, batch_norm)
        blocks, cin = [], ch(64)
        for reduce, out, kernels, pool in ((48, 64, (1, 3, 5), False),
                                           (64, 92, (1, 3, 5), True),
                                           (92, 128, (1, 3, 5), False),
                                           (92, 128, (1, 3, 5), True),
                                           (92, 128, (1, 3), False)):
            block = InceptionBlock(cin, ch(reduce), ch(out), kernels, batch_norm)
            blocks.append(block)
            cin = block.out_channels
            if pool:
                blocks.append(nn.AvgPool2d(2))
        self.features = nn.Sequential(*blocks)
        side = image_size // 4
        layers, width_in = [nn.Flatten()], cin * side * side + (psf_units if psf_inputs else 0)
        for units in dense:
            if dropout:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(width_in, units), nn.ReLU(inplace=True)]
            width_in = units
        layers.append(nn.Linear(width_in, n_classes))
        self.classifier = nn.Sequential(*layers)
        # He initialisation keeps the signal's scale through the ReLU stack (torch's
        # default shrinks it layer by layer, and small networks then start stuck).
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer is not layers[-1]:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)

    def fit_image_normalisation(self, images):
        """Set the input scaling from training cutouts (see `AsinhNormalise.fit`)."""
        self.normalise.fit(images)
        return self

    def forward(self, features, images):
        """Class logits for stamps (n, 5, H, W) and, with ``psf_inputs``, the PSF's
        FWHMs (n, 5), or FWHMs and Moffat indices (n, 10).

        Without ``psf_inputs`` the ``features`` argument is ignored.
        """
        maps = self.features(self.stem(self.normalise(images)))
        if not self.psf_inputs:
            return self.classifier(maps)
        width = torch.nan_to_num(features.to(maps.dtype), nan=self.psf_reference)
        width = torch.log(width.clamp(0.1, 10.0) / self.psf_reference)
        return self.classifier(torch.cat([maps.flatten(1), self.psf(width)], dim=1))


class _StackHead(nn.Module):
    """The ensemble's head on concatenated member probabilities.

    Trained last, by `sourceclf.training.fit_stages`.
    """

    def __init__(self, n_inputs, n_classes, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_inputs, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_classes))

    def forward(self, features, images=None):
        return self.net(features)


@register_architecture("margnet-ensemble")
class MargNetStack(nn.Module):
    """MargNet's stacked ensemble: frozen ANN + CNN probabilities -> dense 10 -> classes.

    Parameters
    ----------
    n_features : int
        Photometric features of the ANN (24: MargNet's ``margnet24`` set).
    n_classes : int
        Number of classes.
    ann : dict, optional
        Keyword arguments of the `~sourceclf.models.MargNetANN` member.
    cnn : dict, optional
        Keyword arguments of the `MargNetCNN` member (the published network
        by default; the shipped ``margnet-sgq`` uses a smaller one).
    head : int
        Units of the head's hidden ReLU layer (10 as published).
    cnn_psf_columns : sequence of int, optional
        For a PSF-aware CNN member (``cnn={'psf_inputs': 5, ...}``): the
        feature columns holding each band's PSF width (for ``margnet24``, the
        ``psffwhm_<b>`` columns 2, 6, 10, 14, 18).
    cnn_psf_scale : sequence of float, optional
        Factors from those columns to the FWHM the CNN reads (for SDSS's
        catalog widths, `sourceclf.psf.CATALOG_PSF_SCALE`); 1 by default.
    """

    uses_features = True
    uses_images = True

    def __init__(self, n_features=24, n_classes=3, ann=None, cnn=None, head=10,
                 cnn_psf_columns=None, cnn_psf_scale=None):
        super().__init__()
        self.ann = MargNetANN(n_features=n_features, n_classes=n_classes, **(ann or {}))
        self.cnn = MargNetCNN(n_classes=n_classes, **(cnn or {}))
        self.head = _StackHead(2 * n_classes, n_classes, head)
        if self.cnn.psf_inputs:
            columns = list(cnn_psf_columns or [])
            if len(columns) != self.cnn.psf_inputs:
                raise ValueError(f"a CNN member with psf_inputs={self.cnn.psf_inputs} needs "
                                 f"as many cnn_psf_columns, got {columns}")
            scale = cnn_psf_scale if cnn_psf_scale is not None else [1.0] * len(columns)
            self.register_buffer("cnn_psf_columns", torch.as_tensor(columns, dtype=torch.long))
            self.register_buffer("cnn_psf_scale", torch.as_tensor(scale, dtype=torch.float32))

    def cnn_psf_widths(self, features):
        """The PSF FWHMs the CNN member reads, from the features (None for an image-only CNN).

        Parameters
        ----------
        features : `torch.Tensor`, shape (n, n_features)

        Returns
        -------
        widths : `torch.Tensor` of shape (n, psf_inputs), or None
        """
        if not self.cnn.psf_inputs:
            return None
        return features[:, self.cnn_psf_columns] * self.cnn_psf_scale

    def fit_image_normalisation(self, images):
        """Set the CNN member's input scaling from training cutouts."""
        self.cnn.fit_image_normalisation(images)
        return self

    def member_probabilities(self, features, images):
        """The members' softmax outputs, concatenated: shape (n, 2 * n_classes)."""
        return torch.cat([torch.softmax(self.ann(features), dim=1),
                          torch.softmax(self.cnn(self.cnn_psf_widths(features), images), dim=1)],
                         dim=1)

    def forward(self, features, images):
        """Class logits of the ensemble for features (n, 24) and stamps (n, 5, H, W)."""
        return self.head(self.member_probabilities(features, images))
