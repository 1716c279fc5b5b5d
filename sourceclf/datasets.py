"""MargNet's data: SDSS queries, image cutouts, the published arrays and splits.

Chaini et al. (2023, MNRAS 518, 3123; "MargNet") classify compact SDSS
sources from 24 photometric features and 5-band 32x32 stamps.  This module
gets data of that kind and reproduces the paper's experiments:

* `margnet_sql` writes the SkyServer / CasJobs SQL that selects spectroscopic
  objects with MargNet's features, and `query_sdss` runs it through
  `astroquery.sdss.SDSS` and returns a clean `~astropy.table.Table`;
* `get_cutouts` downloads SDSS frames (each frame once) and cuts stamps with
  `sourceclf.cutouts.make_cutouts`;
* `load_margnet` reads the published numpy arrays (Zenodo record 6659435,
  mirrored in the ``sidchaini/MargNet`` repository) without loading the
  images into memory;
* `split_experiment`, `compact_mask` and `faint_mask` give the train /
  validation / test rows of experiments 1, 2 and 3 exactly as the authors'
  notebooks made them.

The network is touched only by `query_sdss` and `get_cutouts`, and only
through astroquery, so its cache and configuration apply.
"""

import glob
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Column, Table

from .bands import BANDS
from .columns import ColumnFinder, decode_strings
from .exceptions import InvalidInputError, MissingColumnsError

__all__ = ["MARGNET_FEATURES", "MARGNET_CLASSES", "margnet_sql", "query_sdss",
           "decode_objid", "get_cutouts", "FrameCutouts", "load_margnet", "LazyStamps",
           "split_experiment", "compact_mask", "faint_mask"]

#: MargNet's 24 features in the order of the published ``dnnx`` arrays:
#: dered, deVRad, psffwhm, extinction for u, then g, r, i, z; then the observed
#: model colours u_g, g_r, r_i, i_z.
MARGNET_FEATURES = tuple(f"{kind}_{b}" for b in BANDS
                         for kind in ("dered", "deVRad", "psffwhm", "extinction")) + \
    tuple(f"{a}_{b}" for a, b in zip(BANDS[:-1], BANDS[1:]))

#: Class names in the order of MargNet's one-hot labels (``pandas.factorize``
#: with ``sort=True``, i.e. alphabetical); the star/galaxy task drops QSO.
MARGNET_CLASSES = ("GALAXY", "QSO", "STAR")

_COLOURS = MARGNET_FEATURES[20:]
_FRAME_COLUMNS = ("run", "rerun", "camcol", "field")
_QUERY_COLUMNS = ("objid", "ra", "dec") + _FRAME_COLUMNS + ("class",) + MARGNET_FEATURES
_SPLITS = ("train", "validation", "test")
# test_size of the two train_test_split calls in the authors' notebooks.
_SPLIT_SIZES = {1: (0.125, 0.1428), 2: (0.1, 0.1111111)}
_DEFAULT_RERUN = 301
_OBJIDS_PER_QUERY = 50
_POSITIONS_PER_QUERY = 40


def _unit_of(name):
    if name in ("ra", "dec"):
        return u.deg
    kind = name.split("_")[0]
    if kind in ("deVRad", "psffwhm"):
        return u.arcsec
    if kind in ("dered", "extinction") or name in _COLOURS:
        return u.mag
    return None


# ---------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------

def _angle(value, what):
    if not isinstance(value, u.Quantity) or value.unit.physical_type != "angle":
        raise InvalidInputError(f"{what} must be an angle Quantity (e.g. 2 * u.arcmin), "
                                f"got {value!r}")
    if not value.isscalar or not np.isfinite(value.value) or value.value <= 0:
        raise InvalidInputError(f"{what} must be one positive finite angle, got {value}")
    return value


def _center(center):
    if isinstance(center, SkyCoord):
        if not center.isscalar:
            raise InvalidInputError(f"region centre must be one position, got {len(center)}")
        icrs = center.icrs
        return float(icrs.ra.deg), float(icrs.dec.deg)
    if isinstance(center, (tuple, list)) and len(center) == 2:
        values = []
        for value, name in zip(center, ("ra", "dec")):
            if isinstance(value, u.Quantity):
                if value.unit.physical_type != "angle" or not value.isscalar:
                    raise InvalidInputError(f"region centre {name} must be an angle, got {value}")
                value = value.to_value(u.deg)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise InvalidInputError(f"region centre {name} must be a number of degrees, "
                                        f"got {value!r}") from None
            values.append(value)
        ra, dec = values
        if not (np.isfinite(ra) and np.isfinite(dec) and -90 <= dec <= 90):
            raise InvalidInputError(f"region centre (ra, dec) = ({ra}, {dec}) is not a "
                                    "position on the sky")
        return ra % 360.0, dec
    raise InvalidInputError("region centre must be a SkyCoord or (ra, dec) in degrees, "
                            f"got {center!r}")


def _region_sql(region):
    """Return (extra FROM clause, extra WHERE condition) for a region."""
    if not (isinstance(region, (tuple, list)) and len(region) == 2):
        raise InvalidInputError("region must be (centre, radius) for a cone or "
                                "(centre, (width, height)) for a box, "
                                f"got {region!r}")
    center, size = region
    ra, dec = _center(center)
    if isinstance(size, u.Quantity) and size.isscalar:
        radius = _angle(size, "region radius").to_value(u.arcmin)
        return (f"JOIN dbo.fGetNearbyObjEq({ra:.8f}, {dec:.8f}, {radius:.8g}) AS n "
                "ON n.objID = p.objID"), None
    if isinstance(size, u.Quantity) and size.shape == (2,):
        size = (size[0], size[1])
    if isinstance(size, (tuple, list)) and len(size) == 2:
        width = _angle(size[0], "region box width").to_value(u.deg)
        height = _angle(size[1], "region box height").to_value(u.deg)
        d0, d1 = max(dec - height / 2, -90.0), min(dec + height / 2, 90.0)
        cond = f"p.dec BETWEEN {d0:.8f} AND {d1:.8f}"
        # Width is an on-sky angle; the RA range grows as 1/cos(dec) at the
        # box's edge nearest a pole, and covers all RA when the box holds one.
        edge = max(abs(d0), abs(d1))
        cos = np.cos(np.radians(edge))
        half = width / 2 / cos if cos > 1e-9 else 360.0
        if half < 180.0:
            r0, r1 = ra - half, ra + half
            if r0 < 0 or r1 >= 360:
                cond += f" AND (p.ra >= {r0 % 360:.8f} OR p.ra <= {r1 % 360:.8f})"
            else:
                cond += f" AND p.ra BETWEEN {r0:.8f} AND {r1:.8f}"
        return None, cond
    if not isinstance(size, (tuple, list, u.Quantity)):
        _angle(size, "region radius")
    raise InvalidInputError("region size must be a radius or a (width, height) pair of "
                            f"angle Quantities, got {size!r}")


