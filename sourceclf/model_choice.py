"""Which shipped model ``model='auto'`` uses for a catalog, and why.

A model is only trustworthy where it was trained.  Among the shipped models
the table's columns allow (and that read images exactly when images are
given), `explain_model_choice` prefers

1. the model whose applicability domain (`sourceclf.models.domain`) holds
   the largest share of the rows it can classify (rows with a missing input
   are left unclassified by any model, and reported so); models within
   `DOMAIN_TIE` of the best, or within twice the sampling noise of a small
   table, count as tied;
2. among tied models, the one with the best held-out accuracy in its card,
   accuracies within `ACCURACY_TIE` standard errors of their difference
   (from each card's test size) counting as tied;
3. then the card's ``auto_priority``.

Models without a fitted domain (image models, older models) count the rows
inside the magnitudes their card records (``domain['magnitudes']``, every
row when it records none or the table has no magnitude), but lose ties to
models with one.  When
``precision='bf16'`` or ``compile=True`` is asked for, only torch models are
candidates.
"""

from dataclasses import dataclass

import numpy as np

from .columns import suggest_columns, take_rows
from .exceptions import InvalidInputError, MissingColumnsError
from .features import get_feature_set
from .models.domain import ApplicabilityDomain, outside_magnitudes
from .models.registry import MODEL_DIR, model_card, model_names

__all__ = ["ModelChoice", "choose_model", "explain_model_choice", "DOMAIN_TIE", "ACCURACY_TIE",
           "CHOICE_SAMPLE_ROWS"]

#: Models whose in-domain fractions differ by less than this are tied: a domain
#: flags up to about 3% of rows like its training data (its 0.1-99.9% feature
#: ranges and 99.5% density threshold), so smaller differences are no evidence.
DOMAIN_TIE = 0.03

#: Held-out accuracies closer than this many standard errors of their
#: difference (binomial, from each card's test size) are tied: a twin trained
#: on the same split (a Bayesian head on the same members) differs by a few
#: test rows, which is no evidence.
ACCURACY_TIE = 2.0

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
        Fraction of the (sampled) rows it can classify that lie inside its domain.
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
    return take_rows(table, np.linspace(0, len(table) - 1, CHOICE_SAMPLE_ROWS).astype(int))


def _reads_images_only(card):
    """Whether the model's features come from its images (their PSF), not the table."""
    return get_feature_set(card.feature_set).reads_image_psf


