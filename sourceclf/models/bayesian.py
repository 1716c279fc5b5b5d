"""Bayesian networks: mean-field variational layers and Monte Carlo predictions.

`VariationalLinear` is a dense layer whose weights and biases have a Gaussian
posterior ``N(mu, sigma**2)``, one independent Gaussian per parameter (mean
field), with ``sigma = softplus(rho)``.  MargNet's Bayesian variant (Chaini et
al. 2023) scaled the width as ``1e-3 * softplus(c + rho)``, which pins every
sigma near 1e-3 whatever the data say; here ``rho`` alone sets it, starting
at ``rho = -5`` (sigma about 0.007), so the width the data allow is learnt.
The prior is a trainable Gaussian ``N(m, s**2)`` shared by the layer's
parameters (``m`` starts at 0 and ``s`` at ``prior_scale``, 1 by default: an
empirical-Bayes prior, as in MargNet).  The training loss (`elbo_loss`) is
the negative evidence lower bound per training row::

    cross_entropy(logits, y) + kl_weight * KL(posterior || prior)

with ``kl_weight = 1 / n_train`` (the exact per-row ELBO), rather than
MargNet's fixed 1e-3, which for its 10^5-row training sets weighs the prior
about 100 times more than the likelihood does.

Training draws the layer's pre-activations with the local reparameterisation
trick (Kingma et al. 2015).  Early stopping on the posterior mean ends before
the widths converge, so `fit_posterior_scales` then fits them (and the prior)
alone, means fixed.  In evaluation mode the layer uses the posterior
mean, so ``predict_proba`` is deterministic.  `BayesianClassifier.predict_proba_mc`
draws ``n_samples`` weight sets once, from a `torch.Generator` seeded with
``random_state``, and applies every set to every row: results depend on the
seed, not on torch's global random state.  On the CPU (fp32, no ``compile``)
photometric networks give the same numbers bit for bit whatever the batch size
and number of threads (batches are padded to whole blocks of rows,
`~sourceclf.models.base.pad_rows`); image networks, and every network on a
GPU, in bf16 or compiled, may differ between batch sizes in the last bits (up
to a few 1e-7 in fp32).  The draws belong to the call (`sampled_weights`), so
threads sharing one loaded model do not disturb one another.

The architectures (names for `sourceclf.train` and model cards) make the
final classification layer of a published network variational and keep the
rest of it:

``'bayesian-margnet-ann'`` (`BayesianMargNetANN`)
    MargNet's ANN with its output layer made variational, as in the paper.
``'bayesian-mlp'`` (`BayesianPhotometricMLP`)
    The same for the leaner MLP of ``margnet-photometry-sg``; what
    ``bayesian-margnet-photometry-sg`` ships.
``'bayesian-margnet-ensemble'`` (`BayesianMargNetStack`)
    MargNet's stacked ensemble whose head (10 ReLU units -> classes) ends in
    a variational layer; the ANN and CNN members stay deterministic and are
    trained with cross-entropy, the head with the ELBO (KL weight one over
    the rows the head is fitted on).
``'bayesian-margformer'`` (`BayesianMargFormer`)
    MargFormer with a variational classification layer, the whole network
    trained with the ELBO.

`sourceclf.train` recognises networks with variational layers: its fitting
procedure (`sourceclf.training.fit_network`) passes `elbo_loss` to the
training (to the head stage of a stacked ensemble) and runs
`fit_posterior_scales`, and it returns a `BayesianClassifier` (card kind
``'torch-bayesian'``).  Any other network can use `VariationalLinear` the same
way; `kl_divergence` sums the KL terms of a whole module.
"""

import contextlib
import contextvars
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..device import default_batch_size, resolve_device
from ..exceptions import InvalidInputError
from ..progress import progress_bar
from .architectures import register_architecture
from .base import ROW_BLOCK, TorchClassifier, pad_rows
from .margformer import MargFormer
from .margnet import MargNetANN, PhotometricMLP
from .margnet_cnn import MargNetStack

__all__ = ["VariationalLinear", "kl_divergence", "variational_layers", "sampled_weights",
           "elbo_loss", "fit_posterior_scales", "BayesianPhotometricMLP", "BayesianMargNetANN",
           "BayesianMargNetStack", "BayesianMargFormer", "BayesianClassifier", "mc_summary"]

#: Rows x Monte Carlo samples per batch of `predict_proba_mc` when no batch size is given.
MC_VALUES_PER_BATCH = 1 << 22

