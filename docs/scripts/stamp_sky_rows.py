"""Stamps judged one by one by their borders' sky, on the shared fields.

For stamps given without frames, `sourceclf.sky.stamp_sky` judges a call's
stamps together (the median of their skies), and `sourceclf.sky.sky_row_flags`
each stamp on its own, flagging them when at least
`sourceclf.sky.STAMP_MIXTURE_SHARE` of a call's stamps are unlike the trained
sky (stamps cut from frames of different skies).  For each shared field this
prints, over the stamps of its bright sources (r < 20.5, the truth of
``check_fields.py``, all of them, not only the clean ones):

* ``native``: the share of stamps flagged one by one on the field as it is
  (false flags: a bright source's light, or a neighbour's, in the border),
  and in brackets without the sigma clipping of the rows it would flag;
* ``3x``: the share flagged on the field with three times its sky noise
  (``conditions_check.noisier``);
* ``mix 30%``: the shares flagged in a call of 70% native and 30% noisier
  stamps, of all, of the noisier and of the native ones;
* ``far``: the largest sky noise of a native stamp (sigma-clipped, any band)
  against the trained range's top, in times
  (`sourceclf.sky.STAMP_FAR_FACTOR` flags a lone stamp beyond it), and which
  stamp (r magnitude; ``sat`` when the truth calls it saturated);
* ``counts 5%``: with 5% of the stamps multiplied by 200 (about raw
  counts), the shares `sourceclf.sky.odd_stamp_flags` flags of those and of
  the others.

Run from the repository root (reads ``../shared/data``, about 3 minutes)::

    python docs/scripts/stamp_sky_rows.py
"""

import argparse
from pathlib import Path

import numpy as np

from sourceclf.bands import BANDS
from sourceclf.cutouts import make_cutouts
from sourceclf.frames import read_frame
from sourceclf.models import load_model
from sourceclf.psf import measure_psf, sky_level
from sourceclf.recipes.extent_truth import frame_truth
from sourceclf.sky import (FLAG_SKY_NOT_SUBTRACTED, FLAG_SKY_OUT_OF_RANGE, odd_stamp_flags,
                           sky_row_flags, stamp_sky_rows)

from conditions_check import noisier  # beside this script

from check_fields import SHARED_DATA as DATA  # beside this script


def flagged(stamps, rows, sky_range, clip=True):
    """Which stamps `sky_row_flags` flags, out of range or not sky-subtracted."""
    found = sky_row_flags(stamps, rows, sky_range, clip=clip)
    return found[FLAG_SKY_OUT_OF_RANGE] | found[FLAG_SKY_NOT_SUBTRACTED]


def field_line(folder, sky_range, rng):
    name = folder.name[len("sdss_frame_"):]
    frames = {b: read_frame(folder / f"frame-{b}-{name}.fits.bz2") for b in BANDS}
    truth = frame_truth(*frames["r"], measure_psf(frames["r"][0]))
    sky = {b: sky_level(frames[b][0])[1] for b in BANDS}
    native = make_cutouts(table=truth["ra", "dec"], images=frames)
    rows = np.flatnonzero(native.flags == "")
    noisy = make_cutouts(table=truth["ra", "dec"], images=noisier(frames, sky, 3.0, rng)).data
    odd_native = flagged(native.data, rows, sky_range)[rows]
    unclipped = flagged(native.data, rows, sky_range, clip=False)[rows]
    odd_noisy = flagged(noisy, rows, sky_range)[rows]
    chosen = rows[rng.permutation(rows.size)[:int(0.3 * rows.size)]]
    mixed = native.data.copy()
    mixed[chosen] = noisy[chosen]
    odd = flagged(mixed, rows, sky_range)
    truly = np.isin(rows, chosen)
    clipped = stamp_sky_rows(native.data, rows, clip=True)
    above = np.nanmax([clipped[b][1][rows] / sky_range[b][1] for b in BANDS], axis=0)
    top = rows[np.nanargmax(above)]
    few = np.isin(np.arange(len(native.data)), rows[rng.permutation(rows.size)[:rows.size // 20]])
    counts = native.data.copy()
    counts[few] *= 200.0
    found, _ = odd_stamp_flags(counts, rows, sky_range)
    lone = (found[FLAG_SKY_OUT_OF_RANGE] | found[FLAG_SKY_NOT_SUBTRACTED])[rows]
    return (f"{name}: {rows.size} stamps; native {odd_native.mean():.3f} (unclipped "
            f"{unclipped.mean():.3f}), 3x "
            f"{odd_noisy.mean():.3f}; mix 30%: {odd[rows].mean():.3f} of all, "
            f"{odd[rows][truly].mean():.3f} of the noisier, {odd[rows][~truly].mean():.3f} "
            f"of the native; far {np.nanmax(above):.1f}x (r {truth['r_mag'][top]:.1f}"
            f"{' sat' if truth['saturated'][top] else ''}); counts 5%: "
            f"{lone[few[rows]].mean():.3f} of those, {lone[~few[rows]].mean():.3f} of the others")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--model", default="margnet-cnn-sgq",
                        help="model whose trained sky range judges the stamps")
    args = parser.parse_args(argv)
    sky_range = load_model(args.model).card.domain["sky_sigma"]
    rng = np.random.default_rng(1)
    for folder in sorted(args.data.glob("sdss_frame_*")):
        print(field_line(folder, sky_range, rng), flush=True)


if __name__ == "__main__":
    main()
