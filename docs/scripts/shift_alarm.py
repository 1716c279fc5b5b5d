"""The SDSS17 case: a model calibrated on bright DR14 objects, run on SDSS17.

Prints the figures quoted in ``docs/domains.rst`` ("When the sets stop
holding") and makes ``docs/_static/shift_alarm_sdss17.png``.  Run from the
repository root::

    python docs/scripts/shift_alarm.py [--data-dir ../shared/data]

1. A gradient-boosting model on the ``ugriz`` features is trained with
   `sourceclf.training.train_classical` on 6,000 rows of the bright DR14
   table (its calibration split: DR14 rows, like ``ugriz-sgq`` 1.0's).
2. It classifies 20,000 SDSS17 rows it never saw: accuracy, prediction-set
   coverage at 90% and the share of empty sets per r-magnitude bin, the
   ``out_of_domain`` count and the shift alarm.
3. `sourceclf.calibrate` recalibrates it on 500 other labelled SDSS17 rows
   (marginal sets); the same 20,000 rows again.
4. For comparison, held-out DR14 rows with the original calibration (no alarm).
"""

import argparse
import warnings
from pathlib import Path

import numpy as np

from sourceclf import calibrate, classify, evaluate
from sourceclf.exceptions import ShiftAlarmWarning
from sourceclf.recipes.data import default_data_dir, read_labelled_table
from sourceclf.training import train_classical

OUTPUT = Path(__file__).resolve().parents[1] / "_static" / "shift_alarm_sdss17.png"
R_BINS = [14, 16, 17, 18, 19, 20, 21, 22, 23.5]


def _run(table, model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ShiftAlarmWarning)
        out = classify(table, model=model, confidence=0.9)
    alarms = [str(w.message) for w in caught if issubclass(w.category, ShiftAlarmWarning)]
    return out, alarms


def _by_r(out):
    return evaluate(out, mag_column="r", bins=R_BINS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    dr14 = read_labelled_table(args.data_dir / "sdss_dr14_spectro_ugriz.fits")
    sdss17 = read_labelled_table(args.data_dir / "sdss17_ugriz_sgq.fits")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(dr14))
    model = train_classical(dr14[order[:6000]], model="gbdt", feature_set="ugriz",
                            search=False, random_state=0)
    rows = rng.permutation(len(sdss17))
    test, relabel = sdss17[rows[:20000]], sdss17[rows[20000:20500]]

    results = {}
    for label, clf, table in (("DR14 held-out, DR14 calibration", model, dr14[order[6000:]]),
                              ("SDSS17, DR14 calibration", model, test)):
        out, alarms = _run(table, clf)
        results[label] = (out, alarms)
    recalibrated = calibrate(relabel, model=model)
    results["SDSS17, recalibrated on 500 SDSS17 rows"] = _run(test, recalibrated)

    for label, (out, alarms) in results.items():
        report = _by_r(out)
        overall = report.summary[0]
        print(f"== {label}: {len(out)} rows")
        print(f"   accuracy {overall['accuracy']:.3f}, coverage at 0.9 "
              f"{overall['coverage']:.3f}, empty sets {overall['empty_fraction']:.1%}, "
              f"out_of_domain {out.meta.get('CLFNOOD', 0)}")
        print(f"   shift alarm: {alarms[0] if alarms else 'none'}")
        print("   r bin        n  accuracy  coverage  empty")
        for row in report.per_bin[report.per_bin["n"] > 0]:
            print(f"   {row['mag_lo']:5.1f}-{row['mag_hi']:<5.1f} {row['n']:5d}  "
                  f"{row['accuracy']:8.3f}  {row['coverage']:8.3f}  {row['empty_fraction']:5.1%}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, (out, _) in results.items():
        per_bin = _by_r(out).per_bin
        ax.errorbar(per_bin["mag_median"], per_bin["coverage"], yerr=per_bin["coverage_err"],
                    marker="o", capsize=2, label=label)
    ax.axhline(0.9, color="k", lw=0.8, ls=":")
    ax.set_xlabel("r (model magnitude)")
    ax.set_ylabel("coverage of the 90% sets")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