#: The weight draws in use by the current call (`sampled_weights`): a dict
#: layer -> (weight, bias), or None.  A context variable, not an attribute of
#: the shared layers, so that threads classifying with one loaded model each
#: see their own draws (every thread has its own context).
_DRAWS = contextvars.ContextVar("sourceclf_variational_draws", default=None)


class VariationalLinear(nn.Module):
    """A dense layer with a mean-field Gaussian posterior over its parameters.

    Parameters
    ----------
    in_features, out_features : int
        Layer sizes.
    prior_scale : float
        Initial standard deviation of the Gaussian prior.
    rho_init : float
        Initial ``rho``; the posterior standard deviation is ``softplus(rho)``.
    trainable_prior : bool
        Learn the prior's mean and log standard deviation (two scalars).

    Examples
    --------
    >>> import torch
    >>> layer = VariationalLinear(4, 3).eval()
    >>> layer(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
    >>> float(layer.kl().detach()) > 0
    True
    """

    def __init__(self, in_features, out_features, *, prior_scale=1.0, rho_init=-5.0,
                 trainable_prior=True):
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        ref = nn.Linear(in_features, out_features)  # PyTorch's initialisation of the means
        self.weight_mu = nn.Parameter(ref.weight.detach().clone())
        self.bias_mu = nn.Parameter(ref.bias.detach().clone())
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), float(rho_init)))
        self.bias_rho = nn.Parameter(torch.full((out_features,), float(rho_init)))
        prior_mu = torch.zeros(())
        prior_log_scale = torch.full((), math.log(prior_scale))
        if trainable_prior:
            self.prior_mu = nn.Parameter(prior_mu)
            self.prior_log_scale = nn.Parameter(prior_log_scale)
        else:
            self.register_buffer("prior_mu", prior_mu)
            self.register_buffer("prior_log_scale", prior_log_scale)

    @property
    def weight_sigma(self):
        """Posterior standard deviations of the weights, ``softplus(weight_rho)``."""
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self):
        """Posterior standard deviations of the biases."""
        return F.softplus(self.bias_rho)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"

    def forward(self, x):
        """Posterior-mean output in eval mode, a sample in training mode.

        Inside `sampled_weights` (in the thread and context that entered it)
        the output gains a leading sample axis: ``(n_samples, ...,
        out_features)``.
        """
        draws = _DRAWS.get()
        if draws is not None and self in draws:
            weight, bias = draws[self]
            return torch.matmul(x, weight.transpose(-1, -2)) + bias.unsqueeze(-2)
        if self.training:
            mean = F.linear(x, self.weight_mu, self.bias_mu)
            var = F.linear(x * x, self.weight_sigma ** 2, self.bias_sigma ** 2)
            return mean + torch.sqrt(var.clamp_min(1e-16)) * torch.randn_like(mean)
        return F.linear(x, self.weight_mu, self.bias_mu)

    def kl(self):
        """KL divergence from the prior to the posterior, summed over parameters."""
        scale = self.prior_log_scale.exp()
        total = 0.0
        for mu, sigma in ((self.weight_mu, self.weight_sigma), (self.bias_mu, self.bias_sigma)):
            total = total + (torch.log(scale / sigma)
                             + (sigma ** 2 + (mu - self.prior_mu) ** 2) / (2 * scale ** 2)
                             - 0.5).sum()
        return total

    def sample_parameters(self, n_samples, generator):
        """Draw ``n_samples`` weight and bias sets from the posterior.

        The standard normal draws come from ``generator`` on the CPU, so they
        do not depend on the device.

        Returns
        -------
        weight : `torch.Tensor`, shape (n_samples, out_features, in_features)
        bias : `torch.Tensor`, shape (n_samples, out_features)
        """
        device = self.weight_mu.device
        eps_w = torch.randn((n_samples, self.out_features, self.in_features),
                            generator=generator).to(device)
        eps_b = torch.randn((n_samples, self.out_features), generator=generator).to(device)
        weight = self.weight_mu + self.weight_sigma * eps_w
        bias = self.bias_mu + self.bias_sigma * eps_b
        return weight.detach(), bias.detach()


def variational_layers(module):
    """The `VariationalLinear` layers of a module, in registration order."""
    return [m for m in module.modules() if isinstance(m, VariationalLinear)]


