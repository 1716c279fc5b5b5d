"""5-band stamps of a table's rows cut from SDSS frames downloaded with astroquery."""

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.table import Table

from ..bands import BANDS
from ..columns import ColumnFinder
from ..exceptions import InvalidInputError, MissingColumnsError
from ..progress import progress_bar
from ..utils._validation import check_positive_int
from .sdss import locate_frames, sdss_client

__all__ = ["FrameCutouts", "get_cutouts"]


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


def get_cutouts(table, *, bands="ugriz", size=32, data_release=17, cache=True,
                match_radius=2 * u.arcsec, progress=None, **kwargs):
    """Cut stamps of every table row from SDSS frames.

    Frames are downloaded with `astroquery.sdss.SDSSClass.get_images`, each
    (run, rerun, camcol, field) once for all the rows it holds, and the stamps
    are cut with `sourceclf.cutouts.make_cutouts` using each frame's WCS.

    Which frame holds a row comes from, in this order: ``run``, ``camcol``,
    ``field`` (and ``rerun``, default 301) columns; the bits of an integer
    ``objid`` column (`~sourceclf.datasets.decode_objid`, no network); or one
    SkyServer query per 40 rows for the nearest object within
    ``match_radius`` of ``ra``/``dec``.

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
    size = check_positive_int(size, "size")
    # Looked up at call time, so that a stand-in sourceclf.cutouts can replace it.
    from ..cutouts import make_cutouts

    n = len(table)
    ra, dec = _positions(table)
    keys = locate_frames(table, ra, dec, match_radius=match_radius, data_release=data_release,
                         cache=cache, **{k: v for k, v in kwargs.items() if k == "timeout"})
    data = np.full((n, len(band_list), size, size), np.nan, dtype=np.float32)
    flags = np.full(n, "no_frame", dtype=object)
    frame = np.full(n, "", dtype=object)
    known = np.flatnonzero((keys >= 0).all(axis=1))
    SDSS = sdss_client()
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
