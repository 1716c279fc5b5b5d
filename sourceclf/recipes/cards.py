"""What every recipe writes into its model card.

The photometric and image recipes record the same things about how a model
was made and how well it does: the size of each part of the split
(`split_sizes`), the software that trained it (`software_versions`), its
metrics on held-out rows (`held_out_metrics`), its calibration table
(`calibrate_on`) and its size (`n_parameters`); the photometric recipes also
record accuracy per class and per magnitude bin (`metrics_with_recall`,
`accuracy_by_magnitude`) and the applicability domain fitted on the training
rows (`recipe_domain`, `faint_compact_domain`, `domain_check`).
"""

import json
from pathlib import Path

import numpy as np

from .. import __version__
from ..features import get_feature_set
from ..models.base import SourceClassifier
from ..models.card import sha256_file
from ..models.domain import DOMAIN_FILE, ApplicabilityDomain
from ..models.registry import MODEL_DIR
from ..training import calibration_table, classification_metrics
from .data import read_recipe_table, recipe_split

__all__ = ["split_sizes", "software_versions", "held_out_metrics", "mc_metrics",
           "posterior_summary", "calibrate_on",
           "n_parameters", "R_BINS", "accuracy_by_magnitude", "metrics_with_recall",
           "magnitude_range", "recipe_domain", "domain_check", "domain_note",
           "faint_compact_domain", "DOMAIN_MODELS", "fit_domains", "print_metrics"]


def _rows_of(values, rows):
    return None if values is None else values[rows]


def split_sizes(parts):
    """Rows in each part of a recipe's split.

    Parameters
    ----------
    parts : dict
        ``train``, ``validation``, ``calibration``, ``test``: row indices (as
        `sourceclf.recipes.data.recipe_split` returns them).

    Returns
    -------
    sizes : dict
        ``n_train``, ``n_validation``, ``n_calibration``, ``n_test``.
    """
    return {f"n_{k}": int(parts[k].size) for k in ("train", "validation", "calibration", "test")}


def software_versions(library):
    """The versions of sourceclf and of the library that fitted the model.

    Parameters
    ----------
    library : module
        ``torch`` or ``sklearn``.

    Returns
    -------
    versions : dict
        ``sourceclf_version`` and ``<library>_version``.
    """
    return {"sourceclf_version": __version__,
            f"{library.__name__}_version": library.__version__}


def held_out_metrics(clf, y, rows, features=None, stamps=None):
    """Classification metrics of a model on some rows of its training table.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        The trained model.
    y : `numpy.ndarray` of int
        Class index of every row of the table.
    rows : `numpy.ndarray` of int
        The rows to test on.
    features, stamps : `numpy.ndarray`, optional
        The model's inputs for every row of the table.

    Returns
    -------
    metrics : dict
        See `sourceclf.training.classification_metrics`.
    """
    proba = clf.predict_proba(_rows_of(features, rows), _rows_of(stamps, rows))
    return classification_metrics(y[rows], proba.argmax(1), clf.classes)


def mc_metrics(clf, y, rows, features=None, stamps=None, *, n_samples=50):
    """Held-out metrics of a Bayesian model's Monte Carlo mean, with its mean mutual information.

    Parameters
    ----------
    clf : `~sourceclf.models.bayesian.BayesianClassifier`
        The trained model.
    y, rows, features, stamps
        As for `held_out_metrics`.
    n_samples : int
        Weight draws (seed 0).

    Returns
    -------
    metrics : dict
        `held_out_metrics`' entries for the mean of the draws, and
        ``mean_mutual_info`` (nats).
    """
    proba, extra = clf.predict_proba_mc(_rows_of(features, rows), _rows_of(stamps, rows),
                                        n_samples=n_samples, random_state=0)
    metrics = classification_metrics(y[rows], proba.argmax(1), clf.classes)
    metrics["mean_mutual_info"] = round(float(np.mean(extra["pred_mutual_info"])), 6)
    return metrics


def posterior_summary(layer, losses, **settings):
    """A card's record of a variational layer's fitted posterior widths.

    Parameters
    ----------
    layer : `~sourceclf.models.bayesian.VariationalLinear`
        The fitted layer.
    losses : sequence of float
        The losses of `~sourceclf.models.bayesian.fit_posterior_scales`.
    **settings
        Settings of the fit to record with them (epochs, learning rate...).

    Returns
    -------
    summary : dict
    """
    return {"method": "sourceclf.models.bayesian.fit_posterior_scales: ELBO over the "
                      "variational layer's rho and prior, the means and the rest frozen",
            **settings, "final_loss": round(float(losses[-1]), 5),
            "median_weight_sigma": round(float(layer.weight_sigma.detach().median()), 5),
            "prior_scale": round(float(layer.prior_log_scale.detach().exp()), 5)}


