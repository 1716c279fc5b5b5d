"""Score the models on each real field's own sources against truths from several bands.

``check_fields.py``'s truth (`sourceclf.recipes.extent_truth.frame_truth`)
measures each clean source's extent, ``m_psf - m_aperture``, on the native
r frame alone.  Its noise, the width of the point-source locus
(`~sourceclf.recipes.extent_truth.locus_width`), reaches 0.08-0.11 mag at
r = 19-20.5 on 003184-2-0169, and puts a third of that field's clean
sources within two widths of the 0.145 cut (``ambiguous``).  SDSS's own
star/galaxy type is made from the flux of all its bands, not of one.

This script measures the same extent on the native g and i frames at the
truth's positions (`~sourceclf.recipes.extent_truth.forced_extent`: each
band's own PSF and segments, zeroed on the truth's PSF stars) and combines
g, r and i, each weighted by the inverse square of its own locus width at
the source's magnitude (`combined_extent`): the same cut on a less noisy
extent where the bands agree.  It also makes SDSS's own ``objc_type``
extent: the 0.145 cut applied to the PSF and aperture fluxes summed over
the bands, u to z, in which the source is detected
(`~sourceclf.recipes.extent_truth.summed_extent`, each band's fluxes from
`~sourceclf.recipes.extent_truth.forced_fluxes`).  For each field it prints
the locus width of each band alone, of g+r+i and of the summed flux at r <
19, 19-20 and 20-20.5, how many clean sources each of the two truths calls
otherwise than r alone, how many are ambiguous under each, and each model's
balanced accuracy against all three at the field's own seeing and
at ``--seeings`` (blurred as ``check_fields.py`` blurs; the truths stay
those of the native frames)::

    python docs/scripts/truth_bands.py --seeings 1.9

It measures; it tunes nothing and records nothing.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table

from sourceclf.bands import BANDS
from sourceclf.models import load_model
from sourceclf.recipes.extent_truth import (AMBIGUITY_SIGMA, EXTENT_POINT, forced_fluxes,
                                            frame_truth, locus_width, summed_extent)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_fields import (R_MAG_BINS, add_diagnosis_options,  # noqa: E402
                          blurred_with_psf, classify_positions, each_field, find_fields,
                          read_field, score)
from deblended_truth import classes  # noqa: E402  (SDSS's cut on an extent)

#: The bands combined (u and z are left out: their locus is several times wider).
TRUTH_BANDS = ("g", "r", "i")

#: Models scored by default.
MODELS = ("margnet-sgq", "margnet-cnn-sgq")


def combined_extent(extents, r_mag):
    """The extents of several bands combined, each weighted by its locus width.

    Parameters
    ----------
    extents : dict of array-like
        ``{band: extent}`` of the same sources (``m_psf - m_aperture``, zero
        for point sources; NaN where unmeasured).
    r_mag : array-like
        Their magnitudes, at which each band's locus width is taken.

    Returns
    -------
    extent : `numpy.ndarray`
        ``sum(w_b e_b) / sum(w_b)`` with ``w_b = 1 / locus_width_b**2`` over
        the bands where the source is measured (NaN where none is).
    """
    r_mag = np.asarray(r_mag, float)
    total = np.zeros(len(r_mag))
    weight = np.zeros(len(r_mag))
    for values in extents.values():
        values = np.asarray(values, float)
        width = locus_width(values, r_mag)
        w = np.where(np.isfinite(values) & (width > 0), 1.0 / np.where(width > 0, width, 1) ** 2,
                     0.0)
        total += w * np.nan_to_num(values)
        weight += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / weight, np.nan)


def ambiguous(extent, r_mag):
    """Whether each extent lies within `AMBIGUITY_SIGMA` locus widths of the cut."""
    width = locus_width(extent, r_mag)
    with np.errstate(invalid="ignore"):
        return np.abs(np.asarray(extent, float) - EXTENT_POINT) < AMBIGUITY_SIGMA * width


def binned_text(values, r_mag):
    """The median of ``values`` in each of `R_MAG_BINS`, e.g. ``'0.036 0.036 0.032'``
    (``--`` for a bin without a finite value)."""
    parts = []
    for low, high in R_MAG_BINS:
        rows = np.isfinite(values) & (r_mag >= (-np.inf if low is None else low)) & (r_mag < high)
        parts.append(f"{np.median(values[rows]):.3f}" if rows.any() else "--")
    return " ".join(parts)


def width_text(extent, r_mag):
    """The median locus width in each of `R_MAG_BINS`, e.g. ``'0.036 0.036 0.032'``."""
    return binned_text(locus_width(extent, r_mag), r_mag)


def noise_text(fluxes, r_mag):
    """The median sky noise of an extent in each of `R_MAG_BINS`, at most (`forced_fluxes`'
    PSF and aperture flux errors added in quadrature; the two share pixels, so the noise of
    their ratio is smaller), e.g. ``'0.006 0.031 0.052'``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = 2.5 / np.log(10) * np.hypot(fluxes["psf_error"] / fluxes["psf"],
                                            fluxes["aperture_error"] / fluxes["total"])
    return binned_text(noise, r_mag)


