"""The classifier object that `sourceclf.classify` runs: weights + card + inputs."""

import contextlib
import importlib
import warnings
from pathlib import Path

import numpy as np

from ..device import (check_compile, check_precision, default_batch_size, resolve_device,
                      resolve_precision)
from ..exceptions import InvalidInputError, ModelIntegrityError, SourceclfWarning
from ..features import get_feature_set
from ..progress import progress_bar
from ..utils._files import atomic_path
from .architectures import build_architecture
from .card import (ModelCard, member_path, read_calibration, read_flag_calibrations,
                   sha256_file, verify_sha256, write_flag_calibrations)
from .domain import DOMAIN_FILE, ApplicabilityDomain, outside_magnitudes

__all__ = ["SourceClassifier", "TorchClassifier", "ROW_BLOCK", "pad_rows"]

#: Rows per block that CPU batches are padded to (see `pad_rows`).
ROW_BLOCK = 64

#: Side of the cutouts the load-time check runs image networks on (sourceclf's stamps).
_PROBE_STAMP = 32


#: Module defining the classifier class of each storage kind (imported on first
#: load, so that ``sourceclf.models`` itself stays light).
KIND_MODULES = {
    "torch": "sourceclf.models.base",
    "torch-bayesian": "sourceclf.models.bayesian",
    "sklearn": "sourceclf.models.classical",
    "blend": "sourceclf.models.blend",
}


