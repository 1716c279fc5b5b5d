"""Photometric features computed from a catalog's own columns.

A *feature set* names the inputs a model was trained on.  Each is computed from
a `~astropy.table.Table` with SDSS column names, matched case-insensitively,
deriving what can be derived:

* ``dered_<b>`` from ``<b>`` (or ``modelMag_<b>``) minus ``extinction_<b>``;
* ``extinction_<b>`` from ``<b>`` minus ``dered_<b>``, or from the colour
  excess ``ebv`` (E(B-V) of Schlegel et al. 1998) as SDSS computes it
  (`sourceclf.columns.ColumnFinder.extinction`);
* observed colours ``u_g`` ... from observed magnitudes ``<b>`` / ``modelMag_<b>``,
  or from ``dered_<b> + extinction_<b>``;
* observed magnitudes from SDSS fluxes in nanomaggies (``modelFlux_<b>``,
  ``psfFlux_<b>``, or any column whose unit is a flux), see
  `sourceclf.columns.clean_column`.

A catalog with other names is mapped onto these with ``columns=`` (see
`sourceclf.columns.map_columns`); when columns are missing, the error suggests
the mapping for names other catalogs use (``umag``, ``cModelMag_r``...).

Missing values (masked, NaN, infinite, SDSS sentinels such as -9999) do not stop
the computation: the row is marked invalid, with the names of the features that
could not be computed, and the model later leaves it unclassified.
"""

import warnings
from dataclasses import dataclass

import numpy as np

from .bands import BANDS, COLOURS, MARGNET_FEATURES
from .columns import ColumnFinder, input_aliases, suggest_columns
from .exceptions import InvalidInputError, MissingColumnsError, SourceclfWarning

__all__ = ["FeatureSet", "FeatureMatrix", "FEATURE_SETS", "BandMagnitudes", "get_feature_set",
           "compute_features", "available_feature_sets", "default_feature_set"]


@dataclass(frozen=True)
class FeatureMatrix:
    """Model inputs for every row of a table.

    Attributes
    ----------
    values : `numpy.ndarray`
        float32 array of shape (n_rows, n_features); NaN where a feature is missing.
    names : tuple of str
        Feature names, one per column of ``values``.
    valid : `numpy.ndarray`
        bool array of shape (n_rows,), True where every feature is finite.
    """

    values: np.ndarray
    names: tuple
    valid: np.ndarray

    def reasons(self):
        """Per-row flag text: ``''`` for valid rows, else ``'missing:<features>'``."""
        out = np.full(len(self.valid), "", dtype=object)
        bad_rows = np.flatnonzero(~self.valid)
        if bad_rows.size:
            bad = ~np.isfinite(self.values[bad_rows])
            names = np.array(self.names)
            for k, row in enumerate(bad_rows):
                out[row] = "missing:" + ",".join(names[bad[k]])
        return out.astype(str)


class BandMagnitudes:
    """Magnitudes of one band from a catalog's columns, derived where needed.

    Each method returns clean float64 values (NaN where missing), or None
    when the table has no columns to supply them.

    Parameters
    ----------
    finder : `~sourceclf.columns.ColumnFinder`
        The catalog's columns.
    band : str
        One of `sourceclf.bands.BANDS`.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from sourceclf.columns import ColumnFinder
    >>> finder = ColumnFinder(Table({"dered_r": [17.5], "extinction_r": [0.1]}))
    >>> [round(float(v), 2) for v in BandMagnitudes(finder, "r").observed_mag()]
    [17.6]
    """

    def __init__(self, finder, band):
        self.finder = finder
        self.band = band

    def observed_mag(self):
        """Observed magnitude: ``<b>``, ``modelMag_<b>`` or ``modelFlux_<b>``, else
        ``dered_<b> + extinction_<b>``."""
        b = self.band
        values = self.finder.values(*input_aliases(b))
        if values is None:
            dered = self.finder.values(f"dered_{b}")
            ext = self.finder.extinction(b)
            if dered is not None and ext is not None:
                values = dered + ext
        return values

    def dered(self):
        """Extinction-corrected magnitude: ``dered_<b>``, else observed minus extinction."""
        b = self.band
        values = self.finder.values(f"dered_{b}")
        if values is None:
            mag = self.finder.values(*input_aliases(b))
            ext = self.finder.extinction(b)
            if mag is not None and ext is not None:
                values = mag - ext
        return values

    def extinction(self):
        """Extinction: ``extinction_<b>``, else observed minus dereddened magnitude,
        else from ``ebv``."""
        b = self.band
        values = self.finder.values(f"extinction_{b}")
        if values is None:
            mag = self.finder.values(*input_aliases(b))
            dered = self.finder.values(f"dered_{b}")
            if mag is not None and dered is not None:
                values = mag - dered
        if values is None:
            values = self.finder.extinction(b)
        return values


