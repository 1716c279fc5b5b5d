"""Score the image models on one real field's own sources by distance from a position.

A diagnosis of where on a field the models fail, made as ``check_fields.py``
scores the fields (the same truth, models, PSF and blurring: its functions),
with each clean source's distance from ``--centre`` (RA,Dec in degrees).
For every seeing (the field's own, then ``--seeings``) and model, it prints
per ring of distance (arcmin): the fraction of point-like sources called
STAR or QSO, of extended ones called GALAXY (also where the truth decides,
and apart below and from an extent of `CLEAR_EXTENT`), each ring's area on
the r frame and its surface density of point-like and extended sources,
also for the marginally and the clearly extended (background galaxies are
spread evenly over the sky; cluster stars are not), the median g - r of
each kind (`ring_colours`), and the share of its rows flagged
``crowded``.

It was written for 002583-2-0136, a Stripe 82 field that holds the
globular cluster M2 (NGC 7089, centre at RA 323.36258, Dec -0.82325 after
SIMBAD), the cause of its ``crowded`` flag (docs/images.rst, "Crowded
frames")::

    python docs/scripts/field_by_distance.py 002583-2-0136 --centre 323.36258,-0.82325 \
        --seeings 1.9

It measures; it tunes nothing and records nothing.
"""

import argparse
import sys
import time
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

from sourceclf.crowding import FLAG_CROWDED
from sourceclf.models import load_model
from sourceclf.photometry import measure_columns
from sourceclf.recipes.extent_truth import frame_truth
from sourceclf.utils._wcs import pixel_scale

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_fields import (add_diagnosis_options, blurred_with_psf,  # noqa: E402
                          classify_positions, find_fields, float_list, read_field)

#: Ring edges, arcmin (the last ring runs to the frame's far corner).
EDGES = (0.0, 3.0, 5.0, 7.0, 9.0)

MODELS = ("margnet-sgq", "margnet-cnn-sgq")


#: A truth extent (``m_psf - m_aperture``, mag) from which a source counts as clearly
#: extended (about twice SDSS's cut, 0.145): below it, a star whose aperture holds some of
#: its neighbours' light can pass the cut.
CLEAR_EXTENT = 0.3


def ring_scores(labels, pred, decided, distance, edges=EDGES, flags=None, extent=None):
    """Scores of the rows in each ring of distance.

    Parameters
    ----------
    labels : array of str
        The truth, ``'point'`` or ``'extended'``.
    pred : array of str
        The classes called.
    decided : array of bool
        Rows whose truth is decided (not ``ambiguous``).
    distance : array of float
        Each row's distance, in the units of ``edges``.
    edges : sequence of float
        Inner edges of the rings; the last ring has no outer edge.
    flags : array of str, optional
        ``pred_flag``: the share of each ring's rows flagged ``crowded``.
    extent : array of float, optional
        The truth's extent: the extended rows are also scored apart below
        and from `CLEAR_EXTENT`.

    Returns
    -------
    rows : list of dict
        Per ring: ``inner``, ``outer`` (inf for the last), ``n_point``,
        ``n_extended``, ``point`` and ``extended`` (fractions called right,
        NaN for a ring without such rows), ``extended_decided`` and
        ``n_extended_decided``, and ``crowded`` (NaN without ``flags``); with
        ``extent``, ``extended_marginal``, ``n_extended_marginal``,
        ``extended_clear`` and ``n_extended_clear``.
    """
    labels, pred = np.asarray(labels).astype(str), np.asarray(pred).astype(str)
    decided, distance = np.asarray(decided, bool), np.asarray(distance, float)
    right = np.where(labels == "point", np.isin(pred, ["STAR", "QSO"]), pred == "GALAXY")
    crowded = (None if flags is None
               else np.char.find(np.asarray(flags).astype(str), FLAG_CROWDED) >= 0)
    outer = list(edges[1:]) + [np.inf]
    rows = []
    for lo, hi in zip(edges, outer):
        ring = (distance >= lo) & (distance < hi)
        point, extended = ring & (labels == "point"), ring & (labels == "extended")
        sure = extended & decided
        rows.append({"inner": float(lo), "outer": float(hi),
                     "n_point": int(point.sum()), "n_extended": int(extended.sum()),
                     "point": _share(right, point), "extended": _share(right, extended),
                     "extended_decided": _share(right, sure),
                     "n_extended_decided": int(sure.sum()),
                     "crowded": np.nan if crowded is None else _share(crowded, ring)})
        if extent is not None:
            clear = extended & (np.asarray(extent, float) >= CLEAR_EXTENT)
            marginal = extended & ~clear
            rows[-1].update({"extended_marginal": _share(right, marginal),
                             "n_extended_marginal": int(marginal.sum()),
                             "extended_clear": _share(right, clear),
                             "n_extended_clear": int(clear.sum())})
    return rows


