"""Do the image models hold in observing conditions beyond the shared fields'?

Four conditions are checked by changing the frames of each uncrowded shared
field (default), measuring the PSF and MargNet's columns on the changed
frames as `sourceclf.classify` does for a catalog of positions, and printing
each model's balanced accuracy on the field's clean bright sources
(r < 20.5; the truth of ``check_fields.py``, built on the native frame), one
line per step.  The first two are flagged only far beyond what was checked
(``sky_out_of_range``), the last two are frames that are not SDSS corrected
frames (`sourceclf.sky`):

``sky-noise``
    The simulated training stamps draw each band's sky noise from the range
    of the five shared fields, widened by 10% (``OBSERVING_CONDITIONS
    ['sky_sigma']`` in `sourceclf.simulate.conditions`).  SDSS frames taken
    in bright time or at high airmass are noisier.  Gaussian noise is added
    to every band so that its sky noise is ``factor`` times its own (1, 1.5,
    2 and 3; `noisier`).
``psf-shape``
    The simulated training stamps draw each field's PSF distortion
    ``(1 - q**2) / (1 + q**2)`` up to 0.12 (``OBSERVING_CONDITIONS
    ['ellipticity']``), ``1 - b/a`` up to 0.11; the shared fields measure
    ``1 - b/a`` of 0.01-0.15 per band (0.01-0.11 in r).
    Wind shake or tracking errors elongate an SDSS PSF further.  Every band
    is smoothed along its x axis by a Gaussian of ``sigma`` pixels (0, 1,
    1.6, 2.2, 3 and 4; `elongated`), which also widens the PSF (by up to
    about an arcsec).  Beyond `sourceclf.elongation.ELONGATION_LIMIT` the
    rows are flagged ``psf_elongated``.
``units``
    Frames not in nanomaggies: every pixel times ``scale`` (1; 200, about
    raw counts of SDSS's r band; 3.631e-6, janskys per pixel; `rescaled`).
``sky-level``
    Frames whose sky was not subtracted: ``offset`` nanomaggies added to
    every pixel of every band (0, and 0.6: about the r-band sky of a dark
    SDSS night per 0.396" pixel).

Each model's scores end with the share of its rows flagged ``sky_*``
(`sourceclf.sky`) or ``psf_elongated`` when there are any.  With ``--stamps``, each line also
scores ``margnet-cnn-sgq`` on the sources' stamps cut from the changed frames
and given as ``cutouts=`` with the FWHM measured on the frames (as a user
with stamps and no frames gives them), judged by the sky of the stamps'
borders (`sourceclf.sky.stamp_sky`) and by the PSF's elongation measured on
the stamps' own point sources (`sourceclf.stamp_psf.stamps_psf_shape`).

Run from the repository root (about two minutes a field and condition on two
CPU cores)::

    python docs/scripts/conditions_check.py sky-noise [--steps 1,1.5,2,3] [FIELD ...]
    python docs/scripts/conditions_check.py psf-shape [--models A,B] [--data ../shared/data]
    python docs/scripts/conditions_check.py units
    python docs/scripts/conditions_check.py sky-level [--stamps]
"""

import argparse
import sys
from pathlib import Path

import warnings

import numpy as np
from astropy.table import Table

import sourceclf
from sourceclf.bands import BANDS
from sourceclf.cutouts import make_cutouts
from sourceclf.elongation import FLAG_PSF_ELONGATED
from sourceclf.models import load_model
from sourceclf.field_psf import field_psfs
from sourceclf.recipes.extent_truth import frame_truth
from sourceclf.sky import frame_sky

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_fields  # noqa: E402  (the same fields, truth and scores)

FIELDS = ("001992-1-0087", "003184-2-0169", "004510-4-0030")
MODELS = ("margnet-cnn-sgq", "margnet-sgq")


def noisier(frames, sky_sigma, factor, rng):
    """``frames`` with Gaussian noise added so that each band's sky noise is ``factor``
    times ``sky_sigma[band]`` (independent noise adds in quadrature)."""
    if factor < 1:
        raise ValueError(f"factor must be at least 1, got {factor}")
    extra = np.sqrt(factor ** 2 - 1.0)
    return {b: ((np.asarray(data, np.float32)
                 + rng.normal(0.0, extra * sky_sigma[b], np.shape(data)).astype(np.float32)),
                wcs)
            for b, (data, wcs) in frames.items()}


def elongated(frames, sigma):
    """``frames`` smoothed along x (their second axis) by a Gaussian of ``sigma`` pixels."""
    from scipy.ndimage import gaussian_filter1d

    if sigma < 0:
        raise ValueError(f"sigma must not be negative, got {sigma}")
    if sigma == 0:
        return dict(frames)
    return {b: (gaussian_filter1d(np.asarray(data, np.float32), sigma, axis=1), wcs)
            for b, (data, wcs) in frames.items()}


