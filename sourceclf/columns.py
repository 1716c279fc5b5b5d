"""Finding, mapping and cleaning catalog columns.

Real catalogs spell column names in many ways, store magnitudes as plain floats,
as `~astropy.units.Quantity` or as SDSS fluxes in nanomaggies, mark missing
values with masks, NaN or SDSS sentinels (-9999, -999), and FITS gives strings
back as bytes.  This module turns one such column into a clean float64 array
with NaN for "missing", so that everything downstream deals with one
convention only, and maps a catalog's own names onto the inputs sourceclf
reads (`map_columns`, the ``columns=`` argument of every function that takes a
table).
"""

import difflib
import functools
import re
import warnings
from collections.abc import Mapping

import numpy as np
from astropy import units as u
from astropy.table import Table

from .bands import BANDS, COLOURS, EXTINCTION_COEFFICIENTS
from .catalog_units import parse_unit
from .exceptions import InvalidInputError, SourceclfWarning
from .magnitudes import (MAGNITUDE_PLACEHOLDER, MAGNITUDE_SPREAD_LIMIT, check_plain_magnitudes,
                         magnitudes_in)

__all__ = ["SENTINEL_THRESHOLD", "MAGNITUDE_PLACEHOLDER", "MAGNITUDE_SPREAD_LIMIT",
           "NULL_MARKERS", "INPUT_COLUMNS",
           "ColumnFinder",
           "band_array_views", "clean_column", "decode_strings", "input_aliases",
           "is_sdss_flux_name", "map_columns", "parse_column_options", "suggest_columns",
           "take_rows"]

#: Values at or below this are SDSS "no measurement" sentinels (-9999, -999, -99.99...).
SENTINEL_THRESHOLD = -99.0

#: The catalog columns sourceclf reads, by canonical name: what ``columns=``
#: may map a catalog's own column onto.
INPUT_COLUMNS = (BANDS + COLOURS
                 + tuple(f"{kind}_{b}" for kind in ("dered", "extinction", "deVRad",
                                                    "psffwhm", "psfMag") for b in BANDS)
                 + ("ra", "dec", "ebv"))

# Inputs that hold a band's magnitudes (lower case): plain numbers there are checked.
_BAND_MAGNITUDES = {p.format(b=b).lower() for b in BANDS
                    for p in ("{b}", "dered_{b}", "psfMag_{b}", "modelMag_{b}")}

_SDSS_FLUX_NAME = re.compile(r"^(model|cmodel|psf|petro|fiber|fiber2)flux_[ugriz]$",
                             re.IGNORECASE)


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


def is_sdss_flux_name(name):
    """Whether ``name`` is an SDSS flux column (``modelFlux_r``, ``psfFlux_g``...).

    Such columns are in nanomaggies; a plain-number one is read as such.
    """
    return bool(_SDSS_FLUX_NAME.match(str(name)))


