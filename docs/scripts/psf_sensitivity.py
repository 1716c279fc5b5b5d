"""How much the image models' calls move with the PSF FWHM they are given.

The image models read the PSF's FWHM (``psf_fwhm_<b>``) with the stamps.
On real frames `sourceclf.classify` measures it (`sourceclf.psf.measure_psf`);
a user may give it instead (``psf=``, ``--psf``, or SDSS's ``psffwhm_<b>``
columns).  For each field given (as ``check_fields.py`` finds them), this
classifies the field's own clean bright sources (``check_fields.py``'s
truth) at its own seeing (or blurred to ``--seeing``, with ``--kernel``, as
``check_fields.py`` blurs) with every band's measured PSF scaled by each
``--scales`` factor, as if given that FWHM (the catalog models' columns are
measured through it too, as ``psf=`` does), and prints the fraction of
point-like sources called STAR or QSO, of extended ones called GALAXY, and
their mean::

    python docs/scripts/psf_sensitivity.py 003184-2-0169 001992-1-0087
    python docs/scripts/psf_sensitivity.py 004510-4-0030 003184-2-0169 --seeing 1.9 \
        --kernel moffat --scales 1,1.1,1.2

It measures; it tunes nothing and records nothing.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table

from sourceclf.bands import BANDS
from sourceclf.models import load_model
from sourceclf.recipes.extent_truth import frame_truth
from sourceclf.simulate.degrade import KERNELS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_fields import (add_diagnosis_options, blurred_with_psf,  # noqa: E402
                          classify_positions, find_fields, float_list, read_field, score)

SCALES = (0.9, 0.95, 1.0, 1.05, 1.1)
MODELS = ("margnet-cnn-sgq", "margnet-sgq")


def scaled_psf(psf, factor):
    """``{band: PSFMeasurement}`` with every band's FWHM multiplied by ``factor``."""
    return {b: psf[b]._replace(fwhm=psf[b].fwhm * factor) for b in BANDS}


_parse_scales = float_list("--scales", "positive factors", "0.9,1,1.1",
                           lambda f: min(f) > 0)


def _parse_seeing(text):
    """``--seeing``: one positive FWHM (arcsec), else a one-line error."""
    return float_list("--seeing", "one positive FWHM in arcsec", "1.9",
                      lambda values: len(values) == 1 and values[0] > 0)(text)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fields", nargs="+", help="fields, e.g. 003184-2-0169")
    parser.add_argument("--scales", type=_parse_scales, default=SCALES, metavar="F1,F2,...",
                        help="factors on the measured FWHM (default "
                             f"{','.join(f'{s:g}' for s in SCALES)})")
    parser.add_argument("--seeing", type=_parse_seeing, default=None, metavar="FWHM",
                        help="blur the frames to this r-band FWHM (arcsec) first, as "
                             "check_fields.py does, and scale the PSF measured on them "
                             "(default: the field's own seeing)")
    parser.add_argument("--kernel", choices=KERNELS, default="gaussian",
                        help="with --seeing: how the PSF widens "
                             "(sourceclf.simulate.degrade_frames; default gaussian)")
    add_diagnosis_options(parser, MODELS)
    args = parser.parse_args(argv)
    if args.kernel != "gaussian" and args.seeing is None:
        parser.error("--kernel blurs the frames: give --seeing too")
    models = {m: load_model(m) for m in args.models}
    for name, paths in find_fields(args.data, args.fields).items():
        name, native, psf = read_field((name, paths))
        truth = frame_truth(*native["r"], psf["r"])
        clean = truth[truth["clean"]]
        labels = np.asarray(clean["truth"]).astype(str)
        sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
        frames, psf = blurred_with_psf(native, psf, args.seeing, name, args.kernel)
        if args.seeing is not None:
            name = f"{name} blurred to {args.seeing:g}\" ({args.kernel})"
        print(f"{name}: measured FWHM " + " ".join(f"{b} {psf[b].fwhm:.2f}\"" for b in BANDS)
              + ", Moffat index " + " ".join(f"{b} {psf[b].beta:.1f}" for b in BANDS)
              + f"; {int((labels == 'point').sum())} point-like, "
              f"{int((labels == 'extended').sum())} extended")
        for factor in args.scales:
            results = classify_positions(sources, frames, scaled_psf(psf, factor), models)
            for model, result in results.items():
                row = score(labels, result)
                print(f"  x{factor:<5g} {model:24s} point {row['point_as_star_or_qso']:.2f}  "
                      f"extended {row['extended_as_galaxy']:.2f}  "
                      f"balanced {row['balanced']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