def kl_divergence(module):
    """Sum of the KL terms of every `VariationalLinear` layer in ``module``.

    Returns a scalar tensor (0 when the module has no variational layer).
    """
    layers = variational_layers(module)
    if not layers:
        return torch.zeros(())
    return sum(layer.kl() for layer in layers)


def elbo_loss(kl_weight=None):
    """A ``loss_fn`` for `sourceclf.training.fit_module`: cross-entropy + weighted KL.

    Parameters
    ----------
    kl_weight : float, optional
        Weight of the KL term; default ``1 / n_train`` (negative ELBO per row).

    Returns
    -------
    loss_fn : callable
        ``loss_fn(module, logits, targets, n_train) -> loss``.
    """
    def loss_fn(module, logits, targets, n_train):
        weight = 1.0 / max(int(n_train), 1) if kl_weight is None else float(kl_weight)
        return F.cross_entropy(logits, targets) + weight * kl_divergence(module)

    return loss_fn


def fit_posterior_scales(module, features, y, *, images=None, epochs=100, lr=1e-2,
                         batch_size=512, kl_weight=None, loss_fn=None, random_state=0):
    """Fit the posterior widths of the variational layers, everything else frozen.

    Early stopping on the validation loss of the posterior *mean* (what
    `sourceclf.training.fit_module` does) stops long before the widths
    (``rho``), whose gradient is a small part of the loss, reach the optimum
    of the ELBO: they stay near their initial value and the Monte Carlo spread
    means nothing.  This second stage minimises the same loss (`elbo_loss`)
    over the ``rho`` parameters and the priors only, with the network in
    evaluation mode (no dropout, no augmentation) and the posterior means
    fixed, so ``predict_proba`` (posterior mean) does not change.

    When the network's only variational layer is its output layer (all the
    ``bayesian-*`` architectures), everything before it is fixed too: its
    inputs are computed once, in one pass over the rows, and the epochs run
    on that layer alone, so the stage costs one forward pass of the network
    even for image networks.  Otherwise every step runs the whole network.
    The numbers are the same either way, up to rounding.

    Parameters
    ----------
    module : `torch.nn.Module`
        Network with `VariationalLinear` layers, ``forward(features, images)``;
        modified in place, on the device it is on.
    features : array-like, shape (n, n_features), or None
        Training rows (the rows the means were fitted on); None for a network
        that reads images only.
    y : array-like of int
        Their class indices.
    images : array-like, shape (n, bands, height, width), optional
        Their cutouts, for image networks.
    epochs, lr, batch_size
        Adam settings.
    kl_weight : float, optional
        Default ``1 / n``.
    loss_fn : callable, optional
        The loss (``loss_fn(module, logits, targets, n_train)``); default
        ``elbo_loss(kl_weight)``.
    random_state : int
        Seed of the row order and of the layer's noise.

    Returns
    -------
    history : list of float
        Training loss per epoch.
    """
    layers = variational_layers(module)
    if not layers:
        raise InvalidInputError("the network has no variational layer")
    if features is None and images is None:
        raise InvalidInputError("fit_posterior_scales needs features or images")
    params = [p for layer in layers for p in (layer.weight_rho, layer.bias_rho)]
    params += [p for layer in layers for p in (layer.prior_mu, layer.prior_log_scale)
               if isinstance(p, nn.Parameter)]
    frozen = {p: p.requires_grad for p in module.parameters()}
    device = layers[0].weight_mu.device
    x = None if features is None else torch.as_tensor(np.asarray(features, dtype=np.float32))
    im = None if images is None else torch.as_tensor(np.asarray(images, dtype=np.float32))
    t = torch.as_tensor(np.asarray(y), dtype=torch.long)
    n = len(t)
    for name, a in (("features", x), ("images", im)):
        if a is not None and len(a) != n:
            raise InvalidInputError(f"{len(a)} rows of {name} for {n} labels")
    loss_fn = elbo_loss(kl_weight) if loss_fn is None else loss_fn
    generator = torch.Generator().manual_seed(int(random_state))
    history = []
    was_training = module.training

    def rows(a, idx):
        return None if a is None else a[idx].to(device)

    try:
        for p in module.parameters():
            p.requires_grad_(False)
        module.eval()
        head_inputs = _output_layer_inputs(module, layers, x, im, n, batch_size)
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=lr)
        torch.manual_seed(int(random_state))
        for _ in range(int(epochs)):
            module.eval()
            for layer in layers:
                layer.train()  # sample the variational layers only
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                if head_inputs is not None:
                    logits = layers[0](head_inputs[idx.to(head_inputs.device)])
                else:
                    logits = module(rows(x, idx), rows(im, idx))
                loss = loss_fn(module, logits, t[idx].to(device), n)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            history.append(total / n)
    finally:
        for p, flag in frozen.items():
            p.requires_grad_(flag)
        module.train(was_training)
        if not was_training:
            module.eval()
    return history