def clean_column(column, *, unit="mag", name=None, plain_unit=None, check_magnitudes=False):
    """Convert a table column to float64 with NaN marking every missing value.

    Masked entries, NaN, infinities, SDSS sentinels (values at or below
    `SENTINEL_THRESHOLD`) and, for magnitudes, non-detection placeholders
    (values above `MAGNITUDE_PLACEHOLDER`, such as 99 or 99.99) all become NaN.
    A column of numbers read as text (a CSV file writing ``null`` or ``N/A``
    for a missing value) is read as numbers, its `NULL_MARKERS` as NaN.

    Parameters
    ----------
    column : `~astropy.table.Column`, `~astropy.units.Quantity` or array-like
        The column.
    unit : {'mag', 'arcsec'}
        The unit the values are wanted in.  Quantities and columns with a unit
        are converted: for magnitudes, ``mag`` and logarithmic magnitude
        units (``ABmag``, ``mag(AB)``, also as unparsed FITS ``TUNIT``
        strings) are taken as they are, and fluxes (``nanomaggy``/``nmgy``,
        ``Jy``...) become AB magnitudes, ``22.5 - 2.5 log10(f / nmgy)``, a
        flux of zero or less being missing.
    name : str, optional
        Column name, for error messages.
    plain_unit : `~astropy.units.Unit` or str, optional
        Unit of plain numbers (a column without a unit); default ``unit``.
    check_magnitudes : bool, optional
        For a band's magnitudes (not colours): refuse plain numbers many of
        whose distinct values are 0 or less or that spread over more than
        `MAGNITUDE_SPREAD_LIMIT` (fluxes without their unit, else read as
        missing or absurd magnitudes); a column with the unit mag never is.

    Returns
    -------
    values : `numpy.ndarray` of float64

    Raises
    ------
    InvalidInputError
        If the column is not numeric, or its unit is unknown to astropy or
        cannot be converted, or (``check_magnitudes``) it holds plain
        numbers that are not magnitudes; the message names the column.
    """
    label = f"column '{name}'" if name else "column"
    mask = np.ma.getmaskarray(column) if hasattr(column, "mask") else None
    if isinstance(column, u.Quantity):
        raw = column.value
    else:
        raw = np.ma.getdata(column)
    raw = np.asarray(raw)
    if raw.ndim != 1:
        got = (f"{' x '.join(map(str, raw.shape[1:]))} values in each row" if raw.ndim > 1
               else "a single value")
        raise InvalidInputError(f"{label} must be one value per row, got {got}")
    if raw.dtype.kind in "USO":
        raw = _numbers_from_text(raw, label)
    if raw.dtype.kind not in "fiub":
        raise InvalidInputError(f"{label} must be numeric, got dtype {raw.dtype}")
    values = raw.astype(np.float64, copy=True)
    shown = getattr(column, "unit", None)
    col_unit = parse_unit(shown, label)
    if col_unit is None or col_unit == u.dimensionless_unscaled:
        shown = plain_unit
        col_unit = None if plain_unit is None else parse_unit(plain_unit, label)
    if mask is not None and mask.shape == values.shape:
        values[mask] = np.nan
    values[~np.isfinite(values)] = np.nan
    values[values <= SENTINEL_THRESHOLD] = np.nan
    if unit == "mag":
        if check_magnitudes and col_unit is None:
            check_plain_magnitudes(values, label, name)
        values = magnitudes_in(values, col_unit, label, shown)
        values[values > MAGNITUDE_PLACEHOLDER] = np.nan
    elif col_unit is not None:
        try:
            values = (values * col_unit).to_value(u.arcsec)
        except (u.UnitConversionError, u.UnitTypeError):
            raise InvalidInputError(
                f"{label} has unit '{shown}', which cannot be converted to arcsec"
            ) from None
    return values


#: Text a catalog writes for a missing number (compared case-insensitively,
#: stripped): read as missing when a column of numbers was read as text.
NULL_MARKERS = ("", "null", "none", "nan", "n/a", "na", "nd", "--", "-")


def _numbers_from_text(raw, label):
    """A column of numbers that a text file's reader kept as text (one ``null`` among
    them), as float64 with NaN for `NULL_MARKERS`; an error naming the first other
    entry that is no number."""
    raw = np.asarray(raw)
    if raw.dtype.kind == "S":  # FITS text: bytes, whatever their encoding
        raw = np.char.decode(raw, "utf-8", "replace")
    elif raw.dtype.kind == "O":
        raw = np.array([x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
                        for x in raw], dtype=str)
    text = np.char.strip(np.char.lower(raw.astype(str)))
    missing = np.isin(text, NULL_MARKERS)
    values = np.full(text.shape, np.nan)
    for i in np.flatnonzero(~missing):
        try:
            values[i] = float(text[i])
        except ValueError:
            raise InvalidInputError(f"{label} must be numeric: row {i} holds '{raw[i]}' (only "
                                    f"numbers and markers of missing values such as 'null' "
                                    f"are read)") from None
    return values