def field_lines(field, models, seeings, log):
    """Print one field's truths and scores (``field``: `check_fields.read_field`'s)."""
    t0 = time.time()
    name, native, psf = read_field(field)
    truth = frame_truth(*native["r"], psf["r"])
    clean = truth[truth["clean"]]
    r_mag = np.asarray(clean["r_mag"], float)
    rows = clean["ra", "dec", "psf_star"]
    fluxes = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for band in BANDS:
            fluxes[band] = forced_fluxes(*native[band], psf[band], rows)
    extents = {b: (np.asarray(clean["extent"], float) if b == "r" else fluxes[b]["extent"])
               for b in TRUTH_BANDS}
    together = combined_extent(extents, r_mag)
    summed = summed_extent(fluxes)
    combined = {"r": extents["r"], "gri": together, "summed": summed}
    truths = {k: classes(v) for k, v in combined.items()}
    unsure = {k: ambiguous(v, r_mag) for k, v in combined.items()}
    low, high = truth.meta["POINT_EXTENT_RANGE"]
    log(f"{name}: {len(clean)} clean sources r < 20.5; locus width (r < 19, 19-20, 20-20.5) "
        + ", ".join(f"{b} {width_text(extents[b], r_mag)}" for b in TRUTH_BANDS)
        + f", gri {width_text(together, r_mag)}, summed {width_text(summed, r_mag)}; "
        "the sky noise of an extent at most (r < 19, 19-20, 20-20.5) "
        + ", ".join(f"{b} {noise_text(fluxes[b], r_mag)}" for b in TRUTH_BANDS)
        + f"; a point source's r extent drifts from {low:+.3f} to {high:+.3f} mag over the "
        "frame (zeroed by extent_zero)")
    for kind in ("gri", "summed"):
        changed = truths["r"] != truths[kind]
        log(f"{name}: r truth {int((truths['r'] == 'point').sum())} point-like, "
            f"{int((truths['r'] == 'extended').sum())} extended ({int(unsure['r'].sum())} "
            f"ambiguous); {kind} truth {int((truths[kind] == 'point').sum())} point-like, "
            f"{int((truths[kind] == 'extended').sum())} extended "
            f"({int(unsure[kind].sum())} ambiguous); "
            f"{int((changed & (truths['r'] == 'extended')).sum())} extended -> point-like, "
            f"{int((changed & (truths['r'] == 'point')).sum())} point-like -> extended")
    sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
    for seeing in [None] + list(seeings):
        frames, seen = blurred_with_psf(native, psf, seeing, name, log=log)
        results = classify_positions(sources, frames, seen, models)
        for model, result in results.items():
            scores = {kind: score(truths[kind], result, ~unsure[kind]) for kind in truths}
            log(f"{name} {'native' if seeing is None else f'{seeing}'}\" "
                f"r FWHM {seen['r'].fwhm:.2f}\" {model}: balanced against the "
                + ", ".join(f"{kind} truth {scores[kind]['balanced']:.2f} (decided "
                            f"{scores[kind]['balanced_decided']:.2f})" for kind in truths)
                + f" [{time.time() - t0:.0f} s]")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fields", nargs="*", help="fields (default: all in --data)")
    parser.add_argument("--seeings", type=float, nargs="*", default=[],
                        help="r-band FWHMs (arcsec) to blur the frames to, besides their own")
    add_diagnosis_options(parser, MODELS)
    args = parser.parse_args(argv)
    fields = find_fields(args.data, args.fields)
    models = {m: load_model(m) for m in args.models if m != "none"}
    each_field(fields, lambda field: field_lines(field, models, args.seeings, print), print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
