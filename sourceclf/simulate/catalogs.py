"""Catalogs of stars, galaxies and quasars with MargNet's columns."""

import numpy as np
from astropy import units as u
from astropy.table import Table

from ..bands import BANDS, COLOURS, EXTINCTION_RATIO, MARGNET_FEATURES
from ..columns import ColumnFinder, decode_strings
from ..exceptions import InvalidInputError, MissingColumnsError
from ..utils._validation import check_random_state

__all__ = ["simulate_catalog"]

# Stellar locus nodes (u-g, g-r, r-i, i-z): blue horizontal branch / A, F, G, K0,
# K5, M0, M3, M5 (after Covey et al. 2007, AJ 134, 2398, rounded).
_LOCUS = np.array([
    [1.10, -0.20, -0.15, -0.10],
    [1.00, 0.25, 0.08, 0.02],
    [1.35, 0.45, 0.15, 0.05],
    [1.80, 0.65, 0.23, 0.10],
    [2.40, 1.05, 0.40, 0.22],
    [2.55, 1.35, 0.70, 0.38],
    [2.60, 1.45, 1.20, 0.62],
    [2.70, 1.55, 1.90, 0.95],
])
# Where faint high-latitude stars lie along the locus: mostly near the halo
# turn-off (F/G) and among M dwarfs.
_LOCUS_MIX = ((0.45, 1.4, 0.5), (0.20, 3.5, 0.6), (0.35, 5.6, 0.7))  # weight, mean, sd
# Galaxies: (weight, mean colours, sd colours), red and blue populations at z ~ 0.1-0.5.
_GALAXY_MIX = (
    (0.6, (2.0, 1.50, 0.80, 0.45), (0.5, 0.30, 0.20, 0.15)),
    (0.4, (1.0, 0.60, 0.35, 0.20), (0.4, 0.30, 0.20, 0.20)),
)
_QSO_COLOURS = ((0.2, 0.2, 0.15, 0.10), (0.2, 0.2, 0.15, 0.15))  # mean, sd
# Median SDSS catalog PSF width in each band relative to r (faint compact DR16 set).
_SEEING_RATIO = {"u": 1.19, "g": 1.09, "r": 1.0, "i": 0.94, "z": 0.96}
# MargNet's 20 per-band columns (its features without the colours).
_PER_BAND_COLUMNS = MARGNET_FEATURES[:-len(COLOURS)]


def _colours_to_mags(r, colours):
    """ugriz from r and the four colours (u-g, g-r, r-i, i-z)."""
    ug, gr, ri, iz = colours.T
    g = r + gr
    return {"u": g + ug, "g": g, "r": r, "i": r - ri, "z": r - ri - iz}


def _parametric(cls, n, rng, r_range):
    """dered mags and deV radii (arcsec) for ``n`` sources of one class."""
    r = rng.uniform(*r_range, n)
    if cls == "STAR":
        which = rng.choice(len(_LOCUS_MIX), size=n, p=[m[0] for m in _LOCUS_MIX])
        t = np.clip(rng.normal(np.take([m[1] for m in _LOCUS_MIX], which),
                               np.take([m[2] for m in _LOCUS_MIX], which)),
                    0, len(_LOCUS) - 1)
        nodes = np.arange(len(_LOCUS))
        colours = np.column_stack([np.interp(t, nodes, _LOCUS[:, j]) for j in range(4)])
        colours += rng.normal(0, [0.12, 0.05, 0.05, 0.05], size=(n, 4))
    elif cls == "GALAXY":
        which = rng.choice(len(_GALAXY_MIX), size=n, p=[m[0] for m in _GALAXY_MIX])
        mean = np.array([m[1] for m in _GALAXY_MIX])[which]
        sd = np.array([m[2] for m in _GALAXY_MIX])[which]
        colours = rng.normal(mean, sd)
    else:  # QSO
        colours = rng.normal(*_QSO_COLOURS, size=(n, 4))
    mags = _colours_to_mags(r, colours)
    if cls == "GALAXY":
        # Half-light radii: log-normal around 0.5", fainter galaxies smaller.
        base = np.exp(rng.normal(np.log(0.5) - 0.15 * (r - 20.0), 0.55))
    else:
        # Point sources: SDSS's deV fit gives a tiny radius, often ~0.
        base = np.where(rng.random(n) < 0.4, rng.uniform(0, 0.003, n),
                        np.exp(rng.normal(np.log(0.09), 0.7, n)))
    base = np.clip(base, 0.0, 10.0)
    radii = {b: np.clip(base * np.exp(rng.normal(0, 0.15, n)), 0, 10.0) for b in BANDS}
    return mags, radii


