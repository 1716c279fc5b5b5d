"""Alarms for prediction sets that behave unlike the model's calibration data.

Conformal prediction sets keep their coverage only on data like the
calibration rows.  On a catalog that differs (fainter, another survey,
other classes) the sets themselves show it: many more empty sets, fewer
singletons, or larger sets than the calibration rows get.  `set_shift`
compares a catalog's set sizes with the calibration rows' rates (from
`sourceclf.conformal.reference_set_rates`, weighted to the catalog's r
magnitudes when it has them) and reports each departure that is larger
than sampling noise: more than `SHIFT_Z` standard errors of the
difference between the two samples, and more than a small practical
tolerance (`SHIFT_TOLERANCE`), so that a catalog of millions of rows does
not alarm on a negligible change.

Only departures towards less decisive sets alarm (more empty sets, fewer
singletons, a larger mean size): sets more decisive than the calibration
rows' (a catalog of bright stars and galaxies, without the quasars that
share the stars' sets) are no sign that coverage is lost, and an alarm
that rang on them would ring on most real catalogs.  A model confidently
wrong on data unlike its training data does not show in its sets: the
applicability-domain and image flags of ``pred_flag`` are there for that.

The cure is to recalibrate the model on a few hundred labelled rows of the
catalog's kind with `sourceclf.calibrate`.
"""

import numpy as np

__all__ = ["set_shift", "shift_message", "SHIFT_Z", "SHIFT_TOLERANCE", "SHIFT_MIN_ROWS"]

#: Standard errors a departure must exceed.
SHIFT_Z = 4.0

#: Smallest departure that alarms: in fraction of rows for the shares of empty
#: sets and singletons, in classes for the mean set size.
SHIFT_TOLERANCE = {"empty": 0.02, "singleton": 0.02, "mean_size": 0.05}

#: Fewer classified rows than this never alarm.
SHIFT_MIN_ROWS = 50


def set_shift(sizes, reference):
    """Departures of a catalog's set sizes from the calibration rows' rates.

    Parameters
    ----------
    sizes : array-like of int
        Set size of every classified row of the catalog.
    reference : dict
        ``n``, ``empty``, ``singleton``, ``mean_size`` of the calibration rows
        (see `sourceclf.conformal.reference_set_rates`).

    Returns
    -------
    departures : list of tuple
        ``(statistic, catalog value, calibration value)`` for each statistic
        that departs towards less decisive sets by more than sampling noise:
        ``'empty'`` (more empty sets), ``'singleton'`` (fewer single-class
        sets), ``'mean_size'`` (larger sets, with more of two classes or
        more); empty when the catalog's sets are as decisive as the
        calibration rows' or more (or it has fewer than `SHIFT_MIN_ROWS`
        rows).

    Examples
    --------
    >>> ref = {"n": 2000, "empty": 0.01, "singleton": 0.9, "mean_size": 1.09}
    >>> set_shift([1] * 900 + [2] * 90 + [0] * 10, ref)
    []
    >>> [d[0] for d in set_shift([0] * 600 + [1] * 400, ref)]
    ['empty', 'singleton']
    >>> [d[0] for d in set_shift([1] * 700 + [2] * 300, ref)]
    ['singleton', 'mean_size']
    >>> set_shift([1] * 1000, ref)  # more decisive than the calibration rows
    []
    """
    sizes = np.asarray(sizes, dtype=float)
    n, n_ref = len(sizes), int(reference["n"])
    if n < SHIFT_MIN_ROWS or n_ref < 1:
        return []
    observed = {"empty": float(np.mean(sizes == 0)), "singleton": float(np.mean(sizes == 1)),
                "mean_size": float(sizes.mean())}
    departures = []
    for key in ("empty", "singleton", "mean_size"):
        ref = float(reference[key])
        if key == "mean_size":
            variance = max(float(sizes.var()), 0.25 / n_ref)
        else:  # binomial, pooled, never below one row's worth
            p = (observed[key] * n + ref * n_ref) / (n + n_ref)
            variance = max(p * (1 - p), 1.0 / (n + n_ref))
        standard_error = np.sqrt(variance * (1.0 / n + 1.0 / n_ref))
        # Positive when the catalog's sets are less decisive than the reference's; a
        # larger mean size counts only when it comes from more multi-class sets (not
        # from fewer empty ones).
        difference = (ref - observed[key]) if key == "singleton" else (observed[key] - ref)
        if key == "mean_size" and (observed["empty"] + observed["singleton"]
                                   >= float(reference["empty"]) + float(reference["singleton"])):
            difference = 0.0
        if difference > SHIFT_Z * standard_error and difference > SHIFT_TOLERANCE[key]:
            departures.append((key, observed[key], ref))
    return departures


_WORDS = {"empty": "empty sets", "singleton": "single-class sets", "mean_size": "mean set size"}


def shift_message(departures, level, model_name):
    """One line saying how the sets depart, and what to do about it."""
    parts = []
    for key, value, ref in departures:
        if key == "mean_size":
            parts.append(f"{_WORDS[key]} {value:.2f} against {ref:.2f}")
        else:
            parts.append(f"{_WORDS[key]} {value:.1%} against {ref:.1%}")
    return (f"the {level:g} prediction sets of model '{model_name}' on this catalog are unlike "
            f"those of its calibration data ({'; '.join(parts)}): the catalog differs from the "
            "data the model was calibrated on, so the sets' coverage is not guaranteed; "
            "recalibrate with sourceclf.calibrate on a few hundred labelled rows like these")
