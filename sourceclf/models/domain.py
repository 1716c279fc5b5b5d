"""Applicability domains: where in its input space a model was trained.

A model is only as good as the data it saw.  `ApplicabilityDomain` records,
from a model's training rows, where its inputs lived, and tells for new rows
whether they lie there.  A row is *outside* the domain when

1. any feature lies outside the training range of that feature: the
   ``q_low`` / ``q_high`` quantiles of the training rows (0.1% and 99.9% by
   default), each widened by ``widen`` times that range on both sides; or
2. the joint density of its features is low: minus the log density of a
   Gaussian mixture fitted to the (robustly standardised) training rows is
   above the ``quantile`` (99.5% by default) of the same score on held-out
   calibration rows, so that about 0.5% of rows like the training data are
   flagged by this rule.

The first rule catches a shift in any one input (a catalog four magnitudes
brighter than the training data); the second catches combinations never
seen (colours of one class with the magnitude of another).  Rows with a
missing feature are not classified at all, so they are neither in nor out.

The fitted state is a handful of numpy arrays, stored as an ``.npz`` file
(read with ``allow_pickle=False``) beside the model's weights; scoring is
numpy only (about 5 microseconds per row for 9 features).

Models without such a file (the image models, trained on simulated stamps)
record the magnitudes they were trained on in their card
(``domain['magnitudes']``); `outside_magnitudes` tells which rows of a
catalog lie outside them, so that a source fainter than any galaxy the model
saw is flagged rather than called by the training set's prior.
"""

import json
from pathlib import Path

import numpy as np

from ..columns import ColumnFinder
from ..exceptions import InvalidInputError, ModelIntegrityError
from ..features import BandMagnitudes
from .card import sha256_file

__all__ = ["ApplicabilityDomain", "DOMAIN_FILE", "outside_magnitudes"]

#: File name of a fitted domain inside a model directory.
DOMAIN_FILE = "domain.npz"

_ARRAYS = ("low", "high", "center", "scale", "weights", "means", "precisions_cholesky")


