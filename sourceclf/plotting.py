"""Plots of an `~sourceclf.evaluation.EvaluationResult`.

Each function returns a `matplotlib.figure.Figure` built without pyplot (no
global state, no display needed: it renders with the Agg backend) and, with
``path``, also writes it to a file.  matplotlib is imported only here
(``pip install 'sourceclf[plot]'``).
"""

import numpy as np

from .exceptions import InvalidInputError

__all__ = ["plot_confusion_matrix", "plot_coverage_vs_magnitude", "plot_reliability"]


def _figure(ax, figsize, ncols=1):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - optional dependency
        raise InvalidInputError("plotting needs matplotlib: pip install "
                                "'sourceclf[plot]'") from None
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig, path, dpi=150):
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


def plot_confusion_matrix(result, *, normalize=True, ax=None, path=None):
    """Confusion matrix: true classes down, predicted classes across.

    Parameters
    ----------
    result : `~sourceclf.evaluation.EvaluationResult`
    normalize : bool
        Show fractions of each true class (rows sum to one), with the counts.
    ax : `matplotlib.axes.Axes`, optional
        Draw into these axes instead of a new figure.
    path : str or path-like, optional
        Also save the figure there.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    fig, ax = _figure(ax, (4.2, 3.6))
    cm = result.confusion_matrix.astype(float)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    classes = list(result.classes)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(len(classes)):
        for j in range(len(classes)):
            text = f"{shown[i, j]:.3f}\n({int(cm[i, j])})" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black")
    fig.colorbar(image, ax=ax, label="fraction of true class" if normalize else "count")
    acc = result.summary["accuracy"][0]
    ax.set_title(f"accuracy {acc:.4f} (n={int(result.summary['n'][0])})", fontsize=10)
    return _save(fig, path)


def plot_coverage_vs_magnitude(results, *, level=None, path=None, title=None):
    """Empirical coverage and mean set size in magnitude bins.

    Parameters
    ----------
    results : `~sourceclf.evaluation.EvaluationResult` or dict
        One result, or several labelled ones (``{'marginal': r1, 'Mondrian':
        r2}``) drawn on the same axes.
    level : float, optional
        Which confidence level (default: every level of the first result).
    path : str or path-like, optional
        Also save the figure there.
    title : str, optional
        Figure title.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
        Two panels: coverage (with binomial error bars and the target
        level), and mean prediction-set size, against the median magnitude
        of each bin's sources.
    """
    if not isinstance(results, dict):
        results = {None: results}
    first = next(iter(results.values()))
    if first.per_bin is None:
        raise InvalidInputError("the evaluation has no magnitude bins (no magnitude column)")
    levels = [level] if level is not None else first.levels
    if not levels:
        raise InvalidInputError("the evaluated table has no prediction sets")
    fig, (ax_cov, ax_size) = _figure(None, (8.5, 3.6), ncols=2)
    markers = "osD^v<>"
    for k, (label, res) in enumerate(results.items()):
        if res.per_bin is None:
            raise InvalidInputError(f"result {label!r} has no magnitude bins")
        for j, lv in enumerate(levels):
            rows = res.per_bin[np.isclose(res.per_bin["level"], lv) & (res.per_bin["n"] > 0)]
            mid = np.asarray(rows["mag_median"])  # where the bin's sources are
            name = " ".join(x for x in (label, f"{lv:g}" if len(levels) > 1 else None) if x)
            offset = (k - (len(results) - 1) / 2) * 0.03
            line = ax_cov.errorbar(mid + offset, rows["coverage"], yerr=rows["coverage_err"],
                                   marker=markers[(k + j) % len(markers)], ms=4, capsize=2,
                                   lw=1, label=name or None)
            ax_size.plot(mid + offset, rows["mean_set_size"], marker=markers[(k + j) % 7],
                         ms=4, lw=1, color=line[0].get_color(), label=name or None)
    for lv in levels:
        ax_cov.axhline(lv, color="0.4", ls="--", lw=0.8)
    mag = first.per_bin.meta.get("mag_column", first.mag_column) or "magnitude"
    ax_cov.set_xlabel(mag)
    ax_cov.set_ylabel("empirical coverage")
    ax_size.set_xlabel(mag)
    ax_size.set_ylabel("mean set size")
    if any(label is not None for label in results) or len(levels) > 1:
        ax_cov.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_reliability(result, *, ax=None, path=None):
    """Reliability diagram of the top-class probability.

    Parameters
    ----------
    result : `~sourceclf.evaluation.EvaluationResult`
    ax : `matplotlib.axes.Axes`, optional
        Draw into these axes instead of a new figure.
    path : str or path-like, optional
        Also save the figure there.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
    """
    fig, ax = _figure(ax, (4.0, 3.6))
    rel = result.reliability[result.reliability["n"] > 0]
    lo = float(result.reliability["prob_lo"][0])
    ax.plot([lo, 1], [lo, 1], color="0.5", ls="--", lw=0.8, label="perfect calibration")
    ax.plot(rel["mean_prob"], rel["accuracy"], marker="o", ms=4, label="model")
    ax.set_xlabel("top-class probability")
    ax.set_ylabel("fraction correct")
    ax.set_title(f"ECE {result.summary['ece'][0]:.4f}", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)
