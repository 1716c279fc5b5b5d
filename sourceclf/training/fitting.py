"""Fitting sourceclf's networks: the one procedure every trainer calls.

`fit_network` prepares a network and trains it: it fits the input layers on
the training rows (`fit_input_layers`: the standardisation or
piecewise-linear encoding of the features, the image normalisation), picks
the loss (the ELBO of `sourceclf.models.bayesian.elbo_loss` for networks
with variational layers, else cross-entropy), trains with AdamW and early
stopping (`fit_module`) -- the stacked MargNet ensembles in stages
(`fit_stages`), averaging ensembles member by member if asked, with an
optional step-wise learning-rate schedule -- and finally fits the posterior
widths of Bayesian networks (`~sourceclf.models.bayesian.fit_posterior_scales`).

`sourceclf.train`, the recipes (`sourceclf.train_recipes`,
`sourceclf.image_recipes`) and the experiments runner
(`sourceclf.experiments`) all train through it; `build_network` builds the
untrained network they pass it, seeded.
"""

import copy

import numpy as np
import torch
from torch.nn import functional as F

from ..device import resolve_device
from ..models import bayesian
from ..models.architectures import build_architecture
from ..models.margnet_cnn import MargNetStack
from ..progress import progress_bar
from .splits import split_indices

__all__ = ["build_network", "cross_entropy_loss", "fit_input_layers", "fit_module",
           "fit_stages", "fit_network"]


def build_network(architecture, config, random_state=0):
    """Build an untrained network, its initial weights drawn with seed ``random_state``.

    Parameters
    ----------
    architecture : str
        Name in `sourceclf.models.ARCHITECTURES`.
    config : dict
        Keyword arguments of the architecture.
    random_state : int
        Seed of torch's global generator before the weights are drawn.

    Returns
    -------
    module : `torch.nn.Module`
    """
    torch.manual_seed(int(random_state))
    return build_architecture(architecture, config)


def cross_entropy_loss(module, logits, targets, n_train):
    """The default loss of `fit_module`: mean cross-entropy of ``logits``.

    Parameters
    ----------
    module : `torch.nn.Module`
        The network (unused; the signature of every ``loss_fn``).
    logits : `torch.Tensor`
        Class logits of a batch.
    targets : `torch.Tensor`
        Class indices of the batch.
    n_train : int
        Number of training rows (unused).

    Returns
    -------
    loss : `torch.Tensor`
    """
    return F.cross_entropy(logits, targets)


def fit_input_layers(module, features=None, images=None):
    """Fit a network's input layers on training rows.

    The feature layer ``module.standardize`` (a `~sourceclf.models.Standardize`
    or `~sourceclf.models.PiecewiseLinearEncoding`; nothing to fit for an
    identity) is fitted on ``features``, and the image normalisation
    (``module.fit_image_normalisation``) on ``images``.

    Parameters
    ----------
    module : `torch.nn.Module`
        The network, modified in place.
    features : array-like, shape (n, n_features), optional
        Training feature rows.
    images : array-like, shape (n, 5, H, W), optional
        Training cutouts.
    """
    standardize = getattr(module, "standardize", None)
    if features is not None and hasattr(standardize, "fit"):
        standardize.fit(features)
    if images is not None and hasattr(module, "fit_image_normalisation"):
        module.fit_image_normalisation(images)


