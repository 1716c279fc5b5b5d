"""The results of one of MargNet's experiments: metrics per model and seed, and reports.

`ExperimentResult` holds what `sourceclf.recipes.experiments.run_experiment`
measured; it summarises the metrics as mean and standard deviation over the
seeds and writes them as Markdown and reStructuredText tables in the paper's
format, as JSON, and the confusion matrices as a PNG figure, beside the
published accuracies of the same experiment (`PUBLISHED`).
"""

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..exceptions import InvalidInputError

__all__ = ["PUBLISHED", "ExperimentResult"]

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