def _colour(finder, name):
    """Observed colour ``a_b``: a column of that name, else a difference of magnitudes."""
    values = finder.values(*input_aliases(name))
    if values is None:
        a, b = name.split("_")
        ma = BandMagnitudes(finder, a).observed_mag()
        mb = BandMagnitudes(finder, b).observed_mag()
        if ma is not None and mb is not None:
            values = ma - mb
    return values


# What can supply each feature, for the error message listing missing columns.
_SOURCES = {}
for _b in BANDS:
    _SOURCES[f"dered_{_b}"] = (f"dered_{_b}, or {_b} (or modelMag_{_b}) with extinction_{_b} "
                               "or ebv")
    _SOURCES[f"extinction_{_b}"] = (f"extinction_{_b}, or {_b} (or modelMag_{_b}) with "
                                    f"dered_{_b}, or ebv")
    _SOURCES[f"deVRad_{_b}"] = f"deVRad_{_b}"
    _SOURCES[f"psffwhm_{_b}"] = f"psffwhm_{_b}"
    _SOURCES[_b] = (f"{_b} or modelMag_{_b} (or modelFlux_{_b}, nanomaggies), or dered_{_b} "
                    f"with extinction_{_b}")
    _SOURCES[f"psf_fwhm_{_b}"] = (f"psf_fwhm_{_b}: the PSF of the images (measured on frames, "
                                  f"psf=, or psffwhm_{_b})")
    _SOURCES[f"psf_beta_{_b}"] = (f"psf_beta_{_b}: the Moffat index of the images' PSF "
                                  "(measured on frames or on the stamps' own stars)")
    _SOURCES[f"psf_model_{_b}"] = (f"psfMag_{_b} (or psfFlux_{_b}, nanomaggies) with the observed "
                                   f"magnitude {_b}")
for _c in (f"{a}_{b}" for k, a in enumerate(BANDS) for b in BANDS[k + 1:]):  # all ten
    _a, _z = _c.split("_")
    _SOURCES[_c] = f"{_c}, or observed magnitudes of {_a} and {_z}"


def _feature_inputs(name):
    """The catalog inputs (`sourceclf.columns.INPUT_COLUMNS`) that can supply a feature."""
    name = name.replace("-", "_")
    if name in COLOURS:
        return tuple(name.split("_"))
    kind, _, band = name.rpartition("_")
    if kind in ("dered", "extinction", "") and band in BANDS:
        return (f"dered_{band}", band, f"extinction_{band}", "ebv")
    if kind == "psf_model":
        return (f"psfMag_{band}", band)
    return (name,)


def _warn_unused_psf_magnitudes(finder):
    """Say (once: the text never changes) that the catalog's psfMag columns go unused."""
    if any(finder.find(*input_aliases(f"psfMag_{b}")) for b in BANDS):
        warnings.warn("the catalog has psfMag_<b> columns, but the model's feature set does "
                      "not use PSF minus model magnitudes (no shipped model does: no shared "
                      "training table has psfMag); to use them, train a model on your own "
                      "labels with sourceclf.train(..., feature_set='ugriz_psf')",
                      SourceclfWarning)


def _margnet_feature(finder, name):
    kind, _, band = name.rpartition("_")
    if name in COLOURS:
        return _colour(finder, name)
    if kind == "dered":
        return BandMagnitudes(finder, band).dered()
    if kind == "extinction":
        return BandMagnitudes(finder, band).extinction()
    return finder.values(name, unit="arcsec")


def _ugriz_feature(finder, name):
    if name in BANDS:
        return BandMagnitudes(finder, name).observed_mag()
    return _colour(finder, name.replace("-", "_"))


