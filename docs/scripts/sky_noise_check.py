"""Do the image models hold on frames noisier than the fields they were checked on?

The simulated training stamps draw each band's sky noise from the range of
the five shared fields, widened by 10% (``OBSERVING_CONDITIONS['sky_sigma']``
in `sourceclf.simulate.conditions`).  SDSS frames taken in bright time or at
high airmass are noisier.  For each uncrowded shared field (default) this
script adds Gaussian noise to every band so that its sky noise is ``factor``
times its own (1, 1.5, 2 and 3), measures the PSF and MargNet's columns on
the noisier frames as `sourceclf.classify` does for a catalog of positions,
and prints each model's balanced accuracy on the field's clean bright
sources (r < 20.5; the truth of ``check_fields.py``, built on the native
frame).

Run from the repository root (about two minutes a field on two CPU cores)::

    python docs/scripts/sky_noise_check.py [--data ../shared/data] [--models A,B] [FIELD ...]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table

from sourceclf.bands import BANDS
from sourceclf.models import load_model
from sourceclf.psf import measure_psf
from sourceclf.recipes.frame_checks import frame_truth

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_fields  # noqa: E402  (the same fields, truth and scores)

FIELDS = ("001992-1-0087", "003184-2-0169", "004510-4-0030")
FACTORS = (1.0, 1.5, 2.0, 3.0)
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


def field_lines(folder, models, factors=FACTORS, seed=5):
    """One line per noise factor: the r sky noise and each model's scores."""
    name, native, psf = check_fields.read_field(folder)
    truth = frame_truth(*native["r"], psf["r"])
    clean = truth[truth["clean"]]
    labels = np.asarray(clean["truth"]).astype(str)
    sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
    rng = np.random.default_rng(seed)
    lines = []
    for factor in factors:
        frames = noisier(native, {b: psf[b].sky_sigma for b in BANDS}, factor, rng)
        seen = {b: measure_psf(frames[b][0], label=f"{name} {b}") for b in BANDS}
        results = check_fields.classify_positions(sources, frames, seen, models)
        scores = [f"{model} {check_fields.score_text(check_fields.score(labels, result))}"
                  for model, result in results.items()]
        lines.append(f"{name} sky noise x{factor:g} (r {seen['r'].sky_sigma:.4f} nanomaggies): "
                     + "; ".join(scores))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fields", nargs="*", default=list(FIELDS),
                        help="fields (default: the three uncrowded ones)")
    parser.add_argument("--data", default=Path(__file__).resolve().parents[3] / "shared" / "data",
                        type=Path, help="folder of the sdss_frame_<field> folders")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated shipped models")
    parser.add_argument("--factors", default=",".join(f"{f:g}" for f in FACTORS),
                        help="comma-separated sky noise factors (at least 1)")
    args = parser.parse_args(argv)
    models = {m: load_model(m) for m in args.models.split(",")}
    factors = [float(f) for f in args.factors.split(",")]
    for field in args.fields:
        for line in field_lines(args.data / f"sdss_frame_{field}", models, factors):
            print(line, flush=True)


if __name__ == "__main__":
    main()