def _output_layer_inputs(module, layers, x, im, n, batch_size):
    """Inputs of the network's single variational layer when that layer is its output.

    Runs the network (in evaluation mode) once over the rows and returns
    the inputs of the layer, shape (n, in_features), on the layer's device;
    None when the network has several variational layers or its output is
    not the layer's output (then the layer's inputs do not fix the logits).
    """
    if len(layers) != 1:
        return None
    layer = layers[0]
    device = layer.weight_mu.device
    seen = {}

    def hook(mod, args, output):
        seen["input"], seen["output"] = args[0], output

    handle = layer.register_forward_hook(hook)
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                seen.clear()
                out = module(None if x is None else x[start:start + batch_size].to(device),
                             None if im is None else im[start:start + batch_size].to(device))
                if out is not seen.get("output") or seen["input"].dim() != 2:
                    return None
                chunks.append(seen["input"].detach())
    finally:
        handle.remove()
    return torch.cat(chunks) if chunks else None


@contextlib.contextmanager
def sampled_weights(module, n_samples, generator):
    """Within the block, every variational layer uses ``n_samples`` posterior draws.

    Layers after a variational layer see a leading sample axis.  The draws
    belong to the calling context (a `contextvars.ContextVar`), not to the
    module: other threads using the same module at the same time, inside
    their own ``sampled_weights`` block or not, are not affected.

    Parameters
    ----------
    module : `torch.nn.Module`
        Network with `VariationalLinear` layers.
    n_samples : int
        Weight sets drawn per layer.
    generator : `torch.Generator`
        Source of the draws (on the CPU).

    Yields
    ------
    layers : list of `VariationalLinear`
        The layers that use the draws.
    """
    layers = variational_layers(module)
    draws = dict(_DRAWS.get() or {})
    for layer in layers:
        draws[layer] = layer.sample_parameters(n_samples, generator)
    token = _DRAWS.set(draws)
    try:
        yield layers
    finally:
        _DRAWS.reset(token)


def _variational_output(sequential, prior_scale, rho_init):
    """Replace the last `torch.nn.Linear` of a `torch.nn.Sequential` by a `VariationalLinear`."""
    last = sequential[-1]
    if not isinstance(last, nn.Linear):  # pragma: no cover
        raise TypeError(f"the last layer is a {type(last).__name__}, not a Linear")
    sequential[-1] = VariationalLinear(last.in_features, last.out_features,
                                       prior_scale=prior_scale, rho_init=rho_init)


@register_architecture("bayesian-mlp")
class BayesianPhotometricMLP(PhotometricMLP):
    """A `~sourceclf.models.PhotometricMLP` whose output layer is a `VariationalLinear`.

    Parameters
    ----------
    n_features, n_classes, hidden, act, dropout, standardize, log_columns, encoding_bins
        As for `~sourceclf.models.PhotometricMLP`.
    prior_scale, rho_init
        As for `VariationalLinear`.
    """

    def __init__(self, n_features, n_classes, hidden=(256, 128), act="gelu", dropout=0.1,
                 standardize=True, log_columns=(), encoding_bins=0, prior_scale=1.0,
                 rho_init=-5.0):
        super().__init__(n_features, n_classes, hidden=hidden, act=act, dropout=dropout,
                         standardize=standardize, log_columns=log_columns,
                         encoding_bins=encoding_bins)
        _variational_output(self.net, prior_scale, rho_init)


@register_architecture("bayesian-margnet-ann")
class BayesianMargNetANN(MargNetANN):
    """MargNet's ANN whose output layer (32 -> classes) is a `VariationalLinear`.

    Parameters
    ----------
    n_features, n_classes, standardize, dropout, hidden, act
        As for `~sourceclf.models.MargNetANN`.
    prior_scale, rho_init
        As for `VariationalLinear`.
    """

    def __init__(self, n_features=24, n_classes=3, standardize=True, dropout=0.25,
                 hidden=(1024, 256, 128, 64, 32), act="sigmoid", prior_scale=1.0,
                 rho_init=-5.0):
        super().__init__(n_features, n_classes, standardize=standardize, dropout=dropout,
                         hidden=hidden, act=act)
        _variational_output(self.net, prior_scale, rho_init)


