"""Finding and cleaning catalog columns.

Real catalogs spell column names in many ways, store magnitudes as plain floats
or as `~astropy.units.Quantity`, mark missing values with masks, NaN or SDSS
sentinels (-9999, -999), and FITS gives strings back as bytes.  This module
turns one such column into a clean float64 array with NaN for "missing", so
that everything downstream deals with one convention only.
"""

import numpy as np
from astropy import units as u
from astropy.table import Table

from .exceptions import InvalidInputError

__all__ = ["SENTINEL_THRESHOLD", "MAGNITUDE_PLACEHOLDER", "ColumnFinder", "clean_column",
           "decode_strings"]

#: Values at or below this are SDSS "no measurement" sentinels (-9999, -999, -99.99...).
SENTINEL_THRESHOLD = -99.0

#: Magnitudes (and colours) above this are non-detection placeholders (99, 99.99,
#: 999...), not measurements: no real catalog magnitude is this faint.
MAGNITUDE_PLACEHOLDER = 40.0

_UNIT_KINDS = {
    "mag": (u.mag,),
    "arcsec": (u.arcsec,),
}


def decode_strings(values):
    """Return ``values`` as an array of stripped Python strings.

    FITS string columns come back as bytes; this decodes them (UTF-8, falling
    back to Latin-1) and strips the padding.

    Parameters
    ----------
    values : array-like
        Strings or bytes.

    Returns
    -------
    strings : `numpy.ndarray` of str
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "S":
        try:
            arr = np.char.decode(arr, "utf-8")
        except UnicodeDecodeError:
            arr = np.char.decode(arr, "latin-1")
    elif arr.dtype.kind == "O":
        arr = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr])
    return np.char.strip(arr.astype(str))


def clean_column(column, *, unit="mag", name=None):
    """Convert a table column to float64 with NaN marking every missing value.

    Masked entries, NaN, infinities, SDSS sentinels (values at or below
    `SENTINEL_THRESHOLD`) and, for magnitudes, non-detection placeholders
    (values above `MAGNITUDE_PLACEHOLDER`, such as 99 or 99.99) all become NaN.

    Parameters
    ----------
    column : `~astropy.table.Column`, `~astropy.units.Quantity` or array-like
        The column.
    unit : {'mag', 'arcsec'}
        The unit the values are wanted in.  Quantities and columns with a unit
        are converted; plain numbers are taken to be in this unit already.
    name : str, optional
        Column name, for error messages.

    Returns
    -------
    values : `numpy.ndarray` of float64

    Raises
    ------
    InvalidInputError
        If the column is not numeric or its unit cannot be converted.
    """
    label = f"column '{name}'" if name else "column"
    target = _UNIT_KINDS[unit][0]
    col_unit = getattr(column, "unit", None)
    mask = np.ma.getmaskarray(column) if hasattr(column, "mask") else None
    if isinstance(column, u.Quantity):
        raw = column.value
    else:
        raw = np.ma.getdata(column)
    raw = np.asarray(raw)
    if raw.ndim != 1:
        raise InvalidInputError(f"{label} must be one value per row, got shape {raw.shape}")
    if raw.dtype.kind not in "fiub":
        raise InvalidInputError(f"{label} must be numeric, got dtype {raw.dtype}")
    values = raw.astype(np.float64, copy=True)
    if col_unit is not None and col_unit != u.dimensionless_unscaled:
        col_unit = u.Unit(col_unit)
        # ABmag, STmag, mag(AB)...: logarithmic units whose numbers are magnitudes.
        is_magnitude = isinstance(col_unit, u.FunctionUnitBase)
        if not (unit == "mag" and is_magnitude):
            try:
                values = (values * col_unit).to_value(target)
            except (u.UnitConversionError, u.UnitTypeError):
                raise InvalidInputError(
                    f"{label} has unit '{col_unit}', which cannot be converted to {target}"
                ) from None
    if mask is not None and mask.shape == values.shape:
        values[mask] = np.nan
    values[~np.isfinite(values)] = np.nan
    values[values <= SENTINEL_THRESHOLD] = np.nan
    if unit == "mag":
        values[values > MAGNITUDE_PLACEHOLDER] = np.nan
    return values


class ColumnFinder:
    """Case-insensitive look-up of table columns, with aliases.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog.

    Examples
    --------
    >>> from astropy.table import Table
    >>> finder = ColumnFinder(Table({"modelMag_R": [17.0]}))
    >>> finder.find("r", "modelmag_r")
    'modelMag_R'
    """

    def __init__(self, table):
        if not isinstance(table, Table):
            raise InvalidInputError(
                f"expected an astropy Table, got {type(table).__name__}; "
                "use Table.read(path) or Table(your_data)"
            )
        self.table = table
        self._lower = {}
        for name in table.colnames:
            self._lower.setdefault(name.lower(), name)

    def find(self, *candidates):
        """Return the actual name of the first candidate present, or None."""
        for cand in candidates:
            actual = self._lower.get(cand.lower())
            if actual is not None:
                return actual
        return None

    def values(self, *candidates, unit="mag"):
        """Clean float64 values of the first candidate column present, or None."""
        name = self.find(*candidates)
        if name is None:
            return None
        return clean_column(self.table[name], unit=unit, name=name)