def ring_colours(labels, extent, distance, colour, edges=EDGES):
    """A colour's median and 10th-90th percentiles in each ring, per kind of source.

    Stars of one field share a locus reddened alike; galaxies behind the
    field's dust are redder than its stars, and galaxies differ from the
    stars of a globular cluster: so the colours say which of the truth's
    extended sources are more likely stars.

    Parameters
    ----------
    labels, extent, distance
        As `ring_scores`.
    colour : array of float
        E.g. the measured ``g_r`` (NaN where unknown).
    edges : sequence of float
        As `ring_scores`.

    Returns
    -------
    rings : list of dict
        Per ring, for ``'point'``, ``'marginal'`` and ``'clear'``:
        ``(n, median, p10, p90)`` of the rows with a known colour (NaN for
        none).
    """
    labels = np.asarray(labels).astype(str)
    extent, distance = np.asarray(extent, float), np.asarray(distance, float)
    colour = np.asarray(colour, float)
    kinds = {"point": labels == "point",
             "marginal": (labels == "extended") & (extent < CLEAR_EXTENT),
             "clear": (labels == "extended") & (extent >= CLEAR_EXTENT)}
    outer = list(edges[1:]) + [np.inf]
    rings = []
    for lo, hi in zip(edges, outer):
        ring = (distance >= lo) & (distance < hi) & np.isfinite(colour)
        rings.append({})
        for kind, rows in kinds.items():
            values = colour[ring & rows]
            rings[-1][kind] = ((0, np.nan, np.nan, np.nan) if not values.size else
                               (int(values.size), *(float(v) for v in np.percentile(
                                   values, [50, 10, 90]))))
    return rings


def _share(hit, rows):
    return float(hit[rows].mean()) if rows.any() else float("nan")


def ring_areas(frame, centre, edges=EDGES, step=8):
    """Area (arcmin^2) of each ring of distance from ``centre`` lying on ``frame``.

    ``frame``: ``(data, wcs)``; measured on every ``step``-th pixel.
    """
    data, wcs = frame
    ny, nx = np.shape(data)
    y, x = np.mgrid[step / 2:ny:step, step / 2:nx:step]
    ra, dec = wcs.pixel_to_world_values(x.ravel(), y.ravel())
    distance = SkyCoord(ra * u.deg, dec * u.deg).separation(centre).arcmin
    cell = (step * pixel_scale(wcs) / 60.0) ** 2
    outer = list(edges[1:]) + [np.inf]
    return [float(np.sum((distance >= lo) & (distance < hi)) * cell)
            for lo, hi in zip(edges, outer)]


def _parse_centre(text):
    try:
        ra, dec = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--centre takes RA,DEC in degrees, got '{text}'")
    return SkyCoord(ra * u.deg, dec * u.deg)


