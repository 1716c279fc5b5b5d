"""Does the PSF's shape, not only its width, move the image models' calls?

Real frames of worse seeing have the PSF of a worse night: the atmosphere's
(a Kolmogorov profile) convolved with the telescope's, wings and all.
``check_fields.py`` blurs the shared fields three ways
(`sourceclf.simulate.degrade_frames`' ``kernel``): ``gaussian`` (its
default: a nearly Gaussian PSF, Moffat index 6-14), ``kolmogorov`` (a worse
night: index about 4-5) and ``moffat`` (the native PSF's index, 3-4, its
wings widened with its core: heavier wings than a night of worse seeing
gives, the far side of what real frames hold).  This script puts their
scores side by side, from the cards (``check_fields.py --kernel K --record``
and ``--inject --kernel K --record`` write them)::

    python docs/scripts/psf_shape_check.py             # the fields' own sources
    python docs/scripts/psf_shape_check.py --inject    # sources drawn into them
    python docs/scripts/psf_shape_check.py --fields uncrowded --models margnet-cnn-sgq,sdss-cut

and, with ``--simulate``, renders stars and galaxies of the training
population (`sourceclf.recipes.injection.injection_catalog`, another seed
than the checks') at one FWHM through PSFs of different shapes, and
classifies the stamps given with that FWHM (``psf=``; the Moffat index is
measured on the stamps' own stars, `sourceclf.stamp_psf`: ``margnet-sgq``
gets its columns measured through it, ``margnet-cnn-sgq`` reads it next to
the FWHM)::

    python docs/scripts/psf_shape_check.py --simulate

It measures; it tunes nothing and records nothing.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_fields import (MODELS, SDSS_CUT, SEEINGS, SHARED_DATA, field_groups,  # noqa: E402
                          float_list, recorded)

from sourceclf.models.registry import crowded_fields  # noqa: E402
from sourceclf.simulate.degrade import KERNELS  # noqa: E402

#: The PSFs ``--simulate`` draws through: ``(label, profile, Moffat index, wing)``, the wing
#: as `sourceclf.simulate.render_stamps` takes it (a tenth of the light in a Moffat of index
#: 2.5 and three times the core's width, as on field 4510-4-0030).
SHAPES = (("Moffat 3 + wing", "moffat", 3.0, (0.10, 3.0, 2.5)),
          ("Moffat 3", "moffat", 3.0, None),
          ("Moffat 4.5 + wing", "moffat", 4.5, (0.10, 3.0, 2.5)),
          ("Kolmogorov", "kolmogorov", None, None),
          ("Moffat 6", "moffat", 6.0, None),
          ("Moffat 10", "moffat", 10.0, None))

#: FWHM of each band over r's in ``--simulate`` (`OBSERVING_CONDITIONS`' medians).
BAND_RATIO = {"u": 1.18, "g": 1.08, "r": 1.0, "i": 0.96, "z": 1.02}


def kernel_rows(models, injected=False):
    """``{kernel: {(model, seeing label, group label): rows}}`` of the cards' records, the
    fields grouped (`check_fields.field_groups`) by the shipped models' records at the
    default kernel (`crowded_fields`; `SDSS_CUT`'s rows flag nothing)."""
    crowded = crowded_fields(row for *_, row in recorded(MODELS, injected))
    return {kernel: {(model, seeing, group): rows for model, seeing, group, rows in
                     field_groups(recorded(models, injected, kernel), models, "balanced",
                                  crowded)}
            for kernel in KERNELS}


def lowest_text(rows, key):
    """``'0.91 (003184)'``: the lowest ``key`` of ``rows`` and its field."""
    low = min(rows, key=lambda row: row[key])
    return f"{low[key]:.2f} ({low['field'][:6]})"


def kernel_table(models, injected=False, groups=(False, True)):
    """The reStructuredText table of the lowest scores over each group of fields (``groups``:
    False the uncrowded, True the crowded), per model, seeing (blurred ones) and kernel:
    balanced accuracy, point-like sources called STAR or QSO, extended ones called GALAXY."""
    rows = kernel_rows(models, injected)
    widths = (23, 6, 10, 9, 13, 13, 13)
    rule = " ".join("=" * w for w in widths)
    head = ("model", "seeing", "kernel", "fields", "balanced", "point", "extended")
    lines = [rule, " ".join(f"{h:<{w}}" for h, w in zip(head, widths)).rstrip(), rule]
    for model in (Path(m).name for m in models):
        for seeing in (f'{s}"' for s in SEEINGS[1:]):
            for group in ("crowded" if crowded else "uncrowded" for crowded in groups):
                for kernel in KERNELS:
                    found = rows[kernel].get((model, seeing, group))
                    if not found:
                        continue
                    cells = (model, seeing, kernel, group,
                             *(lowest_text(found, k) for k in
                               ("balanced", "point_as_star_or_qso", "extended_as_galaxy")))
                    lines.append(" ".join(f"{c:<{w}}" for c, w in zip(cells, widths)).rstrip())
    return "\n".join(lines + [rule])


def simulate(models, fwhms, n, seed, data):
    """Print, per FWHM, shape and model, the share of simulated stars called STAR or QSO
    (all, and fainter than r = 19) and of galaxies called GALAXY."""
    import sourceclf
    from sourceclf.models import load_model
    from sourceclf.recipes.injection import injection_catalog
    from sourceclf.simulate import render_stamps

    catalog = injection_catalog(n=n, data_dir=data, random_state=seed)
    star = np.asarray(catalog["class"]).astype(str) == "STAR"
    faint = np.asarray(catalog["r_mag"]) > 19.0
    loaded = {model: load_model(model) for model in models}
    print(f"{int(star.sum())} stars ({int((star & faint).sum())} fainter than r = 19), "
          f"{int((~star).sum())} galaxies, r {np.min(catalog['r_mag']):.1f}-"
          f"{np.max(catalog['r_mag']):.1f}")
    for fwhm in fwhms:
        psf = {b: fwhm * BAND_RATIO[b] for b in BAND_RATIO}
        table = catalog.copy()
        for b, width in psf.items():
            table[f"psffwhm_{b}"] = width
        for label, profile, beta, wing in SHAPES:
            stamps = render_stamps(table, random_state=seed, psf=profile, psf_scale=1.0,
                                   moffat_beta=beta, psf_wing=wing, progress=False)
            for model, clf in loaded.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = sourceclf.classify(catalog[["r_mag"]], cutouts=stamps, psf=psf,
                                                model=clf, confidence=None, device="cpu",
                                                progress=False)
                called = np.asarray(result["pred_class"].filled("")).astype(str)
                point = called[star] != "GALAXY"
                print(f'  r FWHM {fwhm:.1f}"  {label:<18} {model:<16} stars -> STAR/QSO '
                      f"{point.mean():.2f} (r > 19: {point[faint[star]].mean():.2f})  "
                      f"galaxies -> GALAXY {(called[~star] == 'GALAXY').mean():.2f}",
                      flush=True)


_parse_fwhm = float_list("--fwhm", "positive FWHMs in arcsec", "1.0,1.9",
                         lambda values: min(values) > 0)


def _positive_int(text):
    """An argparse type: a whole number of at least 1, else a one-line error."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number of at least 1, got '{text}'")
    return int(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inject", action="store_true",
                        help="the injected sources' records (check_fields.py --inject)")
    parser.add_argument("--models", type=lambda text: text.split(","), default=None,
                        help="comma-separated models (default: the shipped image models and "
                             "sdss-cut; with --simulate margnet-cnn-sgq,margnet-sgq)")
    parser.add_argument("--fields", choices=("uncrowded", "crowded", "all"), default="all",
                        help="the group of fields shown (default all)")
    parser.add_argument("--simulate", action="store_true",
                        help="classify simulated stamps through PSFs of different shapes")
    parser.add_argument("--fwhm", type=_parse_fwhm, default=(1.0, 1.9), metavar="F1,F2,...",
                        help="with --simulate: r-band FWHMs, arcsec (default 1.0,1.9)")
    parser.add_argument("--n", type=_positive_int, default=600,
                        help="with --simulate: sources (default 600)")
    parser.add_argument("--seed", type=int, default=5, help="with --simulate: seed")
    parser.add_argument("--data", type=Path, default=SHARED_DATA,
                        help="folder of the SDSS tables (default ../shared/data)")
    args = parser.parse_args(argv)
    given = {option for option, value, default in (
        ("--fwhm", args.fwhm, (1.0, 1.9)), ("--n", args.n, 600), ("--seed", args.seed, 5),
        ("--inject", args.inject, False), ("--fields", args.fields, "all")) if value != default}
    other = given & ({"--inject", "--fields"} if args.simulate else {"--fwhm", "--n", "--seed"})
    if other:
        parser.error(f"{', '.join(sorted(other))} "
                     + ("reads the cards, not --simulate" if args.simulate else
                        "goes with --simulate"))
    if args.simulate:
        models = args.models or ["margnet-cnn-sgq", "margnet-sgq"]
        if SDSS_CUT in models:
            parser.error("sdss-cut measures frames; --simulate classifies stamps")
        simulate(models, args.fwhm, args.n, args.seed, args.data)
        return 0
    groups = {"uncrowded": (False,), "crowded": (True,), "all": (False, True)}[args.fields]
    print(kernel_table(args.models or [*MODELS, SDSS_CUT], args.inject, groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