def _image_psf_feature(finder, name):
    return finder.values(name, unit="arcsec" if name.startswith("psf_fwhm_") else None)


def _ugriz_psf_feature(finder, name):
    """`_ugriz_feature`, and ``psf-model_<b>``: ``psfMag_<b>`` minus the observed magnitude."""
    if not name.startswith("psf-model_"):
        return _ugriz_feature(finder, name)
    band = name[-1]
    psf = finder.values(*input_aliases(f"psfMag_{band}"))
    model = BandMagnitudes(finder, band).observed_mag()
    return None if psf is None or model is None else psf - model


#: The names of the features that describe the images' PSF (`FeatureSet.reads_image_psf`).
_IMAGE_PSF_PREFIXES = ("psf_fwhm_", "psf_beta_")


@dataclass(frozen=True)
class FeatureSet:
    """A named list of model inputs and how to compute them from a table.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``'margnet24'``.
    names : tuple of str
        Feature names, in model input order.
    description : str
        One line for users.
    """

    name: str
    names: tuple
    description: str
    _compute_one: object

    @property
    def reads_image_psf(self):
        """Whether the set is the PSF of the images (``psf_fwhm_<b>``, and with
        ``psf_shape`` ``psf_beta_<b>``), not catalog columns.

        `sourceclf.inputs.model_inputs` computes such a set from the PSF it
        finds for the stamps (measured on frames, ``psf=``, or the catalog's
        ``psffwhm_<b>``), after the images are read.
        """
        return bool(self.names) and all(n.startswith(_IMAGE_PSF_PREFIXES) for n in self.names)

    @property
    def reads_psf_shape(self):
        """Whether the set holds the Moffat index of the images' PSF (``psf_beta_<b>``)."""
        return any(n.startswith("psf_beta_") for n in self.names)

    @property
    def uses_psf_magnitudes(self):
        """Whether the set reads PSF magnitudes (``psf-model_<b>`` features)."""
        return any(n.startswith("psf-model_") for n in self.names)

    def missing_columns(self, table):
        """Features of this set that the table cannot supply, with what could.

        Returns
        -------
        missing : dict
            Feature name -> description of the columns that would supply it.
        """
        finder = ColumnFinder(table[:1])
        return {n: _SOURCES[n.replace("-", "_")]
                for n in self.names if self._compute_one(finder, n) is None}

    def compute(self, table):
        """Compute the features of every row.

        Parameters
        ----------
        table : `~astropy.table.Table`
            The catalog.

        Returns
        -------
        features : `FeatureMatrix`

        Raises
        ------
        MissingColumnsError
            If a feature cannot be computed from the table's columns; the message
            lists every missing feature and the columns that could supply it or,
            when the table has columns other catalogs use for them (``umag``,
            ``cModelMag_r``...), the ``columns=`` mapping to pass.

        Warns
        -----
        SourceclfWarning
            When the table has ``psfMag_<b>`` columns that this feature set
            does not use (once: Python shows a warning text once).
        """
        finder = ColumnFinder(table)
        columns, missing = [], {}
        for n in self.names:
            values = self._compute_one(finder, n)
            if values is None:
                missing[n] = _SOURCES[n.replace("-", "_")]
            columns.append(values)
        if missing:
            hint = suggest_columns(table, [i for n in missing for i in _feature_inputs(n)])
            listing = (", ".join(missing) + f"; {hint}" if hint else
                       "; ".join(f"{k} (from {v})" for k, v in missing.items()))
            raise MissingColumnsError(
                f"table lacks columns for feature set '{self.name}': {listing}"
            )
        if not (self.uses_psf_magnitudes or self.reads_image_psf):
            _warn_unused_psf_magnitudes(finder)
        values = np.column_stack(columns).astype(np.float32) if columns else \
            np.empty((len(table), 0), np.float32)
        valid = np.isfinite(values).all(axis=1)
        return FeatureMatrix(values=values, names=self.names, valid=valid)


