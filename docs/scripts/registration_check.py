"""Each band's offset from the r frame on the shared fields, and what it costs unregistered.

`sourceclf.classify` registers each band's frame on the r frame's PSF stars
(`sourceclf.registration.register_frames`) when its WCS misses them by more
than `~sourceclf.registration.REGISTRATION_TOLERANCE` pixels.  For each
field this prints every band's measured offset (`~sourceclf.registration.band_offsets`,
with the stars matched) and what `~sourceclf.registration.register_frames`
does with it::

    python docs/scripts/registration_check.py

With ``--misregister F1,F2,...`` it also classifies each field's clean bright
sources (``check_fields.py``'s truth, at the field's own seeing) with every
band's WCS moved by F times ``--offsets`` (default: the offsets measured on
005405-6-0099, `CROWDED_OFFSETS`), once as `sourceclf.classify` does it
(registered) and once with the frames' PSF given without its stars, so that
nothing is registered, and prints the
share of point-like sources called STAR or QSO, of extended ones called
GALAXY, and their mean::

    python docs/scripts/registration_check.py 004510-4-0030 003184-2-0169 --misregister 0,1,2

It measures; it tunes nothing and records nothing.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table

from sourceclf.models import load_model
from sourceclf.recipes.extent_truth import frame_truth
from sourceclf.registration import band_offsets, describe_registration, register_frames

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_fields import (add_diagnosis_options, classify_positions,  # noqa: E402
                          each_field, find_fields, float_list, read_field, score)

#: Models scored by default.
MODELS = ("margnet-sgq", "margnet-cnn-sgq")

#: The offsets (pixels) of 005405-6-0099's bands from its r frame that
#: ``python docs/scripts/registration_check.py 005405-6-0099`` measures.
CROWDED_OFFSETS = {"u": (0.33, -0.44), "g": (0.37, -0.51), "r": (0.0, 0.0),
                   "i": (0.84, -0.62), "z": (0.42, -0.27)}

_parse_factors = float_list("--misregister", "factors of at least 0", "0,1,2",
                            lambda values: min(values) >= 0)


def offset_line(name, frames, psf):
    """One field's offsets and what registration does, in one line."""
    offsets = band_offsets(frames, psf)
    said = describe_registration(register_frames(frames, psf))
    parts = [f"{b} {o.dx:+.2f} {o.dy:+.2f} ({o.n_stars} stars)" if o.n_stars else
             f"{b} not measured" for b, o in offsets.items() if b != "r"]
    return (f"{name}: offset from r, pixels: " + ", ".join(parts) + "; "
            + (said or "no band registered (all within the tolerance or unmeasured)"))


def moved(frames, offsets, factor):
    """The frames with each band's WCS moved so that its stars lie ``factor`` times
    ``offsets`` from where the WCS puts them."""
    out = {}
    for band, (data, wcs) in frames.items():
        shifted = wcs.deepcopy()
        shifted.wcs.crpix = shifted.wcs.crpix - factor * np.asarray(offsets[band], float)
        shifted.wcs.set()
        out[band] = (data, shifted)
    return out


def misregistered_lines(name, native, psf, models, factors, offsets, log):
    """Scores of the field's clean sources with its bands moved, registered or not."""
    truth = frame_truth(*native["r"], psf["r"])
    clean = truth[truth["clean"]]
    labels = np.asarray(clean["truth"]).astype(str)
    sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
    # A PSF given without its stars names none to register on: classify and
    # measure_columns then register nothing (sourceclf.registration.band_offsets).
    starless = {band: measured._replace(stars=None) for band, measured in psf.items()}
    for factor in factors:
        frames = moved(native, offsets, factor)
        for how, given in (("registered", psf), ("unregistered", starless)):
            results = classify_positions(sources, frames, given, models)
            for model, result in results.items():
                row = score(labels, result)
                log(f"{name} moved x{factor:g} {how:12s} {model:16s} "
                    f"point {row['point_as_star_or_qso']:.2f}  "
                    f"extended {row['extended_as_galaxy']:.2f}  balanced {row['balanced']:.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fields", nargs="*", help="fields (default: all in --data)")
    parser.add_argument("--misregister", type=_parse_factors, default=None,
                        metavar="F1,F2,...", help="also score the fields with every band's "
                        "WCS moved by these factors times CROWDED_OFFSETS")
    add_diagnosis_options(parser, MODELS)
    args = parser.parse_args(argv)
    fields = find_fields(args.data, args.fields)
    models = {m: load_model(m) for m in args.models}

    def run(field):
        name, native, psf = read_field(field)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print(offset_line(name, native, psf), flush=True)
            if args.misregister is not None:
                misregistered_lines(name, native, psf, models, args.misregister,
                                    CROWDED_OFFSETS, lambda s: print(s, flush=True))

    each_field(fields, run, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
