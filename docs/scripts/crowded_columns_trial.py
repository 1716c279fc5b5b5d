"""A trial, not shipped: margnet-sgq's ANN and head retrained on crowded stamps whose
columns are measured as on a real frame, by the neighbour fits.

On the crowded shared fields ``margnet-sgq`` fails where MargNet's columns
are measured on the frame with the source's neighbours: measured on the
sources drawn into 005405-6-0099 *alone*, the same columns give it 0.95 at
1.9" (``check_fields.py --inject --columns-alone``).  The shipped model
learnt its columns from simulation version 9, whose stamps hold at most two
neighbours and whose "frame" half was measured after the segment deblender,
not with the neighbour fits that `sourceclf.photometry.measure_columns` now
makes on real frames (`sourceclf.neighbour_fits`).  This trial asks whether
a model that learnt columns measured that way, on crowded stamps, reads
them better:

1. the stamps of simulation version 10 (version 9's with a third of the
   fields crowded, `sourceclf.recipes.image_training_set.SIMULATIONS`),
   with the recipe's columns (`simulated_training_set`);
2. the rows the recipe measures after the segment deblender
   (``frame_deblended``, half of them) measured again on their stamps with
   all their neighbours by `sourceclf.photometry.measure_stamp_columns`:
   each field's stamps with its PSF and sky noise, each source fitted with
   its neighbours as on a real frame;
3. ``margnet-sgq``'s recipe (`sourceclf.recipes.image.margnet_sgq`) trains its
   ANN and head on them; its CNN is the shipped ``margnet-sgq``'s, unchanged
   (its split is the same rows, so it has not seen their validation and test
   rows), so that only the columns and what the head learns from them
   differ.

Score it as the shipped models are scored::

    python docs/scripts/crowded_columns_trial.py --out /tmp/columns-trial
    python docs/scripts/check_fields.py --models /tmp/columns-trial/margnet-sgq --inject
    python docs/scripts/check_fields.py --models /tmp/columns-trial/margnet-sgq

About 10 minutes of rendering (cached for later runs), 10 of measuring (the
recipe's columns, then the neighbour fits) and 2 of training on two CPU cores.
It prints the held-out simulated accuracy of the trial and of the shipped
model on the crowded fields' rows and the others, overall, per r-band seeing
and per rendered r magnitude (the bins of the models' cards).
"""

import argparse
import time
from pathlib import Path

import numpy as np

from sourceclf.bands import BANDS
from sourceclf.features import get_feature_set
from sourceclf.models import load_model
from sourceclf.recipes.cards import accuracy_by_magnitude
from sourceclf.recipes.data import recipe_split
from sourceclf.recipes.image import MAGNITUDE_EDGES, SEEING_BINS, margnet_sgq
from sourceclf.recipes.image_training_set import simulated_training_set
from sourceclf.recipes.measured_columns import measure_with_neighbours
from sourceclf.training import labels_from_table

from check_fields import SHARED_DATA as DATA  # beside this script

#: The columns the neighbour fits measure again on the ``frame_deblended`` rows.
MEASURED = ([f"{c}_{b}" for c in ("dered", "deVRad", "psf_flux") for b in BANDS]
            + [f"{a}_{b}" for a, b in zip(BANDS[:-1], BANDS[1:])])


def neighbour_fit_columns(table, stamps, rows):
    """MargNet's columns of ``rows`` measured on their stamps, neighbours and all, by
    `sourceclf.photometry.measure_stamp_columns`, one simulated field at a time
    (`sourceclf.recipes.measured_columns.measure_with_neighbours`)."""
    these = np.flatnonzero(rows)
    measured = measure_with_neighbours(table[these], stamps[these])
    out = {c: np.asarray(table[c], dtype=float).copy() for c in MEASURED}
    for c in MEASURED:
        out[c][these] = np.asarray(measured[c], dtype=float)
    return out