class SourceClassifier:
    """Base class of trained classifiers.

    A classifier knows its classes, the feature set and/or images it reads, and
    returns class probabilities for rows of features.  Subclasses implement
    `_predict_proba` and the weight storage.

    Parameters
    ----------
    card : `~sourceclf.models.ModelCard`
        The model card.
    calibration : `~astropy.table.Table`, optional
        Held-out calibration split (class probabilities, labels, magnitudes)
        for conformal prediction sets.
    """

    #: Storage kind written into the card; `load` dispatches on it.
    kind = None
    _kinds = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            SourceClassifier._kinds[cls.kind] = cls

    def __init__(self, card, calibration=None):
        self.card = card
        self.card.kind = self.kind or card.kind
        self.calibration = calibration
        #: Calibration tables of the rows of one ``pred_flag``, by flag (card's
        #: ``flag_calibrations``; `sourceclf.conformal.add_prediction_sets`).
        self.flag_calibrations = {}
        #: The model's `~sourceclf.models.domain.ApplicabilityDomain` in its
        #: feature space (None when the model has none).
        self.domain = None
        #: The directory the model was loaded from (None for a model in memory).
        self.directory = None

    def outside_domain(self, features, catalog=None):
        """Which rows lie outside the model's applicability domain.

        Parameters
        ----------
        features : array-like of shape (n_rows, n_features) or None
            The model's features (of its feature set).
        catalog : `~astropy.table.Table`, optional
            The same rows of the catalog, under sourceclf's column names (with
            any column measured on the frames: `sourceclf.photometry.measure_columns`).
            A model without a fitted domain (the image models, trained on
            simulated stamps) judges them by the magnitudes its card says it was
            trained on, ``domain['magnitudes']``
            (`sourceclf.models.domain.outside_magnitudes`).

        Returns
        -------
        outside : `numpy.ndarray` of bool or None
            True for rows outside the domain; None when nothing can be judged:
            no fitted domain and no ``catalog`` (or no trained magnitudes, or
            none of their bands in it), or a fitted domain and no ``features``.
        """
        if self.domain is not None:
            return None if features is None else self.domain.outside(features)
        if catalog is None:
            return None
        return outside_magnitudes(catalog, self.card.domain.get("magnitudes"))

    # Convenience views of the card --------------------------------------------
    @property
    def name(self):
        """Registry name."""
        return self.card.name

    @property
    def classes(self):
        """Class labels in output order, as a tuple of str."""
        return tuple(self.card.classes)

    @property
    def feature_set(self):
        """Name of the photometric feature set, or None."""
        return self.card.feature_set

    @property
    def uses_images(self):
        """Whether the model needs cutouts."""
        return bool(self.card.uses_images)

    def __repr__(self):
        inputs = [x for x in (self.feature_set, "images" if self.uses_images else None) if x]
        return (f"<{type(self).__name__} {self.name!r} v{self.card.version}: "
                f"{' + '.join(inputs)} -> {'/'.join(self.classes)}>")

    # Capabilities -------------------------------------------------------------
    @property
    def is_bayesian(self):
        """Whether the model draws Monte Carlo samples (`predict_proba_mc`)."""
        return False

    @property
    def has_logits(self):
        """Whether the model returns raw class logits (a ``logits`` method)."""
        return False

    def resolve_precision(self, precision="fp32", device="cpu"):
        """The format a forward pass with these options runs in.

        Parameters
        ----------
        precision : {'fp32', 'bf16', 'auto'}
            As for `predict_proba`.
        device : str or `torch.device`
            Where it runs.

        Returns
        -------
        precision : str or None
            ``'fp32'`` or ``'bf16'`` for torch models; None for models that
            compute in their own precision (scikit-learn).
        """
        return None

    def is_compiled(self, device="cpu"):
        """Whether forward passes on ``device`` run through `torch.compile`.

        Always False for models without torch.
        """
        return False

    # Prediction ---------------------------------------------------------------
    def predict_proba(self, features=None, cutouts=None, *, device="cpu", batch_size=None,
                      progress=None, precision="fp32", compile=False):
        """Class probabilities for rows of model inputs.

        Parameters
        ----------
        features : array-like, shape (n, n_features), optional
            Feature rows in the order of ``self.feature_set``.
        cutouts : array-like, shape (n, 5, H, W), optional
            Cutouts in ugriz order, for image models.
        device : str or `torch.device`
            Where to run.
        batch_size : int, optional
            Rows per forward pass.  What holds: on the CPU, in fp32 and
            without ``compile``, photometric networks (MLPs, MargNet's ANN,
            their Bayesian variants) and classical models give every row the
            same probabilities bit for bit whatever the batch size and
            torch's number of threads (CPU batches are padded with zero rows
            to whole blocks of `ROW_BLOCK` rows, see `pad_rows`).  Networks
            that read images may differ between batch sizes in the last bits
            (up to a few 1e-7 in probabilities: some CPU kernels depend on a
            row's place in its batch), and so may every network with
            ``compile=True``, on a GPU (a few 1e-7) or in bf16 (more: bf16
            keeps about three significant digits).
        progress : bool, optional
            Show a tqdm progress bar.
        precision : {'fp32', 'bf16', 'auto'}
            Floating-point format of the forward pass of torch models:
            ``'fp32'`` (default), ``'bf16'`` (under `torch.autocast` with
            ``torch.bfloat16``; probabilities agree with fp32 to a few 1e-2)
            or ``'auto'`` (bf16 on a CUDA GPU that supports it, else fp32).
            Models without torch (scikit-learn) accept ``'fp32'`` and
            ``'auto'`` only.
        compile : bool
            Run torch models through `torch.compile` (compiled once per
            classifier and device; eager, with one warning, if compiling
            fails).  Models without torch refuse it.

        Returns
        -------
        proba : `numpy.ndarray`, shape (n, n_classes)

        Raises
        ------
        InvalidInputError
            For an unknown ``precision``, or options the model cannot honour.
        """
        self.check_speed_options(precision, compile)
        n = self._check_inputs(features, cutouts)
        if n == 0:
            return np.zeros((0, len(self.classes)))
        return self._predict_proba(features, cutouts, device=device, batch_size=batch_size,
                                   progress=progress, precision=precision, compile=compile)

    def predict_proba_mc(self, features=None, cutouts=None, *, n_samples=50, random_state=0,
                         device="cpu", batch_size=None, progress=None, precision="fp32",
                         compile=False):
        """Monte Carlo class probabilities and their uncertainty (Bayesian models only).

        See `~sourceclf.models.BayesianClassifier.predict_proba_mc`.

        Raises
        ------
        InvalidInputError
            Always: this model is not Bayesian.
        """
        raise InvalidInputError(f"model '{self.name}' is not Bayesian; mc_samples "
                                "needs a bayesian-* model")

    def check_speed_options(self, precision, compile):
        """Refuse ``precision`` and ``compile`` values this kind of model cannot honour.

        Models without torch compute in their own precision: ``'fp32'`` and
        ``'auto'`` (which means fp32 off CUDA GPUs) are accepted, ``'bf16'``
        and ``compile=True`` are errors.

        Parameters
        ----------
        precision : {'fp32', 'bf16', 'auto'}
            As for `predict_proba`.
        compile : bool
            As for `predict_proba`.

        Raises
        ------
        InvalidInputError
            For an unknown value, or one this model cannot honour.
        """
        if check_precision(precision) == "bf16":
            raise InvalidInputError(f"model '{self.name}' ({self.kind}) does not run in torch: "
                                    "precision 'bf16' applies to torch models only; use "
                                    "'fp32' or 'auto'")
        if check_compile(compile):
            raise InvalidInputError(f"model '{self.name}' ({self.kind}) does not run in torch: "
                                    "compile=True applies to torch models only")

    def _check_inputs(self, features, cutouts):
        n = None
        if self.feature_set is not None:
            if features is None:
                raise InvalidInputError(f"model '{self.name}' needs features "
                                        f"'{self.feature_set}'")
            features = np.asarray(features)
            n_feat = len(get_feature_set(self.feature_set).names)
            if features.ndim != 2 or features.shape[1] != n_feat:
                raise InvalidInputError(
                    f"model '{self.name}' expects features of shape (n, {n_feat}), "
                    f"got {features.shape}")
            n = features.shape[0]
        if self.uses_images:
            if cutouts is None:
                raise InvalidInputError(f"model '{self.name}' needs 5-band cutouts")
            shape = np.shape(cutouts)
            if len(shape) != 4 or shape[1] != 5:
                raise InvalidInputError(
                    f"model '{self.name}' expects cutouts of shape (n, 5, H, W), got {shape}")
            if n is not None and shape[0] != n:
                raise InvalidInputError(
                    f"{shape[0]} cutouts for {n} feature rows: counts must match")
            n = shape[0]
        return n

    def _predict_proba(self, features, cutouts, *, device, batch_size, progress,
                       precision="fp32", compile=False):
        raise NotImplementedError

    # Storage ------------------------------------------------------------------
    def save(self, directory, *, overwrite=False):
        """Write the model in the registry format: card, weights, calibration.

        Parameters
        ----------
        directory : str or path-like
            Directory to create.  `sourceclf.models.load_model` reads it back.
        overwrite : bool
            Replace an existing directory's files.

        Returns
        -------
        directory : `pathlib.Path`
        """
        directory = Path(directory)
        if directory.exists() and any(directory.iterdir()) and not overwrite:
            raise InvalidInputError(f"'{directory}' exists and is not empty; "
                                    "pass overwrite=True to replace it")
        directory.mkdir(parents=True, exist_ok=True)
        weights = directory / self.card.weights_file
        self._write_weights(weights)
        self.card.weights_sha256 = sha256_file(weights)
        if self.calibration is not None:
            self.card.calibration_file = "calibration.ecsv"
            with atomic_path(directory / self.card.calibration_file) as tmp:
                self.calibration.write(tmp, format="ascii.ecsv", overwrite=True)
            self.card.calibration_sha256 = sha256_file(directory / self.card.calibration_file)
        else:
            self.card.calibration_file = None
            self.card.calibration_sha256 = ""
        write_flag_calibrations(directory, self.card, self.flag_calibrations)
        if self.domain is not None:
            self.card.domain["file"] = DOMAIN_FILE
            self.card.domain["sha256"] = self.domain.save(directory / DOMAIN_FILE)
        self.card.to_json(directory / "card.json")
        return directory

    def _write_weights(self, path):
        raise NotImplementedError

    @classmethod
    def load(cls, directory):
        """Read a model directory written by `save`, verifying it.

        The card must be a JSON object with the keys of
        `~sourceclf.models.card.REQUIRED_KEYS`; the files it names (weights,
        calibration, flagged rows' calibration, domain) must lie in the
        directory (plain file names); the weights must match the card's
        ``weights_sha256`` (required; hex digits of any case), each flagged
        rows' calibration file its digest (required), the calibration file
        its ``calibration_sha256`` when the card records one; the calibration
        tables must hold the columns conformal sets need; and the network or estimator must fit
        the card's classes and feature set (checked now, not at the first
        ``classify``).

        Parameters
        ----------
        directory : str or path-like
            The model directory.

        Returns
        -------
        classifier : `SourceClassifier`

        Raises
        ------
        InvalidInputError
            For a missing, unreadable or incomplete card, a missing or
            unreadable file, or weights that do not fit the card.
        ModelIntegrityError
            For a missing or wrong digest, or a file name that leaves the
            directory.
        """
        directory = Path(directory)
        card = ModelCard.from_directory(directory)
        weights = member_path(directory, card.weights_file, "weights_file", card.name)
        if not weights.is_file():
            raise InvalidInputError(f"model '{card.name}': weights file '{weights}' is missing")
        verify_sha256(weights, card.weights_sha256, "weights", card.name)
        calibration = None
        if card.calibration_file:
            calibration = read_calibration(directory, card)
        elif card.calibration_sha256:  # a digest without its file: the card was altered
            raise ModelIntegrityError(f"model '{card.name}': its card records a calibration "
                                      "digest but no calibration_file; refusing to load it "
                                      "without the calibration it was shipped with")
        domain_path = None
        if card.domain.get("file"):
            domain_path = member_path(directory, card.domain["file"], "domain file", card.name)
        if card.kind not in SourceClassifier._kinds and card.kind in KIND_MODULES:
            importlib.import_module(KIND_MODULES[card.kind])  # registers the kind
        try:
            kind_cls = SourceClassifier._kinds[card.kind]
        except KeyError:
            raise InvalidInputError(f"model '{card.name}' is of unknown kind '{card.kind}'; "
                                    "is a newer sourceclf needed?") from None
        classifier = kind_cls._from_files(card, weights, calibration)
        classifier._check_fits_card()
        classifier.directory = directory
        classifier.flag_calibrations = read_flag_calibrations(directory, card)
        if domain_path is not None:
            classifier.domain = ApplicabilityDomain.load(domain_path,
                                                         sha256=card.domain.get("sha256"))
        return classifier

    def _n_features(self):
        """Length of the card's feature set (None without one), checking its name."""
        if self.feature_set is None:
            if not self.uses_images:
                raise InvalidInputError(f"model '{self.name}': its card names neither a "
                                        "feature set nor images as inputs")
            return None
        try:
            return len(get_feature_set(self.feature_set).names)
        except InvalidInputError as exc:
            raise InvalidInputError(f"model '{self.name}': {exc}") from None

    def _check_fits_card(self):
        """Check, at load, that the weights fit the card's inputs and classes.

        The base class checks the card's inputs only; kinds with weights
        (torch, scikit-learn) also check the weights against them.

        Raises
        ------
        InvalidInputError
            If they do not.
        """
        self._n_features()


