"""How a sky left in below the ``sky_not_subtracted`` flag moves the image models' calls.

Run::

    python docs/scripts/sky_offset_check.py [--n 100] [--seeds 0 1 2 3 4] [--r-max 20.5]
        [--offsets=-1,-0.5,-0.25,0,0.25,0.5,1] [--models margnet-cnn-sgq,margnet-sgq]

The demo frames (`sourceclf.demo.demo_frames`: sources of the simulated
population drawn by GalSim into five SDSS-like frames with SDSS's sky noise,
their classes known) are classified with ``psf=`` their seeing (1.2", too
few stars on them to measure it) as they are, and with every pixel of each
band moved by ``k`` times that band's sky noise (`sourceclf.psf.sky_level`),
``k`` from ``--offsets``: a sky a little over- or under-subtracted, well
below the five sky sigmas from which `sourceclf.classify` flags the rows
``sky_not_subtracted``.  For each model and offset it prints, over the
seeds and the sources brighter than ``--r-max`` (the real-field checks'
r < 20.5), the share of stars and quasars called STAR or QSO, of galaxies
called GALAXY, their mean (balanced), the share of rows flagged ``sky_*``,
and the mean change of the three probabilities against the frames as
drawn.

With ``--fields DATA`` (a folder of real SDSS fields, as ``check_fields.py``
reads them) it checks real frames instead, at each stamp's edge: for each
field, the clean bright sources of ``check_fields.py``'s truth whose 32-pixel
stamp reaches past a frame's edge in some band (the part of the stamp that
holds no measurement), and as many of the field's other clean sources drawn
at random, are classified with the frames as they are and moved by each
offset (``psf=`` the frames' PSF measured once on them as they are); it
prints for each model the rows of each group, the mean and largest change
of a probability and the share of rows whose class changes, and, at the
frames as they are, how many of each group's point-like sources are called
STAR or QSO and of its extended ones GALAXY (``hits``), and each edge row's
r magnitude, extent and truth (``ambiguous`` where it lies within two
locus widths of the cut) and every model's call::

    python docs/scripts/sky_offset_check.py --fields ../shared/data --offsets=-0.5,0.5
"""

import argparse
import warnings

import numpy as np
from check_fields import (classify_positions, each_field, find_fields, float_list,
                          no_fields_message, read_field, score)

#: The demo frames' seeing (arcsec), given as ``psf=``.
DEMO_SEEING = 1.2

_parse_offsets = float_list("--offsets", "offsets in sky sigmas", "-0.5,0,0.5", lambda v: True)


def offset_frames(frames, k, sigmas=None):
    """The frames, each band's pixels moved by ``k`` times its sky noise (copies).

    ``sigmas`` (``{band: sky noise}``) are measured (`sourceclf.psf.sky_level`)
    when not given."""
    from sourceclf.psf import sky_level

    out = {}
    for band, hdu in frames.items():
        moved = hdu.copy()
        sigma = sky_level(np.asarray(hdu.data), band)[1] if sigmas is None else sigmas[band]
        moved.data = np.asarray(hdu.data) + np.float32(k * sigma)
        out[band] = moved
    return out


def scores(pred_class, truth):
    """``(point, extended, balanced)``: stars and quasars called STAR or QSO, galaxies
    called GALAXY, and their mean, over the rows given a class (``check_fields.score``)."""
    from astropy.table import MaskedColumn, Table

    pred = np.asarray(pred_class, dtype=str)
    known = pred != ""
    result = Table({"pred_class": MaskedColumn(pred[known]),
                    "pred_flag": np.full(known.sum(), "")})
    extent = np.where(np.asarray(truth, dtype=str)[known] == "GALAXY", "extended", "point")
    out = score(extent, result)
    return out["point_as_star_or_qso"], out["extended_as_galaxy"], out["balanced"]


def _classes(table):
    return np.asarray(table["pred_class"].filled(""), dtype=str)


def edge_rows(frames, psf, ra, dec):
    """Which positions' stamps reach past the frame of some band: where the stamps
    `sourceclf.photometry.measure_columns` fits (`~sourceclf.photometry.frame_stamps`)
    hold a pixel beyond it, or lie off it (``frames``: ``{band: (data, wcs)}``)."""
    from sourceclf.photometry import frame_stamps

    reach = np.zeros(len(ra), dtype=bool)
    for cut in frame_stamps(frames, psf, ra, dec):
        reach |= ~cut.inside
        reach[cut.inside] |= np.isnan(cut.stamps).any(axis=(1, 2))
    return reach


