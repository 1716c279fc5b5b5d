"""Conformal prediction sets from a model's stored calibration probabilities.

Every shipped model carries the class probabilities it gave to a held-out
*calibration* split of its training data (``clf.calibration``, written by
`sourceclf.training.calibration_table` or by `sourceclf.calibrate`).  This
module turns them into split-conformal prediction sets with MAPIE 1.x
(`mapie.classification.SplitConformalClassifier`, ``prefit=True``) wrapped
around `ProbabilityPassthrough`, a fitted scikit-learn classifier whose input
*is* the probability matrix.  Nothing is refitted: the calibration
probabilities are conformalized and the sets of new rows follow from their
probabilities alone.

MAPIE computes the conformity *thresholds*; applying them to new rows needs
numpy alone (`sourceclf.conformal.set_rules`, operation for operation MAPIE's
rules, with the same sets).  Each shipped model stores its thresholds for
the usual settings beside its calibration data, and those of its calibration
tables of flagged rows (below) (``thresholds.json``, see
`sourceclf.conformal.thresholds`), so classifying imports neither MAPIE nor
scikit-learn; other settings, and models without the file, are computed with
MAPIE once and kept for the rest of the process
(`sourceclf.conformal.threshold_store`).  Treat a model's calibration table
as read-only: assign a new table rather than changing it in place.

Conformity scores (``score``), as named by MAPIE:

``'lac'``
    One minus the probability of the label (Sadinle et al. 2019): smallest
    sets on average; a row may get an *empty* set when no class is probable
    enough.  The only score MAPIE 1.x allows for two-class models, and the
    default: on held-out SDSS rows it is the only score whose coverage stays
    near the level (see docs/conformal.rst, "Why the default score is lac").
``'aps'``, ``'aps-randomized'``
    Adaptive prediction sets (Romano et al. 2020): labels are added by
    decreasing probability until their summed probability reaches the
    calibrated threshold.  ``'aps'`` keeps the label that crosses the
    threshold (MAPIE's ``include_last_label=True``: never empty, coverage at or
    above the target); ``'aps-randomized'`` keeps it at random
    (``include_last_label='randomized'``: exact coverage on average, empty sets
    possible).
``'raps'``, ``'raps-randomized'``
    Regularised APS (Angelopoulos et al. 2021), penalising large sets; MAPIE
    holds out 20% of the calibration rows to tune the penalty.
``'top_k'``
    The same number of most probable labels for every row.

Calibration (``by``):

``None`` (marginal)
    One threshold from all calibration rows.  Guarantee: over new sources
    *drawn like the calibration sources*, the true class is in the set with
    probability at least the confidence level, averaged over all of them.
    Nothing is promised for any subgroup (faint sources, one class...), nor
    for sources unlike the calibration data.
``'class'`` (class-conditional Mondrian)
    One threshold per class, from the calibration rows of that class; a label
    enters a row's set when its score passes *that label's* threshold.
    Guarantee: for every class separately, sources of that class are covered
    at the confidence level (exchangeability within each class).
a column name, e.g. ``'dered_r'`` or ``'r'`` (magnitude-binned Mondrian)
    The calibration rows are binned in that column and every bin gets its own
    threshold; a new row uses the threshold of the bin its own value falls in
    (rows beyond the calibration range use the first or last bin; rows without
    a value use the marginal threshold and are flagged).  Guarantee: coverage
    at the confidence level within every bin, for sources drawn like the
    calibration sources of that bin.  This repairs a model whose errors grow
    with magnitude, but only if the calibration data reach the magnitudes of
    the sources classified.

Flagged rows (``flag_calibrations``).  A model may hold, beside its
calibration split, a calibration table of rows of one ``pred_flag``: the
shipped image models hold one of rows flagged ``confused``
(`sourceclf.recipes.flag_calibration`: such rows of crowded simulated fields,
measured as ``classify`` measures a frame), since their calibration split
held few rows like them and the model is right on far fewer of them.  A row
flagged so gets its sets from that table (with the same score and grouping;
marginal within the table where it cannot support the grouping): the
guarantee then holds for sources drawn like *those* rows.  ``meta['CLFFLCAL']``
names the flags and their calibration rows (``'confused:908'``), and the
shift alarm compares such rows with their table's rows, the others with the
model's calibration rows (`check_set_shift`; `flag_set_groups` says which
rows are which).

Bins (rule).  With ``bins=None`` the number of bins is
``K = min(5, floor(n / n_min))`` (at least 1) with equal numbers of
calibration rows per bin (edges at calibration quantiles of the column), where
``n`` counts the calibration rows with a finite value and, for the strictest
requested level with miscoverage ``alpha``::

    n_min = max(50, ceil(alpha * (1 - alpha) / 0.015**2), ceil(2 * (1 - alpha) / alpha))

so that the coverage a bin's threshold gives, which scatters with standard
deviation ``sqrt(alpha (1 - alpha) / (n_bin + 2))`` from one calibration draw to
another, is known to 1.5 percentage points (400 rows at 90%), and the
conformal quantile exists with room to spare.  A bin with fewer than
``n_min`` rows (explicit ``bins``, ties) gives a `SourceclfWarning`; one with
fewer than MAPIE's minimum ``max(1/alpha, 1/(1 - alpha))`` is an error.

Output columns (`add_prediction_sets`).  One level: ``pred_set`` (the classes
joined by ``'|'`` in the model's class order, ``''`` for an empty set) and
``pred_set_size``.  Several levels: ``pred_set_<L>`` and ``pred_set_size_<L>``
with ``<L>`` the level in percent, a ``'p'`` for a decimal point
(`level_suffix`: 0.9 -> ``90``, 0.975 -> ``97p5``).  Magnitude-binned Mondrian
adds ``pred_set_group`` (the bin index; -1 when the row had no value).  Rows
that could not be classified are masked.  A classified row whose set is empty
at some level gets ``empty_set:<L>,...`` in ``pred_flag`` (`empty_set_flags`):
no class is probable enough for that level, and ``pred_class`` is a weak
guess.  FITS and ECSV readers mask empty strings, so after a round trip an
empty set reads back as a masked ``pred_set`` with ``pred_set_size`` 0;
`set_membership` tells the two apart.
"""

