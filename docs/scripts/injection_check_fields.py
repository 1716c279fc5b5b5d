"""Does `sourceclf.injection_check` tell the fields a model fails on from those it does not?

For every shared SDSS field, at its own seeing and blurred to an r-band FWHM
of 1.6", 1.9" and 2.2" (as ``check_fields.py`` blurs them, same seeds), run
`sourceclf.injection_check` on the frames as a user would (150 sources of the
bundled population, its own seed, the PSF measured on the frames given) and
print its balanced accuracy, its 90% sets' coverage and whether it warns
(below `sourceclf.injection_check.RELIABLE_BALANCED`), next to what
``check_fields.py --record`` measured for the same model, field and seeing on
the field's own sources (``own``) and on its own injected sources
(``check_fields --inject``: another population draw and other positions).
``--record`` writes the rows to ``docs/reports/injection_check_fields.json``;
``--from-record`` prints the table of docs/images.rst from it.  ``--seeds K``
instead runs the check with seeds 0 to K-1 (``--n`` sources each) on the
fields named, at the native seeing and at ``--seeing``, and prints the mean
and scatter of its balanced accuracy (how much one check's figure moves
from one draw of sources and positions to another) next to the range of
the standard error each check gives itself (`InjectionCheck.balanced_se`).

Run from the repository root (about 5-10 minutes per model on two CPU cores)::

    python docs/scripts/injection_check_fields.py [--data ../shared/data] [--models A,B]
"""

import argparse
import functools
import json
import statistics
import time
import warnings
from pathlib import Path

from check_fields import (SEEINGS, SHARED_DATA, blurred, each_field, find_fields, no_fields_message,
                          nothing_recorded, read_field, recorded, simple_table, skipped_note)

from sourceclf.exceptions import InvalidInputError
from sourceclf.injection_check import RELIABLE_BALANCED, injection_check

RECORD = Path(__file__).resolve().parents[1] / "reports" / "injection_check_fields.json"
MODELS = ("margnet-sgq", "margnet-cnn-sgq", "margformer-sgq")
#: The check's seed: neither ``check_fields.py --inject``'s placements nor the bundled draw's.
SEED = 11


def _recorded_balanced(models):
    """``{(model, field, seeing): (own, injected)}`` balanced accuracies from the cards."""
    out = {}
    for injected in (False, True):
        for field, seeing, model, balanced, _ in recorded(models, injected):
            out.setdefault((model, field, seeing), [None, None])[int(injected)] = balanced
    return out


def check_field(field, models, log):
    """The check's rows for one field, every seeing and model."""
    name, native, psf = read_field(field)
    rows = []
    for seeing in SEEINGS:
        frames = blurred(native, psf, seeing)
        for model in models:
            t0 = time.time()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    check = injection_check(frames, model=model, random_state=SEED, device="cpu")
            except InvalidInputError as exc:
                log(f"{name} {seeing}: {model}: no check: {exc}")
                rows.append({"field": name, "target_r_fwhm": seeing, "model": model,
                             "error": str(exc)})
                continue
            row = {"field": name, "target_r_fwhm": seeing, "model": model,
                   "balanced": round(check.balanced, 3),
                   "point_as_star_or_qso": round(check.point_as_star_or_qso, 3),
                   "extended_as_galaxy": round(check.extended_as_galaxy, 3),
                   "set_coverage": round(check.set_coverage, 3), "warns": not check.reliable}
            rows.append(row)
            log(f"{name} {seeing or 'native'} {model}: balanced {row['balanced']:.3f} "
                f"sets {row['set_coverage']:.3f} warns {row['warns']} "
                f"[{time.time() - t0:.0f} s]")
    return rows


def table(rows, models):
    """The rst table: the check next to the cards' own and injected scores."""
    cards = _recorded_balanced(models)
    lines = []
    for row in sorted(rows, key=lambda row: _order(row, models)):
        seeing = row["target_r_fwhm"]
        own, injected = cards.get((row["model"], row["field"], seeing), (None, None))
        lines.append((row["field"], "native" if seeing is None else f"{seeing}", row["model"],
                      fmt(row.get("balanced")), fmt(row.get("set_coverage")),
                      "error" if "error" in row else ("yes" if row["warns"] else "no"),
                      fmt(own), fmt(injected)))
    return simple_table(("Field", "r FWHM", "Model", "check", "sets", "warns", "own",
                         "injected"), lines)


