"""Stratified, seeded splits of a catalog's rows."""

import numpy as np

__all__ = ["split_indices"]


def split_indices(y, fractions, random_state=0):
    """Stratified random split of row indices into consecutive parts.

    Parameters
    ----------
    y : array-like of int
        Class index of each row (for stratification).
    fractions : sequence of float
        Fraction of rows in each part but the first; the first gets the rest.
    random_state : int
        Seed.

    Returns
    -------
    parts : list of `numpy.ndarray`
        Sorted index arrays, the first part first.
    """
    from sklearn.model_selection import train_test_split

    rest = np.arange(len(y))
    parts = []
    remaining = 1.0
    for frac in fractions:
        if frac <= 0:
            parts.append(np.array([], dtype=int))
            continue
        take = frac / remaining
        rest, part = train_test_split(rest, test_size=take, random_state=random_state,
                                      stratify=np.asarray(y)[rest])
        parts.append(np.sort(part))
        remaining -= frac
    return [np.sort(rest)] + parts
