"""Recipes that train the shipped image models on simulated SDSS stamps.

Run them with::

    python -m sourceclf.image_recipes all --data-dir ../shared/data

(or one of ``margnet-cnn-sgq``, ``margnet-sgq``, ``margformer-sgq``).  The
models learn from the stamps of `sourceclf.recipes.image_training_set`,
split with `sourceclf.recipes.data.recipe_split` (stratified, seed 42) into
training, validation (early stopping; the ensemble's head), calibration
(conformal sets) and test parts; test metrics in the cards are on held-out
*simulated* stamps, and the checks of `sourceclf.recipes.frame_checks` on a
real SDSS frame are added to them.
"""

import time
from pathlib import Path

import numpy as np
import torch

from ..augment import random_augment
from ..bands import BANDS, MARGNET_FEATURES
from ..elongation import ELONGATION_LIMIT
from ..crowding import (NEIGHBOUR_BAND, NEIGHBOUR_QUANTILE, NEIGHBOUR_THRESHOLD,
                        count_neighbours, neighbour_limit)
from ..exceptions import InvalidInputError, SourceclfError
from ..features import get_feature_set
from ..models.base import TorchClassifier
from ..models.bayesian import BayesianClassifier, variational_layers
from ..models.card import ModelCard
from ..models.margformer import count_flops
from ..models.registry import load_model
from ..psf import CATALOG_PSF_SCALE
from ..simulate import sky_sigma_range
from ..sky import STAMP_BORDER
from ..training import fitting, labels_from_table
from .cards import (accuracy_by_magnitude, calibrate_on, held_out_metrics, mc_metrics,
                    n_parameters, posterior_summary, software_versions, split_sizes)
from .data import DR14_SPECTRO_FILE, FAINT_COMPACT_SG_FILE, recipe_split
from .frame_checks import frame_galaxy_check, frame_star_check, real_frame_catalog
from .image_training_set import (MAGNITUDE_RANGES, SIMULATION, psf_columns,
                                 simulation_settings, trained_psf_range)

__all__ = ["RECIPES", "SEEING_BINS", "MAGNITUDE_EDGES", "PSF_JITTER", "MC_SAMPLES",
           "refresh_card", "refresh_frame_checks", "CNN_CONFIG", "ANN_CONFIG", "MARGFORMER_CONFIG",
           "MARGFORMER_FIT_OPTIONS", "BAYESIAN_CONFIG", "STACK_FIT_OPTIONS",
           "STACK_STAGE_OPTIONS", "FEATURE_SETS", "CNN_FIT_OPTIONS", "PSF_BETA_PERCENTILES",
           "trained_beta_range", "same_simulation",
           "margnet_cnn_sgq", "fwhm_cnn", "cnn_member", "margnet_sgq", "margformer_sgq",
           "bayesian_margnet_sgq", "bayesian_margformer_sgq"]


def _inputs(table, feature_set):
    classes, y = labels_from_table(table, classes=("GALAXY", "QSO", "STAR"))
    if feature_set is None:
        return classes, y, None
    spec = get_feature_set(feature_set)
    if spec.reads_psf_shape:  # the index a frame's stars give, not the drawn core's
        table = psf_columns(table)
    return classes, y, spec.compute(table).values


def _simulation(table):
    """The settings of the simulation a training table was rendered with (its
    ``meta['simulation_version']``; `SIMULATION` for a table without one)."""
    return simulation_settings(table.meta.get("simulation_version"))


def _card(name, *, architecture, config, feature_set, classes, description, notes,
          priority, parts, fit_options, seconds, history, simulation):
    return ModelCard(
        name=name, version="1.0", description=description, architecture=architecture,
        config=config, feature_set=feature_set, uses_images=True, classes=list(classes),
        auto_priority=priority, notes=notes,
        training={
            "data": ("SIMULATED stamps (GalSim, sourceclf.image_recipes): rows resampled "
                     f"from {FAINT_COMPACT_SG_FILE} (galaxies, stars) and parametric "
                     f"galaxies, quasars with the colours of {DR14_SPECTRO_FILE}, "
                     "magnitudes shifted to "
                     f"{MAGNITUDE_RANGES}; seeing, PSF shape and sky noise of "
                     f"{simulation['fields']} simulated fields drawn from "
                     "sourceclf.simulate.OBSERVING_CONDITIONS (r-band FWHM 0.75-2.5\")"),
            "simulation": dict(simulation),
            "recipe": (f"python -m sourceclf.image_recipes {name} --simulation "
                       f"{simulation['version']}"),
            "retrain_on_real_cutouts": (
                f"sourceclf.train(table, cutouts, model='{architecture}') with a labelled "
                "table and its 5-band 32x32 cutouts (or images={band: frame})"),
            "split": "sourceclf.train_recipes.recipe_split: stratified 0.6/0.1/0.1/0.2 "
                     "train/validation/calibration/test, seed 42",
            **split_sizes(parts),
            **{k: v for k, v in fit_options.items() if k != "augment"},
            "augmentation": "sourceclf.augment.random_augment (rotations, flips, shifts)",
            "epochs_run": len(history["val_loss"]), "best_epoch": history["best_epoch"],
            "train_seconds_cpu": round(seconds["cpu"], 1),
            "train_seconds_wall": round(seconds["wall"], 1),
            "torch_threads": torch.get_num_threads(), **software_versions(torch),
        },
    )


