"""How well is each band's PSF measured, on its own stars and on the other bands'?

`sourceclf.classify` measures the PSF of each band's frame on its own stars
(`sourceclf.psf.measure_psf`, starting from a 1" guess), and where a frame
holds too few, on the PSF stars of the field's other bands
(`sourceclf.field_psf.borrowed_band_psf`).  For every field under ``--data``,
at its native seeing and blurred to an r-band FWHM of 1.6", 1.9" and 2.2"
(`sourceclf.simulate.degrade_frames`, as ``check_fields.py`` blurs them,
with each ``--kernel``), this prints per band:

* the FWHM the blurring aimed at (``target``: the native FWHM widened by the
  kernel; none at the native seeing);
* the FWHM, Moffat index and number of stars measured on the frame's own
  stars as `classify` measures them (``own``), and on the other bands'
  stars (``borrowed``; "failed" where a measurement fails);

and at the end, per seeing, the median and largest deviation of each from
the target, and of the borrowed FWHM from the own one.

Run from the repository root (about two minutes per field and kernel on two
CPU cores)::

    python docs/scripts/borrowed_psf_check.py [--data ../shared/data] \
        [--kernel gaussian [--kernel moffat ...]] [FIELD ...]
"""

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from check_fields import (SEEINGS, SHARED_DATA, blur_seed, each_field,  # noqa: E402
                          find_fields, read_field)
from sourceclf.bands import BANDS  # noqa: E402
from sourceclf.exceptions import InvalidInputError  # noqa: E402
from sourceclf.field_psf import borrowed_band_psf  # noqa: E402
from sourceclf.field_psf import band_psf, psf_memo  # noqa: E402
from sourceclf.simulate import degrade_frames  # noqa: E402
from sourceclf.simulate.degrade import KERNELS  # noqa: E402


def measured(measure):
    """``measure()``, or None where it fails."""
    try:
        return measure()
    except InvalidInputError:
        return None


def text(psf):
    """``'FWHM/index/n'`` of a measurement, or 'failed'."""
    return f"{psf.fwhm:.2f}/{psf.beta:4.1f}/{psf.n_stars:<2d}" if psf else "failed      "


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fields", nargs="*")
    parser.add_argument("--data", default=SHARED_DATA)
    parser.add_argument("--kernel", action="append", choices=KERNELS)
    args = parser.parse_args(argv)
    kernels = args.kernel or ["gaussian"]
    fields = find_fields(args.data, args.fields)
    off = defaultdict(list)
    print("field      kernel     seeing band target own FWHM/beta/n borrowed     own/target "
          "borrowed/own")

    def run(field):
        name, native, psf = read_field(field)
        for kernel in kernels:
            for seeing in SEEINGS:
                if seeing is None:
                    if kernel != kernels[0]:
                        continue
                    frames, targets = native, {b: np.nan for b in BANDS}
                else:
                    frames, targets = degrade_frames(native, seeing, psf=psf, kernel=kernel,
                                                     random_state=blur_seed(seeing))
                with psf_memo():
                    for band in BANDS:
                        own = measured(lambda: band_psf(frames[band], band))
                        borrowed = measured(lambda: borrowed_band_psf(frames, band))
                        line = (f"{name[:10]} {kernel if seeing else '':10s} "
                                f"{seeing or 'native'!s:6s} {band:4s} {targets[band]:6.2f} "
                                f"{text(own)}    {text(borrowed)}")
                        key = seeing or "native"
                        if own and seeing:
                            off[key, "own/target"].append(own.fwhm / targets[band] - 1)
                            line += f" {own.fwhm / targets[band] - 1:+.3f}"
                        else:
                            line += "       "
                        if borrowed and seeing:
                            off[key, "borrowed/target"].append(borrowed.fwhm / targets[band] - 1)
                        if own and borrowed:
                            off[key, "borrowed/own"].append(borrowed.fwhm / own.fwhm - 1)
                            line += f"      {borrowed.fwhm / own.fwhm - 1:+.3f}"
                        print(line, flush=True)

    each_field(fields, run)
    print("\nFWHM deviations (relative): median of the absolute values, largest")
    for (seeing, what), values in sorted(off.items(), key=lambda kv: str(kv[0])):
        values = np.abs(values)
        print(f"  {seeing!s:6s} {what:16s} {np.median(values):.3f} {values.max():.3f} "
              f"({len(values)} bands)")


if __name__ == "__main__":
    main()