def input_aliases(name):
    """The column names the finder accepts for one input, in order of preference.

    Parameters
    ----------
    name : str
        A canonical input name (one of `INPUT_COLUMNS`).

    Returns
    -------
    aliases : tuple of str
        ``(name,)``, or for an observed magnitude ``b``: ``b``,
        ``modelMag_<b>``, ``modelFlux_<b>`` (nanomaggies); for ``psfMag_<b>``
        also ``psfFlux_<b>``; for a colour ``a_b`` also ``a-b``; for ``ebv``
        (the colour excess E(B-V) of Schlegel et al. 1998) also ``e_bv``,
        ``e(b-v)``, ``sfd_ebv`` and ``ebv_sfd``.

    Examples
    --------
    >>> input_aliases("r")
    ('r', 'modelMag_r', 'modelFlux_r')
    """
    if name in BANDS:
        return (name, f"modelMag_{name}", f"modelFlux_{name}")
    if name.startswith("psfMag_"):
        return (name, f"psfFlux_{name[7:]}")
    if name in COLOURS:
        return (name, name.replace("_", "-"))
    if name == "ebv":
        return ("ebv", "e_bv", "e(b-v)", "sfd_ebv", "ebv_sfd")
    return (name,)


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
        # The catalog's own name of each mapped input (map_columns), for messages
        self._sources = getattr(table, "_sourceclf_sources", {})
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

    def extinction(self, band):
        """Galactic extinction in a band: ``extinction_<b>``, else ``ebv`` times
        `sourceclf.bands.EXTINCTION_COEFFICIENTS` (as SDSS computes its own), else None.

        Examples
        --------
        >>> from astropy.table import Table
        >>> [round(float(v), 4) for v in ColumnFinder(Table({"EBV": [0.1]})).extinction("r")]
        [0.2285]
        """
        values = self.values(f"extinction_{band}")
        if values is None:
            ebv = self.values(*input_aliases("ebv"))
            if ebv is not None:
                values = ebv * EXTINCTION_COEFFICIENTS[band]
        return values

    def values(self, *candidates, unit="mag"):
        """Clean float64 values of the first candidate column present, or None.

        SDSS flux columns without a unit (`is_sdss_flux_name`) are read as
        nanomaggies; a band's magnitudes (``r``, ``dered_r``, ``psfMag_r``,
        ``modelMag_r``) without a unit are refused when they cannot be
        magnitudes (``check_magnitudes`` of `clean_column`).
        """
        name = self.find(*candidates)
        if name is None:
            return None
        return clean_column(self.table[name], unit=unit, name=self._sources.get(name, name),
                            plain_unit=u.nanomaggy if is_sdss_flux_name(name) else None,
                            check_magnitudes=candidates[0].lower() in _BAND_MAGNITUDES)


# Other catalogs' names for each input, lower case, in order of preference:
# what a missing-column error suggests mapping with ``columns=``.
_FOREIGN_NAMES = {}
for _b in BANDS:
    _FOREIGN_NAMES[_b] = [p.format(b=_b) for p in (
        "{b}mag", "{b}_mag", "mag_{b}", "{b}modelmag", "modelmag{b}", "cmodelmag_{b}",
        "{b}cmodelmag", "{b}kronmag", "petromag_{b}", "{b}petromag", "mag_auto_{b}",
        "{b}_auto", "psfmag_{b}", "{b}psfmag", "{b}apmag", "fibermag_{b}",
        "cmodelflux_{b}", "petroflux_{b}", "psfflux_{b}")]
    _FOREIGN_NAMES[f"dered_{_b}"] = [p.format(b=_b) for p in (
        "dered{b}", "{b}_dered", "{b}dered", "dered_mag_{b}", "{b}mag_dered", "{b}0",
        "{b}_0", "{b}mag0", "{b}_mag_0")]
    _FOREIGN_NAMES[f"extinction_{_b}"] = [p.format(b=_b) for p in (
        "extinction{b}", "{b}extinction", "{b}_extinction", "a_{b}", "ext_{b}", "{b}_ext",
        "ext{b}", "{b}ext")]
    _FOREIGN_NAMES[f"deVRad_{_b}"] = [p.format(b=_b) for p in (
        "devrad{b}", "{b}devrad", "{b}_devrad", "devradius_{b}")]
    _FOREIGN_NAMES[f"psffwhm_{_b}"] = [p.format(b=_b) for p in (
        "psffwhm{b}", "{b}psffwhm", "{b}_psffwhm", "fwhm_{b}", "{b}_fwhm", "{b}fwhm",
        "seeing_{b}", "{b}_seeing", "psfwidth_{b}")]
    _FOREIGN_NAMES[f"psfMag_{_b}"] = [p.format(b=_b) for p in (
        "{b}psfmag", "psfmag{b}", "psf_mag_{b}", "{b}_psfmag", "{b}_psf", "mag_psf_{b}")]