def pad_rows(batch, device):
    """A CPU batch padded with zero rows to a whole number of `ROW_BLOCK` rows.

    BLAS and oneDNN kernels on the CPU treat the last rows of a ragged batch,
    and batches of a few rows, with other code paths (other blockings, other
    orders of summation), so without padding a row's outputs could differ in
    the last bits with the batch it falls in (e.g. with the chunking of
    `sourceclf.classify_file` or the ``batch_size`` option).  Padded batches
    of any whole number of blocks give every row the same result; callers
    drop the padding rows from the outputs.

    Parameters
    ----------
    batch : `torch.Tensor` or None
        Rows along the first axis.
    device : `torch.device`
        Where the batch runs: batches for other devices are returned as they
        are (GPU kernels give no such guarantee).

    Returns
    -------
    batch : `torch.Tensor` or None
    """
    if batch is None or device.type != "cpu" or len(batch) % ROW_BLOCK == 0:
        return batch
    import torch

    pad = batch.new_zeros((-len(batch) % ROW_BLOCK,) + tuple(batch.shape[1:]))
    return torch.cat([batch, pad])


def _widest_layer(module):
    """Largest number of outputs of a linear layer of ``module`` (None if it has none)."""
    from torch import nn

    return max((m.out_features for m in module.modules() if isinstance(m, nn.Linear)),
               default=None)


