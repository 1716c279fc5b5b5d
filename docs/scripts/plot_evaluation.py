"""The evaluation plots of the tutorial in ``docs/conformal.rst`` ("Checking a model").

Classifies a synthetic SDSS-like catalog (`sourceclf.demo.demo_catalog`, whose
true classes are known) with ``margnet-photometry-sg`` at 80% and 90%
confidence, evaluates it with `sourceclf.evaluate` and writes
``docs/_static/evaluation_coverage.png``, ``evaluation_reliability.png`` and
``evaluation_confusion.png``; prints the numbers quoted there.  Needs no data
beyond the package.  Run from the repository root::

    python docs/scripts/plot_evaluation.py [--rows 4000] [--min-count 30]
"""

import argparse
from pathlib import Path

from sourceclf import classify, evaluate
from sourceclf.demo import demo_catalog

MODEL = "margnet-photometry-sg"
STATIC = Path(__file__).resolve().parents[1] / "_static"


def main(argv=None):
    """Make the three figures and print the summary; returns the `EvaluationResult`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--min-count", type=int, default=30)
    parser.add_argument("--output-dir", type=Path, default=STATIC)
    args = parser.parse_args(argv)

    catalog = demo_catalog(args.rows, random_state=11)
    result = evaluate(classify(catalog, model=MODEL, confidence=[0.8, 0.9]),
                      min_count=args.min_count)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    result.plot_coverage(path=args.output_dir / "evaluation_coverage.png",
                         title=f"{MODEL} on {args.rows} demo sources")
    result.plot_reliability(path=args.output_dir / "evaluation_reliability.png")
    result.plot_confusion_matrix(path=args.output_dir / "evaluation_confusion.png")

    print(result)
    bins = result.per_bin[result.per_bin["level"] == 0.9]
    print(f"{len(bins)} dered_r bins at 0.9; sources per bin {min(bins['n'])}-{max(bins['n'])}; "
          f"bins under min_count={args.min_count}: {int((bins['n'] < args.min_count).sum())}")
    for row in bins:
        print(f"  {row['mag_lo']:.1f}-{row['mag_hi']:.1f}: n={row['n']:4d} "
              f"coverage={row['coverage']:.3f} size={row['mean_set_size']:.2f}")
    return result


if __name__ == "__main__":
    main()