def fit_module(module, x_train, y_train, x_val, y_val, *, images_train=None, images_val=None,
               epochs=200, batch_size=256, lr=1e-3, weight_decay=0.0, patience=30,
               device="cpu", random_state=0, augment=None, progress=None, loss_fn=None):
    """Train a classifier network with Adam and early stopping on validation loss.

    Parameters
    ----------
    module : `torch.nn.Module`
        Network with ``forward(features, images)`` returning logits.
    x_train, x_val : array-like or None
        Feature rows (float32).
    y_train, y_val : array-like of int
        Class indices.
    images_train, images_val : array-like, optional
        Cutouts (n, 5, H, W) for image networks.
    epochs : int
        Maximum number of epochs.
    batch_size : int
        Rows per step.
    lr, weight_decay : float
        Adam(W) settings.
    patience : int
        Stop after this many epochs without a lower validation loss; the
        weights of the best epoch are kept.
    device : str or `torch.device`
        Where to train.
    random_state : int
        Seed of the initialisation-independent randomness (shuffling,
        dropout, augmentation).
    augment : callable, optional
        ``augment(images, generator) -> images`` applied to training batches.
    progress : bool, optional
        Show a tqdm bar over epochs.
    loss_fn : callable, optional
        ``loss_fn(module, logits, targets, n_train) -> loss``; default
        `cross_entropy_loss`.

    Returns
    -------
    history : dict
        ``train_loss``, ``val_loss`` and ``val_accuracy`` per epoch, ``best_epoch``.
    """
    device = resolve_device(device)
    gen = torch.Generator().manual_seed(int(random_state))
    torch.manual_seed(int(random_state))
    module.to(device)

    def tensor(a, dtype=torch.float32):
        return None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype)

    xt, xv = tensor(x_train), tensor(x_val)
    it, iv = tensor(images_train), tensor(images_val)
    yt, yv = tensor(y_train, torch.long), tensor(y_val, torch.long)
    n = len(yt)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = cross_entropy_loss if loss_fn is None else loss_fn

    def batches(x, im, y, size, order=None):
        idx = order if order is not None else torch.arange(len(y))
        for s in range(0, len(idx), size):
            b = idx[s:s + size]
            yield (None if x is None else x[b].to(device),
                   None if im is None else im[b].to(device), y[b].to(device))

    history = {"train_loss": [], "val_loss": [], "val_accuracy": [], "best_epoch": 0}
    best_loss, best_state, best_epoch = np.inf, None, 0
    with progress_bar(total=epochs, enabled=progress, unit="epoch") as bar:
        for epoch in range(epochs):
            module.train()
            total = 0.0
            order = torch.randperm(n, generator=gen)
            for xb, ib, yb in batches(xt, it, yt, batch_size, order):
                if augment is not None and ib is not None:
                    ib = augment(ib, gen)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(module, module(xb, ib), yb, n)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(yb)
            module.eval()
            vloss, correct = 0.0, 0
            with torch.inference_mode():
                for xb, ib, yb in batches(xv, iv, yv, 4096 if iv is None else 512):
                    logits = module(xb, ib)
                    vloss += float(F.cross_entropy(logits, yb, reduction="sum"))
                    correct += int((logits.argmax(1) == yb).sum())
            vloss /= max(len(yv), 1)
            history["train_loss"].append(total / n)
            history["val_loss"].append(vloss)
            history["val_accuracy"].append(correct / max(len(yv), 1))
            if vloss < best_loss:
                best_loss, best_epoch = vloss, epoch
                best_state = copy.deepcopy(module.state_dict())
            bar.update(1)
            if epoch - best_epoch >= patience:
                break
    module.load_state_dict(best_state)
    module.eval()
    history["best_epoch"] = best_epoch
    return history