def _objid_list(objids):
    if isinstance(objids, (str, bytes)) or np.ndim(objids) > 1:
        raise InvalidInputError("objids must be a list of SDSS objID integers")
    arr = np.atleast_1d(np.asarray(objids))
    if arr.size == 0:
        raise InvalidInputError("objids is empty")
    if arr.dtype.kind == "f":
        raise InvalidInputError("objids must be integers, not floats: 19-digit SDSS objIDs "
                                "do not survive a float64 round trip")
    out = []
    for value in arr.tolist():
        try:
            value = int(value.decode() if isinstance(value, bytes) else value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"objids must be integers, got {value!r}") from None
        if isinstance(value, bool) or not 0 < value < 2**63:
            raise InvalidInputError(f"objid {value} is not a valid SDSS objID")
        out.append(value)
    return out


def _class_list(classes):
    if isinstance(classes, str):
        classes = [classes]
    names = [str(c).strip().upper() for c in classes]
    bad = sorted(set(names) - set(MARGNET_CLASSES))
    if not names or bad:
        raise InvalidInputError(f"classes must be among {', '.join(MARGNET_CLASSES)}, "
                                f"got {list(classes)!r}")
    return list(dict.fromkeys(names))


def margnet_sql(*, region=None, objids=None, compact=True, faint=False,
                classes=("GALAXY", "STAR", "QSO"), top=None, where=None):
    """SkyServer / CasJobs SQL selecting spectroscopic objects with MargNet's features.

    Joins ``PhotoObj`` (``p``) and ``SpecObj`` (``s``) on ``s.bestObjID =
    p.objID`` and returns ``objid``, ``ra``, ``dec``, the frame
    (``run``, ``rerun``, ``camcol``, ``field``), the spectroscopic ``class``,
    and MargNet's 24 features (`MARGNET_FEATURES`): ``dered_<b>``,
    ``deVRad_<b>``, ``psffwhm_<b>``, ``extinction_<b>`` for ugriz, and the
    observed model colours, e.g. ``u_g = (dered_u + extinction_u) - (dered_g +
    extinction_g)``, which is ``modelMag_u - modelMag_g``.

    Parameters
    ----------
    region : tuple, optional
        ``(centre, radius)`` for a cone (``dbo.fGetNearbyObjEq``), or
        ``(centre, (width, height))`` for a box; ``centre`` is a scalar
        `~astropy.coordinates.SkyCoord` or ``(ra, dec)`` in degrees, sizes are
        angle `~astropy.units.Quantity`.  The box width is an angle on the sky
        (its RA range is widened by 1 / cos(dec)).
    objids : sequence of int, optional
        SDSS photometric objIDs (``p.objID IN (...)``).  Combined with
        ``region`` by AND.
    compact : bool
        Keep compact objects only: mean over ugriz of deVRad / psffwhm < 0.5
        (rows with a non-positive PSF width or a negative radius are dropped).
        False applies no size cut at all.
    faint : bool
        Keep objects fainter than observed r = 20 (``dered_r + extinction_r >
        20``), the selection of MargNet's experiments 2 and 3.
    classes : sequence of str
        Spectroscopic classes to keep, among GALAXY, STAR and QSO.
    top : int, optional
        Return at most this many rows (``SELECT TOP n``).
    where : str, optional
        Extra SQL condition, ANDed with the others (e.g. ``'s.zWarning = 0'``).

    Returns
    -------
    sql : str

    Raises
    ------
    InvalidInputError
        If an argument has the wrong type or value.

    Examples
    --------
    >>> import astropy.units as u
    >>> sql = margnet_sql(region=((185.0, 0.5), 3 * u.arcmin), top=10)
    >>> sql.startswith("SELECT TOP 10 p.objID AS objid, p.ra, p.dec")
    True
    >>> "dbo.fGetNearbyObjEq(185.00000000, 0.50000000, 3)" in sql
    True
    """
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top <= 0:
            raise InvalidInputError(f"top must be a positive integer, got {top!r}")
    if where is not None and (not isinstance(where, str) or not where.strip()):
        raise InvalidInputError(f"where must be a non-empty SQL condition, got {where!r}")
    if where is not None and "--" in where:
        raise InvalidInputError("where must not contain an SQL comment ('--')")
    names = _class_list(classes)

    # Columns keep their schema names (SkyServer returns them as written);
    # query_sdss fixes the case.  The SQL travels in a URL: keep it short.
    select = ["p.objID AS objid", "p.ra", "p.dec", "p.run", "p.rerun", "p.camcol", "p.field",
              "s.class"]
    select += [f"p.{name}" for name in MARGNET_FEATURES[:20]]
    for name in _COLOURS:
        a, b = name.split("_")
        select.append(f"(p.dered_{a} + p.extinction_{a}) - (p.dered_{b} + p.extinction_{b}) "
                      f"AS {name}")
    joins = ["FROM PhotoObj AS p", "JOIN SpecObj AS s ON s.bestObjID = p.objID"]
    conditions = ["s.class IN (" + ", ".join(f"'{c}'" for c in names) + ")"]
    if region is not None:
        join, cond = _region_sql(region)
        if join:
            joins.append(join)
        if cond:
            conditions.append(cond)
    if objids is not None:
        conditions.append("p.objID IN (" + ", ".join(str(o) for o in _objid_list(objids)) + ")")
    if compact:
        conditions += [f"p.psffwhm_{b} > 0 AND p.deVRad_{b} >= 0" for b in BANDS]
        # NULLIF guards the division: SQL Server does not promise to evaluate
        # the positivity tests first.
        ratio = " + ".join(f"p.deVRad_{b} / NULLIF(p.psffwhm_{b}, 0)" for b in BANDS)
        conditions.append(f"({ratio}) / {len(BANDS)}.0 < 0.5")
    if faint:
        conditions.append("p.dered_r + p.extinction_r > 20")
    if where is not None:
        conditions.append(f"({where.strip()})")
    head = "SELECT " + (f"TOP {int(top)} " if top is not None else "")
    return (head + ", ".join(select) + "\n" + "\n".join(joins)
            + "\nWHERE " + "\n  AND ".join(conditions))