def _finish(clf, table, stamps, x, y, parts, data_dir):
    te = parts["test"]
    card = clf.card
    card.metrics["test"] = held_out_metrics(clf, y, te, x, stamps)
    card.metrics["test_data"] = "held-out 20% of the SIMULATED stamps (not real images)"
    card.metrics["validation"] = held_out_metrics(clf, y, parts["validation"], x, stamps)
    _card_checks(clf, table, stamps, x, y, parts, data_dir)
    calibrate_on(clf, table, y, parts["calibration"], x, stamps)
    card.extra["n_parameters"] = n_parameters(clf.module)
    card.extra["mflop_per_source"] = round(
        count_flops(clf.module, None if x is None else x.shape[1]) / 1e6, 2)
    return clf


def _card_checks(clf, table, stamps, x, y, parts, data_dir, frames=None):
    """The card entries that need the trained model but not its training.

    Accuracy per seeing and per magnitude on the held-out stamps (and, for
    the models reading MargNet's columns, per measurement of those columns:
    ``SIMULATION['catalog_columns']``), the domain
    (trained seeing, neighbour limit) and the checks on the real frame of
    field 4510-4-0030 (``frames``: its frames, when already read);
    `refresh_card` recomputes them for an installed model.
    """
    te = parts["test"]
    card = clf.card
    bright = _rendered_r(table)[te] < 21.0
    card.metrics["test_r_lt_21"] = held_out_metrics(clf, y, te[bright], x, stamps)
    card.metrics["test_by_seeing"] = _by_seeing(clf, table, y, te, x, stamps)
    card.metrics["test_by_magnitude"] = _by_magnitude(clf, table, y, te, x, stamps)
    if clf.feature_set == "margnet24" and "frame_deblended" in table.colnames:
        through = np.asarray(table["frame_deblended"], bool)[te]
        card.metrics["test_by_column_measurement"] = {
            "exactly_deblended": held_out_metrics(clf, y, te[~through], x, stamps),
            "frame_deblended": held_out_metrics(clf, y, te[through], x, stamps)}
    card.domain.update(_image_domain(table, stamps[parts["train"]]))
    if get_feature_set(clf.feature_set).reads_psf_shape:
        card.domain["psf_beta"] = trained_beta_range(x[parts["train"], len(BANDS):])
    _frame_checks(clf, data_dir, frames)


def _frame_checks(clf, data_dir=None, frames=None):
    """The card's checks on the real frames of field 4510-4-0030, as `sourceclf.classify`
    calls their sources (``real_frame_stars``, ``real_frame_extended``)."""
    _, frames = real_frame_catalog(data_dir, frames)  # read once for both checks
    real = frame_star_check(clf, data_dir, frames)
    if real is not None:
        clf.card.metrics["real_frame_stars"] = real
    extended = frame_galaxy_check(clf, data_dir, frames)
    if extended is not None:
        clf.card.metrics["real_frame_extended"] = extended


def refresh_frame_checks(name, *, data_dir=None, frames=None):
    """Recompute an installed image model's real-frame checks alone, without its simulation.

    ``real_frame_stars`` and ``real_frame_extended`` of its card are measured
    again as `sourceclf.classify` now calls those sources (after a change of
    how the frames are read, measured or cut); only ``card.json`` is
    rewritten.

    Parameters
    ----------
    name : str
        An installed image model, or its directory.
    data_dir : path-like, optional
        Directory of the SDSS data (default ``../shared/data``).
    frames : dict, optional
        The frames of field 4510-4-0030, ``{band: (data, wcs)}``, when already read.

    Returns
    -------
    path : `pathlib.Path`
        The card written.

    Raises
    ------
    SourceclfError
        If the model reads no images, or the frames are not found.
    """
    clf = load_model(name)
    if not clf.uses_images:
        raise SourceclfError(f"model '{clf.name}' reads no images: it has no real-frame checks")
    catalog, frames = real_frame_catalog(data_dir, frames)  # read once, for both checks
    if catalog is None:
        raise SourceclfError("the frames of field 4510-4-0030 are not in the data folder "
                             f"({data_dir or 'the default'})")
    _frame_checks(clf, data_dir, frames)
    return _write_card(clf)


