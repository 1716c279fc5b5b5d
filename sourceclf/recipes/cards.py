"""What every recipe writes into its model card.

The photometric and image recipes record the same things about how a model
was made and how well it does: the size of each part of the split
(`split_sizes`), the software that trained it (`software_versions`), its
metrics on held-out rows (`held_out_metrics`), its calibration table
(`calibrate_on`) and its size (`n_parameters`).
"""

from .. import __version__
from ..training import calibration_table, classification_metrics

__all__ = ["split_sizes", "software_versions", "held_out_metrics", "calibrate_on",
           "n_parameters"]


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