def rescaled(frames, scale):
    """``frames`` with every pixel times ``scale`` (other units)."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return {b: (np.asarray(data, np.float32) * np.float32(scale), wcs)
            for b, (data, wcs) in frames.items()}


def with_sky(frames, offset):
    """``frames`` with ``offset`` added to every pixel (a sky not subtracted)."""
    return {b: (np.asarray(data, np.float32) + np.float32(offset), wcs)
            for b, (data, wcs) in frames.items()}


def _noise_step(native, psf, factor, rng):
    from sourceclf.simulate import sky_sigma_range

    frames = noisier(native, {b: psf[b].sky_sigma for b in BANDS}, factor, rng)
    top = sky_sigma_range()  # the image models' trained range (their cards' domain)
    band, ratio = max(((b, sigma / top[b][1]) for b, (_, sigma) in frame_sky(frames).items()),
                      key=lambda x: x[1])
    return frames, lambda seen: (f"sky noise x{factor:g} (r {seen['r'].sky_sigma:.4f} "
                                 f"nanomaggies; {band} {ratio:.2f} times the trained top)")


def _shape_step(native, psf, sigma, rng):
    def describe(seen):
        most = max(BANDS, key=lambda b: seen[b].ellipticity)
        return (f"smoothed along x by {sigma:g} pixels (r FWHM {seen['r'].fwhm:.2f}\", "
                f"1 - b/a {seen['r'].ellipticity:.2f}; largest {most} "
                f"{seen[most].ellipticity:.2f})")

    return elongated(native, sigma), describe


def _units_step(native, psf, scale, rng):
    return rescaled(native, scale), lambda seen: (
        f"pixels times {scale:g} (r sky noise {seen['r'].sky_sigma:.3g})")


def _level_step(native, psf, offset, rng):
    frames = with_sky(native, offset)
    sky = frame_sky(frames)
    level = max(abs(median) / sigma for median, sigma in sky.values())
    return frames, lambda seen: (f"sky of {offset:g} nanomaggies left in (median up to "
                                 f"{level:.1f} sky sigmas)")


#: Each condition: (its frames at one step and how a line names it, the default steps).
CONDITIONS = {"sky-noise": (_noise_step, (1.0, 1.5, 2.0, 3.0)),
              "psf-shape": (_shape_step, (0.0, 1.0, 1.6, 2.2, 3.0, 4.0)),
              "units": (_units_step, (1.0, 200.0, 3.631e-6)),
              "sky-level": (_level_step, (0.0, 0.6))}


def sky_flagged(result):
    """Share of a run's rows flagged ``sky_out_of_range`` or ``sky_not_subtracted``."""
    flags = np.asarray(result["pred_flag"]).astype(str)
    return float(np.mean([any(p.startswith("sky_") for p in f.split(";")) for f in flags]))


def elongated_flagged(result):
    """Share of a run's rows flagged ``psf_elongated`` (`sourceclf.elongation`)."""
    flags = np.asarray(result["pred_flag"]).astype(str)
    return float(np.mean([FLAG_PSF_ELONGATED in f.split(";") for f in flags]))


def flagged_text(result):
    """``', 12% flagged sky_*'`` and ``', 100% flagged psf_elongated'`` where any are."""
    shares = ((sky_flagged(result), "sky_*"), (elongated_flagged(result), FLAG_PSF_ELONGATED))
    return "".join(f", {share:.0%} flagged {what}" for share, what in shares if share)


def stamp_scores(sources, frames, seen, labels, model="margnet-cnn-sgq"):
    """``'stamps: margnet-cnn-sgq 0.95 (...)'``: ``model`` on the sources' stamps cut from
    ``frames`` and given as ``cutouts=``, through the PSF ``seen``; warnings silenced."""
    cut = make_cutouts(table=sources, images=frames)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sourceclf.classify(sources, cutouts=cut.data, model=model,
                                    psf={b: seen[b].fwhm for b in BANDS}, device="cpu",
                                    progress=False)
    return (f"stamps: {model} {check_fields.score_text(check_fields.score(labels, result))}"
            + flagged_text(result))


def field_lines(folder, models, condition, steps=None, seed=5, stamps=False):
    """One line per step of ``condition``: the frames' state and each model's scores (with
    ``stamps``, also `stamp_scores`)."""
    step_frames, default_steps = CONDITIONS[condition]
    name, native, psf = check_fields.read_field(folder)
    truth = frame_truth(*native["r"], psf["r"])
    clean = truth[truth["clean"]]
    labels = np.asarray(clean["truth"]).astype(str)
    sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
    rng = np.random.default_rng(seed)
    lines = []
    for step in default_steps if steps is None else steps:
        frames, describe = step_frames(native, psf, step, rng)
        seen = field_psfs(frames)
        results = check_fields.classify_positions(sources, frames, seen, models)
        scores = [f"{model} {check_fields.score_text(check_fields.score(labels, result))}"
                  + flagged_text(result) for model, result in results.items()]
        if stamps:
            scores.append(stamp_scores(sources, frames, seen, labels))
        lines.append(f"{name} {describe(seen)}: " + "; ".join(scores))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("condition", choices=sorted(CONDITIONS),
                        help="sky-noise: noise factors; psf-shape: smoothings along x; units: "
                             "pixel scales; sky-level: sky offsets (nanomaggies)")
    parser.add_argument("fields", nargs="*", default=list(FIELDS),
                        help="fields (default: the three uncrowded ones)")
    parser.add_argument("--data", default=check_fields.SHARED_DATA,
                        type=Path, help="folder of the sdss_frame_<field> folders")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated shipped models")
    parser.add_argument("--steps", default=None,
                        help="comma-separated steps (default: those of the condition in "
                             "CONDITIONS)")
    parser.add_argument("--stamps", action="store_true",
                        help="also classify the stamps cut from the frames, given as cutouts=")
    args = parser.parse_intermixed_args(argv)  # --stamps before or after the fields
    models = {m: load_model(m) for m in args.models.split(",")}
    steps = None if args.steps is None else [float(s) for s in args.steps.split(",")]
    for field in args.fields:
        for line in field_lines(args.data / f"sdss_frame_{field}", models, args.condition,
                                steps, stamps=args.stamps):
            print(line, flush=True)


if __name__ == "__main__":
    main()
