"""What subtracting the stamps' neighbours costs the image models, on a real SDSS field.

Run::

    python benchmarks/bench_stamp_neighbours.py [--data ../shared/data] [--field 004510-4-0030]
                                                [--threads 2] [--repeat 3]

On one field's five corrected frames and the positions of its bright
sources (``frame_truth``, r < 20.5), with each band's PSF measured once and
given, it times, interleaved ``--repeat`` times in one run:
`sourceclf.stamp_neighbours.subtract_neighbours` of the sources' stamps
alone, and ``classify`` with ``model='margnet-cnn-sgq'`` on the same stamps
given as cutouts and on the frames, each with ``subtract_neighbours`` on (the
default) and off.  It prints the medians, the ratios with / without, and the
share of the rows whose r stamp had a neighbour fitted.  Compare a crowded
field (``--field 005405-6-0099``) with an uncrowded one.
"""

import os
import time
import warnings

import numpy as np


def main(argv=None):
    from bench_common import bright_sources, field_frames, field_parser

    parser = field_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    import sourceclf
    from sourceclf.bands import BANDS
    from sourceclf.classification import frame_measurement_cache
    from sourceclf.field_psf import field_psfs
    from sourceclf.stamp_neighbours import subtract_neighbours

    torch.set_num_threads(args.threads)
    frames = field_frames(args.data, args.field)
    psf = field_psfs(frames)
    positions, stamps = bright_sources(frames, psf["r"])
    n = len(stamps)
    fwhm = {b: np.full(n, psf[b].fwhm) for b in BANDS}
    beta = {b: psf[b].beta for b in BANDS}
    sky = {b: psf[b].sky_sigma for b in BANDS}

    def run(subtract, **given):
        return sourceclf.classify(positions, model="margnet-cnn-sgq", psf=psf, confidence=0.9,
                                  progress=False, device="cpu", subtract_neighbours=subtract,
                                  **given)

    steps = {
        "subtract_neighbours alone": lambda: subtract_neighbours(stamps, fwhm, beta, sky,
                                                                 present="nonzero"),
        "stamps given, subtracted": lambda: run(True, cutouts=stamps),
        "stamps given, as cut": lambda: run(False, cutouts=stamps),
        "frames, subtracted": lambda: run(True, images=frames),
        "frames, as cut": lambda: run(False, images=frames),
    }
    times = {name: [] for name in steps}
    with warnings.catch_warnings(), frame_measurement_cache():
        warnings.simplefilter("ignore")
        for step in steps.values():  # warm up: the model loaded, the frames measured
            step()
        for _ in range(args.repeat):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    fitted = subtract_neighbours(stamps, fwhm, beta, sky, present="nonzero")[1]
    print(f"field {args.field}: {n} sources of r < 20.5, {np.mean(fitted > 0):.0%} of their r "
          f"stamps with a neighbour fitted (mean {fitted.mean():.1f}); torch "
          f"{torch.__version__}, {args.threads} threads; median of {args.repeat}")
    med = {name: float(np.median(values)) for name, values in times.items()}
    for name, value in med.items():
        print(f"  {name:28s} {value:6.2f} s ({1e3 * value / n:.1f} ms per source)")
    print(f"stamps given, subtracted / as cut: "
          f"{med['stamps given, subtracted'] / med['stamps given, as cut']:.2f}")
    print(f"frames, subtracted / as cut: {med['frames, subtracted'] / med['frames, as cut']:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