def _write_card(clf):
    """Write ``clf``'s card into its own directory (nothing else there is touched); its
    path."""
    path = Path(clf.directory) / "card.json"
    clf.card.to_json(path)
    return path


def refresh_card(name, table, stamps, *, data_dir=None, frames=None):
    """Recompute the checks in an installed image model's card without training it.

    Only ``card.json`` is rewritten, in the model's own directory: the
    weights, calibration and thresholds stay as they are.

    Parameters
    ----------
    name : str
        An installed image model (or its directory) trained on ``table``.
    table, stamps
        The simulated training set it was trained on
        (`~sourceclf.recipes.image_training_set.simulated_training_set`).
    data_dir : path-like, optional
        Directory of the SDSS data (default ``../shared/data``).
    frames : dict, optional
        The frames of field 4510-4-0030, ``{band: (data, wcs)}``, when
        already read (refreshing several cards reads them once).

    Returns
    -------
    path : `pathlib.Path`
        The card written.

    Raises
    ------
    SourceclfError
        If the model was trained on another simulation than ``table``.
    """
    clf = load_model(name)
    settings = _simulation(table)
    if not same_simulation(clf, len(table), settings["seed"], settings, check_seed=False):
        sim = clf.card.training.get("simulation", {})
        raise SourceclfError(f"model '{clf.name}' was trained on simulation version "
                             f"{sim.get('version')} of {sim.get('n')} rows (catalog columns "
                             f"{sim.get('catalog_columns', 1)}), not version "
                             f"{settings['version']} of {len(table)} (catalog columns "
                             f"{settings['catalog_columns']}): refresh it with --simulation "
                             f"{sim.get('version')}, or retrain it")
    _, y, x = _inputs(table, clf.feature_set)
    _card_checks(clf, table, stamps, x, y, recipe_split(table), data_dir, frames)
    return _write_card(clf)


#: Inner r-magnitude bin edges of the cards' held-out accuracy per magnitude.
MAGNITUDE_EDGES = (17.0, 18.5, 19.5, 20.5, 21.5, 22.5)


def _rendered_r(table):
    """The r magnitude each simulated source was drawn with (not the measured one), so
    that every image model's card bins its sources alike."""
    name = "rendered_dered_r" if "rendered_dered_r" in table.colnames else "dered_r"
    return np.asarray(table[name], dtype=np.float64)


def _by_magnitude(clf, table, y, rows, x, stamps):
    """Held-out accuracy per rendered r magnitude (`MAGNITUDE_EDGES`), as photometric
    cards give it."""
    proba = clf.predict_proba(None if x is None else x[rows], stamps[rows])
    return accuracy_by_magnitude(y[rows], proba.argmax(1), _rendered_r(table)[rows],
                                 edges=MAGNITUDE_EDGES)


#: Relative scatter (log-normal) put on the PSF FWHMs a PSF-aware network trains
#: on: the precision of a FWHM measured on a frame's stars.
PSF_JITTER = 0.04

#: r-band PSF FWHM bins (arcsec) of the cards' accuracy per seeing.
SEEING_BINS = (0.75, 1.0, 1.3, 1.6, 1.9, 2.2, 2.5)


def _by_seeing(clf, table, y, rows, x, stamps):
    """Held-out metrics per r-band seeing bin (`SEEING_BINS`)."""
    fwhm = np.asarray(table["psf_fwhm_r"], dtype=np.float64)[rows]
    out = {}
    for low, high in zip(SEEING_BINS[:-1], SEEING_BINS[1:]):
        part = rows[(fwhm >= low) & (fwhm < high)]
        if part.size:
            out[f"{low:.2f}-{high:.2f}"] = held_out_metrics(clf, y, part, x, stamps)
    return out


#: Percentiles of the training PSFs' Moffat indices that bound those a model reading
#: the PSF's shape is given (its card's ``domain['psf_beta']``): the index has a long
#: tail of nearly Gaussian PSFs, few in training, among which it matters little.
PSF_BETA_PERCENTILES = (5.0, 95.0)