# ---------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------

def _sdss():
    try:
        from astroquery.sdss import SDSS
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("querying SDSS needs astroquery: pip install 'sourceclf[query]'") \
            from None
    return SDSS


def _empty_query_table():
    cols = []
    for name in _QUERY_COLUMNS:
        if name == "class":
            dtype = "U6"
        elif name in ("objid",) + _FRAME_COLUMNS:
            dtype = np.int64
        else:
            dtype = np.float64
        cols.append(Column([], name=name, dtype=dtype, unit=_unit_of(name)))
    return Table(cols)


def _standardize(table):
    """Rename columns to the standard names, fix dtypes, add units."""
    lower = {name.lower(): name for name in _QUERY_COLUMNS}
    for name in list(table.colnames):
        std = lower.get(name.lower())
        if std is not None and std != name and std not in table.colnames:
            table.rename_column(name, std)
    missing = [name for name in _QUERY_COLUMNS if name not in table.colnames]
    if missing:
        from astroquery.exceptions import RemoteServiceError

        raise RemoteServiceError(f"SDSS answer lacks columns {', '.join(missing)}")
    table["objid"] = np.asarray(table["objid"]).astype(np.int64)
    table["class"] = np.char.upper(decode_strings(table["class"]))
    for name in _QUERY_COLUMNS:
        unit = _unit_of(name)
        if unit is not None:
            table[name].unit = unit
    return table[list(_QUERY_COLUMNS) + [c for c in table.colnames if c not in _QUERY_COLUMNS]]


def query_sdss(*, region=None, objids=None, compact=True, faint=False,
               classes=("GALAXY", "STAR", "QSO"), top=None, where=None, data_release=17,
               cache=True, objids_per_query=_OBJIDS_PER_QUERY, **kwargs):
    """Query SDSS for spectroscopic objects with MargNet's 24 features.

    Runs `margnet_sql` through `astroquery.sdss.SDSSClass.query_sql`.

    Parameters
    ----------
    region, objids, compact, faint, classes, top, where
        As in `margnet_sql`.
    data_release : int
        SDSS data release (MargNet used DR16; DR13 onwards share the imaging).
    cache : bool
        Use astroquery's cache of responses.
    objids_per_query : int
        Long ``objids`` lists are sent in chunks of this many (SkyServer
        takes the SQL in the URL); ``top`` then applies per chunk.
    **kwargs
        Passed to ``query_sql`` (e.g. ``timeout``).

    Returns
    -------
    table : `~astropy.table.Table`
        Columns ``objid`` (int64), ``ra``, ``dec`` (deg), ``run``, ``rerun``,
        ``camcol``, ``field``, ``class`` (str, upper case, stripped), then the
        24 features of `MARGNET_FEATURES` (mag or arcsec).  SDSS sentinels
        (-9999) are left as they come; `sourceclf.features` treats them as
        missing.  ``meta['SQL']`` holds the query.  An empty table (with a
        `~astroquery.exceptions.NoResultsWarning`) when nothing matches.

    Examples
    --------
    >>> from sourceclf.datasets import query_sdss
    >>> t = query_sdss(objids=[1237665330397184209], compact=False)  # doctest: +REMOTE_DATA
    >>> t["class"][0]  # doctest: +REMOTE_DATA
    'GALAXY'
    """
    if isinstance(objids_per_query, bool) or not isinstance(objids_per_query, (int, np.integer)) \
            or objids_per_query <= 0:
        raise InvalidInputError(f"objids_per_query must be a positive integer, "
                                f"got {objids_per_query!r}")
    chunks = [None]
    if objids is not None:
        ids = _objid_list(objids)
        chunks = [ids[i:i + objids_per_query] for i in range(0, len(ids), objids_per_query)]
    sqls = [margnet_sql(region=region, objids=chunk, compact=compact, faint=faint,
                        classes=classes, top=top, where=where) for chunk in chunks]
    SDSS = _sdss()
    parts = []
    for sql in sqls:
        result = SDSS.query_sql(sql, data_release=data_release, cache=cache, **kwargs)
        if result is not None and len(result):
            parts.append(_standardize(result))
    if parts:
        from astropy.table import vstack

        table = vstack(parts, join_type="exact", metadata_conflicts="silent") \
            if len(parts) > 1 else parts[0]
    else:
        from astroquery.exceptions import NoResultsWarning

        warnings.warn("SDSS query returned no rows", NoResultsWarning, stacklevel=2)
        table = _empty_query_table()
    # one line: FITS headers cannot hold newlines
    table.meta["SQL"] = "; ".join(" ".join(sql.split()) for sql in sqls)
    table.meta["DR"] = data_release
    return table


def decode_objid(objid):
    """Frame of SDSS photometric objIDs, decoded from their bits.

    An SDSS objID packs the sky version (bits 59-62), rerun (48-58), run
    (32-47), camera column (29-31), field (16-27) and the object's number in
    the field (0-15).

    Parameters
    ----------
    objid : int or array-like of int
        SDSS photometric objIDs.

    Returns
    -------
    fields : `~astropy.table.Table`
        Columns ``run``, ``rerun``, ``camcol``, ``field``, ``id``,
        ``sky_version`` and ``valid`` (False where the bits cannot be an SDSS
        imaging object: zero run or rerun, camcol outside 1-6).

    Examples
    --------
    >>> t = decode_objid(1237652943176138868)
    >>> print(t["run"][0], t["rerun"][0], t["camcol"][0], t["field"][0])
    1739 301 3 315
    """
    arr = np.atleast_1d(np.asarray(objid))
    if arr.dtype.kind not in "iu":
        raise InvalidInputError(f"objid must be integers, got dtype {arr.dtype}")
    o = arr.astype(np.int64).astype(np.uint64)
    out = Table()
    for name, shift, mask in (("run", 32, 0xFFFF), ("rerun", 48, 0x7FF), ("camcol", 29, 0x7),
                              ("field", 16, 0xFFF), ("id", 0, 0xFFFF),
                              ("sky_version", 59, 0xF)):
        out[name] = ((o >> np.uint64(shift)) & np.uint64(mask)).astype(np.int64)
    out["valid"] = (arr > 0) & (out["run"] > 0) & (out["rerun"] > 0) \
        & (out["camcol"] >= 1) & (out["camcol"] <= 6)
    return out


# ---------------------------------------------------------------------------
# Cutouts from SDSS frames
# ---------------------------------------------------------------------------