def field_changes(data, offsets, models, log=print):
    """The ``--fields`` check: each model's changes of probability and class at each
    field's edge rows and as many other rows, the frames moved by each offset."""
    from astropy.table import Table

    from sourceclf.models import load_model
    from sourceclf.recipes.extent_truth import frame_truth

    probs = ["prob_galaxy", "prob_qso", "prob_star"]
    loaded = {model: load_model(model) for model in models}
    log(f"{'field':<14} {'model':<24} {'rows':<6} {'n':>3} {'offset':>6} "
        f"{'mean |change|':>13} {'max |change|':>12} {'class changed':>13}")

    def run(field):
        name, native, psf = read_field(field)
        truth = frame_truth(*native["r"], psf["r"])
        clean = truth[truth["clean"]]
        ra, dec = np.asarray(clean["ra"], float), np.asarray(clean["dec"], float)
        edge = edge_rows(native, psf, ra, dec)
        others = np.flatnonzero(~edge)
        picked = np.random.default_rng(0).choice(others, min(edge.sum(), len(others)),
                                                 replace=False)
        groups = {"edge": np.flatnonzero(edge), "inside": np.sort(picked)}
        rows = np.concatenate(list(groups.values()))
        if not len(groups["edge"]):
            log(f"{name:<14} no clean source's stamp reaches past a frame's edge")
            return
        sources = Table({"ra": ra[rows], "dec": dec[rows]})
        where = {g: np.isin(rows, r) for g, r in groups.items()}
        # each offset's columns measured once for every model (classify_positions)
        results = {k: classify_positions(sources, {b: (d + np.float32(k * psf[b].sky_sigma), w)
                                                   for b, (d, w) in native.items()},
                                         psf, loaded)
                   for k in sorted(set(offsets) | {0.0})}
        calls = {}
        for model in models:
            out = {k: result[model] for k, result in results.items()}
            called = calls[model] = _classes(out[0.0])
            labels = np.asarray(clean["truth"], dtype=str)[rows]
            hit = (np.where(labels == "point", called != "GALAXY", called == "GALAXY")
                   & (called != ""))
            log(f"{name:<14} {model:<24} hits at the frames as they are: " + "; ".join(
                f"{group} point {np.sum(hit[at] & (labels[at] == 'point'))}/"
                f"{np.sum(labels[at] == 'point')}, extended "
                f"{np.sum(hit[at] & (labels[at] == 'extended'))}/{np.sum(labels[at] == 'extended')}"
                for group, at in where.items()))
            for k in offsets:
                if k == 0.0:
                    continue
                change = np.abs(np.column_stack([np.ma.filled(out[k][p], np.nan)
                                                 - np.ma.filled(out[0.0][p], np.nan)
                                                 for p in probs])).max(axis=1)
                changed = _classes(out[k]) != _classes(out[0.0])
                for group, at in where.items():
                    log(f"{name:<14} {model:<24} {group:<6} {at.sum():>3} {k:>+6.2f} "
                        f"{np.nanmean(change[at]):>13.3f} {np.nanmax(change[at]):>12.3f} "
                        f"{changed[at].mean():>13.2f}")
        for i in np.flatnonzero(where["edge"]):  # each edge row, and each model's call
            row = clean[rows[i]]
            log(f"{name:<14} edge row r = {float(np.asarray(row['r_mag'])):.2f}, extent "
                f"{float(np.asarray(row['extent'])):+.3f}, {row['truth']}"
                f"{' (ambiguous)' if row['ambiguous'] else ''}: "
                + ", ".join(f"{model} {calls[model][i] or '-'}" for model in models))

    each_field(find_fields(data, log=log), run, log=log)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="sources per set of frames")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--r-max", type=float, default=20.5, help="score sources brighter")
    parser.add_argument("--offsets", type=_parse_offsets,
                        default=(-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0),
                        help="sky offsets, in each band's sky sigmas")
    parser.add_argument("--models", default="margnet-cnn-sgq,margnet-sgq")
    parser.add_argument("--fields", metavar="DATA",
                        help="check the stamps at the edges of the real fields under DATA")
    args = parser.parse_args(argv)
    if args.fields:
        if not find_fields(args.fields, log=lambda line: None):
            parser.error(no_fields_message(args.fields))
        return field_changes(args.fields, list(args.offsets), args.models.split(","))

    from sourceclf import classify
    from sourceclf.demo import demo_frames
    from sourceclf.psf import sky_level

    offsets, models = list(args.offsets), args.models.split(",")
    probs = ["prob_galaxy", "prob_qso", "prob_star"]
    rows = {(m, k): {"pred": [], "truth": [], "flag": [], "change": []}
            for m in models for k in offsets}
    for seed in args.seeds:
        catalog, frames = demo_frames(n=args.n, random_state=seed)
        positions = catalog["ra", "dec"]
        bright = np.asarray(catalog["r"]) < args.r_max
        sigmas = {b: sky_level(np.asarray(hdu.data), b)[1] for b, hdu in frames.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = {(m, k): classify(positions, images=offset_frames(frames, k, sigmas),
                                    psf=DEMO_SEEING, model=m)
                   for k in offsets for m in models}
            for model in models:
                drawn = out.get((model, 0.0))
                if drawn is None:
                    drawn = classify(positions, images=frames, psf=DEMO_SEEING, model=model)
                for k in offsets:
                    result, row = out[(model, k)], rows[(model, k)]
                    row["pred"].append(_classes(result)[bright])
                    row["truth"].append(np.asarray(catalog["class"], dtype=str)[bright])
                    row["flag"].append((np.char.find(np.asarray(result["pred_flag"], dtype=str),
                                                     "sky_") >= 0)[bright])
                    change = np.abs(np.column_stack([np.ma.filled(result[p], np.nan)
                                                     - np.ma.filled(drawn[p], np.nan)
                                                     for p in probs]))
                    row["change"].append(np.nanmean(change, axis=1)[bright])
    n_bright = sum(len(row) for row in rows[(models[0], offsets[0])]["truth"])
    print(f"demo frames, {args.n} sources x seeds {' '.join(map(str, args.seeds))}, "
          f"{n_bright} with r < {args.r_max}, psf={DEMO_SEEING}\"; offsets in each band's "
          f"sky sigmas")
    print(f"{'model':<16} {'offset':>6}  {'point':>5} {'extended':>8} {'balanced':>8} "
          f"{'sky_* flagged':>13} {'mean |prob change|':>18}")
    for (model, k), row in rows.items():
        point, extended, balanced = scores(np.concatenate(row["pred"]),
                                           np.concatenate(row["truth"]))
        flagged = np.concatenate(row["flag"]).mean()
        change = np.nanmean(np.concatenate(row["change"]))
        print(f"{model:<16} {k:>+6.2f}  {point:>5.2f} {extended:>8.2f} {balanced:>8.2f} "
              f"{flagged:>13.2f} {change:>18.3f}")


if __name__ == "__main__":
    main()
