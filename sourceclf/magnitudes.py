"""Magnitudes from a catalog's numbers: fluxes converted, plain fluxes refused.

A band's column may hold AB magnitudes, fluxes with their unit (nanomaggies,
janskys), or plain numbers.  `magnitudes_in` turns the first two into
magnitudes; `check_plain_magnitudes` refuses plain numbers that are fluxes
written without their unit, which would otherwise be read as missing or absurd
magnitudes.  `sourceclf.columns.clean_column` uses both.
"""

import numpy as np
from astropy import units as u

from .exceptions import InvalidInputError

__all__ = ["MAGNITUDE_PLACEHOLDER", "MAGNITUDE_SPREAD_LIMIT", "check_plain_magnitudes",
           "magnitudes_in"]

#: Magnitudes (and colours) above this are non-detection placeholders (99, 99.99,
#: 999...), not measurements: no real catalog magnitude is this faint.
MAGNITUDE_PLACEHOLDER = 40.0

#: Plain numbers read as a band's magnitudes are refused when their 95th
#: percentile exceeds their 5th by more than this factor: fluxes without their
#: unit spread over decades, magnitudes (8-25, say) over a factor of 3 at most.
MAGNITUDE_SPREAD_LIMIT = 4.0

# AB magnitudes are -2.5 log10 of the flux in maggies (3631 Jy).
_AB_ZERO_POINT = u.zero_point_flux(3631 * u.Jy)


def magnitudes_in(values, col_unit, label, shown):
    """Magnitudes from ``values`` in ``col_unit``: magnitudes as they are, fluxes as AB.

    Parameters
    ----------
    values : `numpy.ndarray` of float
        The values, NaN where missing.
    col_unit : `~astropy.units.UnitBase` or None
        Their unit; None or ``mag``: magnitudes already.
    label : str
        The column, as error messages name it (``"column 'r'"``).
    shown : str or `~astropy.units.UnitBase`
        The unit as the catalog wrote it, for the message.

    Returns
    -------
    magnitudes : `numpy.ndarray` of float64
        AB magnitudes, ``22.5 - 2.5 log10(f / nmgy)`` for fluxes; a flux of
        zero or less (a non-detection) is NaN.

    Raises
    ------
    InvalidInputError
        If ``col_unit`` is neither a magnitude nor a flux density.
    """
    if col_unit is None or col_unit == u.mag:
        return values
    if col_unit.is_equivalent(u.maggy, _AB_ZERO_POINT):
        maggies = u.Quantity(values, col_unit).to_value(u.maggy, _AB_ZERO_POINT)
        out = np.full(values.shape, np.nan)
        positive = maggies > 0  # no flux (or a negative one): a non-detection
        out[positive] = -2.5 * np.log10(maggies[positive])
        return out
    raise InvalidInputError(f"{label} has unit '{shown}', which is neither a magnitude nor a "
                            "flux density (nmgy, Jy...)")


def check_plain_magnitudes(values, label, name=None):
    """Refuse, in one line, plain numbers read as magnitudes that are fluxes.

    They are refused when there are 10 or more distinct values (placeholders,
    values above `MAGNITUDE_PLACEHOLDER` repeated, left out) and many of them
    are 0 or less, or they spread over more than `MAGNITUDE_SPREAD_LIMIT` (5th
    to 95th percentile), or five or more of them, and 10%, lie above
    `MAGNITUDE_PLACEHOLDER` each once (fluxes in nanomaggies of sources
    brighter than 18.5).  Fewer above it are placeholders, left out of the
    spread.

    Parameters
    ----------
    values : `numpy.ndarray` of float
        A band's values without a unit, NaN where missing.
    label : str
        The column, as the message names it (``"column 'r'"``).
    name : str, optional
        The column's name, for the fix the message suggests.

    Raises
    ------
    InvalidInputError
        If the values are not magnitudes; the message says why and how to
        give the column its unit.
    """
    distinct, counts = np.unique(values[np.isfinite(values)], return_counts=True)
    distinct = distinct[(distinct <= MAGNITUDE_PLACEHOLDER) | (counts == 1)]  # not 99.99
    if distinct.size < 10:
        return
    above = int(np.sum(distinct > MAGNITUDE_PLACEHOLDER))
    many_above = above >= max(5, 0.1 * distinct.size)  # a few odd placeholders are not
    top = np.inf if many_above else MAGNITUDE_PLACEHOLDER
    positive = distinct[(distinct > 0) & (distinct <= top)]
    spread = np.percentile(positive, [5, 95]) if positive.size >= 10 else None
    if np.mean(distinct <= 0) >= 0.1:
        why = f"{np.mean(distinct <= 0):.0%} of its distinct values are 0 or less"
    elif spread is not None and spread[1] > MAGNITUDE_SPREAD_LIMIT * spread[0]:
        low, high = spread
        why = f"its values span a factor {high / low:.3g}, from {low:.3g} to {high:.3g}"
    elif many_above:
        why = (f"{above / distinct.size:.0%} of its distinct values exceed "
               f"{MAGNITUDE_PLACEHOLDER:g}, fainter than any magnitude, each once")
    else:
        return
    raise InvalidInputError(
        f"{label} has no unit and holds numbers that are not magnitudes ({why}, as fluxes "
        f"do): if they are fluxes, give the column its unit (table[{name or 'COLUMN'!r}].unit "
        f"= 'nmgy' or 'Jy'...; CLI: --unit {name or 'COLUMN'}=nmgy), if magnitudes, the "
        "unit mag")
