"""What keeping the profile templates between calls saves: a catalog of positions on one
field's frames, classified chunk by chunk, with the templates kept or drawn again.

Run::

    python benchmarks/bench_templates.py [--data ../shared/data] [--chunk 20] [--repeat 3]

`sourceclf.profile_fits.profile_templates` draws, per band, 14 de Vaucouleurs
profiles convolved with the frame's Moffat PSF (GalSim, some 0.2 s per
band).  Chunk by chunk (`sourceclf.streaming.classify_file`, or a loop over
`sourceclf.classify` inside `sourceclf.classification.frame_measurement_cache`)
the PSF is measured once, and the templates are now drawn once too
(`sourceclf.profile_fits.TEMPLATE_CACHE_BYTES`).  On the 161 calibObj stars of
004510-4-0030 in chunks of ``--chunk`` rows, ``model="margnet-sgq"``, it
times the chunks with the templates kept and with them dropped before each
chunk (as before), interleaved ``--repeat`` times, and prints the medians,
their ratio and whether the classes and probabilities are identical.
"""

import time
import warnings

import numpy as np


def main(argv=None):
    from bench_common import field_parser

    parser = field_parser(__doc__.splitlines()[0], field=False)
    parser.add_argument("--chunk", type=int, default=20)
    args = parser.parse_args(argv)

    from astropy.table import Table, vstack

    from sourceclf import classify
    from sourceclf.bands import BANDS
    from sourceclf.classification import frame_measurement_cache
    from sourceclf.frames import read_frame
    from sourceclf.profile_fits import _drawn_templates

    field = "004510-4-0030"
    folder = args.data / f"sdss_frame_{field}"
    stars = Table.read(folder / f"calibobj_stars_{field}.fits")
    positions = Table({"ra": stars["RA"], "dec": stars["DEC"]})
    frames = {b: read_frame(folder / f"frame-{b}-{field}.fits.bz2") for b in BANDS}

    def run(keep):
        out = []
        for start in range(0, len(positions), args.chunk):
            if not keep:
                _drawn_templates.cache_clear()
            out.append(classify(positions[start:start + args.chunk], images=frames,
                                model="margnet-sgq", confidence=None, progress=False))
        return vstack(out)

    times, results = {True: [], False: []}, {}
    with warnings.catch_warnings(), frame_measurement_cache():
        warnings.simplefilter("ignore")
        run(True)  # the PSF measured once, outside the timing
        for _ in range(args.repeat):
            for keep in (False, True):
                _drawn_templates.cache_clear()
                t0 = time.perf_counter()
                results[keep] = run(keep)
                times[keep].append(time.perf_counter() - t0)
    kept, drawn = np.median(times[True]), np.median(times[False])
    n_chunks = -(-len(positions) // args.chunk)
    same = (np.array_equal(results[True]["pred_class"], results[False]["pred_class"])
            and all(np.array_equal(results[True][c], results[False][c], equal_nan=True)
                    for c in results[True].colnames if c.startswith("prob_")))
    print(f"{len(positions)} sources of {field} in {n_chunks} chunks of {args.chunk}, "
          f"margnet-sgq; median of {args.repeat}")
    print(f"  templates drawn for every chunk  {drawn:6.2f} s")
    print(f"  templates kept between chunks    {kept:6.2f} s")
    print(f"drawn / kept: {drawn / kept:.2f}")
    print(f"classes and probabilities: {'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
