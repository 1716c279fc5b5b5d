"""From a catalog (and its cutouts or frames) to a model's inputs.

`model_inputs` is the one routine that turns a `~astropy.table.Table` into
what a model reads: the feature matrix of its feature set, the 5-band stamps
of an image model, which rows can be classified, and why the others cannot
(the ``pred_flag`` reasons).  `sourceclf.classify`, `sourceclf.calibrate` and
the trainers all go through it.
"""

from dataclasses import dataclass, field

import numpy as np

from .cutouts import FLAG_OFF_FRAME, make_cutouts
from .exceptions import InvalidInputError
from .features import get_feature_set

__all__ = ["ModelInputs", "model_inputs"]


@dataclass(frozen=True)
class ModelInputs:
    """A model's inputs for every row of a table.

    Attributes
    ----------
    features : `numpy.ndarray` or None
        float32 array of shape (n_rows, n_features), NaN where a feature is
        missing; None for a model without a feature set.
    stamps : `numpy.ndarray` or None
        float32 array of shape (n_rows, 5, size, size); None for a model
        that does not use images.
    valid : `numpy.ndarray`
        bool array of shape (n_rows,): True where the row can be classified
        (every feature finite, stamp not off the frame).
    flags : `numpy.ndarray`
        object array of str of shape (n_rows,): ``''`` when fine, else the
        ``;``-joined reasons (``missing:<features>``, then the cutout flags
        such as ``off_frame`` or ``edge``).
    columns : dict
        Per-row values measured while making the inputs that the output
        table keeps (e.g. the PSF width of each band measured on frames),
        name -> array of shape (n_rows,).
    """

    features: object
    stamps: object
    valid: np.ndarray
    flags: np.ndarray
    columns: dict = field(default_factory=dict)

    @property
    def rows(self):
        """Indices of the rows that can be classified."""
        return np.flatnonzero(self.valid)


def model_inputs(table, *, feature_set, uses_images, cutouts=None, images=None, psf=None,
                 psf_range=None, model_name=None):
    """Compute a model's inputs from a table and its cutouts or frames.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog.
    feature_set : str or None
        The model's feature set (see `sourceclf.features`); None for a model
        reading images only.
    uses_images : bool
        Whether the model reads 5-band stamps.
    cutouts : array-like, list, or path, optional
        Stamps in any form `sourceclf.cutouts.make_cutouts` accepts.
    images : dict, optional
        Full frames by band, cut at each row's ``ra``/``dec``.
    psf : float or dict, optional
        PSF FWHM (arcsec) of stamps given directly, for every band or per band.
    psf_range : dict, optional
        Band -> (low, high) PSF FWHM (arcsec) the image model was trained on.
    model_name : str, optional
        The model's name, for error messages.

    Returns
    -------
    inputs : `ModelInputs`

    Raises
    ------
    MissingColumnsError
        If the table cannot supply the feature set.
    InvalidInputError
        If an image model gets neither cutouts nor images, or the number of
        stamps differs from the table's length.

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"u": [19.5, -9999.], "g": [18.2, 18.0], "r": [17.6, 17.5],
    ...            "i": [17.4, 17.3], "z": [17.3, 17.2]})
    >>> inputs = model_inputs(t, feature_set="ugriz", uses_images=False)
    >>> inputs.valid.tolist(), inputs.flags.tolist()
    ([True, False], ['', 'missing:u-g'])
    """
    n = len(table)
    valid = np.ones(n, dtype=bool)
    flags = np.full(n, "", dtype=object)
    features = None
    if feature_set is not None:
        matrix = get_feature_set(feature_set).compute(table)
        features = matrix.values
        valid &= matrix.valid
        flags[~matrix.valid] = matrix.reasons()[~matrix.valid]

    stamps = None
    if uses_images:
        if cutouts is None and images is None:
            raise InvalidInputError(f"model '{model_name}' needs cutouts or images")
        result = make_cutouts(cutouts, table=table, images=images)
        stamps = result.data
        if len(stamps) != n:
            raise InvalidInputError(f"{len(stamps)} cutouts for a table of {n} rows")
        image_flags = np.asarray(result.flags)
        valid &= image_flags != FLAG_OFF_FRAME
        for i in np.flatnonzero(image_flags != ""):
            flags[i] = ";".join(x for x in (flags[i], str(image_flags[i])) if x)
    return ModelInputs(features=features, stamps=stamps, valid=valid, flags=flags)