def trained_beta_range(beta):
    """The card's ``domain['psf_beta']``: `PSF_BETA_PERCENTILES` of each band's trained
    Moffat indices (``beta``: one column per band), rounded to 0.01."""
    beta = np.asarray(beta, dtype=np.float64)
    return {b: [round(float(v), 2) for v in np.percentile(beta[:, k], PSF_BETA_PERCENTILES)]
            for k, b in enumerate(BANDS)}


def _image_domain(table, train_stamps):
    """The card's domain: trained seeing (central 95%), magnitudes, neighbour limit."""
    psf_range = trained_psf_range(n=len(table))
    r = psf_range["r"]
    counts = count_neighbours(train_stamps)
    limit = neighbour_limit(counts)
    return {"description": (
                f"SDSS-like ugriz frames or 32x32 stamps (0.396\"/pixel, nanomaggies, "
                f"sky-subtracted) with r-band seeing {r[0]:.2f}-{r[1]:.2f}\" (PSF FWHM; "
                "other bands in psf_fwhm), sources r 14-22.5, at most "
                f"{limit} other sources in a stamp. Trained on simulated stamps "
                "of fields with varied seeing; rows outside the trained seeing are flagged "
                "'seeing_out_of_range', rows whose PSF is unknown 'psf_unknown', rows "
                f"whose PSF's 1 - b/a exceeds {ELONGATION_LIMIT:g} in a band (more elongated "
                "than the models were checked on) 'psf_elongated', rows "
                "with more neighbours than 99% of the training stamps 'crowded', rows on "
                "frames whose sky is unlike the trained one 'sky_out_of_range' or "
                "'sky_not_subtracted', rows whose r magnitude (given, or measured on the "
                "frames) lies outside 14-22.5 'out_of_domain'."),
            "magnitudes": {"r": [14.0, 22.5]}, "psf_fwhm": psf_range,
            "sky_sigma": {b: list(r) for b, r in sky_sigma_range().items()},
            "neighbours": {"limit": limit, "quantile": NEIGHBOUR_QUANTILE,
                           "band": NEIGHBOUR_BAND, "threshold_sigma": NEIGHBOUR_THRESHOLD,
                           "training_counts": np.bincount(counts).tolist(),
                           "method": "sourceclf.crowding.count_neighbours"}}


def _fit(name, table, stamps, *, architecture, config, description, notes,
         priority, data_dir=None, module=None, fit_options=None, stages=None, seed=0,
         classifier_cls=TorchClassifier, feature_set=None):
    feature_set = feature_set or FEATURE_SETS[name]
    classes, y, x = _inputs(table, feature_set)
    parts = recipe_split(table)
    tr, va = parts["train"], parts["validation"]
    cfg = {"n_classes": len(classes), **({} if x is None else {"n_features": x.shape[1]}),
           **config}
    if module is None:
        module = fitting.build_network(architecture, cfg, random_state=seed)
    opts = {"epochs": 10, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-4,
            "patience": 4, "random_state": seed, "device": "cpu", **(fit_options or {})}
    # A step-wise decaying learning rate: (epochs, lr) steps, each starting from the
    # previous step's best weights.
    schedule = opts.pop("lr_schedule", None)
    x_train = None if x is None else x[tr]
    if feature_set in ("psf_fwhm", "psf_shape"):
        # A frame's measured FWHM is good to 2-5%: the network must not lean on more.
        rng = np.random.default_rng(seed)
        x_train = x_train.copy()
        fwhm = x_train[:, :len(BANDS)]
        x_train[:, :len(BANDS)] = fwhm * np.exp(rng.normal(0.0, PSF_JITTER, fwhm.shape)).astype(
            np.float32)
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    history = fitting.fit_network(module, x_train, y[tr],
                                  None if x is None else x[va], y[va],
                                  images_train=stamps[tr], images_val=stamps[va],
                                  augment=random_augment, lr_schedule=schedule,
                                  **(stages or {}), **opts)
    if schedule is not None and len(schedule) > 1:
        opts["lr_schedule"] = [list(step) for step in schedule]
        opts.pop("lr")
        opts.pop("epochs")
    seconds = {"cpu": time.process_time() - t_cpu, "wall": time.perf_counter() - t_wall}
    if feature_set in ("psf_fwhm", "psf_shape"):
        opts["psf_jitter"] = PSF_JITTER
    module.cpu().eval()
    card = _card(name, architecture=architecture, config=cfg, feature_set=feature_set,
                 classes=classes, description=description, notes=notes, priority=priority,
                 parts=parts, fit_options=opts, seconds=seconds, history=history,
                 simulation=_simulation(table))
    if "stages" in history:
        card.training["stages"] = {k: {"epochs_run": len(h["val_loss"]),
                                       "best_epoch": h["best_epoch"]}
                                   for k, h in history["stages"].items()}
    if "posterior_scales" in history:
        card.training["loss"] = "cross_entropy + KL(posterior || prior) / n_rows"
        card.training["posterior_scales"] = posterior_summary(
            variational_layers(module)[-1], history["posterior_scales"])
    clf = _finish(classifier_cls(module, card), table, stamps, x, y, parts, data_dir)
    if isinstance(clf, BayesianClassifier):
        card.metrics[f"test_mc{MC_SAMPLES}"] = mc_metrics(clf, y, parts["test"], x, stamps,
                                                          n_samples=MC_SAMPLES)
    return clf