@dataclass
class FrameCutouts:
    """Stamps cut from SDSS frames, one per table row.

    Attributes
    ----------
    data : `numpy.ndarray`
        float32, shape (n_rows, n_bands, size, size), channels first in the
        order of the requested bands; NaN where nothing could be cut.
    flags : `numpy.ndarray` of str
        ``''`` where fine, else why not (``make_cutouts``'s flags, or
        ``'no_frame'`` when no frame was found for the row).
    frame : `numpy.ndarray` of str
        The frame each row was cut from, as in SDSS file names
        (``'004510-4-0030'``: run, camcol, field), ``''`` for none.
    """

    data: np.ndarray
    flags: np.ndarray
    frame: np.ndarray


def _positions(table):
    finder = ColumnFinder(table)
    names = finder.find("ra", "raj2000"), finder.find("dec", "dej2000", "decj2000")
    if None in names:
        raise MissingColumnsError("table needs 'ra' and 'dec' columns to cut stamps from frames")
    out = []
    for name in names:
        col = table[name]
        unit = getattr(col, "unit", None)
        raw = col.value if isinstance(col, u.Quantity) else col
        try:
            values = np.ma.filled(np.ma.asarray(raw).astype(float), np.nan)
        except (TypeError, ValueError):
            raise InvalidInputError(f"column '{name}' must be numeric degrees") from None
        if unit is not None and u.Unit(unit) != u.dimensionless_unscaled:
            try:
                values = values * u.Unit(unit).to(u.deg)
            except u.UnitsError:
                raise InvalidInputError(f"column '{name}' has unit '{unit}', "
                                        "not an angle") from None
        out.append(np.asarray(values, dtype=float))
    return out


def _frame_keys(table):
    """(n, 4) int64 run, rerun, camcol, field per row; -1 where unknown."""
    n = len(table)
    keys = np.full((n, 4), -1, dtype=np.int64)
    finder = ColumnFinder(table)
    names = [finder.find(c) for c in _FRAME_COLUMNS]
    if names[0] and names[2] and names[3]:
        for j, name in enumerate(names):
            if name is None:  # rerun: every DR8+ frame is rerun 301
                keys[:, j] = _DEFAULT_RERUN
                continue
            col = table[name]
            values = np.ma.filled(np.ma.asarray(col).astype(float), np.nan)
            good = np.isfinite(values)
            keys[good, j] = values[good].astype(np.int64)
        keys[(keys < 0).any(axis=1)] = -1
        return keys
    objid = finder.find("objid")
    if objid is not None and np.asarray(table[objid]).dtype.kind in "iu":
        col = table[objid]
        ids = np.ma.filled(np.ma.asarray(col), 0).astype(np.int64)
        fields = decode_objid(ids)
        valid = np.asarray(fields["valid"])
        for j, name in enumerate(_FRAME_COLUMNS):
            keys[valid, j] = np.asarray(fields[name])[valid]
    return keys


def _frame_lookup_sql(indices, ra, dec, radius_arcmin):
    parts = []
    for i in indices:
        parts.append(
            f"SELECT {int(i)} AS idx, p.objID AS objid, p.run AS run, p.rerun AS rerun, "
            f"p.camcol AS camcol, p.field AS field "
            f"FROM dbo.fGetNearestObjEq({ra[i]:.8f}, {dec[i]:.8f}, {radius_arcmin:.6g}) AS n "
            "JOIN PhotoObjAll AS p ON p.objID = n.objID")
    return "\nUNION ALL\n".join(parts)


def _lookup_frames(keys, ra, dec, *, radius, data_release, cache, kwargs):
    """Fill unknown frame keys by a positional match in SkyServer."""
    todo = np.flatnonzero((keys < 0).any(axis=1) & np.isfinite(ra) & np.isfinite(dec))
    if not todo.size:
        return keys
    SDSS = _sdss()
    radius = _angle(radius, "match_radius").to_value(u.arcmin)
    for start in range(0, todo.size, _POSITIONS_PER_QUERY):
        chunk = todo[start:start + _POSITIONS_PER_QUERY]
        sql = _frame_lookup_sql(chunk, ra, dec, radius)
        result = SDSS.query_sql(sql, data_release=data_release, cache=cache, **kwargs)
        if result is None:
            continue
        lower = {name.lower(): name for name in result.colnames}
        idx = np.asarray(result[lower["idx"]], dtype=np.int64)
        ok = np.isin(idx, chunk)
        for j, name in enumerate(_FRAME_COLUMNS):
            keys[idx[ok], j] = np.asarray(result[lower[name]], dtype=np.int64)[ok]
    return keys


