"""Which shipped model ``model='auto'`` uses for a catalog, and why.

A model is only trustworthy where it was trained.  Among the shipped models
the table's columns allow (and that read images exactly when images are
given), `explain_model_choice` prefers

1. the model whose applicability domain (`sourceclf.models.domain`) holds
   the most rows of the table: rows that can be classified and lie inside
   the domain; models within `DOMAIN_TIE` of the best count as tied;
2. among tied models, the one with the best held-out accuracy in its card;
3. then the card's ``auto_priority``.

Models without a recorded domain (image models, older models) count every
classifiable row as inside.  When ``precision='bf16'`` or ``compile=True``
is asked for, only torch models are candidates.
"""

from dataclasses import dataclass

import numpy as np

from .exceptions import InvalidInputError, MissingColumnsError
from .features import get_feature_set
from .models.domain import ApplicabilityDomain
from .models.registry import MODEL_DIR, model_card, model_names

__all__ = ["ModelChoice", "choose_model", "explain_model_choice", "DOMAIN_TIE",
           "CHOICE_SAMPLE_ROWS"]

#: Models whose in-domain fractions differ by less than this are tied.
DOMAIN_TIE = 0.02

#: The choice looks at this many rows at most (evenly spaced through the table).
CHOICE_SAMPLE_ROWS = 20000

_TORCH_KINDS = ("torch", "torch-bayesian")


@dataclass(frozen=True)
class ModelChoice:
    """The model ``model='auto'`` chose, and why.

    Attributes
    ----------
    name : str
        The chosen model's registry name.
    classes : tuple of str
        The classes it can return.
    in_domain : float
        Fraction of the (sampled) rows it can classify inside its domain.
    reason : str
        One line for users: the choice, the classes, the runner-up.
    candidates : list of tuple
        ``(name, in_domain, held-out accuracy)`` of every usable model, best first.
    """

    name: str
    classes: tuple
    in_domain: float
    reason: str
    candidates: list


def _sample(table):
    if len(table) <= CHOICE_SAMPLE_ROWS:
        return table
    return table[np.linspace(0, len(table) - 1, CHOICE_SAMPLE_ROWS).astype(int)]


def _in_domain_fraction(card, sample):
    if card.feature_set is None:
        return 1.0
    matrix = get_feature_set(card.feature_set).compute(sample)
    inside = matrix.valid.copy()
    if card.domain.get("file") and inside.any():
        domain = ApplicabilityDomain.load(MODEL_DIR / card.name / card.domain["file"],
                                          sha256=card.domain.get("sha256"))
        inside[inside] = ~domain.outside(matrix.values[inside])
    return float(inside.mean()) if len(sample) else 1.0


def explain_model_choice(table, *, with_images=False, precision="fp32", compile=False):
    """Choose the shipped model for a table, with the reason.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The catalog.
    with_images : bool
        Whether cutouts or frames were given.
    precision : str
        The requested forward-pass precision; ``'bf16'`` keeps torch models only.
    compile : bool
        Whether ``torch.compile`` was asked for; True keeps torch models only.

    Returns
    -------
    choice : `ModelChoice`

    Raises
    ------
    MissingColumnsError
        If no shipped model can use the table; the message lists what each
        needed.
    """
    cards = [model_card(n) for n in model_names()]
    cards = [c for c in cards if bool(c.uses_images) == bool(with_images)]
    if str(precision).lower() == "bf16" or compile is True:
        cards = [c for c in cards if c.kind in _TORCH_KINDS]
    if not cards:
        raise InvalidInputError("no shipped model takes "
                                + ("images" if with_images else "photometry alone")
                                + (" with these precision/compile options"
                                   if precision != "fp32" or compile else ""))
    usable, missing_by_model = [], {}
    for card in cards:
        missing = ({} if card.feature_set is None
                   else get_feature_set(card.feature_set).missing_columns(table))
        if missing:
            missing_by_model[card.name] = missing
        else:
            usable.append(card)
    if not usable:
        raise MissingColumnsError(_missing_message(missing_by_model, with_images))

    sample = _sample(table)
    scored = [(card, _in_domain_fraction(card, sample),
               float(card.metrics.get("test", {}).get("accuracy", 0.0))) for card in usable]
    best_fraction = max(f for _, f, _ in scored)
    scored.sort(key=lambda s: (s[1] < best_fraction - DOMAIN_TIE, -s[2], -s[0].auto_priority))
    card, fraction, accuracy = scored[0]
    candidates = [(c.name, f, a) for c, f, a in scored]
    classes = tuple(card.classes)
    reason = (f"model 'auto' chose {card.name} ({'/'.join(classes)}): "
              f"{fraction:.0%} of rows inside its training domain, "
              f"held-out accuracy {accuracy:.3f}")
    if len(scored) > 1:
        other, other_fraction, other_accuracy = scored[1]
        reason += (f"; next: {other.name} ({other_fraction:.0%} inside, "
                   f"{other_accuracy:.3f})")
    if "QSO" not in classes:
        reason += "; it cannot return QSO (quasars come out as STAR)"
    return ModelChoice(name=card.name, classes=classes, in_domain=fraction, reason=reason,
                       candidates=candidates)


def choose_model(table, *, with_images=False, precision="fp32", compile=False):
    """Pick the shipped model ``model='auto'`` uses for a table.

    See `explain_model_choice` (same parameters) for the rule and the reason.

    Returns
    -------
    name : str
        The chosen model's registry name.
    """
    return explain_model_choice(table, with_images=with_images, precision=precision,
                                compile=compile).name


def _missing_message(missing_by_model, with_images):
    groups = {}  # models of one feature set miss the same columns: name them once
    for name, m in missing_by_model.items():
        groups.setdefault(tuple(m), []).append(name)
    lines = "; ".join(f"{' / '.join(names)} need{'s' if len(names) == 1 else ''} "
                      f"{', '.join(m)}" for m, names in groups.items())
    hint = ("" if with_images else
            "; with 5-band frames and ra/dec, margnet-cnn-sgq needs no photometry "
            "(images= in Python, --image BAND=FILE on the command line)")
    return f"no shipped model can use this table's columns: {lines}{hint}"
