"""Image-only CNNs on the held-out stamps of simulation version 10, crowded fields apart.

Version 10 (`sourceclf.recipes.image_training_set.SIMULATIONS`) is version
9 with a third of its simulated fields crowded; every other stamp is version
9's, bit for bit.  So its held-out rows (the recipes' test split) score a
model trained on either version on the same stamps: the uncrowded rows as
the shipped model's card scores them, the crowded ones apart.  Prints, per
model, the accuracy on each group and its point-source-vs-galaxy balanced
accuracy (the mean of the shares of STARs and QSOs called STAR or QSO and of
GALAXYs called GALAXY), overall, for r < 21, and the accuracy per r-band
seeing bin and per rendered r magnitude (the cards' bins)::

    python -m sourceclf.image_recipes margnet-cnn-sgq --simulation 10 --output-dir /tmp/v10
    python docs/scripts/crowded_heldout.py margnet-cnn-sgq /tmp/v10/margnet-cnn-sgq

The first command renders version 10 (about 20 minutes on two cores, then
cached) and trains the CNN on it (about 25 minutes); this script reads the
cache.
"""

import argparse
from pathlib import Path

import numpy as np

from sourceclf.features import get_feature_set
from sourceclf.models import load_model
from sourceclf.recipes.cards import accuracy_by_magnitude
from sourceclf.recipes.image import MAGNITUDE_EDGES, SEEING_BINS
from sourceclf.recipes.image_training_set import psf_columns, simulated_training_set
from sourceclf.train_recipes import recipe_split

from check_fields import SHARED_DATA as DATA  # beside this script


def balanced(truth, pred):
    """Point source (STAR or QSO) against galaxy: the mean of the two shares called right."""
    point, called_point = truth != "GALAXY", pred != "GALAXY"
    return 0.5 * (np.mean(called_point[point]) + np.mean(~called_point[~point]))


def by_bin(truth, pred, values, edges):
    """Accuracy per bin of ``values`` (`sourceclf.recipes.cards.accuracy_by_magnitude`:
    inner ``edges``, the outer bins open), as text."""
    found = accuracy_by_magnitude(truth, pred, values, edges=edges)
    return ", ".join(f"{label} {acc:.3f}" for label, acc in zip(found["bins"], found["accuracy"])
                     if acc is not None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="image-only model names or directories")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    args = parser.parse_args(argv)
    table, stamps = simulated_training_set(data_dir=args.data, version=10, columns=False)
    test = recipe_split(table)["test"]
    crowded = np.asarray(table["crowded_field"])[test]
    truth = np.asarray(table["class"]).astype(str)[test]
    r_mag = np.asarray(table["dered_r"], dtype=float)[test]  # as rendered (columns=False)
    seeing = np.asarray(table["psf_fwhm_r"], dtype=float)[test]
    shape_table = None  # the fitted Moffat indices, drawn only for a model that reads them
    stamps = stamps[test]
    print(f"simulation 10, held-out rows: {np.sum(~crowded)} uncrowded, {crowded.sum()} in "
          "crowded fields")
    for name in args.models:
        clf = load_model(name)
        if clf.feature_set is not None and not get_feature_set(clf.feature_set).reads_image_psf:
            parser.error(f"{name} reads catalog columns; this script scores image-only models")
        spec = None if clf.feature_set is None else get_feature_set(clf.feature_set)
        if spec is not None and spec.reads_psf_shape and shape_table is None:
            shape_table = psf_columns(table)
        psf = None if spec is None else spec.compute(
            shape_table if spec.reads_psf_shape else table).values[test]
        pred = np.asarray(clf.classes)[clf.predict_proba(psf, stamps).argmax(axis=1)]
        trained = clf.card.training.get("simulation", {}).get("version")
        print(f"{name} (trained on simulation {trained}):", flush=True)
        for label, rows in (("uncrowded", ~crowded), ("crowded", crowded)):
            bright = rows & (r_mag < 21)
            print(f"  {label}: accuracy {np.mean(pred[rows] == truth[rows]):.3f}, point vs "
                  f"galaxy {balanced(truth[rows], pred[rows]):.3f}, r < 21 "
                  f"{np.mean(pred[bright] == truth[bright]):.3f}", flush=True)
            print("    by r FWHM (\"): "
                  + by_bin(truth[rows], pred[rows], seeing[rows], SEEING_BINS[1:-1]))
            print("    by r: " + by_bin(truth[rows], pred[rows], r_mag[rows], MAGNITUDE_EDGES))


if __name__ == "__main__":
    main()