_FOREIGN_NAMES["ebv"] = ["ebmv", "e_b_v", "e_bmv", "ebv_sfd98", "sfd_ebv98", "reddening"]
_FOREIGN_NAMES["ra"] = ["raj2000", "ra_icrs", "ra_deg", "radeg", "ra_j2000", "alpha_j2000",
                        "alpha"]
_FOREIGN_NAMES["dec"] = ["dej2000", "decj2000", "de_icrs", "dec_icrs", "dec_deg", "decdeg",
                         "dec_j2000", "delta_j2000", "delta"]


def suggest_columns(table, inputs=None):
    """The ``columns=`` mapping that would supply missing inputs, as one sentence.

    For each input (default: every one of `INPUT_COLUMNS`) that the table
    lacks under any accepted name (`input_aliases`, any case), the first of
    the table's columns with a name other catalogs use for it (``umag``,
    ``MAG_U``, ``cModelMag_u``, ``gPSFMag``...) is suggested.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog.
    inputs : iterable of str, optional
        Canonical input names to look for.

    Returns
    -------
    suggestion : str
        ``''`` when there is nothing to suggest, else e.g. ``"the catalog has
        'umag': use columns={'u': 'umag'} (CLI: --column u=umag)"``.

    Examples
    --------
    >>> from astropy.table import Table
    >>> suggest_columns(Table({"UMAG": [19.0], "r": [17.0]}), ["u", "r"])
    "the catalog has 'UMAG': use columns={'u': 'UMAG'} (CLI: --column u=UMAG)"
    """
    finder = ColumnFinder(table)
    wanted = INPUT_COLUMNS if inputs is None else set(inputs)
    used, mapping = set(), {}
    for name in (n for n in INPUT_COLUMNS if n in wanted):
        if name not in _FOREIGN_NAMES or finder.find(*input_aliases(name)) is not None:
            continue
        found = finder.find(*(n for n in _FOREIGN_NAMES[name] if n not in used))
        if found is not None:
            mapping[name] = found
            used.add(found.lower())
    if not mapping:
        return ""
    listed = ", ".join(f"'{c}'" for c in mapping.values())
    options = " ".join(f"--column {k}={v}" for k, v in mapping.items())
    return f"the catalog has {listed}: use columns={mapping!r} (CLI: {options})"


def _canonical_inputs():
    """Lower-case name -> canonical input, aliases (``modelMag_r``, ``u-g``) included."""
    out = {}
    for name in INPUT_COLUMNS:
        for alias in input_aliases(name):
            if not is_sdss_flux_name(alias):
                out.setdefault(alias.lower(), name)
    return out


def _check_mapping(table, columns):
    """Validate ``columns=``; return canonical input -> the catalog's column name."""
    if not isinstance(columns, Mapping):
        raise InvalidInputError("columns must be a dict {input name: catalog column}, e.g. "
                                f"{{'u': 'umag'}}; got {type(columns).__name__}")
    canonical = _canonical_inputs()
    by_lower = {}
    for name in table.colnames:
        by_lower.setdefault(name.lower(), []).append(name)
    mapping, sources = {}, {}
    for key, column in columns.items():
        if not isinstance(key, str) or not isinstance(column, str):
            raise InvalidInputError(f"columns must map names to names (str), got "
                                    f"{key!r}: {column!r}")
        target = canonical.get(key.strip().lower())
        if target is None:
            close = difflib.get_close_matches(key, INPUT_COLUMNS, n=1)
            raise InvalidInputError(
                f"columns: unknown input name '{key}'"
                + (f" (did you mean '{close[0]}'?)" if close else "")
                + "; inputs are u g r i z, u_g g_r r_i i_z, dered_<b>, extinction_<b>, "
                "deVRad_<b>, psffwhm_<b>, psfMag_<b> (b in ugriz), ra, dec")
        if target in mapping:
            raise InvalidInputError(f"columns gives input '{target}' twice ('{mapping[target]}' "
                                    f"and '{column}')")
        actual = column if column in table.colnames else None
        if actual is None and len(by_lower.get(column.lower(), ())) == 1:
            actual = by_lower[column.lower()][0]
        if actual is None:
            close = difflib.get_close_matches(column, table.colnames, n=1)
            raise InvalidInputError(
                f"columns={{'{key}': '{column}'}}: the catalog has no column '{column}'"
                + (f" (did you mean '{close[0]}'?)" if close else ""))
        if actual in sources:
            raise InvalidInputError(f"columns maps both '{sources[actual]}' and '{target}' to "
                                    f"column '{actual}'; each input needs a column of its own")
        mapping[target] = actual
        sources[actual] = target
    return mapping