import importlib

from .calibration_tables import build_calibration_table, group_values
from .flag_sets import calibrated_flags, flag_predictor, flag_set_groups
from .prediction_sets import add_prediction_sets
from .predictor import ConformalPredictor, bin_rule_min_count
from .reference_rates import (MATCH_COLUMNS, combine_set_bins, reference_set_bins,
                              reference_set_rates)
from .scores import SCORES, check_score
from .shift import check_set_shift
from .set_columns import (EMPTY_SET_FLAG, empty_set_flags, format_sets, level_suffix,
                          parse_level_suffix, parse_set_column, probability_classes,
                          set_column_names, set_columns, set_membership)

__all__ = ["SCORES", "EMPTY_SET_FLAG", "MATCH_COLUMNS", "ProbabilityPassthrough",
           "ConformalPredictor", "add_prediction_sets", "bin_rule_min_count",
           "build_calibration_table", "calibrated_flags", "check_score", "check_set_shift",
           "combine_set_bins", "empty_set_flags", "flag_predictor", "flag_set_groups",
           "format_sets", "group_values", "level_suffix", "parse_level_suffix",
           "parse_set_column", "probability_classes", "reference_set_bins",
           "reference_set_rates", "set_column_names", "set_columns", "set_membership"]


def __getattr__(name):
    # ProbabilityPassthrough is a scikit-learn estimator: imported on first use, so that
    # prediction sets need neither scikit-learn nor MAPIE.
    if name == "ProbabilityPassthrough":
        value = importlib.import_module(f"{__name__}.mapie_adapter").ProbabilityPassthrough
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