@register_architecture("bayesian-margnet-ensemble")
class BayesianMargNetStack(MargNetStack):
    """MargNet's stacked ensemble whose head ends in a `VariationalLinear`.

    The members (`~sourceclf.models.MargNetANN` and
    `~sourceclf.models.MargNetCNN`) are the deterministic networks of
    ``margnet-ensemble``, trained with cross-entropy; the head's output layer
    (10 -> classes) is variational and is trained on the members'
    probabilities with the ELBO (`elbo_loss`; the KL weight is one over the
    number of rows the head is fitted on), then its widths are fitted by
    `fit_posterior_scales` on the same rows (both by
    `sourceclf.training.fit_stages`).  Monte Carlo passes
    (`BayesianClassifier.predict_proba_mc`) thus express the head's
    uncertainty about how to combine the members.

    Parameters
    ----------
    n_features, n_classes, ann, cnn, head, cnn_psf_columns, cnn_psf_scale
        As for `~sourceclf.models.MargNetStack` (the last two for a
        PSF-aware CNN member).
    prior_scale, rho_init
        As for `VariationalLinear`.
    """

    def __init__(self, n_features=24, n_classes=3, ann=None, cnn=None, head=10,
                 cnn_psf_columns=None, cnn_psf_scale=None, prior_scale=1.0, rho_init=-5.0):
        super().__init__(n_features=n_features, n_classes=n_classes, ann=ann, cnn=cnn,
                         head=head, cnn_psf_columns=cnn_psf_columns,
                         cnn_psf_scale=cnn_psf_scale)
        _variational_output(self.head.net, prior_scale, rho_init)


@register_architecture("bayesian-margformer")
class BayesianMargFormer(MargFormer):
    """MargFormer whose classification layer (``dim`` -> classes) is a `VariationalLinear`.

    The head stays a layer normalisation followed by the (now variational)
    dense layer; the rest of the network is `~sourceclf.models.MargFormer`
    unchanged.  ``sourceclf.train(..., model="bayesian-margformer")`` trains
    the whole network with the ELBO (`elbo_loss`, KL weight one over the
    number of training rows), then fits the widths with
    `fit_posterior_scales`.

    Parameters
    ----------
    n_features, n_classes
        As for `~sourceclf.models.MargFormer`.
    prior_scale, rho_init
        As for `VariationalLinear`.
    **kwargs
        The other parameters of `~sourceclf.models.MargFormer` (``dim``,
        ``depth``, ``heads``, ``token_layers``...).
    """

    def __init__(self, n_features=24, n_classes=3, *, prior_scale=1.0, rho_init=-5.0,
                 **kwargs):
        super().__init__(n_features=n_features, n_classes=n_classes, **kwargs)
        _variational_output(self.head, prior_scale, rho_init)


def mc_summary(probs, classes):
    """Summaries of Monte Carlo class probabilities.

    Parameters
    ----------
    probs : array-like, shape (n_samples, n, n_classes)
        Class probabilities of each pass.
    classes : sequence of str
        Class labels.

    Returns
    -------
    mean : `numpy.ndarray`, shape (n, n_classes)
        Mean probability (the prediction).
    columns : dict
        ``prob_<class>_std`` (standard deviation over passes),
        ``pred_entropy`` (entropy of the mean, nats) and ``pred_mutual_info``
        (mutual information between the class and the weights, the BALD
        score: entropy of the mean minus mean entropy, nats).
    """
    probs = torch.as_tensor(probs, dtype=torch.float64)
    mean = probs.mean(dim=0)
    std = probs.std(dim=0, unbiased=False)
    entropy = -torch.special.xlogy(mean, mean).sum(dim=-1)
    expected = -torch.special.xlogy(probs, probs).sum(dim=-1).mean(dim=0)
    columns = {f"prob_{c.lower()}_std": std[:, k].numpy() for k, c in enumerate(classes)}
    columns["pred_entropy"] = entropy.numpy()
    columns["pred_mutual_info"] = (entropy - expected).clamp_min(0).numpy()
    return mean.numpy(), columns


