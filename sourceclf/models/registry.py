"""The registry of models shipped with sourceclf."""

from pathlib import Path

from astropy.table import Table

from ..exceptions import InvalidInputError, UnknownModelError
from .base import SourceClassifier
from .card import ModelCard

__all__ = ["MODEL_DIR", "REAL_FIELD_RECORDS", "crowded_fields", "list_models", "load_model",
           "model_names", "model_card", "describe_model"]

#: Directory holding one sub-directory per shipped model.
MODEL_DIR = Path(__file__).parent / "data"


def model_names():
    """Names of the shipped models, sorted."""
    if not MODEL_DIR.is_dir():
        return []
    return sorted(p.name for p in MODEL_DIR.iterdir() if (p / "card.json").is_file())


def model_card(name):
    """The `~sourceclf.models.ModelCard` of a shipped model, without loading weights."""
    path = MODEL_DIR / _shipped_name(name) / "card.json"
    if not path.is_file():
        raise UnknownModelError(_unknown(name))
    return ModelCard.from_json(path)


def _shipped_name(name):
    """The shipped model's name that ``name`` spells in any case (else ``name``)."""
    name = str(name)
    if (MODEL_DIR / name / "card.json").is_file():
        return name
    matches = [known for known in model_names() if known.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else name


def _unknown(name, also=""):
    import difflib

    names = model_names()
    known = ", ".join(names) or "none installed"
    close = difflib.get_close_matches(str(name).lower(), names, n=1, cutoff=0.75)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown model '{name}'{hint}; known models: {known}{also}"


def _not_a_directory(model):
    """Why ``model`` is no model directory either (for `load_model`'s error)."""
    path = Path(model)
    if path.is_dir():
        return f"; and directory '{path}' holds no card.json (it is not a model directory)"
    if path.exists():
        return f"; and '{path}' is a file, not a model directory"
    return f"; and there is no model directory '{path}' either"


def list_models():
    """Summarise the shipped models.

    Returns
    -------
    models : `~astropy.table.Table`
        One row per model: name, version, inputs, classes, held-out accuracy,
        the data it was tested on and where to use it (its domain, in words;
        see `describe_model` for the whole card).

    Examples
    --------
    >>> from sourceclf.models import list_models
    >>> "margnet-photometry-sg" in list_models()["name"]
    True
    """
    rows = []
    for name in model_names():
        card = model_card(name)
        test = card.metrics.get("test", {})
        inputs = " + ".join(x for x in (card.feature_set,
                                        "images" if card.uses_images else None) if x)
        rows.append((name, card.version, inputs, "/".join(card.classes),
                     float(test.get("accuracy", float("nan"))), card.metrics.get("test_data", ""),
                     card.domain.get("description", "(no recorded domain)")))
    return Table(rows=rows or None,
                 names=("name", "version", "inputs", "classes", "test_accuracy", "test_data",
                        "use_when"),
                 dtype=(str, str, str, str, float, str, str))


def describe_model(model):
    """A shipped model's card in words: what it reads, returns, and where it holds.

    Reads the card only (no weights, no torch).

    Parameters
    ----------
    model : str or `~sourceclf.models.ModelCard`
        A shipped model's name, or a card.

    Returns
    -------
    text : str
        Several lines: description, inputs, classes, domain (where to use
        it, trained magnitude and seeing ranges), held-out accuracy overall,
        per data set and per magnitude bin, the real-field checks, where the
        prediction sets of flagged rows are calibrated, and caveats.

    Examples
    --------
    >>> print(describe_model("ugriz-sgq").splitlines()[0])  # doctest: +ELLIPSIS
    ugriz-sgq ...
    """
    card = model if isinstance(model, ModelCard) else model_card(model)
    inputs = " + ".join(x for x in (card.feature_set and f"features '{card.feature_set}'",
                                    "5-band ugriz images" if card.uses_images else None) if x)
    lines = [f"{card.name} {card.version}: {card.description}",
             f"  inputs: {inputs}",
             f"  classes it can return: {', '.join(card.classes)}"]
    domain = card.domain
    if domain:
        lines.append(f"  use when: {domain.get('description', '(not described)')}")
        for band, (bright, faint) in domain.get("magnitudes", {}).items():
            lines.append(f"  trained on {band} magnitudes {bright:g} to {faint:g}"
                         + ("" if domain.get("file") else "; rows outside them (magnitudes "
                            "given or measured on the frames) are flagged 'out_of_domain'"))
        for band, (low, high) in domain.get("psf_fwhm", {}).items():
            lines.append(f"  trained on {band}-band seeing {low:.2f}-{high:.2f} arcsec")
        beta = domain.get("psf_beta", {})
        if beta:  # a model reading the PSF's shape
            lines.append("  reads the PSF's Moffat index, clipped to the trained "
                         + ", ".join(f"{b} {lo:.2f}-{hi:.2f}" for b, (lo, hi) in beta.items()))
        if "neighbours" in domain:
            lines.append(f"  trained on stamps with at most {domain['neighbours']['limit']} "
                         "other sources (99%); rows with more are flagged 'crowded'")
        if domain.get("file"):
            lines.append("  rows outside the training ranges or unlike the training rows are "
                         "flagged 'out_of_domain' in pred_flag")
    else:
        lines.append("  use when: (no recorded domain: a model made before domains existed)")
    test = card.metrics.get("test", {})
    if "accuracy" in test:
        lines.append(f"  held-out accuracy: {test['accuracy']:.4f} on {test.get('n', '?')} rows "
                     f"({card.metrics.get('test_data', 'test split')})")
    for name, part in card.metrics.get("test_by_data", {}).items():
        lines.append(f"    {name}: {part['accuracy']:.4f} on {part['n']} rows")
    by_mag = card.metrics.get("test_by_magnitude")
    if by_mag:
        lines.append(f"  held-out accuracy by {by_mag['band']} magnitude:")
        for label, n, acc in zip(by_mag["bins"], by_mag["n"], by_mag["accuracy"]):
            lines.append(f"    {label:>9}: {acc:.3f} (n={n})" if n else f"    {label:>9}: - (n=0)")
    lines += _real_field_lines(card.metrics)
    for flag, entry in card.flag_calibrations.items():
        lines.append(f"  prediction sets of rows flagged '{flag}': calibrated on "
                     f"{entry.get('description', 'a table of such rows')}")
    if card.notes:
        lines.append(f"  notes: {card.notes}")
    return "\n".join(lines)


#: The real-field records of an image model's card (``docs/scripts/check_fields.py
#: --record``) that `describe_model` sums up, and how it names them.
REAL_FIELD_RECORDS = {
    "real_fields": "own sources, Gaussian blur",
    "real_fields_kolmogorov": "own sources, the atmosphere's blur",
    "real_fields_moffat": "own sources, native PSF shape",
    "injected_fields": "injected sources, Gaussian blur",
    "injected_fields_kolmogorov": "injected sources, the atmosphere's blur",
    "injected_fields_moffat": "injected sources, native PSF shape",
}


def crowded_fields(rows):
    """The fields of real-field check rows (a card's ``metrics[key]['rows']``,
    `REAL_FIELD_RECORDS`) whose rows are mostly flagged ``crowded``.

    Parameters
    ----------
    rows : iterable of dict
        Rows with ``field`` and, for a model's rows, ``crowded`` (the share of the
        field's sources flagged so; rows without it, such as SDSS's cut, say nothing).

    Returns
    -------
    fields : set of str
    """
    return {row["field"] for row in rows if row.get("crowded", 0.0) >= 0.5}


def _real_field_lines(metrics):
    """`describe_model`'s lines on the real-field checks: per record, the lowest balanced
    accuracy over the uncrowded and over the crowded fields at each seeing."""
    lines = []
    for key, what in REAL_FIELD_RECORDS.items():
        rows = metrics.get(key, {}).get("rows", [])
        if not rows:
            continue
        crowded = crowded_fields(rows)
        seeings = sorted({r.get("target_r_fwhm") for r in rows}, key=lambda s: s or 0.0)
        parts = []
        for group, in_group in (("uncrowded", False), ("crowded", True)):
            lowest = []
            for seeing in seeings:
                scores = [r["balanced"] for r in rows if r.get("target_r_fwhm") == seeing
                          and (r["field"] in crowded) == in_group]
                if scores:
                    lowest.append(("native" if seeing is None else f'{seeing:g}"')
                                  + f" {min(scores):.2f}")
            if lowest:
                parts.append(f"{group} {', '.join(lowest)}")
        if not lines:
            lines.append("  on real SDSS fields never trained on (docs/scripts/check_fields.py;"
                         " lowest balanced accuracy over the fields, at their own seeing and "
                         "blurred):")
        lines.append(f"    {what}: {'; '.join(parts)}")
    return lines


def load_model(model):
    """Load a model by registry name or from a directory written by ``save``.

    Parameters
    ----------
    model : str, path-like or `~sourceclf.models.SourceClassifier`
        A shipped model's name (see `list_models`), a model directory, or an
        already loaded classifier (returned as is).

    Returns
    -------
    classifier : `~sourceclf.models.SourceClassifier`

    Raises
    ------
    UnknownModelError
        If no shipped model has that name and it is not a model directory
        (the message says both).
    ModelIntegrityError
        If the weights do not match the checksum in the card.
    """
    if isinstance(model, SourceClassifier):
        return model
    if not isinstance(model, (str, Path)):
        raise InvalidInputError(f"model must be a name, a directory or a classifier, "
                                f"got {type(model).__name__}")
    shipped = MODEL_DIR / str(model)
    if isinstance(model, str) and (shipped / "card.json").is_file():
        return SourceClassifier.load(shipped)
    path = Path(model)
    if (path / "card.json").is_file():
        return SourceClassifier.load(path)
    shipped = MODEL_DIR / _shipped_name(model)  # a shipped name in other case: 'MargNet-SGQ'
    if isinstance(model, str) and (shipped / "card.json").is_file():
        return SourceClassifier.load(shipped)
    raise UnknownModelError(_unknown(model, _not_a_directory(model)))