def map_columns(table, columns=None):
    """The catalog as sourceclf reads it: ``columns=`` applied, aliases checked.

    Every function that takes a catalog calls this first.  The result is a
    new `~astropy.table.Table` (of the same class) whose columns share the
    catalog's data (nothing is copied, the catalog is not modified): SDSS's
    per-band array columns appear band by band (`band_array_views`), each
    mapped column also appears under its input name, and the catalog's own
    columns the finder would take for a mapped input (``u``, ``U``,
    ``modelMag_u``... when ``u`` is mapped) are left out of it.  Outputs are
    built from the catalog itself, so they keep its column names.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog.
    columns : dict, optional
        Input name -> the catalog's column name, e.g. ``{'u': 'umag',
        'dered_r': 'cModelMag_r'}``; input names as in `INPUT_COLUMNS` (any
        case), column names exact or in any case when unambiguous.  A mapped
        SDSS flux column without a unit (``cModelFlux_r``...) is read in
        nanomaggies.

    Returns
    -------
    view : `~astropy.table.Table`
        ``table`` itself when ``columns`` is empty and it has no per-band
        array column.

    Raises
    ------
    InvalidInputError
        For an unknown input name, a column the catalog lacks, or two inputs
        mapped onto one column (one line each).

    Warns
    -----
    SourceclfWarning
        When two columns the finder accepts for one input (``u`` and
        ``modelMag_u``, say) both exist and their values differ: the message
        says which one is used.

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"umag": [19.5], "r": [17.6]})
    >>> map_columns(t, {"u": "umag"}).colnames
    ['umag', 'r', 'u']
    >>> t.colnames
    ['umag', 'r']
    """
    table = band_array_views(table)
    if not columns:
        if columns is not None and not isinstance(columns, Mapping):
            raise InvalidInputError("columns must be a dict {input name: catalog column}, "
                                    f"e.g. {{'u': 'umag'}}; got {type(columns).__name__}")
        _warn_alias_conflicts(table)
        return table
    mapping = _check_mapping(table, columns)
    hidden = {a.lower() for name in mapping for a in input_aliases(name)}
    names = [n for n in table.colnames if n.lower() not in hidden]
    view = table.__class__([table[n] for n in names], names=names, copy=False,
                           meta=table.meta)
    for target, source in mapping.items():
        column = view[source] if source in view.colnames else table[source]
        view.add_column(column, name=target, copy=False)
        if is_sdss_flux_name(source) and getattr(view[target], "unit", None) is None:
            view[target].unit = u.nanomaggy
    view._sourceclf_sources = dict(mapping)  # messages name the catalog's own column
    _warn_alias_conflicts(view)
    return view


def take_rows(view, rows):
    """Some rows of a catalog `map_columns` returned, whose messages still name the
    catalog's own columns (a plain slice names sourceclf's)."""
    part = view[rows]
    part._sourceclf_sources = dict(getattr(view, "_sourceclf_sources", {}))
    return part


def band_array_views(table):
    """The catalog with SDSS's per-band array columns also read band by band.

    SDSS's photoObj and calibObj files hold one column of five values per
    quantity (``EXTINCTION``, ``DEVRAD``, ``MODELMAG``, ``PSFFLUX``...; u g
    r i z in that order).  Each such column of shape ``(N, 5)`` whose
    ``<name>_<b>`` the finder accepts for an input (`input_aliases`) is added
    as five columns ``<name>_u`` ... ``<name>_z`` that share its data, unless
    the catalog has a column of one of those names already.  Other array
    columns (``PSF_FWHM``, whose per-band names would be taken for the
    output's ``psf_fwhm_<b>``, flags...) are left alone.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog.

    Returns
    -------
    view : `~astropy.table.Table`
        ``table`` itself when it has no such column, else a new table (of
        the same class) of its columns and the per-band views; ``table`` is
        not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import Table
    >>> t = Table({"RA": [150.0], "EXTINCTION": np.array([[0.1, 0.08, 0.05, 0.04, 0.03]])})
    >>> band_array_views(t).colnames[2:]
    ['EXTINCTION_u', 'EXTINCTION_g', 'EXTINCTION_r', 'EXTINCTION_i', 'EXTINCTION_z']
    """
    accepted = _accepted_names()
    present = {name.lower() for name in table.colnames}
    views = {}
    for name in table.colnames:
        shape = getattr(table[name], "shape", ())
        if len(shape) != 2 or shape[1] != len(BANDS):
            continue
        split = [f"{name}_{b}" for b in BANDS]
        if split[0].lower() not in accepted or present & {x.lower() for x in split}:
            continue
        for k, x in enumerate(split):
            views[x] = table[name][:, k]
    if not views:
        return table
    view = table.__class__([table[n] for n in table.colnames], names=table.colnames,
                           copy=False, meta=table.meta)
    for x, column in views.items():
        view.add_column(column, name=x, copy=False)
    return view


