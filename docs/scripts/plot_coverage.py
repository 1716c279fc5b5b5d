"""Coverage of margnet-photometry-sg's prediction sets against magnitude.

Makes ``docs/_static/coverage_vs_magnitude.png`` for ``docs/conformal.rst`` and
prints the numbers quoted there.  Run from the repository root::

    python docs/scripts/plot_coverage.py [--data-dir ../shared/data]

Only rows that ``margnet-photometry-sg`` never trained on are used: its
recipe's calibration and test splits of the faint compact SDSS DR16 table.

1. Shipped calibration: coverage of the recipe's test split at 80/90/95%.
2. Recalibration: `sourceclf.calibrate` (``by='r'``) on a random half of the
   test split, coverage of the other half in every r bin.
3. Magnitude shift (the figure): the unseen rows are cut into dered_r strata;
   90% of the brightest stratum's rows, 70%, 35% and 15% of the fainter ones'
   go to a calibration set, the others are classified; marginal and Mondrian
   (``by='dered_r'``, bins = strata) sets at 90%.
4. ``bayesian-margnet-photometry-sg`` on the test split: Monte Carlo (50
   passes) against posterior-mean probabilities, and the coverage of both at 90%.
"""

import argparse
import warnings
from pathlib import Path

import numpy as np

from sourceclf import calibrate, classify, evaluate
from sourceclf.conformal import ConformalPredictor, set_membership
from sourceclf.models import load_model
from sourceclf.plotting import plot_coverage_vs_magnitude
from sourceclf.train_recipes import read_recipe_table, recipe_split

MODEL = "margnet-photometry-sg"
OUTPUT = Path(__file__).resolve().parents[1] / "_static" / "coverage_vs_magnitude.png"


#: dered_r strata and the fraction of each stratum sent to the calibration set
#: (the same experiment as tests/test_conformal.py::test_mondrian_repairs_a_magnitude_shift).
SHIFT_EDGES = (20.5, 21.0, 21.5)
SHIFT_TO_CALIBRATION = (0.9, 0.7, 0.35, 0.15)


def magnitude_shift(table, seed=0):
    """Bright-heavy calibration rows and faint-heavy test rows, exchangeable per stratum."""
    mag = np.asarray(table["dered_r"])
    stratum = np.searchsorted(SHIFT_EDGES, mag, side="right")
    to_cal = np.random.default_rng(seed).random(len(mag)) < \
        np.asarray(SHIFT_TO_CALIBRATION)[stratum]
    return np.flatnonzero(to_cal), np.flatnonzero(~to_cal)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    table = read_recipe_table(MODEL, args.data_dir)
    parts = recipe_split(table)
    clf = load_model(MODEL)
    test = table[parts["test"]]

    print(f"1. shipped calibration ({len(clf.calibration)} rows), recipe test split "
          f"({len(test)} rows):")
    report = evaluate(classify(test, model=clf, confidence=[0.8, 0.9, 0.95]))
    for row in report.summary:
        print(f"   {row['level']:.2f}: coverage {row['coverage']:.4f} +- "
              f"{row['coverage_err']:.4f}, mean size {row['mean_set_size']:.3f}, "
              f"empty {row['empty_fraction']:.3f}")
    print(f"   accuracy {report.summary['accuracy'][0]:.4f}")

    rng = np.random.default_rng(42)
    order = rng.permutation(len(test))
    half_a, half_b = test[order[: len(test) // 2]], test[order[len(test) // 2:]]
    recal = calibrate(half_a, model=clf, by="r", source="half of the recipe test split")
    out = classify(half_b, model=recal, confidence=0.9)
    fitted = ConformalPredictor.from_classifier(recal, 0.9)
    edges = np.concatenate([[-np.inf], fitted.bin_edges_, [np.inf]])
    print(f"2. recalibrated on {len(half_a)} rows by r, other {len(half_b)} rows, 90%:")
    groups = np.asarray(out["pred_set_group"])
    truth = np.asarray(half_b["class"])
    member = set_membership(out)
    covered = member[np.arange(len(truth)), np.searchsorted(recal.classes, truth)]
    size = np.asarray(out["pred_set_size"])
    for k in range(len(edges) - 1):
        m = groups == k
        cov = covered[m].mean()
        print(f"   r {edges[k]:7.3f} - {edges[k + 1]:7.3f}: n={m.sum():4d} "
              f"(calibration {fitted.group_counts_[k]}), coverage {cov:.4f} "
              f"+- {np.sqrt(cov * (1 - cov) / m.sum()):.4f}, mean size {size[m].mean():.3f}")
    assert (groups >= 0).all()

    unseen = table[np.concatenate([parts["calibration"], parts["test"]])]
    cal_rows, test_rows = magnitude_shift(unseen)
    cal, shifted = unseen[cal_rows], unseen[test_rows]
    marginal = calibrate(cal, model=clf, source="bright-heavy unseen rows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the faint strata have fewer than 400 rows
        mondrian = calibrate(cal, model=clf, by="dered_r", bins=SHIFT_EDGES,
                             source="bright-heavy unseen rows")
        counts = ConformalPredictor.from_classifier(mondrian, 0.9).group_counts_
    lo = np.floor(np.min(unseen["dered_r"]) * 10) / 10
    hi = np.ceil(np.max(unseen["dered_r"]) * 10) / 10
    mag_bins = np.concatenate([[lo], SHIFT_EDGES, [hi]])
    results = {}
    for name, model in (("marginal", marginal), ("Mondrian by dered_r", mondrian)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = classify(shifted, model=model, confidence=0.9)
        results[name] = evaluate(out, mag_column="dered_r", bins=mag_bins)
    print(f"   calibration rows per stratum: {counts.tolist()}")
    print(f"3. magnitude shift: calibration {len(cal)} rows (median dered_r "
          f"{np.median(cal['dered_r']):.2f}), classified {len(shifted)} rows (median "
          f"{np.median(shifted['dered_r']):.2f}), 90%:")
    for name, res in results.items():
        s = res.summary[0]
        print(f"   {name}: overall coverage {s['coverage']:.4f}, mean size "
              f"{s['mean_set_size']:.3f}")
        for row in res.per_bin:
            print(f"      dered_r {row['mag_lo']:.2f}-{row['mag_hi']:.2f}: n={row['n']:4d} "
                  f"coverage {row['coverage']:.4f} +- {row['coverage_err']:.4f} "
                  f"size {row['mean_set_size']:.3f}")
    fig = plot_coverage_vs_magnitude(
        results, title=f"{MODEL}, 90% sets: calibrated on bright-heavy rows, "
                       "applied to faint-heavy rows")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")

    bayes = load_model("bayesian-margnet-photometry-sg")
    mean = classify(test, model=bayes, confidence=0.9)
    mc = classify(test, model=bayes, confidence=0.9, mc_samples=50, random_state=0)
    diff = np.abs(np.asarray(mc["prob_star"]) - np.asarray(mean["prob_star"]))
    print(f"4. bayesian-margnet-photometry-sg, recipe test split ({len(test)} rows), 90%: "
          f"Monte Carlo (50 passes) vs posterior-mean probabilities differ by "
          f"{diff.mean():.4f} on average, {diff.max():.4f} at most; coverage "
          f"{evaluate(mean).summary['coverage'][0]:.4f} (posterior mean), "
          f"{evaluate(mc).summary['coverage'][0]:.4f} (mc_samples=50)")


if __name__ == "__main__":
    main()
