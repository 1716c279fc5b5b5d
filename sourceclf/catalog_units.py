"""The units catalogs write, including those astropy does not parse.

Catalogs label magnitudes ``mag(AB)``, ``ABmag`` or ``magnitudes``, SDSS
fluxes ``nanomaggies``, positions ``DEG`` or ``degrees``: strings that
astropy's FITS and VO unit parsers do not all know, and turn into an
`~astropy.units.UnrecognizedUnit` with one `~astropy.units.UnitsWarning` per
column.  `parse_unit` and `angle_unit` read them, and refuse with one line
naming the column a unit that neither astropy nor sourceclf knows; so
sourceclf's readers silence astropy's warnings (three lines per column, for
columns never read as well).
"""

from astropy import units as u

from .exceptions import InvalidInputError

__all__ = ["angle_unit", "parse_unit"]

# Unit strings astropy cannot parse (or parses as something else) that catalogs
# write for magnitudes and nanomaggies; compared without case and spaces.
_MAGNITUDE_UNIT_NAMES = {"mag", "mags", "magnitude", "magnitudes", "abmag", "mag(ab)",
                         "ab", "abmags", "magab", "mag_ab", "stmag", "mag(st)", "vegamag",
                         "mag(vega)"}
_NANOMAGGY_UNIT_NAMES = {"nanomaggy", "nanomaggies", "nmgy", "nmaggy", "nanomaggys"}

# Angle units older catalogs write that astropy does not parse (FITS ``TUNIT``).
_ANGLE_NAMES = {"deg": "deg", "degs": "deg", "degree": "deg", "degrees": "deg",
                "rad": "rad", "radian": "rad", "radians": "rad"}


def parse_unit(col_unit, label):
    """A column's unit as an astropy unit: `u.mag` for magnitudes, None if none.

    Parameters
    ----------
    col_unit : `~astropy.units.UnitBase`, str or None
        The column's unit, parsed or not.
    label : str
        The column, for the message (``"column 'r'"``).

    Returns
    -------
    unit : `~astropy.units.UnitBase` or None
        ``u.mag`` for a magnitude unit (``mag``, ``ABmag``, ``mag(AB)``...),
        ``u.nanomaggy`` for SDSS's flux unit under any of its names.

    Raises
    ------
    InvalidInputError
        For a unit astropy does not know (one line naming the column).

    Examples
    --------
    >>> parse_unit("mag(AB)", "column 'r'")
    Unit("mag")
    >>> parse_unit("nanomaggies", "column 'r'")
    Unit("nmgy")
    """
    if col_unit is None:
        return None
    text = str(col_unit).strip()
    key = text.lower().replace(" ", "")
    if key in _MAGNITUDE_UNIT_NAMES:
        return u.mag
    if key in _NANOMAGGY_UNIT_NAMES:
        return u.nanomaggy
    if isinstance(col_unit, u.UnrecognizedUnit) or isinstance(col_unit, str):
        parsed = u.Unit(text, parse_strict="silent") if text else u.dimensionless_unscaled
        if isinstance(parsed, u.UnrecognizedUnit):
            raise InvalidInputError(
                f"{label} has unit '{text}', which is not a unit astropy knows; set the "
                "column's unit to mag, a flux (nmgy, Jy) or arcsec, or remove it")
        col_unit = parsed
    unit = u.Unit(col_unit)
    if isinstance(unit, u.MagUnit):  # ABmag, STmag, mag(AB)...: the numbers are magnitudes
        return u.mag
    return unit


def angle_unit(unit):
    """``unit`` as an astropy angle unit (``DEG`` and ``degrees`` too), or None when it
    is not one.

    Examples
    --------
    >>> angle_unit("DEGREES"), angle_unit("mag")
    (Unit("deg"), None)
    """
    if isinstance(unit, u.UnrecognizedUnit) or isinstance(unit, str):
        name = str(unit).strip().lower()
        unit = u.Unit(_ANGLE_NAMES.get(name, name), parse_strict="silent")
    if isinstance(unit, u.UnrecognizedUnit):
        return None
    return unit if unit.is_equivalent(u.deg) else None