def get_cutouts(table, *, bands="ugriz", size=32, data_release=17, cache=True,
                match_radius=2 * u.arcsec, progress=None, **kwargs):
    """Cut stamps of every table row from SDSS frames.

    Frames are downloaded with `astroquery.sdss.SDSSClass.get_images`, each
    (run, rerun, camcol, field) once for all the rows it holds, and the stamps
    are cut with `sourceclf.cutouts.make_cutouts` using each frame's WCS.

    Which frame holds a row comes from, in this order: ``run``, ``camcol``,
    ``field`` (and ``rerun``, default 301) columns; the bits of an integer
    ``objid`` column (`decode_objid`, no network); or one SkyServer query per
    40 rows for the nearest object within ``match_radius`` of ``ra``/``dec``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Rows to cut, with ``ra`` and ``dec`` in degrees (ICRS), matched
        case-insensitively.
    bands : str or sequence of str
        Bands to download, in the order wanted in the stamps.
    size : int
        Stamp side in pixels.
    data_release : int
        SDSS data release whose frames to use.
    cache : bool
        Use astroquery's download cache.
    match_radius : `~astropy.units.Quantity`
        Search radius of the positional frame look-up.
    progress : bool, optional
        Show a progress bar over frames (default: when standard error is a
        terminal).
    **kwargs
        Passed to ``get_images`` (e.g. ``timeout``).

    Returns
    -------
    cutouts : `FrameCutouts`
        ``data`` of shape (n_rows, len(bands), size, size), ``flags`` and
        ``frame`` per row.
    """
    if not isinstance(table, Table):
        raise InvalidInputError(f"expected an astropy Table, got {type(table).__name__}")
    band_list = list(bands)
    if not band_list or any(b not in BANDS for b in band_list) or \
            len(set(band_list)) != len(band_list):
        raise InvalidInputError(f"bands must be distinct letters among {''.join(BANDS)}, "
                                f"got {bands!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise InvalidInputError(f"size must be a positive integer, got {size!r}")
    from .cutouts import make_cutouts
    from .progress import progress_bar

    n = len(table)
    ra, dec = _positions(table)
    keys = _frame_keys(table)
    keys = _lookup_frames(keys, ra, dec, radius=match_radius, data_release=data_release,
                          cache=cache, kwargs={k: v for k, v in kwargs.items()
                                               if k == "timeout"})
    data = np.full((n, len(band_list), size, size), np.nan, dtype=np.float32)
    flags = np.full(n, "no_frame", dtype=object)
    frame = np.full(n, "", dtype=object)
    known = np.flatnonzero((keys >= 0).all(axis=1))
    SDSS = _sdss()
    if known.size:
        unique, inverse = np.unique(keys[known], axis=0, return_inverse=True)
        inverse = np.ravel(inverse)
        with progress_bar(total=len(unique), enabled=progress, desc="SDSS frames",
                          unit="frame") as bar:
            for k, (run, rerun, camcol, field) in enumerate(unique):
                rows = known[inverse == k]
                matches = Table({"run": [run], "rerun": [rerun], "camcol": [camcol],
                                 "field": [field]})
                # make_cutouts needs all five bands; the ones not asked for are dropped.
                hduls = SDSS.get_images(matches=matches, band=list(BANDS),
                                        data_release=data_release, cache=cache,
                                        show_progress=False, **kwargs)
                if hduls is None or len(hduls) != len(BANDS):
                    from astroquery.exceptions import RemoteServiceError

                    raise RemoteServiceError(
                        f"SDSS returned {0 if hduls is None else len(hduls)} frames for run "
                        f"{run} camcol {camcol} field {field}, expected {len(BANDS)}")
                try:
                    images = {b: hdul[0] for b, hdul in zip(BANDS, hduls)}
                    result = make_cutouts(table=table[rows], images=images, size=size)
                    stamps = np.asarray(result.data, dtype=np.float32)
                    stamps = stamps[:, [BANDS.index(b) for b in band_list]]
                    data[rows] = stamps
                    flags[rows] = np.asarray(result.flags, dtype=object)
                finally:
                    for hdul in hduls:
                        hdul.close()
                frame[rows] = f"{run:06d}-{camcol}-{field:04d}"
                bar.update(1)
    return FrameCutouts(data=data, flags=flags.astype(str), frame=frame.astype(str))


# ---------------------------------------------------------------------------
# The published arrays
# ---------------------------------------------------------------------------

class LazyStamps:
    """Some rows of a memory-mapped stamp array, read only when indexed.

    Behaves like a read-only (n_rows, 5, H, W) array for ``len``, ``shape``,
    ``dtype``, indexing and `numpy.asarray`; indexing reads just the rows
    asked for from disk.

    Parameters
    ----------
    base : `numpy.ndarray`
        The full (N, 5, H, W) array (usually a memory-mapped view).
    rows : array-like of int
        Rows of ``base``, in order.
    """

    def __init__(self, base, rows):
        self.base = base
        self.rows = np.asarray(rows, dtype=np.intp)

    @property
    def shape(self):
        return (len(self.rows),) + tuple(self.base.shape[1:])

    @property
    def dtype(self):
        return self.base.dtype

    @property
    def ndim(self):
        return self.base.ndim

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        return np.asarray(self.base[(self.rows[first],) + tuple(rest)])

    def __iter__(self):
        for row in self.rows:
            yield np.asarray(self.base[row])

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.base[self.rows])
        return out if dtype is None else out.astype(dtype)

    def __repr__(self):
        return f"<LazyStamps shape={self.shape} dtype={self.dtype}>"


_STEMS = {"images": "X", "features": "dnnx", "labels": "y", "objids": "objlist"}
_KINDS = tuple(_STEMS)


def _candidate_names(kind, experiment, task, split):
    stem, n, t = _STEMS[kind], experiment, task
    if split is not None:
        suffixes = [f"_{t}_exp{n}_{split}", f"_exp{n}_{t}_{split}", f"_exp{n}_{split}",
                    f"_{t}_{split}", f"_{split}"]
        return [f"{stem}{s}.npy" for s in suffixes]
    suffixes = [f"_{t}_exp{n}", f"_exp{n}_{t}", f"_v{n}", f"_exp{n}", f"_{t}", ""]
    names = [f"{stem}{s}.npy" for s in suffixes] + [f"paper{stem}.npy"]
    if kind == "features":
        names += ["paperDF.csv", f"DF_exp{n}.csv", f"DF_v{n}.csv"]
    return names


def _find_file(directory, kind, pattern):
    path = Path(pattern)
    if not path.is_absolute():
        path = directory / path
    matches = sorted(glob.glob(str(path)))
    if len(matches) > 1:
        raise InvalidInputError(f"pattern '{pattern}' for {kind} matches {len(matches)} files "
                                f"in {directory}: {', '.join(Path(m).name for m in matches)}")
    if not matches:
        raise InvalidInputError(f"no {kind} file matches '{pattern}' in {directory}")
    return Path(matches[0])


def _resolve_files(directory, experiment, task, split, files):
    files = dict(files or {})
    unknown = sorted(set(files) - set(_KINDS))
    if unknown:
        raise InvalidInputError(f"files keys must be among {', '.join(_KINDS)}, got "
                                f"{', '.join(unknown)}")
    found = {kind: _find_file(directory, kind, files[kind]) for kind in files}

    def search(kind, split_names):
        names = _candidate_names(kind, experiment, task, split_names)
        hits = [n for n in names if (directory / n).is_file()]
        return (directory / hits[0] if hits else None), names

    if "images" not in found and split is not None:
        # Pre-split arrays (X_train.npy...) are used as they are when present.
        hit, _ = search("images", split)
        if hit is not None:
            found["images"] = hit
    presplit = split is not None and "images" in found and \
        found["images"].stem.endswith(f"_{split}")
    for kind in _KINDS:
        if kind in found:
            continue
        hit, names = search(kind, split if presplit else None)
        if hit is None and kind != "labels":  # labels may come from a table's 'class'
            raise InvalidInputError(f"no {kind} file in {directory}; looked for "
                                    f"{', '.join(names)} (pass files={{'{kind}': NAME}})")
        found[kind] = hit
    return found, presplit


