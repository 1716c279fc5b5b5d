"""Recalibrating a model's conformal prediction sets on the user's own labelled sources.

A model's prediction sets are only as good as its calibration data: the
guarantee holds for sources drawn like them.  `calibrate` replaces a model's
stored calibration split with the probabilities the model gives to labelled
sources of the user's own survey (e.g. a spectroscopic subsample of the
catalog to be classified), so that the sets of `sourceclf.classify` carry the
guarantee for that survey.  The network itself is not retrained.
"""

import copy
import datetime
import warnings

import numpy as np
from astropy.table import Table

from .columns import decode_strings, map_columns
from .conformal import ConformalPredictor, build_calibration_table, check_score, group_values
from .exceptions import InvalidInputError, SourceclfWarning
from .inputs import model_inputs
from .models.registry import load_model
from .utils._validation import check_by

__all__ = ["calibrate"]


def calibrate(table, *, model, label_column="class", by=None, cutouts=None, images=None,
              score=None, bins=None, source=None, name=None, device="auto",
              batch_size=None, progress=None, columns=None):
    """Recalibrate a model's prediction sets on labelled sources.

    The model gives class probabilities to every row of ``table`` it can
    classify; those probabilities, the labels and the rows' ``r`` and
    ``dered_r`` magnitudes (and the ``by`` column) become the model's new
    calibration table.  Use rows that were *not* used to train the model and
    that resemble the sources you will classify; split your labelled sources
    and keep part of them to check the coverage (see `sourceclf.evaluate`).

    Parameters
    ----------
    table : `~astropy.table.Table`
        Labelled sources with the model's input columns.
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        The model to recalibrate (a shipped model's name, a directory or an
        object); it is not modified.
    label_column : str
        Column of true classes (``'STAR'``, ``'GALAXY'``, ``'QSO'``; bytes and
        any case accepted).
    by : str, optional
        Default Mondrian grouping of the new model's sets: ``'class'`` or a
        column such as ``'dered_r'`` or ``'r'`` (see `sourceclf.conformal`);
        stored in the model card (``extra['conformal_by']``) and used by
        `sourceclf.classify` unless it is given another ``by``.
    cutouts, images
        Cutouts or frames for image models, as for `sourceclf.classify`.
    score : str, optional
        Default conformity score of the new model (``extra['conformal_score']``).
    bins : int or sequence of float, optional
        Bins of a column ``by`` (``extra['conformal_bins']``); default: the
        automatic rule of `sourceclf.conformal`.
    source : str, optional
        Description of the calibration data, recorded in the card.
    name : str, optional
        Name of the new model (its card's ``name``, the ``CLFMODEL`` of the
        tables it classifies); default: the original's name (the version,
        ``'<version>+recal'``, tells them apart).
    device, batch_size, progress, columns
        As for `sourceclf.classify` (``columns`` maps the table's own names
        onto sourceclf's inputs, e.g. ``{'r': 'rmag'}``).

    Returns
    -------
    model : `~sourceclf.models.SourceClassifier`
        A new classifier sharing the original's weights, with the new
        calibration table and an updated card (version ``'<version>+recal'``);
        `sourceclf.classify` accepts it and ``model.save(directory)`` writes it.
        The calibration tables of flagged rows (``flag_calibrations``: the
        shipped image models' rows flagged ``confused``) are kept: those rows
        still get their sets from rows like them.

    Raises
    ------
    InvalidInputError
        If labels are not classes of the model, the label column is missing,
        or too few rows can be used.

    Examples
    --------
    >>> from sourceclf import calibrate, classify
    >>> from sourceclf.demo import demo_catalog
    >>> labelled = demo_catalog(400, random_state=1)
    >>> recal = calibrate(labelled, model="margnet-photometry-sg")
    >>> recal.card.training["calibration"]["n_calibration"]
    400
    >>> out = classify(demo_catalog(50, random_state=2), model=recal, confidence=0.9)
    >>> out.meta["CLFMVER"].endswith("+recal")
    True
    """
    if not isinstance(table, Table):
        raise InvalidInputError(f"calibrate takes an astropy Table, got {type(table).__name__}")
    catalog = map_columns(table, columns)
    clf = load_model(model)
    if label_column not in table.colnames:
        raise InvalidInputError(f"label column '{label_column}' not in table; columns: "
                                f"{', '.join(table.colnames)}")
    if score is not None:
        score = check_score(score, len(clf.classes), f"model '{clf.name}'")
    n = len(table)
    labels = np.char.upper(decode_strings(np.ma.getdata(table[label_column])))
    has_label = (labels != "") & ~np.ma.getmaskarray(table[label_column])
    unknown = sorted(set(labels[has_label].tolist()) - set(clf.classes))
    if unknown:
        raise InvalidInputError(f"labels {unknown} in column '{label_column}' are not classes "
                                f"of model '{clf.name}' ({', '.join(clf.classes)}); remove "
                                "those rows or use a model that knows them")

    inputs = model_inputs(catalog, feature_set=clf.feature_set, uses_images=clf.uses_images,
                          cutouts=cutouts, images=images, model_name=clf.name,
                          psf_beta_range=clf.card.domain.get("psf_beta"))
    valid = has_label & inputs.valid
    dropped = int(n - valid.sum())
    if dropped:
        warnings.warn(f"{dropped} of {n} rows have no label or cannot be classified and are "
                      "left out of the calibration", SourceclfWarning, stacklevel=2)
    keep = np.flatnonzero(valid)
    if keep.size < 10:
        raise InvalidInputError(f"only {keep.size} usable labelled rows; calibration needs "
                                "at least 10 (and a few hundred for useful sets)")

    proba = clf.predict_proba(None if inputs.features is None else inputs.features[keep],
                              None if inputs.stamps is None else inputs.stamps[keep],
                              device=device, batch_size=batch_size, progress=progress)
    rows = catalog[keep]
    cal = build_calibration_table(clf.classes, labels[keep], proba, rows)
    by = check_by(by)
    if by is not None and by.lower() != "class":
        values = group_values(rows, by)
        if values is None or not np.isfinite(values).any():
            raise InvalidInputError(f"by='{by}': the table has no values of '{by}'")
        if by not in cal.colnames:
            cal[by] = values.astype(np.float32)

    new = copy.copy(clf)
    new.card = copy.deepcopy(clf.card)
    new.calibration = cal
    new.flag_calibrations = dict(getattr(clf, "flag_calibrations", {}))
    card = new.card
    if not str(card.version).endswith("+recal"):
        card.version = f"{card.version}+recal"
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"name must be a non-empty string, got {name!r}")
        card.name = name.strip()
    counts = {c: int(np.sum(cal["label"] == c)) for c in clf.classes}
    description = source or table.meta.get("EXTNAME") or table.meta.get("name") or \
        "user-supplied labelled table"
    card.training = dict(card.training)
    card.training["calibration"] = {
        "source": str(description), "n_calibration": int(keep.size),
        "n_per_class": counts, "label_column": label_column, "rows_left_out": dropped,
        "date": datetime.date.today().isoformat(),
    }
    note = (f"Recalibrated on {keep.size} labelled sources ({description}); prediction sets "
            "carry their guarantee for sources like those, not for the original training "
            "data.")
    previous = str(card.notes).split(" Recalibrated on ")[0]
    if previous.startswith("Recalibrated on "):
        previous = ""
    card.notes = f"{previous} {note}".strip()
    card.extra = dict(card.extra or {})
    card.extra.pop("conformal_by", None)
    card.extra.pop("conformal_bins", None)
    if score is not None:
        card.extra["conformal_score"] = score
    if by is not None:
        card.extra["conformal_by"] = by
        if bins is not None:
            card.extra["conformal_bins"] = [float(b) for b in bins] if np.ndim(bins) \
                else int(bins)

    # Fail now, not at classification time, if the sets cannot be built.
    ConformalPredictor.from_classifier(new, 0.9)
    return new
