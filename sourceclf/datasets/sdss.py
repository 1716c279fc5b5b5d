"""SDSS through astroquery: MargNet's SQL, spectroscopic queries, frame look-up.

Every network access of `sourceclf.datasets` goes through this module, and
only through `astroquery.sdss.SDSS`, so astroquery's cache and configuration
apply.
"""

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Column, Table, vstack

from ..bands import BANDS, COLOURS, MARGNET_FEATURES
from ..columns import ColumnFinder, decode_strings
from ..exceptions import InvalidInputError
from ..utils._validation import check_positive_int
from .margnet import MARGNET_CLASSES, column_unit

__all__ = ["margnet_sql", "query_sdss", "decode_objid", "sdss_client", "locate_frames",
           "FRAME_COLUMNS"]

#: Columns naming an SDSS imaging frame, in the order of SDSS file names.
FRAME_COLUMNS = ("run", "rerun", "camcol", "field")

_QUERY_COLUMNS = ("objid", "ra", "dec") + FRAME_COLUMNS + ("class",) + MARGNET_FEATURES
_DEFAULT_RERUN = 301
_OBJIDS_PER_QUERY = 50
_POSITIONS_PER_QUERY = 40


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
    top = check_positive_int(top, "top", allow_none=True)
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
    for name in COLOURS:
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

def sdss_client():
    """The `astroquery.sdss.SDSS` service object.

    Returns
    -------
    SDSS : `astroquery.sdss.SDSSClass`

    Raises
    ------
    ImportError
        If astroquery is not installed.
    """
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
        elif name in ("objid",) + FRAME_COLUMNS:
            dtype = np.int64
        else:
            dtype = np.float64
        cols.append(Column([], name=name, dtype=dtype, unit=column_unit(name)))
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
        unit = column_unit(name)
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
    check_positive_int(objids_per_query, "objids_per_query")
    chunks = [None]
    if objids is not None:
        ids = _objid_list(objids)
        chunks = [ids[i:i + objids_per_query] for i in range(0, len(ids), objids_per_query)]
    sqls = [margnet_sql(region=region, objids=chunk, compact=compact, faint=faint,
                        classes=classes, top=top, where=where) for chunk in chunks]
    SDSS = sdss_client()
    parts = []
    for sql in sqls:
        result = SDSS.query_sql(sql, data_release=data_release, cache=cache, **kwargs)
        if result is not None and len(result):
            parts.append(_standardize(result))
    if parts:
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
# Which frame holds each row
# ---------------------------------------------------------------------------

def locate_frames(table, ra, dec, *, match_radius, data_release=17, cache=True, **kwargs):
    """The SDSS frame holding each row of a table.

    From, in this order: ``run``, ``camcol``, ``field`` (and ``rerun``,
    default 301) columns; the bits of an integer ``objid`` column
    (`decode_objid`, no network); or, for the rows still unknown, one
    SkyServer query per 40 rows for the nearest object within
    ``match_radius`` of ``ra``/``dec``.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The rows, columns matched case-insensitively.
    ra, dec : `numpy.ndarray`
        Positions of the rows in degrees (NaN where unknown: no look-up).
    match_radius : `~astropy.units.Quantity`
        Search radius of the positional look-up.
    data_release : int
        SDSS data release to query.
    cache : bool
        Use astroquery's cache of responses.
    **kwargs
        Passed to ``query_sql`` (e.g. ``timeout``).

    Returns
    -------
    keys : `numpy.ndarray`
        int64, shape (n_rows, 4): run, rerun, camcol, field per row (the
        order of `FRAME_COLUMNS`); -1 where no frame was found.
    """
    keys = _frame_keys(table)
    return _lookup_frames(keys, ra, dec, radius=match_radius, data_release=data_release,
                          cache=cache, kwargs=kwargs)


def _frame_keys(table):
    """(n, 4) int64 run, rerun, camcol, field per row; -1 where unknown."""
    n = len(table)
    keys = np.full((n, 4), -1, dtype=np.int64)
    finder = ColumnFinder(table)
    names = [finder.find(c) for c in FRAME_COLUMNS]
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
        for j, name in enumerate(FRAME_COLUMNS):
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
    SDSS = sdss_client()
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
        for j, name in enumerate(FRAME_COLUMNS):
            keys[idx[ok], j] = np.asarray(result[lower[name]], dtype=np.int64)[ok]
    return keys
