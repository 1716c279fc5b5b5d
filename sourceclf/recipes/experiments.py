"""Running MargNet's experiments: data, training and testing of each model, command line.

`load_experiment_data` reads an experiment's tables (and cutouts),
`run_experiment` trains every model on the experiment's training split
(`sourceclf.datasets.split_experiment`) for several seeds and tests it on the
test split, giving an `~sourceclf.recipes.experiment_results.ExperimentResult`;
`main` is ``python -m sourceclf.experiments`` (see `sourceclf.experiments`).
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..augment import random_augment
from ..columns import decode_strings
from ..datasets import load_margnet, split_experiment
from ..exceptions import InvalidInputError, SourceclfError
from ..features import available_feature_sets, get_feature_set
from ..models.architectures import ARCHITECTURES, build_architecture
from ..models.base import TorchClassifier
from ..models.card import ModelCard
from ..models.classical import canonical_model_name
from ..training import classification_metrics, fit_classical, fitting, labels_from_table
from ..utils._threads import torch_threads
from .experiment_results import ExperimentResult

__all__ = ["TASK_CLASSES", "load_experiment_data", "run_experiment", "main"]

#: Class order of each task.
TASK_CLASSES = {"sg": ("GALAXY", "STAR"), "sgq": ("GALAXY", "QSO", "STAR")}

_TORCH_ALIASES = {"margnet": "margnet-ann"}
_SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def _read_table(path, label_column):
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"table '{path}' not found")
    try:
        table = Table.read(path)
    except Exception as exc:
        raise InvalidInputError(f"cannot read '{path}' as a table: {exc}") from None
    if label_column in table.colnames:
        table[label_column] = np.char.upper(decode_strings(table[label_column]))
    return table


def load_experiment_data(*, data=None, table=None, faint_table=None, experiment=1, task="sgq",
                         label_column="class", allow_pickle=False):
    """Read an experiment's tables (and cutouts).

    Parameters
    ----------
    data : path-like, optional
        A MargNet dataset directory (see `sourceclf.datasets.load_margnet`),
        giving features, labels and cutouts.  For experiment 3 the training
        rows are experiment 1's and the test rows experiment 3's arrays.
    table : path-like or `~astropy.table.Table`, optional
        A FITS / ECSV / ... catalog with a label column, instead of ``data``
        (no cutouts).
    faint_table : path-like or `~astropy.table.Table`, optional
        Experiment 3's faint test catalog, with ``table``.
    experiment : {1, 2, 3}
    task : {'sg', 'sgq'}
    label_column : str
        Column of the class labels.
    allow_pickle : bool
        Passed to `~sourceclf.datasets.load_margnet` (the published label
        arrays are pickled object arrays: only for files you trust).

    Returns
    -------
    data : dict
        ``table``, ``cutouts`` (or None), ``faint_table``, ``faint_cutouts``
        (experiment 3 only, else None) and ``source`` (text for the report).
    """
    if (data is None) == (table is None):
        raise InvalidInputError("give either a MargNet dataset directory (data) or a "
                                "table, not both or neither")
    out = {"cutouts": None, "faint_table": None, "faint_cutouts": None}
    if data is not None:
        train_exp = 1 if experiment == 3 else experiment
        out["table"], out["cutouts"] = load_margnet(data, experiment=train_exp, task=task,
                                                    allow_pickle=allow_pickle)
        if experiment == 3:
            out["faint_table"], out["faint_cutouts"] = load_margnet(
                data, experiment=3, task=task, allow_pickle=allow_pickle)
        out["source"] = f"MargNet dataset {Path(data)}"
        return out
    out["table"] = table if isinstance(table, Table) else _read_table(table, label_column)
    out["source"] = Path(table).name if not isinstance(table, Table) else "table"
    if faint_table is not None:
        if experiment != 3:
            raise InvalidInputError("a faint table is experiment 3's test set; "
                                    f"experiment {experiment} does not use one")
        out["faint_table"] = (faint_table if isinstance(faint_table, Table)
                              else _read_table(faint_table, label_column))
        if not isinstance(faint_table, Table):
            out["source"] += f" (test: {Path(faint_table).name})"
    elif experiment == 3:
        raise InvalidInputError("experiment 3 tests on a faint set: give a faint table")
    return out


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

def _labels(table, rows, classes, label_column):
    return labels_from_table(table[rows], label_column, classes)[1]


def _torch_spec(model):
    """(architecture name, architecture class) or (None, reason)."""
    arch = _TORCH_ALIASES.get(model, model)
    try:
        build_architecture(arch, None, check_only=True)
    except InvalidInputError:
        known = ", ".join(sorted(ARCHITECTURES))
        return None, (f"architecture '{arch}' is not registered in this sourceclf "
                      f"(registered: {known})")
    except ImportError as exc:
        return None, f"architecture '{arch}' cannot be imported: {exc}"
    return arch, ARCHITECTURES[arch]


def run_experiment(table, *, experiment=1, task="sgq", models=("dt", "rf", "gbdt", "margnet"),
                   cutouts=None, faint_table=None, faint_cutouts=None, feature_set=None,
                   seeds=(0,), split_seed=42, label_column="class", search=True,
                   search_once=True, param_grids=None, n_jobs=None, device="cpu",
                   epochs=100, patience=15, batch_size=512, lr=1e-3, configs=None,
                   compare_published=True, progress=None, log=None, settings=None):
    """Train and test models on one of MargNet's experiments.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Labelled catalog split by `sourceclf.datasets.split_experiment`
        (experiment 3: its training and validation rows).
    experiment : {1, 2, 3}
        Which split: 1 = 75/12.5/12.5 %, 2 = 80/10/10 %, 3 = experiment 1's
        training split of ``table``, tested on all of ``faint_table``.
    task : {'sg', 'sgq'}
        Star/galaxy (QSO rows dropped) or star/galaxy/quasar.
    models : sequence of str
        ``'dt'``, ``'rf'``, ``'gbdt'``, ``'xgboost'``, ``'margnet'`` or a
        registered architecture name (``'margformer'``, ``'margnet-cnn'``...).
    cutouts, faint_cutouts : array-like, optional
        (N, 5, H, W) stamps of ``table`` / ``faint_table`` rows, for image models.
    faint_table : `~astropy.table.Table`, optional
        Experiment 3's test set.
    feature_set : str, optional
        ``'margnet24'`` (default when the table has its columns) or ``'ugriz'``.
    seeds : sequence of int
        Model seeds; the split stays the same (``split_seed``).
    split_seed : int
        ``random_state`` of the split (42 in the published notebooks).
    label_column : str
        Column of the labels.
    search : bool
        Grid-search the classical models' hyper-parameters (3-fold CV on the
        training rows, scoring accuracy).
    search_once : bool
        Search with the first seed only and re-use its best parameters for
        the other seeds (much faster; the seeds then measure the variance
        of the fit, not of the search).
    param_grids : dict, optional
        Model -> grid, overriding `sourceclf.models.classical.PARAM_GRIDS`.
    n_jobs : int, optional
        Threads per classical estimator, and of torch on the CPU (on a busy
        machine 1 is often the fastest).
    device : str
        Torch device of the networks.
    epochs, patience, batch_size, lr
        Network training: maximum epochs, early-stopping patience on the
        validation loss, batch size and AdamW learning rate.
    configs : dict, optional
        Model -> extra architecture keyword arguments (e.g. a smaller width
        of an image model for CPU runs).
    compare_published : bool
        Show the published accuracies of the same experiment in the tables.
    progress : bool, optional
        Progress bars of the network training.
    log : callable, optional
        ``log(message)`` for progress messages (default: silent).
    settings : dict, optional
        Extra entries for ``ExperimentResult.settings`` (``source``, ``command``...).

    Returns
    -------
    result : `ExperimentResult`
    """
    log = log or (lambda message: None)
    if task not in TASK_CLASSES:
        raise InvalidInputError(f"task must be 'sg' or 'sgq', got {task!r}")
    classes = TASK_CLASSES[task]
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InvalidInputError("give at least one seed")
    models = [m.strip().lower() for m in models if m.strip()]
    if not models:
        raise InvalidInputError("give at least one model")
    parts = split_experiment(table, experiment=experiment, task=task, random_state=split_seed,
                             faint_table=faint_table, label_column=label_column)
    test_table = faint_table if experiment == 3 else table
    test_cutouts = faint_cutouts if experiment == 3 else cutouts

    if feature_set is None:
        usable = [f for f in available_feature_sets(table)
                  if test_table is table or f in available_feature_sets(test_table)]
        if not usable:
            get_feature_set("ugriz").compute(table)  # raises, listing what is missing
        feature_set = "margnet24" if "margnet24" in usable else usable[0]
    fs = get_feature_set(feature_set)
    fm = fs.compute(table)
    fm_test = fm if test_table is table else fs.compute(test_table)
    dropped = {}
    for split in _SPLITS:
        mat = fm_test if split == "test" else fm
        ok = mat.valid[parts[split]]
        dropped[split] = int((~ok).sum())
        parts[split] = parts[split][ok]
    x = {s: (fm_test if s == "test" else fm).values[parts[s]] for s in _SPLITS}
    y = {s: _labels(test_table if s == "test" else table, parts[s], classes, label_column)
         for s in _SPLITS}
    for s in ("train", "test"):
        missing = sorted(set(range(len(classes))) - set(np.unique(y[s]).tolist()))
        if missing:
            raise InvalidInputError(f"the {s} split has no rows of class "
                                    f"{', '.join(classes[m] for m in missing)}")
    notes = {1: "the published compact-set split, train/validation/test 75/12.5/12.5 %",
             2: "the published faint-set split, train/validation/test 80/10/10 %",
             3: "trained on experiment 1's split of the compact set, tested on all of "
                "the faint set"}
    result = ExperimentResult(experiment=experiment, task=task, classes=classes, settings={
        "feature_set": feature_set, "n_features": len(fs.names),
        "n_train": int(len(parts["train"])), "n_validation": int(len(parts["validation"])),
        "n_test": int(len(parts["test"])), "rows_dropped_missing_features": dropped,
        "split_seed": split_seed, "seeds": seeds, "experiment_note": notes[experiment],
        "compare_published": bool(compare_published),
        "classical_note": (("3-fold stratified grid search on accuracy ("
                            + ("first seed only, best parameters re-used" if search_once
                               else "every seed") + ")")
                           if search else "default parameters, no grid search"),
        "torch_note": (f"AdamW lr {lr}, batch {batch_size}, at most {epochs} epochs, early "
                       f"stopping on validation loss (patience {patience}), device {device}"),
        **(settings or {}),
    })
    param_grids = param_grids or {}
    configs = configs or {}

    for model in models:
        classical = canonical_model_name(model)
        if classical is not None:
            model = classical
            if model in result.models():
                continue
            best = None
            for k, seed in enumerate(seeds):
                do_search = search and (k == 0 or not search_once)
                log(f"{model}: seed {seed}" + (" (grid search)" if do_search else ""))
                try:
                    run = _run_classical(model, x, y, seed, search=do_search,
                                         param_grid=param_grids.get(model), params=best,
                                         n_jobs=n_jobs)
                except ImportError as exc:
                    result.skipped[model] = str(exc)
                    log(f"{model}: skipped: {exc}")
                    break
                if do_search and search_once:
                    best = run["info"].get("best_params")
                run["metrics"] = classification_metrics(y["test"], run.pop("pred"), classes)
                result.runs.append({"model": model, "seed": seed, **run})
            continue
        arch, spec = _torch_spec(model)
        if arch is None:
            result.skipped[model] = spec
            log(f"{model}: skipped: {spec}")
            continue
        uses_images = bool(getattr(spec, "uses_images", False))
        uses_features = bool(getattr(spec, "uses_features", True))
        if uses_images and (cutouts is None or test_cutouts is None):
            why = ("needs 5-band cutouts, which this data lacks (give --data with a MargNet "
                   "dataset directory holding the image arrays)")
            result.skipped[model] = why
            log(f"{model}: skipped: {why}")
            continue
        images = None
        if uses_images:
            images = {s: _stamps(test_cutouts if s == "test" else cutouts, parts[s])
                      for s in _SPLITS}
        for seed in seeds:
            log(f"{model}: seed {seed}")
            with torch_threads(n_jobs):
                run = _run_torch(arch, x if uses_features else None, y, images, seed,
                                 classes=classes, feature_set=feature_set,
                                 config=configs.get(model), device=device, epochs=epochs,
                                 patience=patience, batch_size=batch_size, lr=lr,
                                 progress=progress)
            run["metrics"] = classification_metrics(y["test"], run.pop("pred"), classes)
            result.runs.append({"model": model, "seed": seed, **run})
    return result


def _stamps(cutouts, rows):
    return np.asarray(cutouts[np.asarray(rows)], dtype=np.float32)


def _run_classical(model, x, y, seed, *, search, param_grid, params, n_jobs):
    t0 = time.perf_counter()
    estimator, info = fit_classical(model, x["train"], y["train"], search=search,
                                    param_grid=param_grid, params=params, random_state=seed,
                                    n_jobs=n_jobs)
    seconds = time.perf_counter() - t0
    proba = estimator.predict_proba(x["test"])
    pred = np.asarray(estimator.classes_)[proba.argmax(1)]
    val = float((estimator.predict(x["validation"]) == y["validation"]).mean()) \
        if len(y["validation"]) else float("nan")
    info.pop("cv_results", None)
    return {"pred": pred, "train_seconds": round(seconds, 2),
            "validation_accuracy": round(val, 5), "info": info}


def _run_torch(arch, x, y, images, seed, *, classes, feature_set, config, device,
               epochs, patience, batch_size, lr, progress):
    cfg = {"n_classes": len(classes), **(config or {})}
    if x is not None:
        cfg["n_features"] = x["train"].shape[1]
    module = fitting.build_network(arch, cfg, random_state=seed)

    def part(d, s):
        return None if d is None else d[s]

    t0 = time.perf_counter()
    # Every network is trained as one model on cross-entropy: a stacked ensemble
    # end to end, a Bayesian network without the ELBO.
    history = fitting.fit_network(
        module, part(x, "train"), y["train"], part(x, "validation"), y["validation"],
        images_train=part(images, "train"), images_val=part(images, "validation"),
        loss_fn=fitting.cross_entropy_loss, staged=False, fit_posterior=False,
        epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, device=device,
        random_state=seed, augment=None if images is None else random_augment,
        progress=progress)
    seconds = time.perf_counter() - t0
    card = ModelCard(name=arch, architecture=arch, config=cfg,
                     feature_set=None if x is None else feature_set,
                     uses_images=images is not None, classes=list(classes))
    clf = TorchClassifier(module, card)
    pred = clf.logits(part(x, "test"), part(images, "test"), device=device).argmax(1)
    return {"pred": pred, "train_seconds": round(seconds, 2),
            "validation_accuracy": round(float(history["val_accuracy"][history["best_epoch"]]),
                                         5),
            "info": {"architecture": arch, "config": cfg, "best_epoch": history["best_epoch"],
                     "epochs_run": len(history["val_loss"])}}


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def _int_list(text):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m sourceclf.experiments",
        description="Reproduce MargNet's experiments: train, test and tabulate models.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one experiment and write its report")
    src = run.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="MargNet dataset directory (features, labels, "
                     "objids and image arrays; see sourceclf.datasets.load_margnet)")
    src.add_argument("--table", type=Path, help="labelled catalog (FITS, ECSV, ...)")
    run.add_argument("--faint-table", type=Path, help="experiment 3's faint test catalog "
                     "(with --table)")
    run.add_argument("--experiment", type=int, choices=(1, 2, 3), required=True)
    run.add_argument("--task", choices=("sg", "sgq"), default="sgq")
    run.add_argument("--models", default="dt,rf,gbdt,margnet",
                     help="comma-separated: dt, rf, gbdt, xgboost, margnet, margformer, "
                          "margnet-cnn, or another registered architecture")
    run.add_argument("--feature-set", choices=("margnet24", "ugriz"), default=None,
                     help="photometric features (default margnet24 when the columns exist)")
    run.add_argument("--seeds", type=_int_list, default=[0], help="model seeds, e.g. 0,1,2")
    run.add_argument("--split-seed", type=int, default=42)
    run.add_argument("--label-column", default="class")
    run.add_argument("--no-search", action="store_true",
                     help="classical models with default parameters (no grid search)")
    run.add_argument("--search-every-seed", action="store_true",
                     help="grid-search for every seed, not only the first")
    run.add_argument("--n-jobs", type=int, default=None,
                     help="CPU threads per model (classical and torch); default all")
    run.add_argument("--device", default="cpu", help="torch device of the networks")
    run.add_argument("--epochs", type=int, default=100)
    run.add_argument("--patience", type=int, default=15)
    run.add_argument("--batch-size", type=int, default=512)
    run.add_argument("--lr", type=float, default=1e-3)
    run.add_argument("--config", default=None,
                     help='JSON of extra architecture arguments per model, e.g. '
                          '\'{"margformer": {"depth": 4}}\'')
    run.add_argument("--no-published", action="store_true",
                     help="leave the published accuracies out of the tables")
    run.add_argument("--allow-pickle", action="store_true",
                     help="let numpy unpickle the dataset's label arrays (trusted files only)")
    run.add_argument("--title", default=None, help="title of the report")
    run.add_argument("--note", default=None, help="a sentence about the data for the report")
    run.add_argument("--output", type=Path, default=Path("experiment-results"),
                     help="directory for results.md, results.rst, results.json, confusion.png")
    run.add_argument("--quiet", action="store_true", help="no progress messages")
    return parser


def main(argv=None):
    """Command line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        configs = json.loads(args.config) if args.config else None
        if configs is not None and not isinstance(configs, dict):
            raise InvalidInputError("--config must be a JSON object of model -> arguments")
        data = load_experiment_data(data=args.data, table=args.table,
                                    faint_table=args.faint_table, experiment=args.experiment,
                                    task=args.task, label_column=args.label_column,
                                    allow_pickle=args.allow_pickle)
        argv_text = sys.argv[1:] if argv is None else list(argv)
        command = "python -m sourceclf.experiments " + " ".join(
            _quote(a) for a in argv_text)
        result = run_experiment(
            data["table"], experiment=args.experiment, task=args.task,
            models=args.models.split(","), cutouts=data["cutouts"],
            faint_table=data["faint_table"], faint_cutouts=data["faint_cutouts"],
            feature_set=args.feature_set, seeds=args.seeds, split_seed=args.split_seed,
            label_column=args.label_column, search=not args.no_search,
            search_once=not args.search_every_seed, n_jobs=args.n_jobs, device=args.device,
            epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
            lr=args.lr, configs=configs, compare_published=not args.no_published,
            log=say, settings={"source": data["source"], "command": command,
                               "title": args.title, "note": args.note})
        paths = result.write(args.output)
    except (SourceclfError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.to_markdown(), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


def _quote(arg):
    return shlex.quote(str(arg))


if __name__ == "__main__":
    sys.exit(main())
