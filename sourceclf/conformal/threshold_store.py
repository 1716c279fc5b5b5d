"""Where a model's conformity thresholds come from at inference.

MAPIE computes a model's conformity thresholds from its calibration split
once; after that, prediction sets need the thresholds alone
(`sourceclf.conformal.set_rules`).  A model directory may hold them in a
small JSON file (`THRESHOLDS_FILE`, written by `sourceclf.conformal.thresholds`)
referenced from the card's ``extra['conformal_thresholds']`` with its sha256,
with those of the model's calibration tables of flagged rows (``flag_entries``,
`find_table`); thresholds found nowhere are computed with MAPIE by the caller and kept in
this process (`remember`).

Every set of thresholds is stored under a key naming what it depends on
(`threshold_key`: score, grouping, bins, levels, seed) and is used only for
calibration data whose fingerprint (`calibration_fingerprint`) matches the
one it was computed from, so a recalibrated model never gets stale ones.
"""

import hashlib
import json
import weakref

import numpy as np

from ..columns import decode_strings
from ..exceptions import InvalidInputError, ModelIntegrityError
from ..models.card import sha256_file
from ..models.registry import MODEL_DIR

__all__ = ["THRESHOLDS_FILE", "FORMAT_VERSION", "CARD_KEY", "calibration_fingerprint",
           "threshold_key", "find", "remember", "find_table", "remember_table",
           "read_thresholds", "clear_cache"]

#: File name of the thresholds inside a model directory.
THRESHOLDS_FILE = "thresholds.json"
#: Version of the file's layout.
FORMAT_VERSION = 1
#: Key of the card's ``extra`` that references the file: ``{'file': ..., 'sha256': ...}``.
CARD_KEY = "conformal_thresholds"

# Thresholds computed in this process: (fingerprint, classes, key) -> state.
_COMPUTED = {}
# Per model object: its calibration table, fingerprint and file entries.
_MODELS = weakref.WeakKeyDictionary()


def calibration_fingerprint(calibration, classes):
    """SHA-256 of what a model's thresholds depend on in its calibration table.

    Covers the class order, the labels (upper case), the ``prob_<class>``
    columns and every other numeric column (possible Mondrian groupings) as
    float64, masked values as NaN, whatever dtypes and masks the table was
    read with.

    Parameters
    ----------
    calibration : `~astropy.table.Table`
        A calibration table.
    classes : sequence of str
        The model's classes, in output order.

    Returns
    -------
    fingerprint : str
        Hex digest.
    """
    digest = hashlib.sha256()
    digest.update("|".join(classes).encode())
    if "label" in calibration.colnames:
        labels = np.char.upper(decode_strings(np.ma.getdata(calibration["label"])))
        digest.update("\n".join(labels.tolist()).encode())
    for name in sorted(calibration.colnames):
        column = calibration[name]
        if name == "label" or column.dtype.kind not in "iuf":
            continue
        values = np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def threshold_key(score, by, bins, levels, random_state):
    """Canonical text naming one set of thresholds.

    Parameters
    ----------
    score : str
        A key of `sourceclf.conformal.SCORES`.
    by : str or None
        None, ``'class'`` or a column name.
    bins : int, sequence of float or None
        Bins of a column ``by``.
    levels : sequence of float
        Confidence levels.
    random_state : int
        Seed of the randomised scores and of RAPS's split.

    Returns
    -------
    key : str
    """
    if bins is not None:
        bins = [float(b) for b in bins] if np.ndim(bins) else int(bins)
    return json.dumps({"score": score, "by": by, "bins": bins,
                       "levels": [float(c) for c in levels],
                       "random_state": int(random_state)}, sort_keys=True)