def _in_domain_fraction(card, sample, matrices):
    """Share of the sample's classifiable rows inside ``card``'s domain.

    ``matrices`` caches the feature matrix of each feature set: models of one
    set share it.
    """
    if not card.domain.get("file"):  # no fitted domain: the trained magnitudes, if any
        outside = outside_magnitudes(sample, card.domain.get("magnitudes"))
        return 1.0 if outside is None or not len(outside) else float(1.0 - outside.mean())
    if card.feature_set is None or _reads_images_only(card):
        return 1.0
    if card.feature_set not in matrices:
        matrices[card.feature_set] = get_feature_set(card.feature_set).compute(sample)
    matrix = matrices[card.feature_set]
    values = matrix.values[matrix.valid]
    if not len(values):
        return 1.0
    domain = ApplicabilityDomain.load(MODEL_DIR / card.name / card.domain["file"],
                                      sha256=card.domain.get("sha256"))
    return float(1.0 - domain.outside(values).mean())


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
    others = []  # models that read the table but cannot run with these options
    if str(precision).lower() == "bf16" or compile is True:
        others = [c for c in cards if c.kind not in _TORCH_KINDS]
        cards = [c for c in cards if c.kind in _TORCH_KINDS]
    if not cards:
        raise InvalidInputError("no shipped model takes "
                                + ("images" if with_images else "photometry alone")
                                + (" with these precision/compile options"
                                   if precision != "fp32" or compile else ""))
    usable, missing_by_model = [], {}
    for card in cards:
        missing = ({} if card.feature_set is None or _reads_images_only(card)
                   else get_feature_set(card.feature_set).missing_columns(table))
        if missing:
            missing_by_model[card.name] = missing
        else:
            usable.append(card)
    if not usable:
        readers = [c.name for c in others if c.feature_set is not None
                   and not get_feature_set(c.feature_set).missing_columns(table)]
        if readers:
            options = " and ".join(o for o, asked in (("--precision bf16 / precision='bf16'",
                                                       str(precision).lower() == "bf16"),
                                                      ("--compile / compile=True",
                                                       compile is True)) if asked)
            raise InvalidInputError(f"only torch models run with {options}, and none reads "
                                    f"this table's columns; {', '.join(readers)} (not torch) "
                                    "does: leave the option out")
        raise MissingColumnsError(_missing_message(table, missing_by_model, with_images))

    sample = _sample(table)
    matrices = {}
    scored = [(card, _in_domain_fraction(card, sample, matrices),
               float(card.metrics.get("test", {}).get("accuracy", 0.0))) for card in usable]
    best_fraction = max(f for _, f, _ in scored)
    n = max(len(sample), 1)

    def behind(fraction):
        """Whether a model's coverage is below the best by more than the tie margin:
        `DOMAIN_TIE`, or twice the sampling noise of a small table."""
        noise = 2.0 * np.sqrt(fraction * (1.0 - fraction) / n + 1.0 / n ** 2)
        return best_fraction - fraction > max(DOMAIN_TIE, noise)

    # Tied on coverage: models with a recorded domain first (an unknown domain is no
    # evidence), then held-out accuracy, then the card's priority.
    def standing(s):
        return behind(s[1]), not s[0].domain.get("file")

    scored.sort(key=lambda s: (*standing(s), -s[2], -s[0].auto_priority))
    # Then accuracies tied with the best of its standing within their noise: priority.
    lead = scored[0]
    tied = [s for s in scored if standing(s) == standing(lead)
            and lead[2] - s[2] <= ACCURACY_TIE * np.sqrt(_variance(lead) + _variance(s))]
    tied.sort(key=lambda s: -s[0].auto_priority)
    scored = tied + [s for s in scored if all(s is not t for t in tied)]
    card, fraction, accuracy = scored[0]
    candidates = [(c.name, f, a) for c, f, a in scored]
    classes = tuple(card.classes)
    reason = (f"model 'auto' chose {card.name} ({'/'.join(classes)}): "
              f"{fraction:.0%} of the rows it can classify inside its training domain, "
              f"held-out accuracy {accuracy:.3f}")
    if len(scored) > 1:
        other, other_fraction, other_accuracy = scored[1]
        reason += (f"; next: {other.name} ({other_fraction:.0%} inside, "
                   f"{other_accuracy:.3f})")
    if len(tied) > 1:
        reason += (f"; {len(tied)} models tied within the noise of their held-out "
                   f"accuracy, the card's priority decided")
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


def _variance(scored):
    """Binomial variance of a scored card's held-out accuracy (0 without a test size)."""
    card, _, accuracy = scored
    n = int(card.metrics.get("test", {}).get("n", 0) or 0)
    return accuracy * (1.0 - accuracy) / n if n > 0 else 0.0


def _missing_message(table, missing_by_model, with_images):
    suggestion = suggest_columns(table)
    if suggestion:  # a mapping would do: say only that, in one short line
        return f"no shipped model can use this table's columns; {suggestion}"
    groups = {}  # models of one feature set miss the same columns: name them once
    for name, m in missing_by_model.items():
        groups.setdefault(tuple(m), []).append(name)
    lines = "; ".join(f"{' / '.join(names)} need{'s' if len(names) == 1 else ''} "
                      f"{', '.join(m)}" for m, names in groups.items())
    hint = ("" if with_images else
            "; with 5-band frames and ra/dec, margnet-cnn-sgq needs no photometry "
            "(images= in Python, --image BAND=FILE on the command line)")
    return f"no shipped model can use this table's columns: {lines}{hint}"
