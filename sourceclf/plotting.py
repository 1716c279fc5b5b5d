"""Plots of an `~sourceclf.evaluation.EvaluationResult`.

Each function returns a `matplotlib.figure.Figure` built without pyplot (no
global state, no display needed: it renders with the Agg backend) and, with
``path``, also writes it to a file.  matplotlib is imported only here
(``pip install 'sourceclf[plot]'``).

Binned points follow three rules, so that a handful of sources cannot look
like a measurement:

* bins holding fewer than ``min_count`` sources (default: the result's
  ``min_count``, see `~sourceclf.evaluation.evaluate`) are not drawn;
* fractions (coverage, accuracy) carry error bars of the Wilson score
  interval (68%, one sigma), which stays honest at 0 and 1, where the
  binomial standard error vanishes; mean set sizes carry their standard error;
* lines join neighbouring bins only: a bin left out, or an empty magnitude
  range between two bins, breaks the line.
"""

import numpy as np

from .exceptions import InvalidInputError

__all__ = ["plot_confusion_matrix", "plot_coverage_vs_magnitude", "plot_reliability",
           "wilson_interval"]


def wilson_interval(fraction, n, z=1.0):
    """Wilson score interval of a binomial fraction.

    Parameters
    ----------
    fraction : array-like
        Observed fractions (successes / n).
    n : array-like
        Numbers of trials (0 gives NaN).
    z : float
        Half-width in standard deviations (1: about 68%).

    Returns
    -------
    low, high : `numpy.ndarray`
        Interval bounds, within [0, 1].

    Examples
    --------
    >>> low, high = wilson_interval([1.0], [3])
    >>> bool(0.7 < low[0] < 1.0), float(high[0])
    (True, 1.0)
    """
    p = np.asarray(fraction, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1 + z ** 2 / n
        centre = (p + z ** 2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / denom
    empty = n <= 0
    return (np.where(empty, np.nan, np.clip(centre - half, 0, 1)),
            np.where(empty, np.nan, np.clip(centre + half, 0, 1)))


def _broken(x, y, lo, hi, keep):
    """Arrays of the kept bins with a NaN row between bins that are not neighbours.

    ``lo`` and ``hi`` are the bins' edges; two kept bins are neighbours when
    one ends where the next begins.
    """
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return np.zeros(0), np.zeros(0)
    xs, ys = [], []
    for j, k in enumerate(idx):
        if j and not (k == idx[j - 1] + 1 and np.isclose(lo[k], hi[idx[j - 1]])):
            xs.append(np.nan)
            ys.append(np.nan)
        xs.append(x[k])
        ys.append(y[k])
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _min_count(result, min_count):
    if min_count is None:
        return int(getattr(result, "min_count", 1))
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) \
            or min_count < 1:
        raise InvalidInputError(f"min_count must be a positive integer, got {min_count!r}")
    return int(min_count)


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


def plot_coverage_vs_magnitude(results, *, level=None, path=None, title=None, min_count=None):
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
    min_count : int, optional
        Bins with fewer sources are not drawn; default each result's
        ``min_count``.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
        Two panels against the median magnitude of each bin's sources:
        coverage (Wilson 68% error bars, the target level dashed) and mean
        prediction-set size (standard-error bars).  Lines join neighbouring
        bins only.
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
    drawn = 0
    for k, (label, res) in enumerate(results.items()):
        if res.per_bin is None:
            raise InvalidInputError(f"result {label!r} has no magnitude bins")
        least = _min_count(res, min_count)
        for j, lv in enumerate(levels):
            rows = res.per_bin[np.isclose(res.per_bin["level"], lv)]
            n = np.asarray(rows["n"])
            keep = n >= least
            drawn += int(keep.sum())
            offset = (k - (len(results) - 1) / 2) * 0.03
            mid = np.asarray(rows["mag_median"], dtype=float) + offset  # where sources are
            lo, hi = np.asarray(rows["mag_lo"]), np.asarray(rows["mag_hi"])
            cov = np.asarray(rows["coverage"], dtype=float)
            low, high = wilson_interval(cov, n)
            name = " ".join(x for x in (label, f"{lv:g}" if len(levels) > 1 else None) if x)
            marker = markers[(k + j) % len(markers)]
            line, = ax_cov.plot(*_broken(mid, cov, lo, hi, keep), marker=marker, ms=4, lw=1,
                                label=name or None)
            color = line.get_color()
            ax_cov.errorbar(mid[keep], cov[keep], yerr=[cov[keep] - low[keep],
                                                        high[keep] - cov[keep]],
                            fmt="none", ecolor=color, capsize=2, lw=1)
            size = np.asarray(rows["mean_set_size"], dtype=float)
            ax_size.plot(*_broken(mid, size, lo, hi, keep), marker=marker, ms=4, lw=1,
                         color=color, label=name or None)
            if "mean_set_size_err" in rows.colnames:
                ax_size.errorbar(mid[keep], size[keep],
                                 yerr=np.asarray(rows["mean_set_size_err"])[keep],
                                 fmt="none", ecolor=color, capsize=2, lw=1)
    if not drawn:
        raise InvalidInputError("no magnitude bin holds min_count sources; lower min_count "
                                "or use wider bins")
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


def plot_reliability(result, *, ax=None, path=None, min_count=None):
    """Reliability diagram of the top-class probability.

    Parameters
    ----------
    result : `~sourceclf.evaluation.EvaluationResult`
    ax : `matplotlib.axes.Axes`, optional
        Draw into these axes instead of a new figure.
    path : str or path-like, optional
        Also save the figure there.
    min_count : int, optional
        Probability bins with fewer sources are not drawn; default the
        result's ``min_count``.

    Returns
    -------
    fig : `matplotlib.figure.Figure`
        Fraction correct against mean top-class probability per bin, with
        Wilson 68% error bars; the line joins neighbouring bins only.
    """
    least = _min_count(result, min_count)
    fig, ax = _figure(ax, (4.0, 3.6))
    rel = result.reliability
    n = np.asarray(rel["n"])
    keep = n >= least
    lo = float(rel["prob_lo"][0])
    ax.plot([lo, 1], [lo, 1], color="0.5", ls="--", lw=0.8, label="perfect calibration")
    conf = np.asarray(rel["mean_prob"], dtype=float)
    acc = np.asarray(rel["accuracy"], dtype=float)
    line, = ax.plot(*_broken(conf, acc, np.asarray(rel["prob_lo"]), np.asarray(rel["prob_hi"]),
                             keep), marker="o", ms=4, label="model")
    low, high = wilson_interval(acc, n)
    ax.errorbar(conf[keep], acc[keep], yerr=[acc[keep] - low[keep], high[keep] - acc[keep]],
                fmt="none", ecolor=line.get_color(), capsize=2, lw=1)
    ax.set_xlabel("top-class probability")
    ax.set_ylabel("fraction correct")
    left_out = int(n[~keep].sum())
    note = f"; {left_out} sources in bins of < {least} not shown" if left_out else ""
    ax.set_title(f"ECE {result.summary['ece'][0]:.4f}{note}", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)
