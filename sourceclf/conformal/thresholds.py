"""Conformity thresholds files: computed with MAPIE once, stored beside the model.

A model directory's ``thresholds.json`` holds the conformal thresholds MAPIE
computes from the model's calibration split, for every conformity score the
model allows, marginal and class-conditional calibration (and the card's
default grouping) and each level of `LEVELS`, so that prediction sets at
those settings need numpy alone; and the same for each of its calibration
tables of flagged rows (the card's ``flag_calibrations``), under
``flag_entries`` with each table's fingerprint.  The card's ``extra['conformal_thresholds']``
names the file and its sha256; the file records the fingerprint of the
calibration data it was computed from (`calibration_fingerprint`) and is
ignored for any other.  Settings not in the file are computed with MAPIE
when first asked for and kept for the rest of the process.

Regenerate the files of the shipped models (after a model's calibration data
changed) with::

    python -m sourceclf.conformal.thresholds --all

or those of one model directory with ``python -m sourceclf.conformal.thresholds DIR``.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

from ..exceptions import InvalidInputError, SourceclfError, SourceclfWarning
from ..models.card import (ModelCard, read_calibration, read_flag_calibrations,
                           sha256_file)
from ..models.registry import MODEL_DIR, model_names
from ..utils._files import atomic_path
from ..utils._validation import check_by
from .predictor import ConformalPredictor
from .scores import SCORES, check_score
from .threshold_store import (CARD_KEY, FORMAT_VERSION, THRESHOLDS_FILE,
                              calibration_fingerprint, threshold_key)

__all__ = ["LEVELS", "write_thresholds", "main"]

#: Confidence levels whose thresholds a thresholds file holds.
LEVELS = (0.5, 0.68, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99)


def write_thresholds(directory, *, levels=LEVELS, random_state=0):
    """Compute a model directory's conformity thresholds with MAPIE and store them.

    Writes ``thresholds.json`` into the directory and records its name and
    sha256 in the card (``card.json``'s ``extra['conformal_thresholds']``;
    nothing else in the card changes).  Settings MAPIE refuses (too few
    calibration rows of a class for a level, say) are left out: asking for
    them gives MAPIE's error at classification time, as before.

    Parameters
    ----------
    directory : path-like
        A model directory (``card.json`` and a calibration file), e.g. one
        written by ``SourceClassifier.save``.
    levels : sequence of float
        Confidence levels.
    random_state : int
        Seed of the randomised scores, as `sourceclf.classify` passes it
        (its default is 0).

    Returns
    -------
    path : `pathlib.Path`
        The thresholds file.

    Raises
    ------
    InvalidInputError
        If the directory is not a model directory with calibration data, or a
        calibration file (its own, or of flagged rows) cannot be read.
    ModelIntegrityError
        If a calibration file does not match the card's digest (read as
        `~sourceclf.models.load_model` reads it).
    """
    directory = Path(directory)
    card = ModelCard.from_directory(directory)
    if not card.calibration_file:
        raise InvalidInputError(f"model '{card.name}' has no calibration data: no thresholds "
                                "to compute")
    calibration = read_calibration(directory, card)
    classes = tuple(card.classes)
    data = {"format": FORMAT_VERSION, "model": card.name, "classes": list(classes),
            "calibration_sha256": calibration_fingerprint(calibration, classes),
            "entries": _entries(calibration, card, levels, random_state,
                                f"model '{card.name}'")}
    flag_tables = read_flag_calibrations(directory, card)
    if flag_tables:
        data["flag_entries"] = {
            flag: {"calibration_sha256": calibration_fingerprint(table, classes),
                   "entries": _entries(table, card, levels, random_state,
                                       f"model '{card.name}' ({flag} rows)")}
            for flag, table in flag_tables.items()}
    path = directory / THRESHOLDS_FILE
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=0, sort_keys=True)
            fh.write("\n")
    card_path = directory / "card.json"
    with open(card_path, encoding="utf-8") as fh:
        raw = json.load(fh)
    raw.setdefault("extra", {})[CARD_KEY] = {"file": THRESHOLDS_FILE,
                                             "sha256": sha256_file(path)}
    with atomic_path(card_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(raw, fh, indent=2, sort_keys=False)
            fh.write("\n")
    return path


def _entries(calibration, card, levels, random_state, name):
    """Key -> thresholds state of a calibration table, for every score the model allows,
    marginal and class-conditional calibration (and the card's default grouping) and each
    level; settings MAPIE refuses are left out."""
    classes = tuple(card.classes)
    extra = card.extra or {}
    groupings = [None, "class"]
    default_by = check_by(extra.get("conformal_by"))
    if default_by is not None and default_by.lower() != "class":
        groupings.append(default_by)
    entries = {}
    for score in SCORES:
        try:
            check_score(score, len(classes))
        except InvalidInputError:
            continue
        for by in groupings:
            bins = extra.get("conformal_bins") if by is not None and by == default_by else None
            for level in levels:
                key = threshold_key(score, by, bins, [level], random_state)
                cp = ConformalPredictor(classes, level, score=score, by=by, bins=bins,
                                        random_state=random_state, name=name)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", SourceclfWarning)
                    try:
                        cp.fit_table(calibration)
                    except InvalidInputError:
                        continue
                state = cp.state()
                state["warnings"] = [str(w.message) for w in caught
                                     if issubclass(w.category, SourceclfWarning)]
                entries[key] = state
    return entries


def main(argv=None):
    """Command line: ``python -m sourceclf.conformal.thresholds (--all | DIR ...)``."""
    parser = argparse.ArgumentParser(
        prog="python -m sourceclf.conformal.thresholds",
        description="Compute models' conformity thresholds with MAPIE from their stored "
                    "calibration data and write them beside the model (thresholds.json).")
    parser.add_argument("directories", nargs="*", help="model directories")
    parser.add_argument("--all", action="store_true",
                        help=f"every shipped model (in {MODEL_DIR})")
    args = parser.parse_args(argv)
    targets = [Path(d) for d in args.directories]
    if args.all:
        targets += [MODEL_DIR / name for name in model_names()]
    if not targets:
        parser.error("give model directories or --all")
    try:
        for directory in targets:
            path = write_thresholds(directory)
            with open(path, encoding="utf-8") as fh:
                n = len(json.load(fh)["entries"])
            print(f"{path}: {n} threshold sets")
    except SourceclfError as exc:
        print(f"{parser.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