_parse_edges = float_list("--edges", "increasing distances in arcmin from 0", "0,3,9",
                          lambda e: e[0] == 0 and all(b > a for a, b in zip(e, e[1:])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("field", help="the field, e.g. 002583-2-0136")
    parser.add_argument("--centre", type=_parse_centre, required=True, metavar="RA,DEC",
                        help="the position distances are measured from, degrees")
    parser.add_argument("--seeings", type=float, nargs="*", default=[],
                        help="r-band FWHMs (arcsec) to blur the frames to, besides their own")
    parser.add_argument("--edges", type=_parse_edges, default=EDGES, metavar="E0,E1,...",
                        help="inner edges of the rings, arcmin (default "
                             f"{','.join(f'{e:g}' for e in EDGES)}; 0: the whole field)")
    add_diagnosis_options(parser, MODELS)
    args = parser.parse_args(argv)
    t0 = time.time()
    fields = find_fields(args.data, [args.field])
    if args.field not in fields:
        parser.error(f"no five frames of field {args.field} under {args.data}")
    name, native, psf = read_field((args.field, fields[args.field]))
    truth = frame_truth(*native["r"], psf["r"])
    clean = truth[truth["clean"]]
    labels = np.asarray(clean["truth"]).astype(str)
    decided = ~np.asarray(clean["ambiguous"])
    sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
    distance = SkyCoord(sources["ra"] * u.deg, sources["dec"] * u.deg).separation(
        args.centre).arcmin
    areas = ring_areas(native["r"], args.centre, args.edges)
    models = {m: load_model(m) for m in args.models}
    print(f"{name}: {len(clean)} clean sources r < 20.5 ({int((labels == 'point').sum())} "
          f"point-like, {int((labels == 'extended').sum())} extended), "
          f"{distance.min():.1f}-{distance.max():.1f}' from the centre")
    extent = np.asarray(clean["extent"], float)
    print(f"ring       area      point-like    extended      of which extent < {CLEAR_EXTENT}"
          f"   >= {CLEAR_EXTENT}")
    # The truth scored against itself: each ring's counts.
    rings = ring_scores(labels, labels, decided, distance, args.edges, extent=extent)
    for row, area in zip(rings, areas):
        print(f"{_ring(row):10s} {area:5.1f}'^2  {row['n_point']:4d} "
              f"({_density(row['n_point'], area)})  {row['n_extended']:3d} "
              f"({_density(row['n_extended'], area)})  {row['n_extended_marginal']:3d} "
              f"({_density(row['n_extended_marginal'], area)})  {row['n_extended_clear']:3d} "
              f"({_density(row['n_extended_clear'], area)})")
    for seeing in [None] + list(args.seeings):
        frames, seen = blurred_with_psf(native, psf, seeing, name)
        with_columns = measure_columns(sources, frames, seen)[0]
        if seeing is None:
            print("measured g - r: median [10th, 90th percentile] (sources)")
            colours = ring_colours(labels, extent, distance,
                                   np.ma.filled(np.ma.asarray(with_columns["g_r"], float),
                                                np.nan), args.edges)
            for row, ring in zip(rings, colours):
                print(f"  {_ring(row):10s} " + "  ".join(
                    f"{kind} {m:.2f} [{lo:.2f}, {hi:.2f}] ({n})"
                    for kind, (n, m, lo, hi) in ring.items()))
        results = classify_positions(sources, frames, seen, models, with_columns)
        for model, result in results.items():
            pred = np.asarray(result["pred_class"].filled("")).astype(str)
            rows = ring_scores(labels, pred, decided, distance, args.edges, extent=extent,
                               flags=np.asarray(result["pred_flag"]).astype(str))
            print(f"{model}, r FWHM {seen['r'].fwhm:.2f}\" "
                  f"({'native' if seeing is None else f'blurred to {seeing}'}) "
                  f"[{time.time() - t0:.0f} s]")
            for row in rows:
                print(f"  {_ring(row):10s} point {row['point']:.2f} ({row['n_point']})  "
                      f"extended {row['extended']:.2f} ({row['n_extended']})  decided "
                      f"{row['extended_decided']:.2f} ({row['n_extended_decided']}), "
                      f"extent < {CLEAR_EXTENT} {row['extended_marginal']:.2f}, "
                      f">= {CLEAR_EXTENT} {row['extended_clear']:.2f}  "
                      f"balanced {(row['point'] + row['extended']) / 2:.2f}  "
                      f"crowded {row['crowded']:.2f}")
    return 0


def _ring(row):
    return (f"{row['inner']:.0f}-{row['outer']:.0f}'" if np.isfinite(row["outer"])
            else f">= {row['inner']:.0f}'")


def _density(n, area):
    return f"{n / area:.2f}/'^2" if area > 0 else "  -  "


if __name__ == "__main__":
    sys.exit(main())