def _load_npy(path, kind, *, mmap, allow_pickle):
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path} ({kind}): {exc}") from None
    if magic != b"\x93NUMPY":
        raise InvalidInputError(f"cannot read {path.name} ({kind}): not a .npy file")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=allow_pickle)
    except ValueError as exc:
        msg = str(exc)
        if "allow_pickle" in msg or "Python objects" in msg:
            if not allow_pickle:
                raise InvalidInputError(
                    f"{path.name} ({kind}) holds Python objects; numpy would unpickle them, "
                    "which can run code: pass allow_pickle=True only for files you trust"
                ) from None
            return np.load(path, allow_pickle=True)
        raise InvalidInputError(f"cannot read {path.name} ({kind}): {msg}") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path} ({kind}): {exc}") from None


def _default_class_names(k):
    if k == 3:
        return MARGNET_CLASSES
    if k == 2:
        return ("GALAXY", "STAR")
    raise InvalidInputError(f"labels have {k} classes; pass class_names to name them")


def _labels_to_classes(y, path, class_names):
    name = path.name if path is not None else "labels"
    arr = np.asarray(y)
    if arr.dtype.kind in "USO":
        if arr.ndim != 1:
            raise InvalidInputError(f"{name}: string labels must be 1-D, got shape {arr.shape}")
        return np.char.upper(decode_strings(arr)), None
    if arr.dtype.kind not in "iufb":
        raise InvalidInputError(f"{name}: labels must be strings, integers or one-hot, "
                                f"got dtype {arr.dtype}")
    if arr.ndim == 2:
        k = arr.shape[1]
        names = tuple(class_names) if class_names is not None else _default_class_names(k)
        if len(names) != k:
            raise InvalidInputError(f"{name}: one-hot labels have {k} columns but "
                                    f"class_names has {len(names)}")
        onehot = np.isin(arr, (0, 1)).all(axis=1) & (arr.sum(axis=1) == 1)
        if not onehot.all():
            raise InvalidInputError(f"{name}: row {int(np.flatnonzero(~onehot)[0])} is not "
                                    "one-hot")
        return np.asarray(names)[np.argmax(arr, axis=1)], names
    if arr.ndim != 1:
        raise InvalidInputError(f"{name}: labels must be (N,) or one-hot (N, K), "
                                f"got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise InvalidInputError(f"{name}: integer labels expected, got fractions")
    ints = arr.astype(np.int64)
    if ints.size and ints.min() < 0:
        raise InvalidInputError(f"{name}: labels must not be negative")
    k = int(ints.max()) + 1 if ints.size else 0
    names = tuple(class_names) if class_names is not None else \
        _default_class_names(max(k, 2))
    if k > len(names):
        raise InvalidInputError(f"{name}: label {k - 1} but only {len(names)} class_names")
    return np.asarray(names)[ints], names


def _read_feature_table(path, objids):
    """Features (and classes) of ``objids`` from a table keyed by its first column."""
    fmt = "ascii.csv" if path.suffix.lower() == ".csv" else None
    try:
        tab = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as exc:  # noqa: BLE001 - any reader error is a bad file
        raise InvalidInputError(f"cannot read {path.name} (features): {exc}") from None
    finder = ColumnFinder(tab)
    key = finder.find("objid", "objID") or tab.colnames[0]
    missing = [f for f in MARGNET_FEATURES if finder.find(f) is None]
    if missing:
        raise MissingColumnsError(f"{path.name} lacks feature columns {', '.join(missing)}")
    ids = np.asarray(tab[key])
    if ids.dtype.kind not in "iu":
        raise InvalidInputError(f"{path.name}: key column '{key}' must hold integer objids")
    ids = ids.astype(np.int64)
    order = np.argsort(ids, kind="stable")
    pos = np.searchsorted(ids[order], objids)
    pos = np.clip(pos, 0, len(ids) - 1)
    found = ids[order][pos] == objids if len(ids) else np.zeros(len(objids), bool)
    if not found.all():
        raise InvalidInputError(f"{path.name} lacks {int((~found).sum())} of the objids, "
                                f"e.g. {int(objids[~found][0])}")
    rows = order[pos]
    values = np.column_stack([np.asarray(tab[finder.find(f)], dtype=np.float64)[rows]
                              for f in MARGNET_FEATURES])
    cls = finder.find("class")
    classes = None if cls is None else np.asarray(tab[cls])[rows]
    return values, classes


def _dataset_dir(path, experiment):
    path = Path(os.fspath(path)).expanduser()
    if not path.is_dir():
        raise InvalidInputError(f"MargNet dataset directory {path} does not exist")
    nested = path / f"Experiment {experiment}" / "dataset"
    return nested if nested.is_dir() else path


def _check_choice(value, name, choices):
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                                f"got {value!r}")


