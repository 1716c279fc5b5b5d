"""A realistic synthetic catalog for demonstrations, benchmarks and tests.

`demo_catalog` samples SDSS-like faint compact sources (GALAXY and STAR) from a
per-class Gaussian mixture over MargNet's photometric columns.  The mixture's
parameters (``sourceclf/data/feature_model.json``) were fitted to public SDSS
DR16 spectroscopic objects by ``python -m sourceclf.train_recipes feature-model``;
only those summary statistics ship with the package, not the data.
"""

import json
from pathlib import Path

import numpy as np

from .bands import BANDS

__all__ = ["FEATURE_MODEL_PATH", "demo_catalog", "fit_feature_model"]

#: JSON file of the per-class Gaussian mixtures used by `demo_catalog`.
FEATURE_MODEL_PATH = Path(__file__).parent / "data" / "feature_model.json"

# Extinction in each band relative to r (SDSS, Schlafly & Finkbeiner 2011 ratios).
_EXTINCTION_RATIO = {"u": 4.239 / 2.285, "g": 3.303 / 2.285, "r": 1.0,
                     "i": 1.698 / 2.285, "z": 1.263 / 2.285}
_DIMS = ([f"dered_{b}" for b in BANDS] + [f"log_deVRad_{b}" for b in BANDS]
         + [f"psffwhm_{b}" for b in BANDS] + ["log_extinction_r"])


def _design(table):
    cols = []
    for name in _DIMS:
        if name.startswith("log_"):
            cols.append(np.log10(np.maximum(np.asarray(table[name[4:]], float), 1e-4)))
        else:
            cols.append(np.asarray(table[name], float))
    return np.column_stack(cols)


def fit_feature_model(table, *, n_components=6, label_column="class", random_state=0):
    """Fit per-class Gaussian mixtures to a catalog with MargNet's columns.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Catalog with ``dered_<b>``, ``deVRad_<b>``, ``psffwhm_<b>``,
        ``extinction_r`` and a class column.
    n_components : int
        Mixture components per class.
    label_column : str
        Class column.
    random_state : int
        Seed.

    Returns
    -------
    model : dict
        JSON-able mixture parameters per class, and class fractions.
    """
    from sklearn.mixture import GaussianMixture

    from .columns import decode_strings

    labels = decode_strings(table[label_column])
    x = _design(table)
    out = {"dims": _DIMS, "classes": {}}
    for c in sorted(set(labels.tolist())):
        sel = labels == c
        gm = GaussianMixture(n_components, covariance_type="full",
                             random_state=random_state).fit(x[sel])
        out["classes"][c] = {"fraction": float(sel.mean()), "weights": gm.weights_.tolist(),
                             "means": gm.means_.tolist(), "covariances": gm.covariances_.tolist()}
    return out


def demo_catalog(n=1000, *, random_state=0, classes=None):
    """A synthetic SDSS-like catalog of faint compact galaxies and stars.

    Parameters
    ----------
    n : int
        Number of rows.
    random_state : int
        Seed; the same seed gives the same catalog.
    classes : sequence of str, optional
        Classes to draw (default all in the feature model, in their fractions).

    Returns
    -------
    table : `~astropy.table.Table`
        ``objid``, ``ra``, ``dec``, MargNet's 24 columns, observed model
        magnitudes ``u g r i z``, and the true ``class``.

    Examples
    --------
    >>> from sourceclf.demo import demo_catalog
    >>> cat = demo_catalog(5, random_state=1)
    >>> len(cat), "dered_r" in cat.colnames
    (5, True)
    """
    from astropy import units as u
    from astropy.table import Table

    with open(FEATURE_MODEL_PATH, encoding="utf-8") as fh:
        model = json.load(fh)
    rng = np.random.default_rng(random_state)
    names = list(classes or model["classes"])
    frac = np.array([model["classes"][c]["fraction"] for c in names])
    counts = rng.multinomial(n, frac / frac.sum())
    blocks, labels = [], []
    for c, k in zip(names, counts):
        comp = model["classes"][c]
        which = rng.choice(len(comp["weights"]), size=k, p=np.asarray(comp["weights"]))
        x = np.empty((k, len(model["dims"])))
        for j in range(len(comp["weights"])):
            sel = which == j
            x[sel] = rng.multivariate_normal(comp["means"][j], comp["covariances"][j],
                                             size=int(sel.sum()))
        blocks.append(x)
        labels += [c] * k
    x = np.vstack(blocks) if blocks else np.empty((0, len(model["dims"])))
    order = rng.permutation(len(x))
    x, labels = x[order], np.array(labels, dtype="U6")[order]

    t = Table()
    t["objid"] = np.arange(1, n + 1, dtype=np.int64) + 1237600000000000000
    t["ra"] = rng.uniform(150.0, 151.0, n) * u.deg
    t["dec"] = rng.uniform(2.0, 3.0, n) * u.deg
    dims = {d: x[:, i] for i, d in enumerate(model["dims"])}
    ext_r = 10 ** dims["log_extinction_r"]
    for b in BANDS:
        t[f"dered_{b}"] = dims[f"dered_{b}"] * u.mag
        t[f"deVRad_{b}"] = np.clip(10 ** dims[f"log_deVRad_{b}"], 0, 30) * u.arcsec
        t[f"psffwhm_{b}"] = np.clip(dims[f"psffwhm_{b}"], 0.5, 4.0) * u.arcsec
        t[f"extinction_{b}"] = ext_r * _EXTINCTION_RATIO[b] * u.mag
    for b in BANDS:
        t[b] = t[f"dered_{b}"] + t[f"extinction_{b}"]
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        t[f"{a}_{b}"] = t[a] - t[b]
    t["class"] = labels
    t.meta["ORIGIN"] = "sourceclf.demo.demo_catalog (synthetic)"
    t.meta["SEED"] = int(random_state)
    return t