#: Monte Carlo draws of the Bayesian image models' card metrics (``test_mc<N>``).
MC_SAMPLES = 30


#: The shipped configurations (the architectures' defaults are the published sizes).
#: The feature set each recipe's model reads next to its stamps: ``psf_shape`` (each
#: band's PSF FWHM and Moffat index) for the CNN alone, MargNet's 24 catalog columns for
#: the others, which alone need the columns measured on the training stamps.
FEATURE_SETS = {"margnet-cnn-sgq": "psf_shape", "margnet-sgq": "margnet24",
                "margformer-sgq": "margnet24", "bayesian-margnet-sgq": "margnet24",
                "bayesian-margformer-sgq": "margnet24"}

#: Each stamp's own border sky is subtracted before the networks read it (`AsinhNormalise`).
CNN_CONFIG = {"width": 0.125, "dense": [256], "batch_norm": True, "sky_border": STAMP_BORDER}
ANN_CONFIG = {"standardize": True, "dropout": 0.25}
MARGFORMER_CONFIG = {"dim": 48, "depth": 3, "heads": 4, "token_layers": 1,
                     "feature_hidden": [128], "mlp_ratio": 2.0, "dropout": 0.1,
                     "sky_border": STAMP_BORDER}
#: Training of margformer-sgq and of its Bayesian variant.
MARGFORMER_FIT_OPTIONS = {"epochs": 15, "lr": 1e-3, "patience": 4}

_SIM_NOTE = ("Trained on SIMULATED stamps, not on real SDSS cutouts: GalSim renderings of "
             "realistic catalog rows in simulated fields whose seeing (r-band FWHM "
             "0.75-2.5\"), PSF shape and sky noise are drawn from the ranges measured on "
             "real SDSS fields (sourceclf.image_recipes). Expect real images (blends, "
             "artefacts, saturated stars, PSF wings) to be harder than the simulated test "
             "set; docs/scripts/check_fields.py measures it on real fields. Sources "
             "fainter than r ~ 22.5 barely show in the stamps; the training "
             "set extends point sources (to r = 24) fainter than galaxies (to r = 22.5, few "
             "beyond 21.5), so such sources are called STAR or QSO largely by prior, not by "
             "their image: faint real galaxies will often be called STAR. "
             "The PSF is a Moffat core (index 3 to 12) with a power-law wing holding "
             "4-16% of the light, varying between training fields. "
             f"Each stamp's own sky (the median of its outer {STAMP_BORDER} pixels, band by "
             "band) is subtracted before the network reads it, in training and in use, so a "
             "sky a fraction of its noise off zero leaves the calls unchanged. "
             "Retrain on real labelled cutouts "
             "with sourceclf.train(table, cutouts, model='{arch}').")

_COLUMNS_NOTE = (" MargNet's 24 columns it reads were measured on the simulated stamps "
                 "(sourceclf.recipes.measured_columns: fitted by least squares with de "
                 "Vaucouleurs profiles convolved with the band's PSF, as SDSS fits its "
                 "catalog), not copied from the catalog the stamps were drawn from, so they "
                 "are as uncertain as a catalog's at each magnitude and seeing. On half the "
                 "rows (drawn at random) each stamp was first split from its neighbours by "
                 "sourceclf's segment deblender (sourceclf.photometry.deblend_frame), which "
                 "leaves in the light of neighbours without a peak of their own; on the "
                 "other half the neighbours' light was removed exactly, as a model-fitting "
                 "pipeline like SDSS's nearly does (metrics['test_by_column_measurement']).")