def _resample(table, cls, n, rng):
    """dered mags, deV radii, PSF widths and extinctions resampled from ``table``."""
    finder = ColumnFinder(table)
    cls_name = finder.find("class")
    if cls_name is None:
        raise MissingColumnsError("from_table lacks column class")
    labels = np.char.upper(decode_strings(table[cls_name]))
    rows = np.flatnonzero(labels == cls)
    if rows.size == 0:
        return None
    missing = [c for c in _PER_BAND_COLUMNS if finder.find(c) is None]
    if missing:
        raise MissingColumnsError(f"from_table lacks column(s) {', '.join(missing)}")
    pick = rng.choice(rows, size=n, replace=True)
    out = {}
    for name in _PER_BAND_COLUMNS:
        unit = "mag" if name.startswith(("dered", "extinction")) else "arcsec"
        out[name] = finder.values(name, unit=unit)[pick]
    return out


def _qso_colours(table, n, rng):
    """Quasar colours resampled from a table with ``class`` and ugriz."""
    finder = ColumnFinder(table)
    names = [finder.find(c) for c in ("class",) + BANDS]
    missing = [c for c, got in zip(("class",) + BANDS, names) if got is None]
    if missing:
        raise MissingColumnsError(f"qso_table lacks column(s) {', '.join(missing)}")
    labels = np.char.upper(decode_strings(table[names[0]]))
    mags = np.column_stack([finder.values(b, unit="mag") for b in BANDS])
    good = np.flatnonzero((labels == "QSO") & np.isfinite(mags).all(axis=1))
    if good.size == 0:
        raise InvalidInputError("qso_table has no QSO rows with finite u g r i z")
    pick = rng.choice(good, size=n, replace=True)
    return -np.diff(mags[pick], axis=1)  # u-g, g-r, r-i, i-z


def _as_table(value, name):
    """None, a Table, or a path read as a Table."""
    if value is None or isinstance(value, Table):
        return value
    try:
        return Table.read(value)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"cannot read {name} '{value}' as a table: "
                                f"{str(exc).splitlines()[0] if str(exc) else exc!r}") from None