#: The feature sets sourceclf knows, by name.
FEATURE_SETS = {
    "margnet24": FeatureSet(
        name="margnet24",
        names=MARGNET_FEATURES,
        description=("MargNet's 24 features: dered, deVRad, psffwhm and extinction in "
                     "each of ugriz, then observed colours u_g, g_r, r_i, i_z"),
        _compute_one=_margnet_feature,
    ),
    "ugriz": FeatureSet(
        name="ugriz",
        names=("r", "u-g", "g-r", "r-i", "i-z"),
        description="observed model magnitude r and colours u-g, g-r, r-i, i-z",
        _compute_one=_ugriz_feature,
    ),
    "ugriz_psf": FeatureSet(
        name="ugriz_psf",
        names=("r", "u-g", "g-r", "r-i", "i-z") + tuple(f"psf-model_{b}" for b in BANDS),
        description=("observed model magnitude r, colours u-g, g-r, r-i, i-z and the PSF "
                     "minus model magnitude psfMag_<b> - modelMag_<b> of each band (no "
                     "shipped model: train your own)"),
        _compute_one=_ugriz_psf_feature,
    ),
    "ugriz10": FeatureSet(
        name="ugriz10",
        names=("r",) + tuple(f"{a}-{b}" for k, a in enumerate(BANDS) for b in BANDS[k + 1:]),
        description="observed model magnitude r and all ten colours u-g, u-r, ... r-z, i-z",
        _compute_one=_ugriz_feature,
    ),
    "ugriz15": FeatureSet(
        name="ugriz15",
        names=(("r",) + tuple(f"{a}-{b}" for k, a in enumerate(BANDS) for b in BANDS[k + 1:])
               + ("u", "g", "i", "z")),
        description=("observed model magnitudes r, all ten colours u-g, u-r, ... r-z, i-z, "
                     "then u, g, i, z"),
        _compute_one=_ugriz_feature,
    ),
    "psf_fwhm": FeatureSet(
        name="psf_fwhm",
        names=tuple(f"psf_fwhm_{b}" for b in BANDS),
        description=("FWHM (arcsec) of the PSF of the images in each of ugriz, as "
                     "sourceclf.psf.measure_psf measures it (for image models)"),
        _compute_one=_image_psf_feature,
    ),
    "psf_shape": FeatureSet(
        name="psf_shape",
        names=tuple(f"psf_fwhm_{b}" for b in BANDS) + tuple(f"psf_beta_{b}" for b in BANDS),
        description=("FWHM (arcsec) and Moffat index of the PSF of the images in each of "
                     "ugriz, as sourceclf.psf.measure_psf measures them (for image models: "
                     "the PSF's width and the weight of its wings)"),
        _compute_one=_image_psf_feature,
    ),
}


def get_feature_set(name):
    """Return the `FeatureSet` registered under ``name``."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown feature set '{name}'; known: {', '.join(FEATURE_SETS)}"
        ) from None


def compute_features(table, feature_set):
    """Compute a feature set's model inputs from a table.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Catalog with SDSS-style column names (any case).
    feature_set : str or `FeatureSet`
        A name of `FEATURE_SETS`: ``'margnet24'``, ``'ugriz'``, ``'ugriz_psf'``...

    Returns
    -------
    features : `FeatureMatrix`

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"u": [19.5], "g": [18.2], "r": [17.6], "i": [17.4], "z": [17.3]})
    >>> f = compute_features(t, "ugriz")
    >>> f.names
    ('r', 'u-g', 'g-r', 'r-i', 'i-z')
    >>> [round(float(v), 2) for v in f.values[0]]
    [17.6, 1.3, 0.6, 0.2, 0.1]
    """
    fs = feature_set if isinstance(feature_set, FeatureSet) else get_feature_set(feature_set)
    return fs.compute(table)


def available_feature_sets(table):
    """Names of the feature sets that can be computed from the table's columns."""
    return [name for name, fs in FEATURE_SETS.items()
            if not fs.reads_image_psf and not fs.missing_columns(table)]


def default_feature_set(table):
    """The feature set a trainer uses when none is given: ``'margnet24'`` if possible.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The training catalog.

    Returns
    -------
    name : str
        ``'margnet24'`` when the table supplies it, else the first feature
        set it supplies.

    Raises
    ------
    MissingColumnsError
        If no feature set can be computed; the message lists what ``'ugriz'``
        needs.
    """
    usable = available_feature_sets(table)
    if not usable:
        get_feature_set("ugriz").compute(table)  # raises, listing missing columns
    return "margnet24" if "margnet24" in usable else usable[0]
