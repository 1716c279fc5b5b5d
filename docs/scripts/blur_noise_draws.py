"""How much does one blurred check's figure move with the noise the blurring adds back?

``check_fields.py`` blurs a field's frames once per seeing
(`sourceclf.simulate.degrade_frames`, noise restored so that the sky noise
stays the field's; one seed per seeing).  The figure it records is that of
one draw of that noise.  This script blurs the frames of one field with
``--draws`` other seeds (7, 14, ...), classifies the field's clean bright
sources (``check_fields.py``'s truth) on each as a user would (``classify``
measuring the PSF on the blurred frames), and prints per kernel, seeing and
model the shares of point-like sources called STAR or QSO and of extended
ones called GALAXY on each draw, and the mean, standard deviation and
lowest of the balanced accuracy.

Run from the repository root (about five minutes per field on two CPU
cores with the defaults)::

    python docs/scripts/blur_noise_draws.py 004510-4-0030 [--kernel gaussian --kernel moffat]
        [--seeing 1.9 --seeing 2.2] [--models margnet-cnn-sgq,margnet-sgq] [--draws 5]
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).parent))

import sourceclf  # noqa: E402
from check_fields import SHARED_DATA, find_fields, read_field  # noqa: E402
from sourceclf.field_psf import psf_memo  # noqa: E402
from sourceclf.recipes.extent_truth import frame_truth  # noqa: E402
from sourceclf.simulate import degrade_frames  # noqa: E402
from sourceclf.simulate.degrade import KERNELS  # noqa: E402


def shares(result, labels):
    """Point-like sources called STAR or QSO, extended ones called GALAXY."""
    pred = np.asarray(result["pred_class"].filled("")).astype(str)
    return (np.isin(pred[labels == "point"], ["STAR", "QSO"]).mean(),
            (pred[labels == "extended"] == "GALAXY").mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("field")
    parser.add_argument("--data", default=SHARED_DATA)
    parser.add_argument("--kernel", action="append", choices=KERNELS)
    parser.add_argument("--seeing", action="append", type=float)
    parser.add_argument("--models", default="margnet-cnn-sgq,margnet-sgq")
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args(argv)
    fields = find_fields(args.data, [args.field])
    if not fields:
        parser.error(f"no field {args.field} with its five frames under {args.data}")
    name, native, psf = read_field(next(iter(fields.items())))
    truth = frame_truth(*native["r"], psf["r"])
    clean = truth[truth["clean"]]
    labels = np.asarray(clean["truth"]).astype(str)
    sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
    models = args.models.split(",")
    print(f"{name}: {np.sum(labels == 'point')} point-like and "
          f"{np.sum(labels == 'extended')} extended clean sources; draws "
          f"{', '.join(str(7 * k) for k in range(1, args.draws + 1))}")
    for kernel in args.kernel or ["gaussian", "moffat"]:
        for seeing in args.seeing or [1.9, 2.2]:
            runs = {model: [] for model in models}
            for draw in range(1, args.draws + 1):
                frames, _ = degrade_frames(native, seeing, psf=psf, kernel=kernel,
                                           random_state=7 * draw)
                with psf_memo(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for model in models:
                        result = sourceclf.classify(sources, images=frames, model=model,
                                                    confidence=None, progress=False)
                        runs[model].append(shares(result, labels))
            for model, values in runs.items():
                values = np.array(values)
                balanced = values.mean(axis=1)
                print(f"{kernel} {seeing}\" {model}: point {np.round(values[:, 0], 2).tolist()} "
                      f"extended {np.round(values[:, 1], 2).tolist()}; balanced mean "
                      f"{balanced.mean():.3f}, sd {balanced.std(ddof=1):.3f}, lowest "
                      f"{balanced.min():.2f}", flush=True)


if __name__ == "__main__":
    main()