def simulate_catalog(n, *, classes=("GALAXY", "QSO", "STAR"), random_state=None,
                     from_table=None, qso_table=None, r_range=(17.0, 22.5)):
    """A catalog of stars, galaxies and quasars with MargNet's columns.

    Parameters
    ----------
    n : int
        Number of rows, shared as evenly as possible between ``classes``
        (rows are shuffled).
    classes : sequence of str
        Among ``'GALAXY'``, ``'QSO'``, ``'STAR'``.
    random_state : None, int or `numpy.random.Generator`
        Seed; the same seed gives the same catalog.
    from_table : `~astropy.table.Table` or path, optional
        A real catalog with ``class`` and MargNet's 20 per-band columns (e.g.
        ``sdss_dr16_faint_compact_sg.fits``): its rows of each requested class
        are resampled (with replacement) instead of the parametric model.
        Classes it lacks (e.g. QSO) fall back to the parametric model.
    qso_table : `~astropy.table.Table` or path, optional
        A table with ``class`` and ``u g r i z`` (e.g.
        ``sdss_dr14_spectro_ugriz.fits``) whose QSO rows' colours are
        resampled for parametric quasars.
    r_range : (float, float)
        Range of the dereddened r magnitude of parametric sources (uniform).
        Quasars are drawn in the same range, cut at 22.

    Returns
    -------
    table : `~astropy.table.Table`
        ``ra``, ``dec`` (deg), ``dered_<b>``, ``deVRad_<b>``, ``psffwhm_<b>``,
        ``extinction_<b>`` for b in ugriz, observed colours ``u_g g_r r_i i_z``
        (of ``dered + extinction``) and ``class``.

    Notes
    -----
    The parametric model: stars along an SDSS stellar locus (Covey et al.
    2007) with most at the halo turn-off and among M dwarfs; galaxies as red
    and blue populations with log-normal half-light radii around 0.5 arcsec
    (smaller when fainter); quasars as point sources with u-g = 0.2 +- 0.2,
    g-r = 0.2 +- 0.2, r-i = 0.15 +- 0.15, i-z = 0.1 +- 0.15 (or resampled from
    ``qso_table``); PSF widths of one seeing value per row (log-normal around
    1.12 arcsec in r) scaled per band like SDSS's; extinction log-normal around
    0.07 mag in r scaled with `EXTINCTION_RATIO`.  Good enough for tests and
    demonstrations, not for science.

    Examples
    --------
    >>> from sourceclf.simulate import simulate_catalog
    >>> cat = simulate_catalog(6, random_state=1)
    >>> sorted(set(cat["class"].tolist()))
    ['GALAXY', 'QSO', 'STAR']
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InvalidInputError(f"n must be a non-negative integer, got {n!r}")
    classes = [str(c).upper() for c in ([classes] if isinstance(classes, str) else classes)]
    unknown = sorted(set(classes) - {"GALAXY", "QSO", "STAR"})
    if not classes or unknown:
        raise InvalidInputError(f"classes must be among GALAXY, QSO, STAR, got "
                                f"{unknown or classes}")
    from_table = _as_table(from_table, "from_table")
    qso_table = _as_table(qso_table, "qso_table")
    rng = check_random_state(random_state)
    counts = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]

    blocks = []
    for cls, k in zip(classes, counts):
        cols = _resample(from_table, cls, k, rng) if from_table is not None else None
        if cols is None:
            cols = {}
            if cls == "QSO" and qso_table is not None:
                colours = _qso_colours(qso_table, k, rng)
                mags = _colours_to_mags(rng.uniform(r_range[0], min(r_range[1], 22.0), k),
                                        colours)
                _, radii = _parametric("QSO", k, rng, r_range)
            else:
                rr = (r_range[0], min(r_range[1], 22.0)) if cls == "QSO" else r_range
                mags, radii = _parametric(cls, k, rng, rr)
            seeing = np.clip(np.exp(rng.normal(np.log(1.12), 0.13, k)), 0.7, 2.5)
            ext_r = np.clip(np.exp(rng.normal(np.log(0.07), 0.6, k)), 0.005, 1.0)
            for b in BANDS:
                cols[f"psffwhm_{b}"] = seeing * _SEEING_RATIO[b] * np.exp(
                    rng.normal(0, 0.03, k))
                cols[f"extinction_{b}"] = ext_r * EXTINCTION_RATIO[b]
                cols[f"dered_{b}"] = mags[b]  # the model's magnitudes are dereddened
                cols[f"deVRad_{b}"] = radii[b]
        cols["class"] = np.full(k, cls, dtype="U6")
        blocks.append(cols)
    order = rng.permutation(n)

    t = Table()
    ra0, dec0 = 150.0, 2.0
    t["ra"] = (ra0 + rng.uniform(0, 1, n) / np.cos(np.radians(dec0 + 0.5))) * u.deg
    t["dec"] = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(dec0)),
                                                np.sin(np.radians(dec0 + 1)), n))) * u.deg
    for b in BANDS:
        for kind, unit in (("dered", u.mag), ("deVRad", u.arcsec), ("psffwhm", u.arcsec),
                           ("extinction", u.mag)):
            name = f"{kind}_{b}"
            t[name] = np.concatenate([blk[name] for blk in blocks])[order] * unit
    observed = {b: np.asarray(t[f"dered_{b}"]) + np.asarray(t[f"extinction_{b}"])
                for b in BANDS}
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        t[f"{a}_{b}"] = (observed[a] - observed[b]) * u.mag
    t["class"] = np.concatenate([blk["class"] for blk in blocks])[order]
    t.meta["ORIGIN"] = "sourceclf.simulate.simulate_catalog (synthetic)"
    return t