def calibrate_on(clf, table, y, rows, features=None, stamps=None):
    """Store the model's calibration table, computed on the calibration rows.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        The trained model; its ``calibration`` is set.
    table : `~astropy.table.Table`
        The training table.
    y : `numpy.ndarray` of int
        Class index of every row of the table.
    rows : `numpy.ndarray` of int
        The calibration rows.
    features, stamps : `numpy.ndarray`, optional
        The model's inputs for every row of the table.
    """
    clf.calibration = calibration_table(clf, table[rows], _rows_of(features, rows), y[rows],
                                        _rows_of(stamps, rows))


def n_parameters(module):
    """Number of weights of a network."""
    return int(sum(p.numel() for p in module.parameters()))


#: Edges of the r-magnitude bins of the held-out metrics.
R_BINS = (16, 17, 18, 19, 20, 21, 22)


def _bin_labels(edges):
    return ([f"<{edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])]
            + [f">={edges[-1]:g}"])


def accuracy_by_magnitude(y, pred, mag, band="r", edges=R_BINS):
    """Accuracy in magnitude bins, in the card's ``test_by_magnitude`` form.

    Parameters
    ----------
    y, pred : `numpy.ndarray` of int
        True and predicted class indices.
    mag : `numpy.ndarray`
        The magnitude of each row.
    band : str
        Its name, for the card.
    edges : sequence of float
        Inner bin edges (the first and last bins are open).

    Returns
    -------
    by_magnitude : dict
        ``band``, ``bins`` (labels), ``n`` and ``accuracy`` (None for empty bins).
    """
    index = np.searchsorted(np.asarray(edges, float), np.asarray(mag, float), side="right")
    n, acc = [], []
    for k in range(len(edges) + 1):
        rows = index == k
        n.append(int(rows.sum()))
        acc.append(round(float(np.mean(pred[rows] == y[rows])), 5) if rows.any() else None)
    return {"band": band, "bins": _bin_labels(edges), "n": n, "accuracy": acc}


def _recall(y, pred, classes):
    return {c: round(float(np.mean(pred[y == k] == k)), 5) if np.any(y == k) else None
            for k, c in enumerate(classes)}


def metrics_with_recall(clf, y, rows, x, mag=None):
    """Held-out metrics with per-class recall (and accuracy by r magnitude)."""
    pred = clf.predict_proba(x[rows]).argmax(1)
    from ..training import classification_metrics

    m = classification_metrics(y[rows], pred, clf.classes)
    m["recall"] = _recall(y[rows], pred, clf.classes)
    if mag is not None:
        m["by_magnitude"] = accuracy_by_magnitude(y[rows], pred, mag[rows])
    return m


def magnitude_range(mag):
    """Brightest and faintest magnitudes (0.1 and 99.9% quantiles), rounded to 0.1."""
    mag = np.asarray(mag, float)
    lo, hi = np.quantile(mag[np.isfinite(mag)], [0.001, 0.999])
    return [round(float(lo), 1), round(float(hi), 1)]


def recipe_domain(x, names, parts):
    """The applicability domain of a recipe's model: fitted on its training rows.

    Parameters
    ----------
    x : `numpy.ndarray`
        The model's features for every row of the recipe's table.
    names : sequence of str
        Feature names.
    parts : dict
        The recipe's split (`~sourceclf.recipes.data.recipe_split`); the
        ranges and density are fitted on ``train``, the threshold on
        ``calibration``.

    Returns
    -------
    domain : `~sourceclf.models.ApplicabilityDomain`
    """
    return ApplicabilityDomain().fit(x[parts["train"]], list(names), x[parts["calibration"]])


_FAINT_COMPACT_DOMAIN = (
    "Faint (observed r 20-23), compact (point-like: de Vaucouleurs radius under half the "
    "PSF width) SDSS-like objects with MargNet's 24 columns, galaxies and stars: the faint "
    "end of SDSS DR16 spectroscopy.  Not for bright (r < 20) or extended sources, and it "
    "never returns QSO (quasars come out STAR).")


def _observed_r(table):
    from ..features import BandMagnitudes
    from ..columns import ColumnFinder

    return BandMagnitudes(ColumnFinder(table), "r").observed_mag()


def domain_check(clf, table, rows, shift=-4.0):
    """Share of held-out rows outside a 24-column model's domain, as is and shifted.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        A model with a domain, on MargNet's 24 features.
    table : `~astropy.table.Table`
        Its recipe's table.
    rows : `numpy.ndarray` of int
        The held-out rows.
    shift : float
        Added to every ``dered_<b>`` (colours, radii, PSF and extinction
        unchanged): -4 makes the rows four magnitudes brighter.

    Returns
    -------
    check : dict
        ``test_flagged`` and ``test_4mag_brighter_flagged`` (fractions),
        ``n_test``.
    """
    fs = get_feature_set(clf.feature_set)
    held_out = table[rows]
    shifted = held_out.copy()
    for b in "ugriz":
        shifted[f"dered_{b}"] = np.asarray(shifted[f"dered_{b}"], float) + shift
    return {"n_test": int(len(rows)),
            "test_flagged": round(float(np.mean(clf.outside_domain(
                fs.compute(held_out).values))), 5),
            f"test_{-shift:g}mag_brighter_flagged": round(float(np.mean(clf.outside_domain(
                fs.compute(shifted).values))), 5)}


def domain_note(check):
    return (f"Applicability domain: fitted on the training rows; it flags "
            f"{100 * check['test_flagged']:.1f}% of the held-out test rows and "
            f"{100 * check['test_4mag_brighter_flagged']:.1f}% of the same rows made 4 "
            "magnitudes brighter (dered_<b> - 4).")


def faint_compact_domain(clf, table, parts, x):
    """Fit, check and describe the domain of a model of the faint compact table."""
    clf.domain = recipe_domain(x, get_feature_set(clf.feature_set).names, parts)
    check = domain_check(clf, table, parts["test"])
    domain = {"description": _FAINT_COMPACT_DOMAIN,
              "magnitudes": {"r": magnitude_range(_observed_r(table[parts["train"]]))}}
    return domain, check


#: The shipped 24-column models whose domains ``python -m sourceclf.train_recipes
#: domains`` fits (without retraining them).
DOMAIN_MODELS = ("margnet-photometry-sg", "bayesian-margnet-photometry-sg",
                 "gbdt-photometry-sg")


def fit_domains(data_dir=None, names=DOMAIN_MODELS, model_dir=None):
    """Fit and store the applicability domain of shipped models, weights untouched.

    Each model's recipe table is split as its recipe split it
    (`~sourceclf.recipes.data.recipe_split`, same seed); the domain is
    fitted on the training rows, its threshold on the calibration rows
    (`recipe_domain`), checked on the test rows as they are and four
    magnitudes brighter (`domain_check`), and written as ``domain.npz``
    with the card's ``domain`` entry (description, trained magnitudes),
    ``metrics['domain_check']`` and a sentence in the notes.  The weights
    and the calibration table are not rewritten.

    Parameters
    ----------
    data_dir : path-like, optional
        Directory of the SDSS tables.
    names : sequence of str
        Models to process.
    model_dir : path-like, optional
        Directory holding the model directories (default: the registry).

    Returns
    -------
    checks : dict
        Model name -> `domain_check` result.
    """
    model_dir = Path(model_dir or MODEL_DIR)
    checks = {}
    for name in names:
        directory = model_dir / name
        clf = SourceClassifier.load(directory)
        table = read_recipe_table(name, data_dir)
        parts = recipe_split(table)
        x = get_feature_set(clf.feature_set).compute(table).values
        if clf.card.training.get("n_test") != parts["test"].size:
            raise RuntimeError(f"{name}: the split does not match the card's")
        weights = directory / clf.card.weights_file
        before = sha256_file(weights)
        domain, check = faint_compact_domain(clf, table, parts, x)
        card = clf.card
        card.domain = {**domain, "file": DOMAIN_FILE,
                       "sha256": clf.domain.save(directory / DOMAIN_FILE)}
        card.metrics["domain_check"] = check
        notes = card.notes.split(" Applicability domain:")[0].rstrip()
        card.notes = f"{notes} {domain_note(check)}"
        card.to_json(directory / "card.json")
        if sha256_file(weights) != before:  # pragma: no cover
            raise RuntimeError(f"{name}: weights changed")
        SourceClassifier.load(directory)  # reads back, digests checked
        checks[name] = check
        print(f"{name}: domain written; test rows flagged {check['test_flagged']:.4f}, "
              f"4 mag brighter {check['test_4mag_brighter_flagged']:.4f}", flush=True)
    return checks


def print_metrics(metrics):
    """Print the held-out figures a recipe stored beyond the overall accuracy."""
    for key in ("members_test", "domain_check"):
        if key in metrics:
            print(f"  {key}: {json.dumps(metrics[key])}")
    if "recall" in metrics.get("test", {}):
        print(f"  test recall per class: {json.dumps(metrics['test']['recall'])}")
    for name, part in metrics.get("test_by_data", {}).items():
        print(f"  test {name}: accuracy {part['accuracy']:.4f} (n={part['n']}), recall "
              f"{json.dumps(part.get('recall', {}))}")
        by_mag = part.get("by_magnitude")
        if by_mag:
            print("    " + ", ".join(f"{b}: {'-' if a is None else f'{a:.4f}'} (n={n})"
                                     for b, n, a in zip(by_mag["bins"], by_mag["n"],
                                                        by_mag["accuracy"])))
    for key in ("members_test_by_data", "validation_by_data", "members_validation_by_data"):
        if key in metrics:
            print(f"  {key}: {json.dumps(metrics[key])}")
