"""Prediction sets for the rows flagged ``confused``, calibrated on rows like them.

An image model's conformal sets are calibrated on the held-out split of its
simulated training stamps, which hold at most two neighbours: rows flagged
``confused`` (`sourceclf.crowding.confusion_flags`: light that no fitted
source accounts for, as bright around the source as the source itself) are
few among them, and the model is right on far fewer of such rows.  Their
sets would cover them less often than the confidence level says.

This recipe gives each shipped image model a calibration table of its own
for those rows (the card's ``flag_calibrations['confused']``, read by
`sourceclf.conformal.add_prediction_sets`):

1. the held-out calibration split (`sourceclf.recipes.data.recipe_split`,
   seed 42) of simulation version `SIMULATION_VERSION`
   (`~sourceclf.recipes.image_training_set.SIMULATIONS`: the shipped models'
   version 9 with a third of its fields crowded), which no shipped model
   learnt from;
2. every row measured on its stamps with all their neighbours, as
   ``classify`` measures a frame's sources
   (`~sourceclf.recipes.measured_columns.measure_with_neighbours`), which
   gives MargNet's columns and ``unmodelled_<b>``;
3. the rows that measurement flags ``confused``, with the model's
   probabilities on them (its inputs as ``classify`` gives them: the
   measured columns, or the simulated fields' PSF, and the stamps).

Run it from the repository root (it renders simulation 10 once, about 30
minutes on two cores, cached; then about 15 minutes)::

    python -m sourceclf.recipes.flag_calibration [MODEL ...] [--data-dir ../shared/data]
                                                 [--output-dir DIR]

Without ``--output-dir`` the installed models' directories get the table
and their cards the entry (their weights, calibration and thresholds are
left as they are).
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from ..conformal.thresholds import write_thresholds
from ..crowding import FLAG_CONFUSED, confusion_flags
from ..exceptions import InvalidInputError, SourceclfError
from ..features import get_feature_set
from ..models import load_model
from ..models.card import write_flag_calibrations
from ..models.registry import MODEL_DIR
from ..training.calibration import calibration_table
from .data import recipe_split
from .image_training_set import psf_columns, simulated_training_set
from .measured_columns import measure_with_neighbours

__all__ = ["SIMULATION_VERSION", "IMAGE_MODELS", "MIN_ROWS", "model_features",
           "flagged_calibration", "calibrate_confused", "main"]

#: The simulation whose crowded fields give the ``confused`` rows.
SIMULATION_VERSION = 10
#: The shipped image models this recipe calibrates by default.
IMAGE_MODELS = ("margnet-sgq", "margnet-cnn-sgq", "margformer-sgq", "bayesian-margnet-sgq",
                "bayesian-margformer-sgq")

_COMMAND = "python -m sourceclf.recipes.flag_calibration"

#: Fewest flagged rows calibrated on: what the magnitude-binned sets take per bin at 90%
#: (`sourceclf.conformal.bin_rule_min_count`), so that the flagged rows' coverage at
#: 90% is known to 1.5 percentage points.
MIN_ROWS = 400


def model_features(clf, measured, psf):
    """A model's feature matrix for simulated rows, as ``classify`` gives it on a frame.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        An image model.
    measured : `~astropy.table.Table`
        The rows measured with their neighbours (`measure_with_neighbours`).
    psf : `~astropy.table.Table`
        The same rows' PSF as a model reading it trains with
        (`~sourceclf.recipes.image_training_set.psf_columns`: the FWHM and
        the Moffat index a frame's stars give).

    Returns
    -------
    features : `numpy.ndarray` or None
        MargNet's columns as measured, for a model reading them; the PSF for
        one reading it; None for a model reading the stamps alone.
    """
    if clf.feature_set is None:
        return None
    spec = get_feature_set(clf.feature_set)
    return spec.compute(psf if spec.reads_image_psf else measured).values


def flagged_calibration(clf, measured, psf, stamps, flagged):
    """A model's calibration table of the flagged rows.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        An image model.
    measured, psf : `~astropy.table.Table`
        The rows measured with their neighbours (with their ``class``) and
        their PSF (`model_features`).
    stamps : `numpy.ndarray`
        Their stamps.
    flagged : array-like of bool
        The rows to keep.

    Returns
    -------
    calibration : `~astropy.table.Table`
        As `sourceclf.training.calibration_table`: ``label``,
        ``prob_<class>`` and the rows' ``r`` and ``dered_r`` as measured.

    Raises
    ------
    InvalidInputError
        If a row's class is not one of the model's.
    """
    rows = np.flatnonzero(np.asarray(flagged, dtype=bool))
    labels = np.char.upper(np.asarray(measured["class"]).astype(str))[rows]
    lookup = {c: k for k, c in enumerate(clf.classes)}
    unknown = sorted(set(labels.tolist()) - set(lookup))
    if unknown:
        raise InvalidInputError(f"model '{clf.name}' has no class {', '.join(unknown)}")
    y = np.array([lookup[c] for c in labels], dtype=np.int64)
    features = model_features(clf, measured[rows], psf[rows])
    return calibration_table(clf, measured[rows], features, y, stamps[rows])


def calibrate_confused(models=IMAGE_MODELS, *, data_dir=None, cache_dir=None, jobs=1,
                       output_dir=None, n=None, random_state=None, min_rows=MIN_ROWS,
                       log=print):
    """Give image models a calibration table for their rows flagged ``confused``.

    Parameters
    ----------
    models : sequence of str
        Model names or directories.
    data_dir : path-like, optional
        The shared data the simulation is drawn from (`simulated_training_set`).
    cache_dir : path-like, optional
        Cache of the rendered simulation.
    jobs : int
        Processes rendering the simulation.
    output_dir : path-like, optional
        Where to write each model, copied from where it was loaded, with the
        table; default: into the directory it was loaded from.
    n, random_state : int, optional
        A smaller simulation than the recipe's (`simulated_training_set`'s;
        for tests).
    min_rows : int
        Fewest flagged rows to calibrate on (`MIN_ROWS`).
    log : callable
        Where progress goes.

    Returns
    -------
    directories : list of `pathlib.Path`
        The model directories written.

    Raises
    ------
    InvalidInputError
        If fewer than ``min_rows`` rows are flagged (nothing is written).
    """
    loaded = [load_model(name) for name in models]
    t0 = time.perf_counter()
    table, stamps = simulated_training_set(n, random_state=random_state, data_dir=data_dir,
                                           cache_dir=cache_dir, jobs=jobs,
                                           version=SIMULATION_VERSION)
    rows = np.asarray(recipe_split(table)["calibration"])
    # drawn again from the whole simulation's fields, as simulated_training_set drew them
    psf = psf_columns(table, None if random_state is None else int(random_state) + 1)[rows]
    table, stamps = table[rows], stamps[rows]
    measured = measure_with_neighbours(table, stamps)
    flagged = confusion_flags(measured)[1]
    crowded = np.asarray(table["crowded_field"], dtype=bool)
    log(f"simulation {SIMULATION_VERSION}, calibration split: {len(table)} rows measured with "
        f"their neighbours in {time.perf_counter() - t0:.0f} s; {int(flagged.sum())} flagged "
        f"{FLAG_CONFUSED} ({int((flagged & crowded).sum())} of the {int(crowded.sum())} in "
        f"crowded fields, {int((flagged & ~crowded).sum())} of the {int((~crowded).sum())} "
        "others)")
    if flagged.sum() < min_rows:
        raise InvalidInputError(f"only {int(flagged.sum())} calibration rows are flagged "
                                f"{FLAG_CONFUSED}; at least {min_rows} are needed")
    description = (f"the rows flagged {FLAG_CONFUSED} (sourceclf.crowding.confusion_flags) "
                   f"among the held-out calibration split (recipe_split, seed 42) of "
                   f"simulation version {SIMULATION_VERSION} (version 9 with a third of its "
                   "fields crowded), each row measured with all its neighbours as classify "
                   f"measures a frame: {int(flagged.sum())} of {len(table)} ({_COMMAND})")
    written = []
    for clf in loaded:
        source = clf.directory if clf.directory is not None else MODEL_DIR / clf.name
        target = source if output_dir is None else Path(output_dir) / clf.name
        if target != source:
            shutil.copytree(source, target, dirs_exist_ok=True)
        own = flagged_calibration(clf, measured, psf, stamps, flagged)
        clf.card.flag_calibrations[FLAG_CONFUSED] = {"description": description}
        write_flag_calibrations(target, clf.card, {FLAG_CONFUSED: own})
        clf.card.to_json(target / "card.json")
        write_thresholds(target)  # the table's thresholds stored with the model's
        log(f"{clf.name}: {len(own)} rows -> {target}")
        written.append(target)
    return written


def main(argv=None):
    """Command line: ``python -m sourceclf.recipes.flag_calibration``."""
    parser = argparse.ArgumentParser(prog=_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(IMAGE_MODELS),
                        help="model names or directories (default: the shipped image models)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the shared data folder the simulation is drawn from")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache of the rendered simulation")
    parser.add_argument("--jobs", type=int, default=2, help="processes rendering it")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="write the models there instead of into their directories")
    args = parser.parse_args(argv)
    try:
        calibrate_confused(args.models or IMAGE_MODELS, data_dir=args.data_dir,
                           cache_dir=args.cache_dir, jobs=args.jobs,
                           output_dir=args.output_dir)
    except (SourceclfError, OSError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