#: What the image-only CNN's card says of the PSF's shape, which it reads.
PSF_SHAPE_NOTE = (" It reads each band's PSF Moffat index next to its FWHM, trained with the "
                  "index a frame's stars give for each simulated field's PSF, core and wing "
                  "(sourceclf.recipes.image_training_set.fitted_psf_beta), so that at worse "
                  "seeing it tells the stars of a PSF with wings from small galaxies (real "
                  "fields blurred to 1.6-2.2\": docs/scripts/check_fields.py --kernel "
                  "kolmogorov or moffat; in simulation: docs/scripts/psf_shape_check.py "
                  "--simulate). Stamps given without their frames get the index of their own "
                  "point sources (sourceclf.stamp_psf); where too few are found, the middle "
                  "of the trained range, with one warning.")


_CNN_DESCRIPTION = (
    "MargNet's Inception CNN (Chaini et al. 2023) on 5-band 32x32 stamps alone (no "
    "photometric features), in a CPU-sized configuration: every convolution at 1/8 of the "
    "published width and one dense layer of 256 instead of 1024 + 1024 (the published "
    "22,272 x 1024 dense layer alone has 23M parameters), with batch normalisation after "
    "each convolution (not in the paper; it lets the small network learn in a few CPU "
    "epochs); input less each stamp's own sky (the median of its outer "
    f"{STAMP_BORDER} pixels, band by band), asinh-scaled by each band's sky noise. It also "
    "reads the {psf}: their "
    "logarithms pass through a dense layer of 32 ReLU units joined to the flattened "
    "convolution features, so that a source's size is judged against its own seeing.")

#: The CNN's training schedule: (epochs, learning rate) steps.
CNN_FIT_OPTIONS = {"lr_schedule": [[7, 2e-3], [3, 5e-4], [2, 1e-4]], "patience": 3}


def margnet_cnn_sgq(table, stamps, *, data_dir=None):
    """MargNet's CNN, an eighth of the published widths, on the stamps and their PSF."""
    return _fit(
        "margnet-cnn-sgq", table, stamps, architecture="margnet-cnn",
        config={**CNN_CONFIG, "psf_inputs": 2 * len(BANDS)}, priority=5,
        data_dir=data_dir, fit_options=dict(CNN_FIT_OPTIONS),
        description=_CNN_DESCRIPTION.format(psf=(
            "FWHM and Moffat index of each band's PSF (psf_shape: measured together on "
            "frames; for stamps the FWHM from psf= or the catalog's psffwhm_<b>, the index "
            "from the stamps' own point sources)")),
        notes=(_SIM_NOTE.format(arch="margnet-cnn") + " Images and their PSF only: use it "
               "when the catalog lacks MargNet's photometric columns. Without a known PSF "
               "the rows are read as seen through the middle of the trained seeing and "
               "flagged psf_unknown; the PSF's index is clipped to the trained range "
               "(domain['psf_beta']), whose middle stands for one that cannot be measured."
               + PSF_SHAPE_NOTE))


def fwhm_cnn(table, stamps, *, data_dir=None):
    """margnet-cnn-sgq's recipe reading the PSF's FWHM alone (feature set ``psf_fwhm``), as
    it was shipped until it read the PSF's shape too: the CNN the shipped ``margnet-sgq``
    stacks, retrained so that its recipe still reproduces it."""
    return _fit(
        "margnet-cnn-sgq", table, stamps, architecture="margnet-cnn",
        config={**CNN_CONFIG, "psf_inputs": len(BANDS)}, priority=5, data_dir=data_dir,
        fit_options=dict(CNN_FIT_OPTIONS), feature_set="psf_fwhm",
        description=_CNN_DESCRIPTION.format(psf=(
            "FWHM of each band's PSF (psf_fwhm: measured on frames, psf=, or the catalog's "
            "psffwhm_<b>)")),
        notes=(_SIM_NOTE.format(arch="margnet-cnn") + " The CNN member of margnet-sgq."))


def _stack_config(member=None):
    """The network configuration of the shipped stacked ensembles (margnet-sgq and its
    Bayesian variant); with ``member``, a CNN they keep, its own sky subtraction (it reads
    stamps as it was trained to)."""
    # The CNN member reads each band's PSF FWHM: SDSS's catalog width psffwhm_<b> (MargNet's
    # columns 2, 6, 10, 14, 18) times CATALOG_PSF_SCALE, as classify does for stamps.
    cnn = {**CNN_CONFIG, "psf_inputs": len(BANDS)}
    if member is not None:
        cnn["sky_border"] = member.normalise.sky_border
    return {"n_features": 24, "n_classes": 3, "ann": ANN_CONFIG, "cnn": cnn, "head": 10,
            "cnn_psf_columns": [MARGNET_FEATURES.index(f"psffwhm_{b}") for b in BANDS],
            "cnn_psf_scale": [CATALOG_PSF_SCALE[b] for b in BANDS]}