@functools.lru_cache(maxsize=1)
def _accepted_names():
    """Every column name the finder accepts for an input, lower case (fixed: built once)."""
    return frozenset(a.lower() for name in INPUT_COLUMNS for a in input_aliases(name))


def _warn_alias_conflicts(table):
    """One `SourceclfWarning` naming every input two of whose accepted columns disagree.

    One warning, not one per input: an SDSS photoObj file gives both
    ``MODELMAG`` and ``MODELFLUX``, which disagree (asinh against Pogson
    magnitudes) in all five bands.
    """
    by_lower = {}  # names that differ only in case ('u' and 'U') both count
    for column in table.colnames:
        by_lower.setdefault(column.lower(), []).append(column)

    def values(column):
        return clean_column(table[column], unit="mag", name=column,
                            plain_unit=u.nanomaggy if is_sdss_flux_name(column) else None)

    conflicts = []
    for name in INPUT_COLUMNS:
        present = [c for a in input_aliases(name) for c in by_lower.get(a.lower(), [])]
        if len(present) < 2:
            continue
        used = values(present[0])  # the one ColumnFinder takes
        for other in present[1:]:
            diff = np.abs(used - values(other))
            if np.nanmax(diff, initial=0.0) > 1e-3:
                conflicts.append((name, present[0], other))
    if len(conflicts) == 1:
        name, first, other = conflicts[0]
        warnings.warn(f"columns '{first}' and '{other}' both give input '{name}' and their "
                      f"values differ; '{first}' is used (pass columns={{'{name}': "
                      f"'{other}'}} to use the other)", SourceclfWarning, stacklevel=2)
    elif conflicts:
        used = ", ".join(f"'{first}' over '{other}'" for _, first, other in conflicts)
        name, _, other = conflicts[0]
        warnings.warn(f"{len(conflicts)} inputs are each given by two columns whose values "
                      f"differ; used: {used} (pass columns={{'{name}': '{other}'}}, say, to use "
                      "the other)", SourceclfWarning, stacklevel=2)


def parse_column_options(specs, option="--column", form="NAME=COLUMN", example="u=umag"):
    """``--column NAME=COL`` options (repeatable) as a ``columns=`` dict.

    Parameters
    ----------
    specs : list of str or None
        The options' values, e.g. ``['u=umag', 'r=rmag']``.
    option, form, example : str
        The option, its form and an example value, for the messages
        (``--unit``, ``COLUMN=UNIT``, ``flux_r=nmgy`` for the ``units=`` of
        `sourceclf.classify_file`).

    Returns
    -------
    columns : dict or None

    Raises
    ------
    InvalidInputError
        For a value without ``=`` or with an empty side, or a name given twice.

    Examples
    --------
    >>> parse_column_options(["u=umag", "dered_r = cModelMag_r"])
    {'u': 'umag', 'dered_r': 'cModelMag_r'}
    """
    if not specs:
        return None
    columns = {}
    for spec in specs:
        name, sep, column = (s.strip() for s in spec.partition("="))
        if not sep or not name or not column:
            raise InvalidInputError(f"{option} takes {form} (e.g. {option} {example}), "
                                    f"got '{spec}'")
        if name in columns:
            raise InvalidInputError(f"{option} gives {name} twice ('{columns[name]}' and "
                                    f"'{column}')")
        columns[name] = column
    return columns
