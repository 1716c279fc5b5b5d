"""Model cards: what a shipped model is, how it was made and how well it does."""

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from astropy.table import Table

from ..exceptions import InvalidInputError, ModelIntegrityError
from ..utils._files import atomic_path

__all__ = ["ModelCard", "REQUIRED_KEYS", "sha256_file", "member_path", "verify_sha256",
           "read_calibration", "read_flag_calibrations", "write_flag_calibrations"]

#: Keys every ``card.json`` must have (the others have defaults; a missing
#: ``weights_sha256`` is refused when the weights are loaded, as an integrity error).
REQUIRED_KEYS = ("name", "kind", "classes", "weights_file")

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def sha256_file(path):
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def member_path(directory, filename, what, model):
    """The path of a file that a card names, refusing names that leave the directory.

    Parameters
    ----------
    directory : path-like
        The model directory.
    filename : str
        A file name from the card (``weights_file``, ``calibration_file``,
        the domain's ``file``).
    what : str
        What the file is, for the error message (e.g. ``'weights_file'``).
    model : str
        The model's name, for the error message.

    Returns
    -------
    path : `pathlib.Path`
        ``directory / filename``.

    Raises
    ------
    ModelIntegrityError
        If ``filename`` is not a plain file name: empty, with a path
        separator, ``.`` or ``..``, or absolute.
    """
    if not isinstance(filename, str) or filename in ("", ".", "..") or "/" in filename \
            or "\\" in filename or "\0" in filename or Path(filename).name != filename:
        raise ModelIntegrityError(f"model '{model}': {what} {filename!r} must name a file "
                                  "inside the model directory (a plain file name)")
    return Path(directory) / filename


def verify_sha256(path, expected, what, model):
    """Check a file against the SHA-256 recorded in a card (hex, any case).

    Parameters
    ----------
    path : path-like
        The file.
    expected : str
        The recorded digest: 64 hexadecimal digits, upper or lower case.
    what : str
        What the file is, for the error message (e.g. ``'weights'``).
    model : str
        The model's name, for the error message.

    Returns
    -------
    digest : str
        The file's digest (lower case).

    Raises
    ------
    ModelIntegrityError
        If ``expected`` is missing, empty or not a SHA-256 digest, or the file
        does not match it.
    """
    if not expected:
        raise ModelIntegrityError(f"model '{model}': its card records no sha256 of its "
                                  f"{what} ('{path}'); refusing to load unverified files "
                                  "(SourceClassifier.save records it)")
    if not isinstance(expected, str) or not _SHA256.fullmatch(expected):
        raise ModelIntegrityError(f"model '{model}': the card's sha256 of its {what} is not "
                                  f"64 hexadecimal digits ({str(expected)[:70]!r})")
    digest = sha256_file(path)
    if digest != expected.lower():
        raise ModelIntegrityError(
            f"model '{model}': {what} '{path}' has sha256 {digest[:12]}..., which does not "
            f"match the card's {expected.lower()[:12]}...; refusing to load altered files")
    return digest