def _stack_card_config(cfg):
    """A stack's configuration as its card records it (without the sizes _fit adds)."""
    return {k: v for k, v in cfg.items() if k not in ("n_features", "n_classes")}


#: Training of the shipped stacked ensembles: the head's options for every
#: stage, and the per-stage overrides (`sourceclf.training.fit_stages`).
STACK_FIT_OPTIONS = {"epochs": 6, "lr": 2e-3, "patience": 3}
STACK_STAGE_OPTIONS = {"ann": {"epochs": 200, "batch_size": 256, "lr": 1e-3, "patience": 15,
                               "weight_decay": 0.0},
                       "head": {"epochs": 300, "batch_size": 256, "lr": 3e-3, "patience": 20,
                                "weight_decay": 0.0}}


def cnn_member(model):
    """The CNN reading the PSF's FWHM alone that `margnet_sgq` stacks: ``model``'s network if
    `fwhm_cnn` trained it (feature set ``psf_fwhm``), or the CNN member of a stacked ensemble
    that `margnet_sgq` trained (architecture ``margnet-ensemble``); `InvalidInputError`
    for any other model."""
    architecture = getattr(getattr(model, "card", None), "architecture", None)
    member = getattr(getattr(model, "module", None), "cnn", None)
    if getattr(model, "feature_set", None) == "psf_fwhm":
        return model.module
    if architecture == "margnet-ensemble" and member is not None:
        return member
    raise InvalidInputError(
        f"margnet-sgq stacks a CNN reading the PSF's FWHM alone (sourceclf.recipes.image."
        f"fwhm_cnn, or a margnet-sgq ensemble's member), not '{getattr(model, 'name', model)}'"
        f" (feature set {getattr(model, 'feature_set', None)}, architecture {architecture})")


def margnet_sgq(table, stamps, *, cnn=None, data_dir=None):
    """MargNet's stacked ensemble: ANN (24 features) + the CNN of margnet-cnn-sgq; ``cnn``
    (`cnn_member`: trained on the same simulation and split) is kept, the rest trained."""
    member = None if cnn is None else cnn_member(cnn)
    cfg = _stack_config(member)
    module = fitting.build_network("margnet-ensemble", cfg, random_state=0)
    members = ("ann", "cnn")
    if member is not None:  # the FWHM-only CNN, trained on the same split
        module.cnn.load_state_dict(member.state_dict())
        members = ("ann",)
    return _fit(
        "margnet-sgq", table, stamps, architecture="margnet-ensemble",
        config=_stack_card_config(cfg), priority=30,
        data_dir=data_dir, module=module, fit_options=dict(STACK_FIT_OPTIONS),
        stages={"train_members": members, "stage_options": STACK_STAGE_OPTIONS},
        description=("MargNet's stacked ensemble (Chaini et al. 2023): the softmax outputs "
                     "of its ANN on the 24 photometric features (published size, input "
                     "standardised) and of its CNN on the 5-band stamps (the CPU-sized "
                     "CNN of margnet-cnn-sgq: 1/8 of the published widths, batch "
                     "normalisation, dense 256 instead of the 23M-parameter 1024 + 1024 "
                     "layers) go through dense "
                     "10 (ReLU) to the classes; the head is trained on the validation "
                     "split, which the members were not trained on."),
        notes=_SIM_NOTE.format(arch="margnet-ensemble") + _COLUMNS_NOTE)


def margformer_sgq(table, stamps, *, data_dir=None):
    """MargFormer: the 24 features as a query token attending over 4x4 image patches."""
    return _fit(
        "margformer-sgq", table, stamps, architecture="margformer", config=MARGFORMER_CONFIG,
        priority=25, data_dir=data_dir,
        fit_options=dict(MARGFORMER_FIT_OPTIONS),
        description=("MargFormer: MargNet's 24 photometric features, standardised, pass "
                     "through an MLP (24 -> 128 -> 48) and become one query token that "
                     "attends with cross-attention (3 layers, 4 heads, width 48) over the "
                     "64 tokens of 4x4 patches of the 5-band 32x32 stamp (linear patch "
                     "embedding, learned positions, one self-attention layer); far smaller "
                     "and cheaper than the published 12-layer model."),
        notes=_SIM_NOTE.format(arch="margformer") + _COLUMNS_NOTE)


