"""Reproduce the published MargNet / MargFormer comparisons on your own data.

Chaini et al. (2023, MNRAS 518, 3123) and the MargFormer preprint compare
their networks with a decision tree, a random forest and XGBoost on three
experiments (1: compact objects, 2: faint compact objects, 3: experiment-1
models tested on the faint set), for star/galaxy (SG) and
star/galaxy/quasar (SGQ) classification, reporting accuracy and macro
precision, recall and F1.  `run_experiment` trains each model on the
experiment's training split (`sourceclf.datasets.split_experiment`), tests it
on the test split, repeats for several seeds and summarises the metrics as
mean and standard deviation; `ExperimentResult.write` writes the summary as
Markdown and reStructuredText tables in the paper's format, the per-seed
results as JSON, and the confusion matrices as a PNG figure.

From the command line::

    python -m sourceclf.experiments run --table faint.fits --experiment 2 \\
        --task sg --models dt,rf,gbdt,margnet --seeds 0,1,2 --output report/

    python -m sourceclf.experiments run --data "MargNet/Experiment 1/dataset" \\
        --experiment 1 --task sgq --models dt,rf,xgboost,margnet,margformer \\
        --device cuda --output report/

Model names: ``dt``, ``rf``, ``gbdt``, ``xgboost`` (see
`sourceclf.models.classical`), ``margnet`` (MargNet's ANN, architecture
``margnet-ann``), and any other registered architecture, e.g. ``margformer``
or ``margnet-cnn``: image models run only when cutouts were given (``--data``)
and the architecture is registered in this installation; otherwise they are
skipped with the reason in the report.
"""

import argparse
import contextlib
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .exceptions import InvalidInputError, SourceclfError

__all__ = ["PUBLISHED", "TASK_CLASSES", "ExperimentResult", "run_experiment",
           "load_experiment_data", "main"]

#: Class order of each task.
TASK_CLASSES = {"sg": ("GALAXY", "STAR"), "sgq": ("GALAXY", "QSO", "STAR")}

#: Published accuracies (%) by model and (experiment, task): Chaini et al. 2023
#: (MargNet ANN, CNN, ensemble, XGBoost, random forest, decision tree) and the
#: MargFormer preprint.  ``gbdt`` is compared with the published XGBoost.
PUBLISHED = {
    "dt": {"label": "decision tree",
           (1, "sg"): 96.89, (1, "sgq"): 90.08, (2, "sg"): 94.91, (2, "sgq"): 81.81,
           (3, "sg"): 87.87, (3, "sgq"): 68.18},
    "rf": {"label": "random forest",
           (1, "sg"): 97.69, (1, "sgq"): 92.22, (2, "sg"): 96.16, (2, "sgq"): 85.57,
           (3, "sg"): 89.38, (3, "sgq"): 71.88},
    "xgboost": {"label": "XGBoost (features)",
                (1, "sg"): 97.83, (1, "sgq"): 92.81, (2, "sg"): 96.38, (2, "sgq"): 85.91,
                (3, "sg"): 90.96, (3, "sgq"): 73.64},
    "margnet": {"label": "MargNet ANN (features)",
                (1, "sg"): 97.85, (1, "sgq"): 92.97, (2, "sg"): 96.07, (2, "sgq"): 86.03,
                (3, "sg"): 91.58, (3, "sgq"): 73.05},
    "margnet-cnn": {"label": "MargNet CNN (images)",
                    (1, "sg"): 97.36, (1, "sgq"): 91.60, (2, "sg"): 95.22, (2, "sgq"): 84.19,
                    (3, "sg"): 89.30, (3, "sgq"): 69.44},
    "margnet-ensemble": {"label": "MargNet ensemble",
                         (1, "sg"): 98.13, (1, "sgq"): 93.33, (2, "sg"): 96.93,
                         (2, "sgq"): 86.67, (3, "sg"): 91.95, (3, "sgq"): 73.35},
    "margformer": {"label": "MargFormer",
                   (1, "sg"): 98.1, (1, "sgq"): 93.1, (2, "sg"): 97.1, (2, "sgq"): 86.6,
                   (3, "sg"): 92.7, (3, "sgq"): 75.2},
}
PUBLISHED["gbdt"] = PUBLISHED["xgboost"]