class ApplicabilityDomain:
    """The region of input space a model was trained on.

    Parameters
    ----------
    q_low, q_high : float
        Quantiles of the training rows that bound each feature.
    widen : float
        Each feature's range is widened by this fraction of it on both sides.
    quantile : float
        Quantile of the calibration rows' joint score used as threshold.
    n_components : int
        Components of the Gaussian mixture of the joint score.
    max_rows : int
        The mixture is fitted on at most this many training rows (a random
        subsample beyond).
    random_state : int
        Seed of the subsample and of the mixture's initialisation.

    Attributes
    ----------
    names_ : list of str
        Feature names, in input order.
    low_, high_ : `numpy.ndarray`
        Accepted range of each feature.
    threshold_ : float
        Largest joint score inside the domain.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2000, 2))
    >>> domain = ApplicabilityDomain(n_components=2).fit(x[:1500], ["a", "b"], x[1500:])
    >>> domain.outside(np.array([[0.0, 0.0], [9.0, 0.0]])).tolist()
    [False, True]
    """

    def __init__(self, *, q_low=0.001, q_high=0.999, widen=0.1, quantile=0.995,
                 n_components=16, max_rows=80000, random_state=0):
        self.q_low = q_low
        self.q_high = q_high
        self.widen = widen
        self.quantile = quantile
        self.n_components = n_components
        self.max_rows = max_rows
        self.random_state = random_state

    # Fitting ------------------------------------------------------------------
    def fit(self, x, names, x_calibration):
        """Fit the ranges and the density on training rows, the threshold on others.

        Parameters
        ----------
        x : array-like of shape (n_rows, n_features)
            Training rows (rows with a non-finite value are ignored).
        names : sequence of str
            Feature names.
        x_calibration : array-like of shape (n_rows, n_features)
            Rows not used for fitting (e.g. the calibration split), whose scores
            set the threshold.

        Returns
        -------
        self : `ApplicabilityDomain`
        """
        from sklearn.mixture import GaussianMixture

        x = _finite_rows(x, "training rows")
        calibration = _finite_rows(x_calibration, "calibration rows")
        if x.shape[1] != len(names) or calibration.shape[1] != len(names):
            raise InvalidInputError(f"{len(names)} feature names for arrays of "
                                    f"{x.shape[1]} and {calibration.shape[1]} columns")
        self.names_ = [str(n) for n in names]
        low, high = np.quantile(x, [self.q_low, self.q_high], axis=0)
        pad = self.widen * (high - low)
        self.low_, self.high_ = low - pad, high + pad
        q16, median, q84 = np.quantile(x, [0.16, 0.5, 0.84], axis=0)
        self.center_ = median
        self.scale_ = np.maximum((q84 - q16) / 2, 1e-6)
        rng = np.random.default_rng(self.random_state)
        if len(x) > self.max_rows:
            x = x[rng.choice(len(x), self.max_rows, replace=False)]
        mixture = GaussianMixture(self.n_components, covariance_type="full", reg_covar=1e-4,
                                  random_state=self.random_state, max_iter=200)
        mixture.fit(self._standardise(x))
        self.weights_ = mixture.weights_
        self.means_ = mixture.means_
        self.precisions_cholesky_ = mixture.precisions_cholesky_
        self.threshold_ = float(np.quantile(self.joint_score(calibration), self.quantile))
        return self

    # Scoring ------------------------------------------------------------------
    def _standardise(self, x):
        return (np.asarray(x, dtype=np.float64) - self.center_) / self.scale_

    def joint_score(self, x, *, batch_size=65536):
        """Minus the log density of each row under the training mixture.

        Higher is further from the training data; rows with a non-finite
        feature get ``inf``.  All components are evaluated in one float32
        matrix product per batch of rows (about 1e-4 relative precision,
        far below the spread of the scores).
        """
        x = self._check(x)
        score = np.full(len(x), np.inf)
        finite = np.flatnonzero(np.isfinite(x).all(axis=1))
        n_components, d = self.means_.shape
        log_norm = (np.log(self.weights_) - 0.5 * d * np.log(2 * np.pi)
                    + np.log(np.diagonal(self.precisions_cholesky_, axis1=1, axis2=2)).sum(1))
        # (z - m_k) @ L_k = z @ L_k - m_k @ L_k for every component k at once.
        chol = np.concatenate(list(self.precisions_cholesky_), axis=1).astype(np.float32)
        offset = np.concatenate([m @ c for m, c in zip(self.means_, self.precisions_cholesky_)])
        offset = offset.astype(np.float32)
        for start in range(0, len(finite), batch_size):
            rows = finite[start:start + batch_size]
            y = self._standardise(x[rows]).astype(np.float32) @ chol
            y -= offset
            np.square(y, out=y)
            squared = y.reshape(len(rows), n_components, d).sum(axis=2, dtype=np.float64)
            log_p = log_norm - 0.5 * squared
            top = log_p.max(axis=1)
            score[rows] = -(top + np.log(np.exp(log_p - top[:, None]).sum(axis=1)))
        return score

    def reasons(self, x):
        """Why each row is outside: per-feature range and joint density.

        Returns
        -------
        reasons : dict
            ``'out_of_range'`` and ``'low_density'``: bool arrays of shape
            (n_rows,); False for rows with a missing feature.
        """
        x = self._check(x)
        finite = np.isfinite(x).all(axis=1)
        with np.errstate(invalid="ignore"):
            out_of_range = ((x < self.low_) | (x > self.high_)).any(axis=1) & finite
        low_density = (self.joint_score(x) > self.threshold_) & finite
        return {"out_of_range": out_of_range, "low_density": low_density}

    def outside(self, x):
        """True for rows outside the domain (False for rows with a missing feature).

        The density is scored only for rows inside every feature's range.
        """
        x = self._check(x)
        finite = np.isfinite(x).all(axis=1)
        with np.errstate(invalid="ignore"):
            outside = ((x < self.low_) | (x > self.high_)).any(axis=1) & finite
        rest = np.flatnonzero(finite & ~outside)
        if rest.size:
            outside[rest] = self.joint_score(x[rest]) > self.threshold_
        return outside

    def _check(self, x):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.names_):
            raise InvalidInputError(f"the domain has {len(self.names_)} features "
                                    f"({', '.join(self.names_)}); got shape {x.shape}")
        return x

    # Description and storage ----------------------------------------------------
    def ranges(self):
        """Accepted range of each feature, as ``{name: [low, high]}``."""
        return {n: [round(float(lo), 3), round(float(hi), 3)]
                for n, lo, hi in zip(self.names_, self.low_, self.high_)}

    def save(self, path):
        """Write the fitted domain as an ``.npz`` file.

        Returns
        -------
        sha256 : str
            Digest of the written file, for the model card.
        """
        settings = {"names": self.names_, "threshold": self.threshold_, "q_low": self.q_low,
                    "q_high": self.q_high, "widen": self.widen, "quantile": self.quantile,
                    "n_components": self.n_components, "max_rows": self.max_rows,
                    "random_state": self.random_state}
        with open(path, "wb") as fh:
            np.savez(fh, settings=np.array(json.dumps(settings)),
                     **{a: getattr(self, a + "_") for a in _ARRAYS})
        return sha256_file(path)

    @classmethod
    def load(cls, path, *, sha256=None):
        """Read a domain written by `save`, checking its digest when given."""
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"domain file '{path}' is missing")
        if sha256 and sha256_file(path).lower() != sha256.lower():
            raise ModelIntegrityError(f"domain file '{path}' does not match the sha256 in "
                                      "its model card; refusing to load an altered file")
        try:
            with np.load(path, allow_pickle=False) as data:
                settings = json.loads(str(data["settings"]))
                arrays = {a: np.asarray(data[a], dtype=np.float64) for a in _ARRAYS}
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInputError(f"domain file '{path}' is unreadable: {exc}") from None
        domain = cls(**{k: settings[k] for k in ("q_low", "q_high", "widen", "quantile",
                                                 "n_components", "max_rows", "random_state")})
        domain.names_ = list(settings["names"])
        domain.threshold_ = float(settings["threshold"])
        for a, value in arrays.items():
            setattr(domain, a + "_", value)
        return domain