@dataclass
class ModelCard:
    """Description of a trained model, stored as ``card.json`` beside its weights.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``'margnet-photometry-sg'``.
    version : str
        Version of these weights.
    description : str
        One paragraph for users.
    kind : str
        ``'torch'`` or ``'sklearn'``: how the weights are stored and run.
    architecture : str
        Architecture name (see `sourceclf.models.ARCHITECTURES`) for torch models.
    config : dict
        Keyword arguments that rebuild the architecture.
    feature_set : str or None
        Name of the photometric feature set the model reads, None for image-only models.
    uses_images : bool
        Whether the model needs 5-band cutouts.
    classes : list of str
        Class labels, in the order of the model's outputs.
    training : dict
        Training data, recipe command, split, seed and sizes.
    metrics : dict
        Held-out metrics (accuracy, macro precision/recall/F1, confusion matrix).
    weights_file : str
        File name of the weights inside the model directory.
    weights_sha256 : str
        SHA-256 of the weights file; loading refuses a mismatch.
    calibration_file : str or None
        File name of the stored calibration split (for conformal sets).
    calibration_sha256 : str
        SHA-256 of the calibration file (written by ``save``); loading refuses
        a mismatch.  Empty in cards made before it was recorded (then not
        checked).
    auto_priority : int
        Higher is preferred when ``model='auto'`` chooses among usable models.
    notes : str
        Caveats users must know.
    extra : dict
        Anything else the recipe records (parameter count, library versions).
    domain : dict
        The model's applicability domain (see `sourceclf.models.domain`):
        ``'description'`` (where to use it, in words), ``'magnitudes'``
        (band -> [faintest, brightest] trained range, for display), for
        photometric models ``'file'`` and ``'sha256'`` (the fitted
        `~sourceclf.models.domain.ApplicabilityDomain`), for image models
        ``'psf_fwhm'`` (band -> [low, high], arcsec: the seeing they were
        trained on) and, for those reading the PSF's shape, ``'psf_beta'``
        (band -> [low, high]: the Moffat indices their inputs are clipped
        to).  Empty for models made before domains existed.
    flag_calibrations : dict
        Calibration tables for the rows of one ``pred_flag`` (see
        `sourceclf.conformal.add_prediction_sets`): flag -> ``{'file': ...,
        'sha256': ..., 'rows': ..., 'description': ...}``, the table's file in
        the model directory, its digest (required; loading refuses a
        mismatch), its row count and where its rows come from.  Empty for
        most models.
    """

    name: str
    version: str = "1.0"
    description: str = ""
    kind: str = "torch"
    architecture: str = ""
    config: dict = field(default_factory=dict)
    feature_set: str = None
    uses_images: bool = False
    classes: list = field(default_factory=list)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    weights_file: str = "weights.safetensors"
    weights_sha256: str = ""
    calibration_file: str = None
    calibration_sha256: str = ""
    auto_priority: int = 0
    notes: str = ""
    extra: dict = field(default_factory=dict)
    domain: dict = field(default_factory=dict)
    flag_calibrations: dict = field(default_factory=dict)

    def to_json(self, path):
        """Write the card as indented JSON."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh, indent=2, sort_keys=False)
            fh.write("\n")

    @classmethod
    def from_directory(cls, directory):
        """Read the ``card.json`` of a model directory (see `from_json`).

        Raises
        ------
        InvalidInputError
            If ``directory`` holds no ``card.json``, or the card is invalid.
        """
        path = Path(directory) / "card.json"
        if not path.is_file():
            raise InvalidInputError(f"'{directory}' is not a sourceclf model directory "
                                    "(no card.json)")
        return cls.from_json(path)

    @classmethod
    def from_json(cls, path):
        """Read a card written by `to_json`, checking its keys and their types.

        Keys the card class does not know are ignored.

        Raises
        ------
        InvalidInputError
            If the file cannot be read, is not a JSON object, lacks one of
            `REQUIRED_KEYS` or has a value of the wrong type; the message
            names the file.
        """
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            first = (str(exc).splitlines() or [""])[0]
            raise InvalidInputError(f"model card '{path}' is not readable JSON "
                                    f"({type(exc).__name__}: {first})") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"model card '{path}' is not a JSON object (it holds a "
                                    f"{type(data).__name__})")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise InvalidInputError(f"model card '{path}' lacks the keys "
                                    f"{', '.join(missing)}")
        bad = [f"{k} ({_TYPE_NAMES[k]})" for k, ok in _CHECKS.items()
               if k in data and not ok(data[k])]
        if bad:
            raise InvalidInputError(f"model card '{path}' has values of the wrong type: "
                                    f"{', '.join(bad)} expected")
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _is_str(value):
    return isinstance(value, str)


def _is_str_or_none(value):
    return value is None or isinstance(value, str)


def _is_classes(value):
    return (isinstance(value, list) and len(value) >= 2
            and all(isinstance(c, str) and c.strip() for c in value)
            and len({c.upper() for c in value}) == len(value))


#: Type check of each card key, and its description for error messages.
_CHECKS = {"name": lambda v: _is_str(v) and bool(v.strip()), "version": _is_str,
           "kind": _is_str, "architecture": _is_str, "feature_set": _is_str_or_none,
           "uses_images": lambda v: isinstance(v, bool), "classes": _is_classes,
           "weights_file": _is_str, "weights_sha256": _is_str,
           "calibration_file": _is_str_or_none, "calibration_sha256": _is_str,
           **{k: (lambda v: isinstance(v, dict))
              for k in ("config", "training", "metrics", "extra", "domain",
                        "flag_calibrations")}}
_TYPE_NAMES = {"name": "a non-empty string", "feature_set": "a string or null",
               "calibration_file": "a string or null", "uses_images": "true or false",
               "classes": "a list of at least two distinct class names",
               **{k: "a string" for k in ("version", "kind", "architecture", "weights_file",
                                          "weights_sha256", "calibration_sha256")},
               **{k: "an object" for k in ("config", "training", "metrics", "extra",
                                           "domain", "flag_calibrations")}}


def read_calibration(directory, card):
    """Read the calibration table a card names, checking it.

    Parameters
    ----------
    directory : path-like
        The model directory.
    card : `ModelCard`
        Its card, with a ``calibration_file``.

    Returns
    -------
    calibration : `~astropy.table.Table`

    Raises
    ------
    InvalidInputError
        If the file is missing, not a readable ECSV table, or lacks the
        ``label`` and ``prob_<class>`` columns conformal sets need.
    ModelIntegrityError
        If its name leaves the directory, or it does not match the card's
        ``calibration_sha256`` (checked when the card records one).
    """
    path = member_path(directory, card.calibration_file, "calibration_file", card.name)
    return _calibration_file(path, card.calibration_sha256, "calibration file", card)


def _calibration_file(path, sha256, what, card):
    """A calibration table's file read and checked (`read_calibration`); ``sha256``
    checked when given."""
    if not path.is_file():
        raise InvalidInputError(f"model '{card.name}': {what} '{path}' is missing")
    if sha256:
        verify_sha256(path, sha256, what, card.name)
    try:
        table = Table.read(path, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many kinds on a corrupt ECSV file
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InvalidInputError(f"model '{card.name}': {what} '{path}' is not a "
                                f"readable ECSV table ({type(exc).__name__}: {first})") from None
    needed = ["label"] + [f"prob_{c.lower()}" for c in card.classes]
    missing = [c for c in needed if c not in table.colnames]
    if missing:
        raise InvalidInputError(f"model '{card.name}': {what} '{path}' lacks the "
                                f"columns {', '.join(missing)}")
    return table


def read_flag_calibrations(directory, card):
    """Read the calibration tables a card names for flagged rows (``flag_calibrations``).

    Parameters
    ----------
    directory : path-like
        The model directory.
    card : `ModelCard`
        Its card.

    Returns
    -------
    tables : dict
        Flag -> `~astropy.table.Table` (empty when the card names none).

    Raises
    ------
    InvalidInputError
        If an entry is not an object naming a ``file``, or a file is missing,
        unreadable or lacks the columns conformal sets need.
    ModelIntegrityError
        If a file's name leaves the directory, or its digest is missing or
        does not match the card's.
    """
    tables = {}
    for flag, entry in card.flag_calibrations.items():
        what = f"calibration file of rows flagged {flag}"
        if not isinstance(entry, dict) or not entry.get("file"):
            raise InvalidInputError(f"model '{card.name}': its card's flag_calibrations"
                                    f"['{flag}'] must be an object naming a 'file'")
        path = member_path(directory, entry["file"], what, card.name)
        if path.is_file():  # the digest is required here
            verify_sha256(path, entry.get("sha256"), what, card.name)
        tables[flag] = _calibration_file(path, None, what, card)
    return tables


def write_flag_calibrations(directory, card, tables):
    """Write calibration tables of flagged rows into a model directory, recording them.

    Parameters
    ----------
    directory : path-like
        The model directory.
    card : `ModelCard`
        Its card: ``flag_calibrations`` gets each table's ``file``,
        ``sha256`` and ``rows``, keeping the entries' other keys
        (``description``); flags without a table are dropped from it.
    tables : dict
        Flag -> `~astropy.table.Table` (``label`` and ``prob_<class>``
        columns, as `sourceclf.conformal.build_calibration_table` makes).
    """
    kept = {}
    for flag, table in tables.items():
        entry = dict(card.flag_calibrations.get(flag) or {})
        entry["file"] = f"calibration_{flag}.ecsv"
        path = member_path(directory, entry["file"], f"calibration file of rows flagged {flag}",
                           card.name)
        with atomic_path(path) as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
        entry["sha256"] = sha256_file(path)
        entry["rows"] = len(table)
        kept[flag] = entry
    card.flag_calibrations = kept