class BayesianClassifier(TorchClassifier):
    """A `~sourceclf.models.TorchClassifier` whose network has variational layers.

    ``predict_proba`` uses the posterior mean of the weights;
    `predict_proba_mc` averages Monte Carlo passes and reports their spread
    (``sourceclf.classify(..., mc_samples=N)`` calls it).
    """

    kind = "torch-bayesian"

    def __init__(self, module, card, calibration=None):
        super().__init__(module, card, calibration)
        if not variational_layers(module):
            raise InvalidInputError(f"model '{card.name}': network has no variational layer")

    @property
    def is_bayesian(self):
        """True: `predict_proba_mc` draws Monte Carlo samples of the weights."""
        return True

    def predict_proba_mc(self, features=None, cutouts=None, *, n_samples=50, random_state=0,
                         device="cpu", batch_size=None, progress=None, precision="fp32",
                         compile=False):
        """Monte Carlo class probabilities and their uncertainty.

        Parameters
        ----------
        features, cutouts
            As for `predict_proba`.
        n_samples : int
            Number of weight draws (forward passes) averaged.
        random_state : int
            Seed of the draws.  The same seed gives the same numbers, also
            with other threads using the model at the same time; whatever
            the batch size, bit for bit for photometric networks on the CPU,
            to the last bits otherwise (see ``batch_size`` of
            `predict_proba`).
        device, batch_size, progress
            As for `predict_proba`.
        precision : {'fp32', 'bf16', 'auto'}
            Floating-point format of the forward passes, as for
            `predict_proba`: with ``'bf16'`` the network (the sampled output
            layer included) runs under `torch.autocast` with
            ``torch.bfloat16``; the weight draws, the softmax and the
            summaries stay in float32/float64.
        compile : bool
            Run the forward passes through `torch.compile` (the same cached
            compiled module as `predict_proba`; the sampled weights are
            inputs of the compiled graph).

        Returns
        -------
        proba : `numpy.ndarray`, shape (n, n_classes)
            Mean class probabilities.
        columns : dict of str -> `numpy.ndarray`
            ``prob_<class>_std``, ``pred_entropy`` and ``pred_mutual_info``
            (see `mc_summary`).
        """
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise InvalidInputError(f"n_samples must be a positive integer, got {n_samples!r}")
        self.check_speed_options(precision, compile)
        n = self._check_inputs(features, cutouts)
        classes = self.classes
        if n == 0:
            names = [f"prob_{c.lower()}_std" for c in classes] + ["pred_entropy",
                                                                  "pred_mutual_info"]
            return np.zeros((0, len(classes))), {name: np.zeros(0) for name in names}
        device = resolve_device(device)
        precision = self.resolve_precision(precision, device)
        # Every pass keeps n_samples copies of a batch's outputs: the default batch
        # shrinks as the samples grow, so memory stays about that of 4 Mi values.
        batch_size = batch_size or max(ROW_BLOCK, min(
            default_batch_size(self.uses_images, device),
            (MC_VALUES_PER_BATCH // int(n_samples)) // ROW_BLOCK * ROW_BLOCK))
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
        module = self.module.to(device).eval()
        generator = torch.Generator().manual_seed(int(random_state))
        feats = None if features is None else torch.as_tensor(
            np.ascontiguousarray(features, dtype=np.float32))
        proba = np.empty((n, len(classes)))
        columns = {}
        with torch.inference_mode(), sampled_weights(module, int(n_samples), generator), \
                self._autocast(precision, device), \
                progress_bar(total=n, enabled=progress, unit="src") as bar:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                # Padded to whole ROW_BLOCKs on the CPU (see pad_rows); the summaries
                # are computed on the padded batch too, then the padding is dropped.
                f = None if feats is None else pad_rows(feats[start:stop].to(device), device)
                im = None
                if cutouts is not None and self.uses_images:
                    im = pad_rows(torch.as_tensor(np.ascontiguousarray(
                        cutouts[start:stop], dtype=np.float32)).to(device), device)
                logits = self._forward(module, device, bool(compile), f, im).double()
                if logits.dim() == 2:  # no sample axis: the variational layer was bypassed
                    logits = logits.unsqueeze(0).expand(int(n_samples), -1, -1)
                mean, summary = mc_summary(torch.softmax(logits, dim=-1).cpu(), classes)
                proba[start:stop] = mean[: stop - start]
                for name, values in summary.items():
                    columns.setdefault(name, np.empty(n))[start:stop] = values[: stop - start]
                bar.update(stop - start)
        return proba, columns
