"""Class labels of a labelled catalog."""

import numpy as np

from ..columns import decode_strings
from ..exceptions import InvalidInputError

__all__ = ["labels_from_table"]


def labels_from_table(table, label_column="class", classes=None):
    """Class labels of a table as stripped upper-case strings, with their indices.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Labelled catalog.
    label_column : str
        Column holding the labels (bytes from FITS are decoded).
    classes : sequence of str, optional
        Allowed classes in output order; default: the sorted unique labels.

    Returns
    -------
    classes : tuple of str
    y : `numpy.ndarray` of int
        Index of each row's label in ``classes``.
    """
    if label_column not in table.colnames:
        raise InvalidInputError(f"label column '{label_column}' not in table; columns: "
                                f"{', '.join(table.colnames)}")
    labels = np.char.upper(decode_strings(table[label_column]))
    if classes is None:
        classes = tuple(sorted(set(labels.tolist())))
    classes = tuple(str(c).upper() for c in classes)
    unknown = sorted(set(labels.tolist()) - set(classes))
    if unknown:
        raise InvalidInputError(f"labels {unknown} in column '{label_column}' are not among "
                                f"the classes {list(classes)}")
    if len(classes) < 2:
        raise InvalidInputError(f"need at least two classes to train, found {list(classes)}")
    lookup = {c: i for i, c in enumerate(classes)}
    return classes, np.array([lookup[v] for v in labels], dtype=np.int64)