_MODEL_LABELS = {
    "dt": "Decision tree", "rf": "Random forest",
    "gbdt": "Gradient boosting (sklearn HGB)", "xgboost": "XGBoost",
    "margnet": "MargNet ANN", "margnet-cnn": "MargNet CNN", "margformer": "MargFormer",
}
_TORCH_ALIASES = {"margnet": "margnet-ann"}
_SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def _read_table(path, label_column):
    from astropy.table import Table

    from .columns import decode_strings

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"table '{path}' not found")
    try:
        table = Table.read(path)
    except Exception as exc:
        raise InvalidInputError(f"cannot read '{path}' as a table: {exc}") from None
    if label_column in table.colnames:
        table[label_column] = np.char.upper(np.char.strip(decode_strings(table[label_column])))
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
    from astropy.table import Table

    if (data is None) == (table is None):
        raise InvalidInputError("give either a MargNet dataset directory (data) or a "
                                "table, not both or neither")
    out = {"cutouts": None, "faint_table": None, "faint_cutouts": None}
    if data is not None:
        from .datasets import load_margnet

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
# Results
# ---------------------------------------------------------------------------

@dataclass
class ExperimentResult:
    """Per-seed metrics of every model of one experiment, and their summary.

    Attributes
    ----------
    experiment : int
    task : str
    classes : tuple of str
    settings : dict
        Data, feature set, split sizes, seeds, training settings.
    runs : list of dict
        One per model and seed: ``model``, ``seed``, ``metrics`` (see
        `sourceclf.training.classification_metrics`), ``train_seconds``,
        ``info`` (hyper-parameters).
    skipped : dict
        Model -> reason it was not run.
    """

    experiment: int
    task: str
    classes: tuple
    settings: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)

    def models(self):
        """Models that ran, in the order they were requested."""
        return list(dict.fromkeys(r["model"] for r in self.runs))

    def summary(self):
        """Mean and standard deviation over seeds, per model.

        Returns
        -------
        summary : `~astropy.table.Table`
            One row per model: ``model``, ``n_seeds``, and ``<metric>_mean`` /
            ``<metric>_std`` in percent for accuracy, precision, recall and
            F1 (macro averages; standard deviation with ddof=1, 0 for a
            single seed), mean training seconds, and the published accuracy
            of the same model in the same experiment (NaN if none).
        """
        from astropy.table import Table

        rows = []
        for model in self.models():
            runs = [r for r in self.runs if r["model"] == model]
            row = {"model": model, "n_seeds": len(runs)}
            for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
                vals = 100 * np.array([r["metrics"][key] for r in runs], dtype=float)
                row[f"{key}_mean"] = float(vals.mean())
                row[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            row["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs]))
            row["published_accuracy"] = _published(model, self.experiment, self.task)
            rows.append(row)
        names = ["model", "n_seeds"] + [f"{k}_{s}" for k in
                                        ("accuracy", "precision_macro", "recall_macro",
                                         "f1_macro") for s in ("mean", "std")] + \
            ["train_seconds", "published_accuracy"]
        if not rows:
            return Table(names=names, dtype=[str, int] + [float] * (len(names) - 2))
        return Table(rows=[[r[n] for n in names] for r in rows], names=names)

    def confusion_matrix(self, model):
        """Test confusion matrix of ``model`` summed over its seeds (rows: true class)."""
        mats = [np.asarray(r["metrics"]["confusion_matrix"]) for r in self.runs
                if r["model"] == model]
        if not mats:
            raise InvalidInputError(f"model '{model}' has no results")
        return np.sum(mats, axis=0)

    # Formatting ---------------------------------------------------------------
    def _rows(self):
        compare = self.settings.get("compare_published", True)
        header = ["Model", "Accuracy (%)", "Precision (%)", "Recall (%)", "F1 (%)"]
        if compare:
            header.append(f"Published accuracy, Ex{self.experiment} "
                          f"{self.task.upper()} (%)")
        header.append("Train time (s)")
        body = []
        for row in self.summary():
            line = [_MODEL_LABELS.get(row["model"], row["model"])]
            for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
                mean, std = row[f"{key}_mean"], row[f"{key}_std"]
                line.append(f"{mean:.2f} ± {std:.2f}" if row["n_seeds"] > 1 else f"{mean:.2f}")
            if compare:
                pub = row["published_accuracy"]
                label = PUBLISHED.get(row["model"], {}).get("label", "")
                line.append("n/a" if not np.isfinite(pub) else
                            (f"{pub:.2f} ({label})" if row["model"] == "gbdt" else f"{pub:.2f}"))
            line.append(f"{row['train_seconds']:.1f}")
            body.append(line)
        return header, body

    def _setup_lines(self):
        s = self.settings
        lines = [f"Data: {s.get('source', '?')}; experiment {self.experiment} "
                 f"({s.get('experiment_note', '')}); task {self.task.upper()} "
                 f"(classes {', '.join(self.classes)}).",
                 f"Features: {s.get('feature_set')}; rows train / validation / test = "
                 f"{s.get('n_train')} / {s.get('n_validation')} / {s.get('n_test')} "
                 f"(split seed {s.get('split_seed')}).",
                 f"Seeds: {', '.join(map(str, s.get('seeds', [])))}; mean ± standard "
                 "deviation over seeds; precision, recall and F1 are macro averages.",
                 f"Classical models: {s.get('classical_note', '')}.",
                 f"Networks: {s.get('torch_note', '')}."]
        if s.get("note"):
            lines.append(s["note"])
        if s.get("command"):
            lines.append(f"Command: ``{s['command']}``")
        return lines

    def to_markdown(self, title=None):
        """The summary as a Markdown document (table in the paper's format)."""
        header, body = self._rows()
        out = [f"# {title or self.settings.get('title') or 'Experiment results'}", ""]
        out += [f"- {line.replace('``', '`')}" for line in self._setup_lines()] + [""]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join("---" for _ in header) + "|")
        out += ["| " + " | ".join(line) + " |" for line in body]
        if self.skipped:
            out += ["", "Not run:", ""]
            out += [f"- {m}: {why}" for m, why in self.skipped.items()]
        return "\n".join(out) + "\n"

    def to_rst(self, title=None):
        """The summary as a reStructuredText table (``list-table``), no title.

        The text starts with ``:orphan:`` (it is meant to be included in a
        page with ``.. include:: ... :start-after: .. results-start``) and
        puts the title as the table caption.
        """
        header, body = self._rows()
        caption = title or self.settings.get("title") or "Experiment results"
        out = [":orphan:", "", ".. results-start", ""]
        out += [f"- {line}" for line in self._setup_lines()] + [""]
        out += [f".. list-table:: {caption}", "   :header-rows: 1", ""]
        for line in [header] + body:
            out.append(f"   * - {line[0]}")
            out += [f"     - {cell}" for cell in line[1:]]
        if self.skipped:
            out += ["", "Not run:", ""]
            out += [f"- {m}: {why}" for m, why in self.skipped.items()]
        return "\n".join(out) + "\n"

    def plot_confusion(self, path=None):
        """A figure with each model's test confusion matrix (summed over seeds).

        Cells show the fraction of each true class (row) given each
        predicted class, with the counts.

        Parameters
        ----------
        path : path-like, optional
            Write the figure there (PNG with the Agg backend).

        Returns
        -------
        figure : `matplotlib.figure.Figure`
        """
        from matplotlib.figure import Figure

        models = self.models()
        k = len(self.classes)
        ncol = max(1, min(len(models), 3))
        nrow = max(1, -(-len(models) // ncol))
        fig = Figure(figsize=(3.2 * ncol + 0.4, 3.0 * nrow + 0.3), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
        for ax, model in zip(axes, models):
            cm = self.confusion_matrix(model)
            frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
            ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, f"{frac[i, j]:.3f}\n({cm[i, j]})", ha="center",
                            va="center", fontsize=8,
                            color="white" if frac[i, j] > 0.5 else "black")
            ax.set_xticks(range(k), self.classes, fontsize=8)
            ax.set_yticks(range(k), self.classes, fontsize=8)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(_MODEL_LABELS.get(model, model), fontsize=9)
        for ax in axes[len(models):]:
            ax.set_axis_off()
        fig.suptitle(f"Experiment {self.experiment} {self.task.upper()}: test confusion "
                     f"(summed over {len(self.settings.get('seeds', [])) or 1} seed(s))",
                     fontsize=10)
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig

    def write(self, directory, *, title=None):
        """Write ``results.md``, ``results.rst``, ``results.json`` and ``confusion.png``.

        Returns
        -------
        paths : dict
            Kind -> written path.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": directory / "results.md", "rst": directory / "results.rst",
                 "json": directory / "results.json"}
        paths["markdown"].write_text(self.to_markdown(title), encoding="utf-8")
        paths["rst"].write_text(self.to_rst(title), encoding="utf-8")
        payload = {"experiment": self.experiment, "task": self.task,
                   "classes": list(self.classes), "settings": self.settings,
                   "skipped": self.skipped, "runs": self.runs}
        paths["json"].write_text(json.dumps(payload, indent=1, default=_json_default) + "\n",
                                 encoding="utf-8")
        if self.runs:
            try:
                import matplotlib  # noqa: F401  (optional: the plot extra)
            except ImportError:
                warnings.warn("matplotlib is not installed: no confusion-matrix plot "
                              "(pip install 'sourceclf[plot]')", stacklevel=2)
            else:
                paths["confusion"] = directory / "confusion.png"
                self.plot_confusion(paths["confusion"])
        return paths


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _published(model, experiment, task):
    return float(PUBLISHED.get(model, {}).get((experiment, task), np.nan))


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

def _labels(table, rows, classes, label_column):
    from .training import labels_from_table

    return labels_from_table(table[rows], label_column, classes)[1]


def _torch_spec(model):
    """(architecture name, architecture class) or (None, reason)."""
    from .models.architectures import ARCHITECTURES, build_architecture

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
    from .datasets import split_experiment
    from .features import available_feature_sets, get_feature_set
    from .models.classical import canonical_model_name
    from .training import classification_metrics

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
            with _torch_threads(n_jobs):
                run = _run_torch(arch, spec, x if uses_features else None, y, images, seed,
                                 config=configs.get(model), device=device, epochs=epochs,
                                 patience=patience, batch_size=batch_size, lr=lr,
                                 progress=progress)
            run["metrics"] = classification_metrics(y["test"], run.pop("pred"), classes)
            result.runs.append({"model": model, "seed": seed, **run})
    return result


@contextlib.contextmanager
def _torch_threads(n_jobs):
    """Limit torch's CPU threads to ``n_jobs`` for the duration (None: no limit)."""
    if n_jobs is None or n_jobs < 1:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n_jobs))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stamps(cutouts, rows):
    return np.asarray(cutouts[np.asarray(rows)], dtype=np.float32)


def _run_classical(model, x, y, seed, *, search, param_grid, params, n_jobs):
    from .models.classical import fit_classical

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


def _run_torch(arch, spec, x, y, images, seed, *, config, device, epochs, patience,
               batch_size, lr, progress):
    import torch

    from .models.architectures import build_architecture
    from .training import fit_module

    n_classes = int(max(y["train"].max(), y["test"].max()) + 1)
    cfg = {"n_classes": n_classes, **(config or {})}
    if x is not None:
        cfg["n_features"] = x["train"].shape[1]
    torch.manual_seed(seed)
    module = build_architecture(arch, cfg)
    if x is not None and hasattr(module, "standardize") and hasattr(module.standardize, "fit"):
        module.standardize.fit(x["train"])
    if images is not None and hasattr(module, "fit_image_normalisation"):
        module.fit_image_normalisation(images["train"])
    augment = None
    if images is not None:
        from .augment import random_augment as augment

    def part(d, s):
        return None if d is None else d[s]

    t0 = time.perf_counter()
    history = fit_module(module, part(x, "train"), y["train"], part(x, "validation"),
                         y["validation"], images_train=part(images, "train"),
                         images_val=part(images, "validation"), epochs=epochs,
                         batch_size=batch_size, lr=lr, patience=patience, device=device,
                         random_state=seed, augment=augment, progress=progress)
    seconds = time.perf_counter() - t0
    module.eval()
    preds = []
    with torch.inference_mode():
        for sl in _chunks(len(y["test"])):
            logits = module(*_batch(part(x, "test"), part(images, "test"), sl, device))
            preds.append(logits.argmax(1).cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, dtype=int)
    return {"pred": pred, "train_seconds": round(seconds, 2),
            "validation_accuracy": round(float(history["val_accuracy"][history["best_epoch"]]),
                                         5),
            "info": {"architecture": arch, "config": cfg, "best_epoch": history["best_epoch"],
                     "epochs_run": len(history["val_loss"])}}


def _chunks(n, size=4096):
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def _batch(x, images, sl, device):
    import torch

    from .device import resolve_device

    dev = resolve_device(device)
    f = None if x is None else torch.as_tensor(x[sl], dtype=torch.float32, device=dev)
    im = None if images is None else torch.as_tensor(images[sl], dtype=torch.float32,
                                                     device=dev)
    return f, im


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
    import shlex

    return shlex.quote(str(arg))


if __name__ == "__main__":
    sys.exit(main())
