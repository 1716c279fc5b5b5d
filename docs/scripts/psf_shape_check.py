"""Do the image models hold on frames whose PSF is more elongated than the fields'?

The simulated training stamps draw each field's PSF ellipticity
``(1 - q) / (1 + q)`` up to 0.12 (``OBSERVING_CONDITIONS['ellipticity']``
in `sourceclf.simulate.conditions`; the shared fields measure ``1 - b/a`` of
0.02-0.12).  Wind shake or tracking errors elongate an SDSS PSF further.  For
each uncrowded shared field (default) this script smooths every band along
its x axis by a Gaussian of ``sigma`` pixels (0, 1, 1.6 and 2.2), measures
the PSF (its FWHM and ``1 - b/a``) and MargNet's columns on the smoothed
frames as `sourceclf.classify` does for a catalog of positions, and prints
each model's balanced accuracy on the field's clean bright sources (r <
20.5; the truth of ``check_fields.py``, built on the native frame).  The
smoothing also widens the PSF (by up to about half an arcsec).

Run from the repository root (about two minutes a field on two CPU cores)::

    python docs/scripts/psf_shape_check.py [--data ../shared/data] [--models A,B] [FIELD ...]
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
SIGMAS = (0.0, 1.0, 1.6, 2.2)
MODELS = ("margnet-cnn-sgq", "margnet-sgq")


def elongated(frames, sigma):
    """``frames`` smoothed along x (their second axis) by a Gaussian of ``sigma`` pixels."""
    from scipy.ndimage import gaussian_filter1d

    if sigma < 0:
        raise ValueError(f"sigma must not be negative, got {sigma}")
    if sigma == 0:
        return dict(frames)
    return {b: (gaussian_filter1d(np.asarray(data, np.float32), sigma, axis=1), wcs)
            for b, (data, wcs) in frames.items()}


def field_lines(folder, models, sigmas=SIGMAS):
    """One line per smoothing: the r PSF's FWHM and elongation, and each model's scores."""
    name, native, psf = check_fields.read_field(folder)
    truth = frame_truth(*native["r"], psf["r"])
    clean = truth[truth["clean"]]
    labels = np.asarray(clean["truth"]).astype(str)
    sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
    lines = []
    for sigma in sigmas:
        frames = elongated(native, sigma)
        seen = {b: measure_psf(frames[b][0], label=f"{name} {b}") for b in BANDS}
        results = check_fields.classify_positions(sources, frames, seen, models)
        scores = [f"{model} {check_fields.score_text(check_fields.score(labels, result))}"
                  for model, result in results.items()]
        lines.append(f"{name} smoothed along x by {sigma:g} pixels (r FWHM "
                     f"{seen['r'].fwhm:.2f}\", 1 - b/a {seen['r'].ellipticity:.2f}): "
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
    parser.add_argument("--sigmas", default=",".join(f"{s:g}" for s in SIGMAS),
                        help="comma-separated smoothings along x (pixels)")
    args = parser.parse_args(argv)
    models = {m: load_model(m) for m in args.models.split(",")}
    sigmas = [float(s) for s in args.sigmas.split(",")]
    for field in args.fields:
        for line in field_lines(args.data / f"sdss_frame_{field}", models, sigmas):
            print(line, flush=True)


if __name__ == "__main__":
    main()