def read_thresholds(path, sha256=None):
    """Read a thresholds file.

    Parameters
    ----------
    path : path-like
        A file written by `sourceclf.conformal.thresholds.write_thresholds`.
    sha256 : str, optional
        Its expected digest (from the card); a mismatch is refused.

    Returns
    -------
    data : dict
        ``format``, ``calibration_sha256``, ``classes`` and ``entries``
        (key -> state).

    Raises
    ------
    ModelIntegrityError
        If the file's sha256 differs from ``sha256``.
    InvalidInputError
        If the file is not a thresholds file of a known format.
    """
    if sha256:
        digest = sha256_file(path)
        if digest != sha256:
            raise ModelIntegrityError(
                f"conformity thresholds '{path}': sha256 {digest[:12]}... does not match the "
                f"card's {sha256[:12]}...; refusing altered thresholds")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        raise InvalidInputError(f"'{path}' is not a sourceclf thresholds file of format "
                                f"{FORMAT_VERSION}")
    return data


def _model_entries(clf):
    """(fingerprint, file entries, file entries of its flag tables by their fingerprint) of
    a model, read once per model object."""
    known = _MODELS.get(clf)
    if known is not None and known[0] is clf.calibration:
        return known[1:]
    fingerprint = calibration_fingerprint(clf.calibration, clf.classes)
    entries, flag_entries = {}, {}
    reference = (getattr(clf.card, "extra", None) or {}).get(CARD_KEY)
    if reference:
        directory = clf.directory if clf.directory is not None else MODEL_DIR / clf.name
        path = directory / reference["file"]
        if path.is_file():
            data = read_thresholds(path, reference.get("sha256"))
            if data["calibration_sha256"] == fingerprint:
                entries = data["entries"]
                flag_entries = {table["calibration_sha256"]: table["entries"]
                                for table in data.get("flag_entries", {}).values()}
    _MODELS[clf] = (clf.calibration, fingerprint, entries, flag_entries)
    return fingerprint, entries, flag_entries


def find(clf, key):
    """The thresholds of a model under ``key``, or None where none are known.

    Looks in the model's thresholds file (shipped models; verified against
    the card's sha256 and the calibration data's fingerprint), then among
    those computed earlier in this process for the same calibration data.

    Parameters
    ----------
    clf : `~sourceclf.models.SourceClassifier`
        A model with calibration data.
    key : str
        From `threshold_key`.

    Returns
    -------
    state : dict or None
        See `sourceclf.conformal.ConformalPredictor.state`.
    source : {'file', 'process'} or None
        Where it was found.
    """
    fingerprint, entries, _ = _model_entries(clf)
    if key in entries:
        return entries[key], "file"
    state = _COMPUTED.get((fingerprint, clf.classes, key))
    return state, None if state is None else "process"


def remember(clf, key, state):
    """Keep thresholds computed for a model's calibration data, for this process."""
    fingerprint, _, _ = _model_entries(clf)
    _COMPUTED[(fingerprint, clf.classes, key)] = state


def find_table(calibration, classes, key, model=None):
    """Thresholds known for a calibration table's contents, or None.

    For tables that are not a model's own calibration (`find`), such as the
    calibration of a model's flagged rows: those ``model``'s thresholds file
    holds for the same contents (its ``flag_entries``, written for the
    tables of its card's ``flag_calibrations``; verified as for `find`),
    then those computed earlier in this process.

    Parameters
    ----------
    calibration : `~astropy.table.Table`
        The calibration table.
    classes : sequence of str
        The model's classes, in output order.
    key : str
        From `threshold_key`.
    model : `~sourceclf.models.SourceClassifier`, optional
        The model whose thresholds file to look in.

    Returns
    -------
    state : dict or None
    source : {'file', 'process'} or None
    """
    fingerprint = calibration_fingerprint(calibration, classes)
    if model is not None and model.calibration is not None:
        stored = _model_entries(model)[2].get(fingerprint, {})
        if key in stored:
            return stored[key], "file"
    state = _COMPUTED.get((fingerprint, tuple(classes), key))
    return state, None if state is None else "process"


def remember_table(calibration, classes, key, state):
    """Keep thresholds computed for a calibration table's contents, for this process."""
    _COMPUTED[(calibration_fingerprint(calibration, classes), tuple(classes), key)] = state


def clear_cache():
    """Forget the thresholds computed and the files read in this process."""
    _COMPUTED.clear()
    _MODELS.clear()