def _order(row, models):
    """A row's place: by model (as ``models`` names them), field, then seeing, whatever
    order the runs were recorded in."""
    rank = list(models).index(row["model"]) if row["model"] in models else len(models)
    return rank, row["model"], row["field"], SEEINGS.index(row["target_r_fwhm"])


def fmt(value):
    """Two decimals, or '-' for no value."""
    return "-" if value is None else f"{value:.2f}"


def agreement(rows, models):
    """How often the check warns where the field's own and injected scores fall short."""
    cards = _recorded_balanced(models)
    counts = {}
    for row in rows:
        if "error" in row:
            continue
        own, injected = cards.get((row["model"], row["field"], row["target_r_fwhm"]),
                                  (None, None))
        for kind, value in (("own", own), ("injected", injected)):
            if value is None:
                continue
            key = (kind, value < RELIABLE_BALANCED, row["warns"])
            counts[key] = counts.get(key, 0) + 1
    lines = []
    for kind in ("own", "injected"):
        low = [counts.get((kind, True, w), 0) for w in (True, False)]
        high = [counts.get((kind, False, w), 0) for w in (True, False)]
        lines.append(f"{kind} sources below {RELIABLE_BALANCED}: check warned on {low[0]} of "
                     f"{sum(low)} runs; at or above: warned on {high[0]} of {sum(high)}")
    return lines


def spread(field, seeing, models, seeds, n, log):
    """Mean and scatter of the check's balanced accuracy over ``seeds`` draws."""
    name, native, psf = read_field(field)
    for target in (None, seeing):
        frames = blurred(native, psf, target)
        for model in models:
            values, errors = [], []
            for seed in range(seeds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    check = injection_check(frames, model=model, n=n, random_state=seed,
                                            device="cpu")
                values.append(check.balanced)
                errors.append(check.balanced_se)
            log(f"{name} {target or 'native'} {model}, {n} sources, seeds 0-{seeds - 1}: "
                f"balanced {min(values):.3f}-{max(values):.3f}, mean {sum(values) / seeds:.3f}, "
                f"scatter {statistics.stdev(values):.3f}; the check's own standard error "
                f"{min(errors):.3f}-{max(errors):.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SHARED_DATA)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--record", action="store_true", help=f"write the rows to {RECORD}")
    parser.add_argument("--from-record", action="store_true",
                        help="print the table from the record, running nothing")
    parser.add_argument("--seeds", type=int, help="the check's scatter over this many seeds")
    parser.add_argument("--n", type=int, default=150, help="with --seeds: sources per check")
    parser.add_argument("--seeing", type=float, default=1.6, help="with --seeds: the blur")
    parser.add_argument("fields", nargs="*", help="fields, run-camcol-field (default: all "
                        "under --data, found by SDSS's frame file names: check_fields.py)")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    log = functools.partial(print, flush=True)
    fields = {} if args.from_record else find_fields(args.data, args.fields, log)
    if not fields and not args.from_record:
        parser.error(no_fields_message(args.data))
    if args.seeds:
        skipped = each_field(fields, lambda field: spread(field, args.seeing, models,
                                                          args.seeds, args.n, log), log)
        print(skipped_note(skipped, fields))
        return
    if args.from_record:
        rows = [r for r in json.loads(RECORD.read_text())["rows"] if r["model"] in models]
    else:
        rows = []
        skipped = each_field(fields, lambda field: rows.extend(check_field(field, models, log)),
                             log)
        if args.record and not skipped:
            old = json.loads(RECORD.read_text())["rows"] if RECORD.exists() else []
            checked = {r["field"] for r in rows}  # other fields' rows stay
            keep = [r for r in old if r["model"] not in models or r["field"] not in checked]
            recorded_rows = sorted(keep + rows, key=lambda row: _order(row, MODELS))
            RECORD.write_text(json.dumps({"rows": recorded_rows}, indent=1) + "\n")
    print(table(rows, models))
    for line in agreement(rows, models):
        print(line)
    if not args.from_record and skipped:
        print(skipped_note(skipped, fields))
        if args.record:
            parser.exit(1, nothing_recorded(skipped) + "\n")


if __name__ == "__main__":
    main()