def load_margnet(path, *, experiment=1, task="sgq", split=None, mmap=True, class_names=None,
                 files=None, allow_pickle=False):
    """Read MargNet's published dataset arrays.

    The published layout (Zenodo 10.5281/zenodo.6659435, ``Experiment
    N/dataset/``) holds, per experiment:

    ======== ====================== ===================== ==============================
    array    experiment 1           experiment 2          experiment 3
    ======== ====================== ===================== ==============================
    images   ``paperX.npy``         ``X_v2.npy``          ``X_{task}_exp3.npy``
    features ``paperDF.csv``        ``dnnx_v2.npy``       ``dnnx_{task}_exp3.npy``
    labels   ``papery.npy``         ``y_v2.npy``          ``y_{task}_exp3.npy``
    objids   ``paperobjlist.npy``   ``objlist_v2.npy``    ``objlist_{task}_exp3.npy``
    ======== ====================== ===================== ==============================

    Images are (N, 32, 32, 5) channels last; features (N, 24) in the order of
    `MARGNET_FEATURES`; labels class-name strings (experiments 1, 2) or
    one-hot (experiment 3); objids the SDSS objIDs of the rows.  For each
    array the first existing name of this list is used: ``{stem}_{task}_exp{N}``,
    ``{stem}_exp{N}_{task}``, ``{stem}_v{N}``, ``{stem}_exp{N}``,
    ``{stem}_{task}``, ``{stem}``, ``paper{stem}`` (``.npy``; stems ``X``,
    ``dnnx``, ``y``, ``objlist``), then for features a CSV table
    (``paperDF.csv``: objid first, then columns named as the features, and
    ``class``) read by objid.  ``files`` overrides any of them.

    Parameters
    ----------
    path : path-like
        The dataset directory, or the root holding ``Experiment N/dataset``.
    experiment : {1, 2, 3}
        Which experiment's arrays to read.
    task : {'sgq', 'sg'}
        Star/galaxy/quasar or star/galaxy.  With ``'sg'`` on a file that also
        holds quasars (experiments 1 and 2), the QSO rows are dropped, keeping
        the order, as the authors' notebooks did.
    split : {'train', 'validation', 'test'}, optional
        Return only these rows: read from pre-split files when present
        (``X_{split}.npy``, ``X_exp{N}_{split}.npy``...), otherwise the rows
        `split_experiment` gives (experiment 3 has only 'test': its models are
        trained on experiment 1).
    mmap : bool
        Memory-map the images (``np.load(mmap_mode='r')``) instead of reading
        them: experiment 1's 240,000 stamps are 4.9 GB in float32.
    class_names : sequence of str, optional
        Names of integer or one-hot label columns, in order.  By default the
        classes present, sorted (``('GALAXY', 'QSO', 'STAR')`` for 3 classes,
        ``('GALAXY', 'STAR')`` for 2), which is what ``pandas.factorize(...,
        sort=True)`` gave in the notebooks.
    files : dict, optional
        File name or glob pattern (relative to the dataset directory, or
        absolute) per array: keys ``'images'``, ``'features'``, ``'labels'``,
        ``'objids'``.
    allow_pickle : bool
        Let numpy unpickle object arrays (the published string labels are
        saved that way).  Only for files you trust: unpickling can run code.

    Returns
    -------
    table : `~astropy.table.Table`
        Columns ``objid``, ``class`` and the 24 features; ``meta`` records
        the experiment, task, split, class names and files read.
    cutouts : `numpy.ndarray` or `LazyStamps`
        Stamps channels first, (N, 5, 32, 32), in the table's row order.
        With every row this is a view of the memory-mapped file
        (``np.moveaxis``: no copy, nothing read until used); with a subset
        of rows (``split``, or ``task='sg'`` dropping quasars) a `LazyStamps`
        that reads the rows it is indexed with.

    Raises
    ------
    InvalidInputError
        If a file is missing, unreadable, ambiguous, or its shape does not fit.
    """
    _check_choice(experiment, "experiment", (1, 2, 3))
    _check_choice(task, "task", ("sg", "sgq"))
    if split is not None:
        _check_choice(split, "split", _SPLITS)
    directory = _dataset_dir(path, experiment)
    found, presplit = _resolve_files(directory, experiment, task, split, files)

    objids = np.asarray(_load_npy(found["objids"], "objids", mmap=False,
                                  allow_pickle=allow_pickle))
    if objids.ndim != 1:
        raise InvalidInputError(f"{found['objids'].name}: objids must be 1-D, "
                                f"got shape {objids.shape}")
    if objids.dtype.kind == "O":
        objids = np.array([int(o) for o in objids])
    if objids.dtype.kind not in "iu":
        raise InvalidInputError(f"{found['objids'].name}: objids must be integers, "
                                f"got dtype {objids.dtype}")
    objids = objids.astype(np.int64)
    n = len(objids)

    images = _load_npy(found["images"], "images", mmap=mmap, allow_pickle=False)
    name = found["images"].name
    if images.ndim != 4 or len(BANDS) not in (images.shape[1], images.shape[3]):
        raise InvalidInputError(f"{name}: images must be (N, H, W, 5) or (N, 5, H, W), "
                                f"got shape {images.shape}")
    if images.dtype.kind not in "fiu":
        raise InvalidInputError(f"{name}: images must be numeric, got dtype {images.dtype}")
    channels_last = images.shape[3] == len(BANDS)
    stamps = np.moveaxis(images, -1, 1) if channels_last else images

    classes_from_table = None
    fpath = found["features"]
    if fpath.suffix.lower() == ".npy":
        features = np.asarray(_load_npy(fpath, "features", mmap=False, allow_pickle=False))
        if features.ndim != 2 or features.shape[1] != len(MARGNET_FEATURES):
            raise InvalidInputError(f"{fpath.name}: features must be (N, "
                                    f"{len(MARGNET_FEATURES)}), got shape {features.shape}")
    else:
        features, classes_from_table = _read_feature_table(fpath, objids)

    if found["labels"] is not None:
        y = _load_npy(found["labels"], "labels", mmap=False, allow_pickle=allow_pickle)
        classes, names = _labels_to_classes(y, found["labels"], class_names)
    elif classes_from_table is not None:
        classes, names = _labels_to_classes(classes_from_table, fpath, class_names)
    else:
        raise InvalidInputError(f"no labels file in {directory} and {fpath.name} has no "
                                "'class' column (pass files={'labels': NAME})")

    sizes = {"objids": (found["objids"].name, n), "images": (name, len(stamps)),
             "features": (fpath.name, len(features)), "labels": (
                 found["labels"].name if found["labels"] is not None else fpath.name,
                 len(classes))}
    if len({v[1] for v in sizes.values()}) != 1:
        listing = ", ".join(f"{f} has {k}" for f, k in sizes.values())
        raise InvalidInputError(f"arrays disagree on the number of rows: {listing}")

    table = Table()
    table["objid"] = objids
    table["class"] = np.asarray(classes, dtype=str)
    for j, feature in enumerate(MARGNET_FEATURES):
        table[feature] = Column(np.asarray(features[:, j], dtype=np.float64),
                                unit=_unit_of(feature))
    # FITS-safe meta: short keys, scalar values.
    table.meta.update({
        "MNEXPT": experiment, "MNTASK": task, "MNSPLIT": split or "all",
        "MNCLASS": ",".join(names if names is not None else sorted(set(table["class"]))),
    })
    for kind, key in (("images", "MNIMAGES"), ("features", "MNFEATS"),
                      ("labels", "MNLABELS"), ("objids", "MNOBJIDS")):
        table.meta[key] = str(found[kind]) if found[kind] is not None else ""

    rows = np.arange(n)
    if task == "sg":
        rows = rows[table["class"] != "QSO"]
    if split is not None and not presplit:
        if experiment == 3:
            if split != "test":
                raise InvalidInputError("experiment 3 tests experiment-1 models on the faint "
                                        "set; load experiment=1 for train/validation rows")
        else:
            sub = table[rows]
            idx = split_experiment(sub, experiment=experiment, task=task)[split]
            rows = rows[idx]
    if len(rows) == n:
        return table, stamps
    return table[rows], LazyStamps(stamps, rows)


# ---------------------------------------------------------------------------
# Selections and splits
# ---------------------------------------------------------------------------

