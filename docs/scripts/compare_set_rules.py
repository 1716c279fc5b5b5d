"""Prediction-set rules compared on the held-out rows of the shipped photometric models.

Prints the tables of ``docs/conformal.rst`` ("Why the default score is lac").
Run from the repository root::

    python docs/scripts/compare_set_rules.py [--data-dir ../shared/data] [--cache-dir DIR]

For each model, the rows of its recipe's *test* split (rebuilt with
`sourceclf.train_recipes.recipe_split`, as the recipe did; never used in
training or calibration) are classified once (``--cache-dir`` keeps their
probabilities, keyed by the model's weights digest).  The sets of every rule
are calibrated on the model's shipped calibration table, then measured on
those rows at each level:

``lac``, ``aps``, ``raps``
    sourceclf's scores (MAPIE's thresholds, `sourceclf.conformal`); APS and
    RAPS exist for three-class models only.
``lac+top1``
    The ``lac`` set with the most probable class added when it is empty: the
    smallest never-empty sets.  Any never-empty set holds ``pred_class``, so
    its coverage is at least the model's accuracy, whatever its threshold.

Columns: coverage (share of rows whose true class is in the set), per true
class, per quartile of the observed r magnitude (bright to faint), mean set
size, share of empty and of one-class sets.
"""

import argparse
import warnings
from pathlib import Path

import numpy as np

from sourceclf import classify
from sourceclf.columns import decode_strings
from sourceclf.conformal import ConformalPredictor, check_score, group_values
from sourceclf.exceptions import InvalidInputError, SourceclfWarning
from sourceclf.models import load_model
from sourceclf.train_recipes import read_recipe_table, recipe_split

MODELS = ("ugriz-sgq", "blend-photometry-sg", "gbdt-photometry-sg", "margnet-photometry-sg")
LEVELS = (0.68, 0.9, 0.95)
SCORES = ("lac", "aps", "raps")
NEVER_EMPTY = "lac+top1"


def held_out(name, data_dir=None, cache_dir=None):
    """A model and its recipe test rows: probabilities (class order), labels, observed r."""
    clf = load_model(name)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{name}-{clf.card.weights_sha256[:16]}.npz"
        if cache.is_file():
            saved = np.load(cache)
            return clf, saved["proba"], saved["labels"], saved["r"]
    table = read_recipe_table(name, data_dir)
    test = table[recipe_split(table)["test"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SourceclfWarning)  # out-of-domain notes
        out = classify(test, model=clf, confidence=None)
    classified = ~np.ma.getmaskarray(out["pred_class"])
    proba = np.column_stack([np.ma.getdata(out[f"prob_{c.lower()}"])[classified]
                             for c in clf.classes]).astype(np.float64)
    labels = np.char.upper(decode_strings(test["class"]))[classified]
    r = group_values(test, "r")[classified]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, proba=proba, labels=labels, r=r)
    return clf, proba, labels, r


def rule_sets(clf, proba, level):
    """Membership (n, n_classes) of each rule's sets at ``level``, by rule name."""
    sets = {}
    for score in SCORES:
        try:
            check_score(score, len(clf.classes), clf.name)
        except InvalidInputError:  # APS and RAPS need three classes
            continue
        cp = ConformalPredictor.from_classifier(clf, level, score=score, by="none")
        sets[score] = cp.predict_sets(proba)[0][:, :, 0]
    top = np.zeros_like(sets["lac"])
    top[np.arange(len(proba)), proba.argmax(axis=1)] = True
    sets[NEVER_EMPTY] = sets["lac"] | top
    return sets


def measures(sets, y, r_bin, n_classes):
    """Coverage (overall, per class, per r bin), mean size, empty and one-class shares."""
    covered = sets[np.arange(len(y)), y]
    size = sets.sum(axis=1)
    return {"coverage": covered.mean(),
            "per_class": [covered[y == k].mean() for k in range(n_classes)],
            "per_r": [covered[r_bin == b].mean() for b in range(4)],
            "mean_size": size.mean(), "empty": np.mean(size == 0),
            "single": np.mean(size == 1)}


def rst_table(header, rows):
    """An RST simple table."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    rule = "  ".join("=" * w for w in widths)
    lines = [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths)), rule]
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    return "\n".join(line.rstrip() for line in lines + [rule])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep the held-out probabilities here")
    args = parser.parse_args(argv)

    def pct(x):
        return f"{100 * x:.1f}"

    models, per_level = [], {level: [] for level in LEVELS}
    for name in MODELS:
        clf, proba, labels, r = held_out(name, args.data_dir, args.cache_dir)
        classes = list(clf.classes)
        y = np.array([classes.index(label) for label in labels])
        right = proba.argmax(axis=1) == y
        edges = np.quantile(r[np.isfinite(r)], [0.25, 0.5, 0.75])
        r_bin = np.where(np.isfinite(r), np.searchsorted(edges, r), -1)
        lac_90 = rule_sets(clf, proba, 0.9)["lac"].sum(axis=1)
        models.append((name, len(y), "/".join(c[0] for c in classes), pct(right.mean()),
                       " ".join(f"{e:.2f}" for e in edges),
                       pct(right[lac_90 == 0].mean()), pct(right[lac_90 == 1].mean())))
        for level in LEVELS:
            for rule, sets in rule_sets(clf, proba, level).items():
                m = measures(sets, y, r_bin, len(classes))
                per_level[level].append(
                    (name, rule, pct(m["coverage"]), " / ".join(pct(c) for c in m["per_class"]),
                     " ".join(pct(c) for c in m["per_r"]), f"{m['mean_size']:.3f}",
                     pct(m["empty"]), pct(m["single"])))

    print("Held-out rows (recipe test split), top-1 accuracy (%), inner r-quartile edges, "
          "and top-1 accuracy (%) of rows whose 90% lac set is empty / has one class:\n")
    print(rst_table(("model", "rows", "classes", "accuracy", "r quartile edges",
                     "right | empty", "right | single"), models))
    for level in LEVELS:
        print(f"\nConfidence {level:g}: coverage (%), per true class, per r quartile (bright "
              "to faint); mean set size; empty and one-class sets (%):\n")
        print(rst_table(("model", "rule", "coverage", "per class", "per r quartile",
                         "mean size", "empty", "single"), per_level[level]))


if __name__ == "__main__":
    main()
