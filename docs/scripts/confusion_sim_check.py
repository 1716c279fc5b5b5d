"""How the ``confused`` flag sorts simulated stamps: its limit checked on crowded simulated fields.

Run from the repository root (reads ``../shared/data``; the stamps of
simulation version 10 are rendered once and cached, about 20 minutes on two
cores, then about 10 minutes)::

    python docs/scripts/confusion_sim_check.py [--data DATA] [--model margnet-sgq]
                                               [--cache-dir DIR] [--jobs 2]

The ``confused`` flag (`sourceclf.crowding.confusion_flags`) was set by its
meaning, ``unmodelled_r`` >= `~sourceclf.crowding.CONFUSED_LIMIT`, and
checked on the sources drawn into two real crowded fields.  Here it is
checked where the truth of every row is known and the crowds are many:

1. the held-out test rows (`sourceclf.recipes.data.recipe_split`) of
   simulation version 10 (`sourceclf.recipes.image_training_set.SIMULATIONS`:
   version 9 with a third of its fields crowded), which no shipped model
   learnt from;
2. each row's columns measured on its stamps with all their neighbours, as
   ``classify`` measures a frame's sources
   (`sourceclf.recipes.measured_columns.measure_with_neighbours`: each source
   fitted with its neighbours, one simulated field's PSF and sky noise at a
   time), which also gives ``unmodelled_<b>``;
3. the model reads those columns and the stamps.

It prints, for the rows of the crowded fields and of the others, of all
magnitudes and brighter than `R_BRIGHT` (the real-field checks' range),
overall and per r-band FWHM bin (`~sourceclf.recipes.image.SEEING_BINS`): the rows,
the share flagged ``confused``, and the balanced accuracy of telling
point sources (STAR, QSO) from galaxies (`flag_scores`) on the flagged rows,
on the rest and on all.  Then how the 90% prediction sets of the flagged
rows hold their class (`set_report`): the model's own sets against those of
its calibration table of confused rows (``flag_calibrations``, made from
the simulation's *calibration* split, so that these test rows are new to
it), overall and per r FWHM and rendered r-magnitude bin.  A check, never
recorded.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from check_fields import SHARED_DATA  # beside this script

#: The simulation checked: version 9 with a third of its fields crowded.
VERSION = 10


def flag_scores(point, called_point, flagged):
    """Share flagged and the balanced accuracy of point-or-galaxy calls.

    Parameters
    ----------
    point : array-like of bool
        Each row's truth: a point source (STAR or QSO) or a galaxy.
    called_point : array-like of bool
        Whether the model called it STAR or QSO.
    flagged : array-like of bool
        Whether it is flagged ``confused``.

    Returns
    -------
    dict
        ``n``, ``flagged`` (share), and ``flagged_balanced``, ``rest_balanced``,
        ``all_balanced``: the mean of the point sources called point-like and
        the galaxies called GALAXY on those rows
        (`sourceclf.evaluation.balanced_hit_rate`; None where a class has none).
    """
    from sourceclf.evaluation import balanced_hit_rate

    point, called_point, flagged = (np.asarray(a, dtype=bool)
                                    for a in (point, called_point, flagged))
    hit = called_point == point

    def balanced(rows):
        rate = balanced_hit_rate(hit, rows & point, rows & ~point)
        return None if np.isnan(rate) else round(rate, 3)

    every = np.ones(len(point), dtype=bool)
    return {"n": int(len(point)), "flagged": round(float(flagged.mean()), 3) if len(point)
            else None, "flagged_balanced": balanced(flagged),
            "rest_balanced": balanced(~flagged), "all_balanced": balanced(every)}


def score_text(row):
    """One line of `flag_scores`."""
    def text(value):
        return "--" if value is None else f"{value:.3f}"
    return (f"{row['n']:>5} rows, confused {text(row['flagged'])}: flagged "
            f"{text(row['flagged_balanced'])}, rest {text(row['rest_balanced'])}, all "
            f"{text(row['all_balanced'])}")


#: The brightest rows' limit, rendered r magnitude: the real-field checks' sources.
R_BRIGHT = 20.5


def report(table, called_point, log=print):
    """`flag_scores` of the crowded fields' rows and the others, overall and per r FWHM
    bin, each as a line: of all rows, then of those brighter than `R_BRIGHT` (rendered r,
    ``rendered_dered_r``, as the real-field checks' sources)."""
    from sourceclf.crowding import confusion_flags
    from sourceclf.recipes.image import SEEING_BINS

    truth = np.char.upper(np.asarray(table["class"]).astype(str))
    point = truth != "GALAXY"
    flagged = confusion_flags(table)[1]
    fwhm = np.asarray(table["psf_fwhm_r"], dtype=float)
    crowded = np.asarray(table["crowded_field"], dtype=bool)
    bright = np.asarray(table["rendered_dered_r"], dtype=float) < R_BRIGHT
    for depth, kept in (("all r", np.ones(len(table), dtype=bool)),
                        (f"r < {R_BRIGHT:g}", bright)):
        for part, rows in (("crowded fields", crowded & kept), ("other fields", ~crowded & kept)):
            log(f"{part}, {depth}, all seeings: "
                + score_text(flag_scores(point[rows], called_point[rows], flagged[rows])))
            for low, high in zip(SEEING_BINS[:-1], SEEING_BINS[1:]):
                these = rows & (fwhm >= low) & (fwhm < high)
                if these.any():
                    log(f"{part}, {depth}, r FWHM {low:g}-{high:g}\": " + score_text(
                        flag_scores(point[these], called_point[these], flagged[these])))


#: The prediction sets' level `set_report` scores.
SET_LEVEL = 0.9


def set_report(table, proba, clf, log=print, level=SET_LEVEL):
    """How the ``level`` sets of the rows flagged ``confused`` hold each row's class.

    For the flagged rows, overall and per r FWHM (`~sourceclf.recipes.image.SEEING_BINS`)
    and rendered r-magnitude (`~sourceclf.recipes.image.MAGNITUDE_EDGES`) bin, a line:
    the rows, then the share whose set holds the row's class and the mean set size with
    the model's own calibration (`sourceclf.conformal.ConformalPredictor.from_classifier`)
    and with its table of confused rows (``clf.flag_calibrations['confused']``), as
    ``classify`` gives them.
    """
    from sourceclf.conformal import ConformalPredictor
    from sourceclf.crowding import FLAG_CONFUSED, confusion_flags
    from sourceclf.recipes.image import MAGNITUDE_EDGES, SEEING_BINS

    own = clf.flag_calibrations.get(FLAG_CONFUSED)
    if own is None:
        log(f"model '{clf.name}' has no calibration table of {FLAG_CONFUSED} rows")
        return
    flagged = confusion_flags(table)[1]
    truth = np.char.upper(np.asarray(table["class"]).astype(str))
    index = np.array([list(clf.classes).index(c) for c in truth])
    sets = {name: predictor.predict_sets(proba)[0][:, :, 0] for name, predictor in (
        ("model's", ConformalPredictor.from_classifier(clf, level)),
        ("confused rows'", ConformalPredictor.from_table(own, clf.classes, level)))}
    fwhm = np.asarray(table["psf_fwhm_r"], dtype=float)
    r_mag = np.asarray(table["rendered_dered_r"], dtype=float)
    edges = (-np.inf, *MAGNITUDE_EDGES, np.inf)
    bins = [("all", flagged)]
    bins += [(f'r FWHM {lo:g}-{hi:g}"', flagged & (fwhm >= lo) & (fwhm < hi))
             for lo, hi in zip(SEEING_BINS[:-1], SEEING_BINS[1:])]
    bins += [(f"r < {hi:g}" if lo == -np.inf else f"r >= {lo:g}" if hi == np.inf
              else f"r {lo:g}-{hi:g}", flagged & (r_mag >= lo) & (r_mag < hi))
             for lo, hi in zip(edges[:-1], edges[1:])]
    for label, rows in bins:
        if rows.any():
            cells = [f"{name} sets hold it {sets[name][rows, index[rows]].mean():.3f} "
                     f"(size {sets[name][rows].sum(axis=1).mean():.2f})" for name in sets]
            log(f"{level:.0%} sets of the {FLAG_CONFUSED} rows, {label}: {int(rows.sum()):>5} "
                "rows, " + ", ".join(cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder")
    parser.add_argument("--model", default="margnet-sgq",
                        help="an image model reading MargNet's columns (default margnet-sgq)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache of the rendered stamps (as image_recipes')")
    parser.add_argument("--jobs", type=int, default=2, help="processes rendering the stamps")
    args = parser.parse_args(argv)

    from sourceclf.exceptions import SourceclfError
    from sourceclf.features import get_feature_set
    from sourceclf.models import load_model
    from sourceclf.recipes.data import recipe_split
    from sourceclf.recipes.image_training_set import simulated_training_set
    from sourceclf.recipes.measured_columns import measure_with_neighbours

    try:
        clf = load_model(args.model)
    except SourceclfError as exc:  # an unknown model: named in one line
        parser.error(str(exc))
    if clf.feature_set != "margnet24" or not clf.uses_images:
        parser.error(f"model '{args.model}' does not read MargNet's columns and the stamps")
    t0 = time.perf_counter()
    try:
        table, stamps = simulated_training_set(data_dir=args.data, cache_dir=args.cache_dir,
                                               jobs=args.jobs, version=VERSION)
    except (SourceclfError, OSError) as exc:
        parser.error(f"simulation {VERSION} could not be made from {args.data}: {exc}")
    test = np.asarray(recipe_split(table)["test"])
    table, stamps = table[test], stamps[test]
    print(f"simulation {VERSION}: {len(table)} held-out rows "
          f"({int(np.sum(table['crowded_field']))} in crowded fields) "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    measured = measure_with_neighbours(table, stamps)
    print(f"measured with the neighbour fits in {time.perf_counter() - t0:.0f} s", flush=True)
    proba = clf.predict_proba(get_feature_set("margnet24").compute(measured).values, stamps)
    called = np.asarray(clf.classes)[proba.argmax(axis=1)]
    report(measured, np.asarray([c.upper() != "GALAXY" for c in called]))
    set_report(measured, proba, clf)


if __name__ == "__main__":
    main()