def held_out_accuracy(clf, table, stamps):
    """``clf``'s accuracy on the recipe's test rows of ``table``, reading the table's
    columns: ``{part: (overall, by_seeing, by_magnitude)}`` for the rows of crowded fields
    (``crowded_field``) and the others; ``by_seeing`` per r-band FWHM bin
    (`~sourceclf.recipes.image.SEEING_BINS`), ``by_magnitude`` per rendered r magnitude
    bin (`~sourceclf.recipes.image.MAGNITUDE_EDGES`), both by
    `~sourceclf.recipes.cards.accuracy_by_magnitude`; None where a bin is empty."""
    y = labels_from_table(table, classes=clf.classes)[1]
    test = np.asarray(recipe_split(table)["test"])
    pred = clf.predict_proba(get_feature_set("margnet24").compute(table[test]).values,
                             stamps[test]).argmax(1)
    hit = pred == y[test]
    crowded = np.asarray(table["crowded_field"], bool)[test]
    fwhm = np.asarray(table["psf_fwhm_r"], float)[test]
    r_mag = np.asarray(table["rendered_dered_r"], float)[test]
    out = {}
    for part, rows in (("crowded", crowded), ("others", ~crowded)):
        # per bin of a value, the outer bins open (every simulated FWHM is within 0.75-2.5")
        seeing, magnitude = (accuracy_by_magnitude(y[test][rows], pred[rows], value[rows],
                                                   edges=edges)["accuracy"]
                             for value, edges in ((fwhm, SEEING_BINS[1:-1]),
                                                  (r_mag, MAGNITUDE_EDGES)))
        out[part] = (float(hit[rows].mean()), seeing, magnitude)
    return out


def _listing(values):
    return ", ".join("--" if v is None else f"{v:.3f}" for v in values)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the model to write")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache of the rendered stamps (as image_recipes')")
    parser.add_argument("--jobs", type=int, default=2, help="processes rendering the stamps")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    table, stamps = simulated_training_set(data_dir=args.data, cache_dir=args.cache_dir,
                                           jobs=args.jobs, version=10)
    rows = np.asarray(table["frame_deblended"], bool)
    recipe_columns = table.copy()
    print(f"simulation 10: {len(table)} rows, {rows.sum()} measured after the segment "
          f"deblender, in {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    for column, values in neighbour_fit_columns(table, stamps, rows).items():
        table[column][:] = values  # keeping each column's unit
    print(f"those rows measured again with the neighbour fits in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    shipped = load_model("margnet-sgq")
    t0 = time.perf_counter()  # the shipped CNN kept (sourceclf.recipes.image.cnn_member)
    clf = margnet_sgq(table, stamps, cnn=shipped, data_dir=args.data)
    clf.card.training["simulation"]["trial"] = (
        "crowded_columns_trial.py: the frame_deblended rows measured by the neighbour fits; "
        "the CNN is the shipped margnet-sgq's")
    path = clf.save(args.out / "margnet-sgq", overwrite=True)
    print(f"trained in {time.perf_counter() - t0:.0f} s; held-out (simulated) accuracy "
          f"{clf.card.metrics['test']['accuracy']:.3f}; real frame 4510 stars called "
          f"point-like {clf.card.metrics.get('real_frame_stars', {}).get('point_fraction')}; "
          f"wrote {path}", flush=True)
    # Held-out simulated rows: the trial and the shipped model on the columns measured with
    # the neighbour fits, and the shipped model on those it learnt from (the recipe's).
    bins = [f"{low:g}-{high:g}" for low, high in zip(SEEING_BINS[:-1], SEEING_BINS[1:])]
    print(f"r FWHM bins (arcsec): {', '.join(bins)}; r magnitude bins: inner edges "
          f"{', '.join(f'{e:g}' for e in MAGNITUDE_EDGES)}", flush=True)
    for name, model, columns in (("trial", clf, table), ("shipped", shipped, table),
                                 ("shipped, recipe's columns", shipped, recipe_columns)):
        accuracy = held_out_accuracy(model, columns, stamps)
        for part, (overall, seeing, magnitude) in accuracy.items():
            print(f"held-out accuracy, {name}, {part}: {overall:.3f}; by r FWHM "
                  f"{_listing(seeing)}; by r magnitude {_listing(magnitude)}", flush=True)


if __name__ == "__main__":
    main()