def _finite_rows(x, what):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise InvalidInputError(f"{what} must be a 2-d array, got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) < 10:
        raise InvalidInputError(f"{len(x)} complete {what}: too few to fit a domain")
    return x


def outside_magnitudes(table, ranges):
    """Rows of a catalog whose magnitudes lie outside the ranges a model was trained on.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog, under sourceclf's column names (with any column measured
        on the frames: `sourceclf.photometry.measure_columns`).
    ranges : dict or None
        ``{band: [bright, faint]}``, a card's ``domain['magnitudes']``.

    Returns
    -------
    outside : `numpy.ndarray` of bool, or None
        True where a band's magnitude (dereddened, ``dered_<b>``, else the
        observed one, as the training stamps were drawn) is brighter than
        ``bright`` or fainter than ``faint``; False where it is missing.  None
        when ``ranges`` is empty or the table has no magnitude of its bands (a
        column that cannot be read as magnitudes counts as none: a model that
        reads it refuses it itself).

    Examples
    --------
    >>> from astropy.table import Table
    >>> outside_magnitudes(Table({"dered_r": [13.0, 18.0, 23.1]}), {"r": [14.0, 22.5]})
    array([ True, False,  True])
    """
    finder, outside = ColumnFinder(table), None
    for band, (bright, faint) in (ranges or {}).items():
        magnitudes = BandMagnitudes(finder, band)
        try:
            values = magnitudes.dered()
            if values is None:
                values = magnitudes.observed_mag()
        except InvalidInputError:  # not magnitudes (fluxes without a unit...): no judge
            values = None
        if values is None:
            continue
        with np.errstate(invalid="ignore"):
            beyond = (values < bright) | (values > faint)
        outside = beyond if outside is None else outside | beyond
    return outside