def compact_mask(table, *, threshold=0.5):
    """True for compact rows: mean over ugriz of deVRad / psffwhm below ``threshold``.

    Rows with a missing or non-positive PSF width, or a missing radius, are
    False.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With ``deVRad_<b>`` and ``psffwhm_<b>`` (arcsec) for ugriz.
    threshold : float
        MargNet's cut is 0.5.

    Returns
    -------
    mask : `numpy.ndarray` of bool
    """
    finder = ColumnFinder(table)
    ratios, missing = [], []
    for b in BANDS:
        dev = finder.values(f"deVRad_{b}", unit="arcsec")
        psf = finder.values(f"psffwhm_{b}", unit="arcsec")
        if dev is None:
            missing.append(f"deVRad_{b}")
        if psf is None:
            missing.append(f"psffwhm_{b}")
        if dev is not None and psf is not None:
            psf = np.where(psf > 0, psf, np.nan)
            ratios.append(dev / psf)
    if missing:
        raise MissingColumnsError(f"compact_mask needs columns {', '.join(missing)}")
    mean = np.mean(ratios, axis=0)
    return np.asarray(np.nan_to_num(mean, nan=np.inf) < threshold)


def faint_mask(table, *, r_limit=20.0):
    """True for rows fainter than ``r_limit`` in observed r (model magnitude).

    Observed r is ``dered_r + extinction_r`` when the table has both, else a
    ``modelMag_r`` or ``r`` column.  Missing values give False.

    Parameters
    ----------
    table : `~astropy.table.Table`
        With ``dered_r`` and ``extinction_r``, or an observed r column.
    r_limit : float
        MargNet's faint set is r > 20.

    Returns
    -------
    mask : `numpy.ndarray` of bool
    """
    finder = ColumnFinder(table)
    dered, ext = finder.values("dered_r"), finder.values("extinction_r")
    if dered is not None and ext is not None:
        r = dered + ext
    else:
        r = finder.values("modelMag_r", "r")
    if r is None:
        raise MissingColumnsError("faint_mask needs dered_r and extinction_r, or modelMag_r "
                                  "or r")
    return np.asarray(np.nan_to_num(r, nan=-np.inf) > r_limit)


def _classes(table, label_column):
    finder = ColumnFinder(table)
    name = finder.find(label_column)
    if name is None:
        raise MissingColumnsError(f"table has no label column '{label_column}'")
    return np.char.upper(decode_strings(np.ma.filled(np.ma.asarray(table[name]), "")))


def _two_way(rows, experiment, random_state):
    from sklearn.model_selection import train_test_split

    test_size, val_size = _SPLIT_SIZES[experiment]
    if len(rows) < 3:
        raise InvalidInputError(f"{len(rows)} rows are too few to split into train, "
                                "validation and test")
    train, test = train_test_split(rows, test_size=test_size, random_state=random_state)
    train, val = train_test_split(train, test_size=val_size, random_state=random_state)
    return {"train": train, "validation": val, "test": test}


def split_experiment(table, experiment=1, task="sgq", random_state=42, faint_table=None,
                     label_column="class", *, apply_cuts=False, as_tables=False):
    """Train / validation / test rows of MargNet's experiments.

    Reproduces the authors' notebooks exactly: with ``task='sg'`` the QSO
    rows are dropped first (order kept), then

    * experiment 1 (compact objects): ``train_test_split(test_size=0.125,
      random_state=42)``, then the training part again with
      ``test_size=0.1428``, i.e. 75 / 12.5 / 12.5 %;
    * experiment 2 (faint compact objects): ``test_size=0.1`` then
      ``0.1111111``, i.e. 80 / 10 / 10 %;
    * experiment 3: train and validation are experiment 1's split of
      ``table`` (the compact set) and the test set is all of ``faint_table``.
      The published faint set shares about 27% of its objects with
      experiment 1's training set, so it is not a clean test set; remove
      the shared ``objid`` yourself for an honest one.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The rows to split, in the published order (experiment 3: the compact
        training set).
    experiment : {1, 2, 3}
        Which experiment's split.
    task : {'sgq', 'sg'}
        Star/galaxy/quasar, or star/galaxy (QSO rows dropped).
    random_state : int
        The published splits use 42.
    faint_table : `~astropy.table.Table`, optional
        Experiment 3's test set.
    label_column : str
        Column of class names (matched case-insensitively).
    apply_cuts : bool
        Keep only rows passing the experiment's selection before splitting
        (`compact_mask`; and `faint_mask` for experiment 2 and for
        ``faint_table``).  Off by default: the published sets are already
        cut, and recomputing a cut can drop borderline rows and change the
        split.
    as_tables : bool
        Return Tables instead of index arrays.

    Returns
    -------
    splits : dict
        ``'train'``, ``'validation'``, ``'test'``: integer row indices into
        ``table`` (for experiment 3's ``'test'``: into ``faint_table``), in
        the order ``train_test_split`` returns them; or the Tables of those
        rows with ``as_tables``.

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"class": ["GALAXY", "STAR", "QSO"] * 8})
    >>> parts = split_experiment(t, experiment=1, task="sgq")
    >>> [len(parts[k]) for k in ("train", "validation", "test")]
    [18, 3, 3]
    """
    _check_choice(experiment, "experiment", (1, 2, 3))
    _check_choice(task, "task", ("sg", "sgq"))
    if not isinstance(table, Table):
        raise InvalidInputError(f"expected an astropy Table, got {type(table).__name__}")

    def selected(tab, faint):
        rows = np.arange(len(tab))
        keep = np.ones(len(tab), dtype=bool)
        if task == "sg":
            keep &= _classes(tab, label_column) != "QSO"
        if apply_cuts:
            keep &= compact_mask(tab)
            if faint:
                keep &= faint_mask(tab)
        return rows[keep]

    if experiment in (1, 2):
        if faint_table is not None:
            raise InvalidInputError(f"faint_table is for experiment 3, not {experiment}")
        parts = _two_way(selected(table, experiment == 2), experiment, random_state)
        sources = dict.fromkeys(_SPLITS, table)
    else:
        if faint_table is None:
            raise InvalidInputError("experiment 3 needs faint_table, the faint test set")
        if not isinstance(faint_table, Table):
            raise InvalidInputError(f"faint_table must be an astropy Table, got "
                                    f"{type(faint_table).__name__}")
        parts = _two_way(selected(table, False), 1, random_state)
        parts["test"] = selected(faint_table, True)
        sources = {"train": table, "validation": table, "test": faint_table}
    parts = {k: np.asarray(parts[k], dtype=np.intp) for k in _SPLITS}
    if as_tables:
        return {k: sources[k][parts[k]] for k in _SPLITS}
    return parts