def fit_stages(stack, x_train, y_train, x_val, y_val, *, images_train, images_val,
               train_members=("ann", "cnn"), stage_options=None, head_fraction=0.75,
               loss_fn=None, posterior_epochs=100, **fit_options):
    """Train a stacked ensemble: the members on the training split, then the head.

    Each member of a `~sourceclf.models.MargNetStack` is trained alone with
    `fit_module` (early stopping on the validation split), then frozen.  The
    head is trained on ``head_fraction`` of the validation rows, with early
    stopping on the rest, as in MargNet, where the head never sees the rows
    its members were trained on.

    A `~sourceclf.models.BayesianMargNetStack` (variational head) trains its
    members with cross-entropy and its head with ``loss_fn`` (default
    `~sourceclf.models.bayesian.elbo_loss`), then fits the head's posterior
    widths with `~sourceclf.models.bayesian.fit_posterior_scales`
    (``posterior_epochs`` epochs, on the CPU) on the rows the head was
    trained on.

    Parameters
    ----------
    stack : `~sourceclf.models.MargNetStack`
        The ensemble, modified in place.
    x_train, x_val : array-like
        Feature rows of the training and validation splits.
    y_train, y_val : array-like of int
        Their class indices.
    images_train, images_val : array-like
        Their cutouts.
    train_members : sequence of str
        Members to train (``'ann'``, ``'cnn'``); leave one out to keep an
        already trained member, e.g. a CNN shipped on its own.
    stage_options : dict, optional
        Per-stage overrides of the `fit_module` options, keyed ``'ann'``,
        ``'cnn'``, ``'head'`` (say, many cheap epochs for the ANN and few
        for the CNN).
    head_fraction : float
        Fraction of the validation rows the head is trained on.
    loss_fn : callable, optional
        The loss (see `fit_module`): of every stage for a deterministic
        stack, of the head only for a Bayesian one.
    posterior_epochs : int
        Bayesian stacks: epochs of the posterior-width fit.
    **fit_options
        Options of `fit_module` for every stage (``augment`` applies to the
        CNN only).

    Returns
    -------
    history : dict
        The head's training history, with the members' under ``'stages'``
        and, for a Bayesian stack, the posterior-width losses under
        ``'posterior_scales'``.
    """
    stage_options = {k: dict(v) for k, v in (stage_options or {}).items()}
    bayesian_head = bool(bayesian.variational_layers(stack.head))
    if bayesian_head:
        head = stage_options.setdefault("head", {})
        head.setdefault("loss_fn", bayesian.elbo_loss() if loss_fn is None else loss_fn)
        head.setdefault("posterior_epochs", posterior_epochs)
    elif loss_fn is not None:
        fit_options["loss_fn"] = loss_fn
    stages = {}

    def options(stage):
        opts = {**fit_options, **stage_options.get(stage, {})}
        if stage != "cnn":
            opts.pop("augment", None)
        return opts

    if "ann" in train_members:
        stack.ann.standardize.fit(x_train)
        stages["ann"] = fit_module(stack.ann, x_train, y_train, x_val, y_val, **options("ann"))
    if "cnn" in train_members:
        if images_train is not None:
            stack.cnn.fit_image_normalisation(images_train)
        stages["cnn"] = fit_module(stack.cnn, _cnn_psf_rows(stack, x_train), y_train,
                                   _cnn_psf_rows(stack, x_val), y_val,
                                   images_train=images_train, images_val=images_val,
                                   **options("cnn"))
    for p in list(stack.ann.parameters()) + list(stack.cnn.parameters()):
        p.requires_grad_(False)
    stack.eval()
    probs = _member_probabilities(stack, x_val, images_val)
    y_val = np.asarray(y_val)
    head_options = options("head")
    epochs_of_widths = head_options.pop("posterior_epochs", None)
    fit_part, stop_part = split_indices(y_val, [1 - head_fraction],
                                        random_state=head_options.get("random_state", 0))
    history = fit_module(stack.head, probs[fit_part], y_val[fit_part], probs[stop_part],
                         y_val[stop_part], **head_options)
    if bayesian_head:
        device = next(stack.head.parameters()).device
        stack.head.cpu()  # the same widths on every device
        try:
            history["posterior_scales"] = bayesian.fit_posterior_scales(
                stack.head, probs[fit_part], y_val[fit_part], epochs=epochs_of_widths,
                loss_fn=head_options.get("loss_fn"),
                random_state=head_options.get("random_state", 0))
        finally:
            stack.head.to(device)
    stack.eval()
    history["stages"] = stages
    return history


@torch.no_grad()
def _cnn_psf_rows(stack, features):
    """`MargNetStack.cnn_psf_widths` for numpy rows (None without features or PSF inputs)."""
    if features is None:
        return None
    widths = stack.cnn_psf_widths(torch.as_tensor(np.asarray(features, dtype=np.float32)))
    return None if widths is None else widths.cpu().numpy()


def _member_probabilities(stack, features, images, batch_size=512):
    """The members' concatenated probabilities for numpy rows, as a numpy array."""
    device = next(stack.parameters()).device
    out = []
    for s in range(0, len(features), batch_size):
        f = torch.as_tensor(np.asarray(features[s:s + batch_size]),
                            dtype=torch.float32).to(device)
        im = torch.as_tensor(np.asarray(images[s:s + batch_size]),
                             dtype=torch.float32).to(device)
        out.append(stack.member_probabilities(f, im).cpu())
    return torch.cat(out).numpy()