class TorchClassifier(SourceClassifier):
    """A classifier backed by a `torch.nn.Module`.

    Parameters
    ----------
    module : `torch.nn.Module`
        Network whose ``forward(features, images)`` returns class logits.
    card : `~sourceclf.models.ModelCard`
        Its card (``architecture`` and ``config`` must rebuild ``module``).
    calibration : `~astropy.table.Table`, optional
        Calibration split for conformal sets.
    """

    kind = "torch"

    def __init__(self, module, card, calibration=None):
        super().__init__(card, calibration)
        self.module = module.eval()
        # str(device) -> (module, compiled module, or None after a failed compilation)
        self._compiled = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_compiled"] = {}  # compiled modules are neither picklable nor portable
        return state

    @classmethod
    def _from_files(cls, card, weights, calibration):
        from safetensors.torch import load_file

        module = build_architecture(card.architecture, card.config)
        state = load_file(str(weights))
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise InvalidInputError(f"model '{card.name}': weights do not fit architecture "
                                    f"'{card.architecture}': {first}") from None
        return cls(module, card, calibration)

    def _check_fits_card(self):
        """Run the network on two rows of zeros: it must take the card's inputs
        (its feature set, 5-band 32x32 cutouts) and return one score per class."""
        import torch

        n_features = self._n_features()
        feats = None if n_features is None else torch.zeros((2, n_features))
        images = torch.zeros((2, 5, _PROBE_STAMP, _PROBE_STAMP)) if self.uses_images else None
        inputs = " and ".join(x for x in (
            n_features is not None and f"{n_features} features of '{self.feature_set}'",
            self.uses_images and "5-band cutouts") if x)
        try:
            with torch.inference_mode():
                out = self.module.eval()(feats, images)
        except Exception as exc:  # shape mismatches surface as several error types
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise InvalidInputError(f"model '{self.name}': its network does not take the "
                                    f"card's inputs ({inputs}): {type(exc).__name__}: "
                                    f"{first}") from None
        if tuple(out.shape) != (2, len(self.classes)):
            raise InvalidInputError(f"model '{self.name}': its network returns "
                                    f"{out.shape[-1] if out.dim() else 0} class scores per "
                                    f"row, the card lists {len(self.classes)} classes "
                                    f"({', '.join(self.classes)})")

    def _write_weights(self, path):
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
        save_file(state, str(path), metadata={"name": self.card.name,
                                              "architecture": self.card.architecture})

    @property
    def has_logits(self):
        """True: `logits` returns the network's raw class logits."""
        return True

    # Precision and compilation ------------------------------------------------
    def check_speed_options(self, precision, compile):
        """Check ``precision`` and ``compile`` (torch models honour every valid value).

        Raises
        ------
        InvalidInputError
            For an unknown value.
        """
        check_precision(precision)
        check_compile(compile)

    def resolve_precision(self, precision="fp32", device="cpu"):
        """The format (``'fp32'`` or ``'bf16'``) a forward pass with these options runs in.

        Parameters
        ----------
        precision : {'fp32', 'bf16', 'auto'}
            As for `predict_proba`.
        device : str or `torch.device`
            Where it runs.

        Returns
        -------
        precision : str
        """
        return resolve_precision(precision, resolve_device(device))

    def is_compiled(self, device="cpu"):
        """Whether forward passes on ``device`` run through `torch.compile`.

        True once a compiled forward pass has been set up for the device
        (``compile=True``) and has not failed; False before, without
        ``compile``, or after compiling failed and the model fell back to
        eager execution.
        """
        entry = self._compile_cache.get(str(resolve_device(device)))
        return bool(entry) and entry[0] is self.module and entry[1] is not None

    @property
    def _compile_cache(self):
        """str(device) -> (module, its compiled module or None after a failure)."""
        return self.__dict__.setdefault("_compiled", {})

    @staticmethod
    def _autocast(precision, device):
        """The context a forward pass in ``precision`` ('fp32' or 'bf16') runs in."""
        import torch

        if precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _forward(self, module, device, compile, *inputs):
        """``module(*inputs)``, through the cached `torch.compile` of it with ``compile``.

        The module is compiled once per classifier and device (compilation
        itself happens lazily, on the first call and when input shapes change).
        If `torch.compile` or a compiled call fails (no C compiler, an
        unsupported operation or platform...), a warning is issued once, the
        device's entry is marked as failed and the module runs eagerly from
        then on.
        """
        if not compile:
            return module(*inputs)
        import torch

        key = str(device)
        entry = self._compile_cache.get(key)
        if entry is None or entry[0] is not module:
            try:
                compiled = torch.compile(module)
            except Exception as exc:  # unsupported Python/platform, missing backend...
                self._compile_failed(key, module, device, exc)
                return module(*inputs)
            entry = self._compile_cache[key] = (module, compiled)
        if entry[1] is None:
            return module(*inputs)
        try:
            return entry[1](*inputs)
        except Exception as exc:  # compilation happens on the call: no compiler, ...
            self._compile_failed(key, module, device, exc)
            return module(*inputs)

    def _compile_failed(self, key, module, device, exc):
        self._compile_cache[key] = (module, None)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        warnings.warn(f"model '{self.name}': torch.compile failed on {device} "
                      f"({type(exc).__name__}: {first}); running it eagerly",
                      SourceclfWarning, stacklevel=4)

    # Prediction ---------------------------------------------------------------
    def logits(self, features=None, cutouts=None, *, device="cpu", batch_size=None,
               progress=None, precision="fp32", compile=False):
        """Raw class logits (float32), batched under `torch.inference_mode`.

        Parameters
        ----------
        features, cutouts, device, batch_size, progress
            As for `predict_proba`.
        precision : {'fp32', 'bf16', 'auto'}
            Floating-point format of the forward pass (see `predict_proba`);
            bf16 logits are cast back to float32.
        compile : bool
            Run the forward pass through `torch.compile` (see `predict_proba`).

        Returns
        -------
        logits : `numpy.ndarray` of float32, shape (n, n_classes)
        """
        import torch

        device = resolve_device(device)
        precision = self.resolve_precision(precision, device)
        compile = check_compile(compile)
        n = self._check_inputs(features, cutouts)
        batch_size = batch_size or default_batch_size(self.uses_images, device,
                                                      width=_widest_layer(self.module))
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
        module = self.module.to(device).eval()
        feats = None if features is None else torch.as_tensor(
            np.ascontiguousarray(features, dtype=np.float32))
        out = torch.empty((n, len(self.classes)), dtype=torch.float32)
        # CPU batches (features and cutouts) are padded to whole ROW_BLOCKs, so that a
        # row's logits do not depend on the batch it falls in (see pad_rows).
        with torch.inference_mode(), self._autocast(precision, device), \
                progress_bar(total=n, enabled=progress, unit="src") as bar:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                f = None if feats is None else feats[start:stop].to(device, non_blocking=True)
                f = pad_rows(f, device)
                im = None
                if cutouts is not None and self.uses_images:
                    im = pad_rows(torch.as_tensor(np.ascontiguousarray(
                        cutouts[start:stop], dtype=np.float32)).to(device), device)
                logits = self._forward(module, device, compile, f, im)
                out[start:stop] = logits[: stop - start].float().cpu()
                bar.update(stop - start)
        return out.numpy()

    def _predict_proba(self, features, cutouts, *, device, batch_size, progress,
                       precision="fp32", compile=False):
        logits = self.logits(features, cutouts, device=device, batch_size=batch_size,
                             progress=progress, precision=precision,
                             compile=compile).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba
