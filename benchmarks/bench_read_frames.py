"""What reading a field's compressed frames costs: astropy.io.fits on the file, or
decompressed in one pass first, as `sourceclf.frames.read_frame` reads them.

Run::

    python benchmarks/bench_read_frames.py [--data ../shared/data] [--field 004510-4-0030]
                                           [--repeat 3]

SDSS's corrected frames are ``.fits.bz2``.  astropy.io.fits reads such a file
through a stream that decompresses again from the start whenever it seeks
back; `sourceclf.utils._fits.open_fits` decompresses it into memory once and
opens the bytes.  On the field's five frames it times, interleaved
``--repeat`` times: the image alone (HDU 0, what `read_frame` reads) and
the image with SDSS's calibration vector and sky grid (HDUs 0-2, what
`sourceclf.simulate.measure_frame_properties` reads), each through
``astropy.io.fits.open(path)`` and through ``open_fits``, and
``read_frame`` itself.  It prints the medians, the ratios, and whether the
pixels read the two ways are identical.
"""

import time

import numpy as np


def main(argv=None):
    from bench_common import field_parser

    parser = field_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)

    from astropy.io import fits

    from sourceclf.bands import BANDS
    from sourceclf.frames import read_frame
    from sourceclf.utils._fits import open_fits

    folder = args.data / f"sdss_frame_{args.field}"
    paths = [folder / f"frame-{b}-{args.field}.fits.bz2" for b in BANDS]

    def read(opener, hdus):
        pixels = []
        for path in paths:
            with opener(path) as hdul:
                pixels.append([np.array(hdul[k].data) for k in range(hdus)])
        return pixels

    steps = {
        "image, astropy.io.fits.open": lambda: read(fits.open, 1),
        "image, open_fits": lambda: read(lambda p: open_fits(p, str(p)), 1),
        "HDUs 0-2, astropy.io.fits.open": lambda: read(fits.open, 3),
        "HDUs 0-2, open_fits": lambda: read(lambda p: open_fits(p, str(p)), 3),
        "read_frame (data and WCS)": lambda: [read_frame(p) for p in paths],
    }
    times = {name: [] for name in steps}
    for _ in range(args.repeat):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    same = all(np.array_equal(a, b, equal_nan=True) if a.dtype.kind == "f" else
               np.array_equal(a, b)
               for plain, whole in zip(read(fits.open, 3), read(lambda p: open_fits(p, ""), 3))
               for a, b in zip(plain, whole) if a is not None)
    print(f"field {args.field}: five frames (bz2, {sum(p.stat().st_size for p in paths) / 1e6:.1f}"
          f" MB); median of {args.repeat}")
    for name, values in times.items():
        print(f"  {name:32s} {np.median(values):6.2f} s")
    med = {name: np.median(values) for name, values in times.items()}
    print(f"image: astropy.io.fits.open / open_fits: "
          f"{med['image, astropy.io.fits.open'] / med['image, open_fits']:.2f}")
    print(f"HDUs 0-2: astropy.io.fits.open / open_fits: "
          f"{med['HDUs 0-2, astropy.io.fits.open'] / med['HDUs 0-2, open_fits']:.2f}")
    print(f"the same HDUs read both ways: {'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