def fit_network(module, x_train, y_train, x_val, y_val, *, images_train=None, images_val=None,
                loss_fn=None, staged=True, by_member=False, lr_schedule=None,
                stage_options=None, fit_posterior=True, **fit_options):
    """Prepare and train a network on a training and a validation split.

    The one network-fitting procedure of sourceclf:

    1. the loss: ``loss_fn``, else the ELBO (`~sourceclf.models.bayesian.elbo_loss`,
       cross-entropy + KL / n_train) for a network with variational layers,
       else cross-entropy;
    2. training, in one of three ways:

       * a stacked ensemble (`~sourceclf.models.MargNetStack`), unless
         ``staged=False``: in stages, by `fit_stages` (which fits each
         member's input layers);
       * an averaging ensemble (``module.members``) with ``by_member``: each
         member alone, member ``k`` with seed ``random_state + k``, after
         `fit_input_layers` on it;
       * otherwise `fit_input_layers`, then `fit_module` once per step of
         ``lr_schedule``, each step starting from the best weights of the
         one before, step ``k`` with seed ``random_state + k``;

    3. with ``fit_posterior``, for a network with variational layers whose
       widths were not fitted yet (stacks fit their head's): the posterior
       widths, by `~sourceclf.models.bayesian.fit_posterior_scales` on the
       CPU on the training rows (the network is left on the CPU).

    Parameters
    ----------
    module : `torch.nn.Module`
        The untrained network (see `build_network`), modified in place.
    x_train, x_val : array-like or None
        Feature rows of the training and validation (early stopping) splits;
        None for a network that reads images only.
    y_train, y_val : array-like of int
        Their class indices.
    images_train, images_val : array-like, optional
        Their cutouts, for image networks.
    loss_fn : callable, optional
        ``loss_fn(module, logits, targets, n_train) -> loss`` (for example
        `cross_entropy_loss`); default as in step 1.
    staged : bool
        Train a stacked ensemble in stages (False: as one network).
    by_member : bool
        Train an averaging ensemble's members one by one.
    lr_schedule : sequence of (int, float), optional
        Steps of (epochs, learning rate); default one step of ``epochs`` at
        ``lr``.  Not for stacks or ``by_member``.
    stage_options : dict, optional
        Stacks: per-stage options (see `fit_stages`).
    fit_posterior : bool
        Fit the posterior widths of a network with variational layers.
    **fit_options
        Options of `fit_module` (``epochs``, ``batch_size``, ``lr``,
        ``weight_decay``, ``patience``, ``device``, ``random_state``,
        ``augment``, ``progress``).

    Returns
    -------
    history : dict
        As `fit_module` returns (after a schedule of several steps: the
        steps' epochs one after the other, ``best_epoch`` counted over all
        of them); a stack's as `fit_stages` returns; with ``by_member``,
        ``'members'``: one `fit_module` history per member.  With the
        posterior widths fitted, their losses under ``'posterior_scales'``.
    """
    variational = bool(bayesian.variational_layers(module))
    if loss_fn is None and variational:
        loss_fn = bayesian.elbo_loss()
    random_state = fit_options.pop("random_state", 0)
    if staged and isinstance(module, MargNetStack):
        history = fit_stages(module, x_train, y_train, x_val, y_val,
                             images_train=images_train, images_val=images_val,
                             stage_options=stage_options, loss_fn=loss_fn,
                             random_state=random_state, **fit_options)
    elif by_member:
        members = list(module.members) if hasattr(module, "members") else [module]
        history = {"members": []}
        for k, member in enumerate(members):
            fit_input_layers(member, x_train, images_train)
            history["members"].append(fit_module(
                member, x_train, y_train, x_val, y_val, images_train=images_train,
                images_val=images_val, random_state=random_state + k, loss_fn=loss_fn,
                **fit_options))
        module.eval()
    else:
        fit_input_layers(module, x_train, images_train)
        schedule = lr_schedule or [(fit_options.pop("epochs", 200), fit_options.pop("lr", 1e-3))]
        fit_options.pop("epochs", None)
        fit_options.pop("lr", None)
        history = None
        for k, (epochs, lr) in enumerate(schedule):
            step = fit_module(module, x_train, y_train, x_val, y_val,
                              images_train=images_train, images_val=images_val,
                              epochs=epochs, lr=lr, random_state=random_state + k,
                              loss_fn=loss_fn, **fit_options)
            history = step if history is None else _join(history, step)
    if fit_posterior and variational and "posterior_scales" not in history:
        module.cpu()
        history["posterior_scales"] = bayesian.fit_posterior_scales(
            module, x_train, y_train, images=images_train, random_state=random_state)
    return history


def _join(history, step):
    """Histories of two consecutive `fit_module` runs as one."""
    joined = {key: history[key] + step[key]
              for key in ("train_loss", "val_loss", "val_accuracy")}
    joined["best_epoch"] = len(history["val_loss"]) + step["best_epoch"]
    return joined