#: Prior and initial width of the Bayesian image models' variational layer
#: (`~sourceclf.models.bayesian.VariationalLinear`), as for the photometric one.
BAYESIAN_CONFIG = {"prior_scale": 1.0, "rho_init": -5.0}

_BAYESIAN_NOTE = (" Without mc_samples the posterior mean weights are used (the stored "
                  "calibration probabilities are posterior-mean ones); "
                  "classify(..., mc_samples=N) averages N weight draws and adds "
                  "prob_<class>_std, pred_entropy and pred_mutual_info.")


def bayesian_margnet_sgq(table, stamps, *, stack=None, data_dir=None):
    """`margnet_sgq` whose head ends in a variational layer (MargNet's Bayesian variant).

    With ``stack``, a ``margnet-sgq`` trained on the same simulation, its ANN
    and CNN are reused as they are and only the head is trained (with the
    ELBO, then its posterior widths), so that both models share their members.
    """
    cfg = {**_stack_config(None if stack is None else stack.module.cnn), **BAYESIAN_CONFIG}
    module = fitting.build_network("bayesian-margnet-ensemble", cfg, random_state=0)
    members = ("ann", "cnn")
    if stack is not None:
        module.ann.load_state_dict(stack.module.ann.state_dict())
        module.cnn.load_state_dict(stack.module.cnn.state_dict())
        members = ()
    return _fit(
        "bayesian-margnet-sgq", table, stamps, architecture="bayesian-margnet-ensemble",
        config=_stack_card_config(cfg), priority=3,
        data_dir=data_dir, module=module, classifier_cls=BayesianClassifier,
        fit_options=dict(STACK_FIT_OPTIONS),
        stages={"train_members": members, "stage_options": STACK_STAGE_OPTIONS},
        description=("MargNet's Bayesian stacked ensemble (Chaini et al. 2023): the ANN and "
                     "CNN members of margnet-sgq (reused as trained there) feed a head "
                     "(dense 10, ReLU) whose output layer is a mean-field variational "
                     "layer (Gaussian posterior per weight, trainable Gaussian prior), "
                     "trained on the validation split with cross-entropy + KL / n_rows "
                     "and its posterior widths fitted after."),
        notes=(_SIM_NOTE.format(arch="bayesian-margnet-ensemble") + _COLUMNS_NOTE
               + _BAYESIAN_NOTE))


def bayesian_margformer_sgq(table, stamps, *, data_dir=None):
    """`margformer_sgq` with a variational classification layer, trained with the ELBO."""
    return _fit(
        "bayesian-margformer-sgq", table, stamps, architecture="bayesian-margformer",
        config={**MARGFORMER_CONFIG, **BAYESIAN_CONFIG}, priority=3, data_dir=data_dir,
        classifier_cls=BayesianClassifier,
        fit_options=dict(MARGFORMER_FIT_OPTIONS),
        description=("MargFormer (as margformer-sgq: MargNet's 24 features as one query "
                     "token attending over 4x4 patches of the 5-band stamp, 3 layers, "
                     "width 48) whose classification layer is a mean-field variational "
                     "layer, the whole network trained with cross-entropy + KL / n_rows "
                     "and the layer's posterior widths fitted after (Bhavanam et al. "
                     "2024's Bayesian variant)."),
        notes=_SIM_NOTE.format(arch="bayesian-margformer") + _COLUMNS_NOTE + _BAYESIAN_NOTE)


RECIPES = {"margnet-cnn-sgq": margnet_cnn_sgq, "margnet-sgq": margnet_sgq,
           "margformer-sgq": margformer_sgq, "bayesian-margnet-sgq": bayesian_margnet_sgq,
           "bayesian-margformer-sgq": bayesian_margformer_sgq}


def same_simulation(clf, n, seed, settings=None, *, check_seed=True):
    """Whether an image model ``clf`` was trained on this simulation's ``n`` stamps of
    ``seed`` (``settings``: `~sourceclf.recipes.image_training_set.simulation_settings`,
    default `~sourceclf.recipes.image_training_set.SIMULATION`; the seed not compared
    without ``check_seed``) and, if it reads MargNet's columns, on its catalog columns
    (``settings['catalog_columns']``)."""
    settings = settings or SIMULATION
    sim = clf.card.training.get("simulation", {})
    same = (sim.get("version"), sim.get("n")) == (settings["version"], n)
    if check_seed:
        same = same and sim.get("seed") == seed
    if clf.feature_set == "margnet24":  # version 1 (copied columns) predates the key
        same = same and sim.get("catalog_columns", 1) == settings["catalog_columns"]
    return same
