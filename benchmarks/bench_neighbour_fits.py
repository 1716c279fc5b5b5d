"""What refining the neighbours' positions costs and changes: the profile fits of a
crowded field's sources with their neighbours, positions refined or left at the peaks.

Run::

    python benchmarks/bench_neighbour_fits.py [--data ../shared/data]
        [--field 005405-6-0099] [--band r] [--n 400] [--repeat 3]

`sourceclf.profile_fits.fit_with_neighbours` fits each source's profile
templates together with a PSF at each neighbour; since the positions are
refined (`sourceclf.neighbour_fits.refined_positions`, up to
`~sourceclf.neighbour_fits.POSITION_STEPS` Gauss-Newton steps), each stamp
with neighbours costs those steps' small least-squares fits too.  On the
``--n`` brightest sources of one band of a real field (the crowded
005405-6-0099 by default; sources found by `sourceclf.photometry.detect_segments`,
the PSF by `sourceclf.psf.measure_psf`), cut as ``classify`` cuts them
(`sourceclf.photometry.source_stamps`, 32 x 32, not deblended), it times
the fits with the positions refined and with ``POSITION_STEPS = 0`` (the
peaks' positions, as before), interleaved ``--repeat`` times, and prints
the medians, their ratio, the mean number of neighbours per stamp, and the
share of sources whose best profile (and whose point-or-extended call)
changes.
"""

import time

import numpy as np


def main(argv=None):
    from bench_common import field_parser

    parser = field_parser(__doc__.splitlines()[0], field=False)
    parser.add_argument("--field", default="005405-6-0099")
    parser.add_argument("--band", default="r")
    parser.add_argument("--n", type=int, default=400, help="sources fitted")
    args = parser.parse_args(argv)

    import sourceclf.neighbour_fits as neighbour_fits
    from sourceclf.frames import read_frame
    from sourceclf.photometry import detect_segments, source_stamps
    from sourceclf.profile_fits import fit_with_neighbours, profile_templates
    from sourceclf.psf import measure_psf, sky_subtracted

    path = args.data / f"sdss_frame_{args.field}" / f"frame-{args.band}-{args.field}.fits.bz2"
    data, _ = sky_subtracted(read_frame(path)[0], path.name)
    psf = measure_psf(data)
    scale = 0.396
    fwhm_pix = psf.fwhm / scale
    _, segments = detect_segments(data, fwhm_pix, psf.sky_sigma)
    from photutils.segmentation import SourceCatalog

    sources = SourceCatalog(data, segments).to_table(
        columns=["x_centroid", "y_centroid", "segment_flux"])
    x, y = np.asarray(sources["x_centroid"]), np.asarray(sources["y_centroid"])
    inside = (x > 20) & (x < data.shape[1] - 21) & (y > 20) & (y < data.shape[0] - 21)
    brightest = np.argsort(-np.asarray(sources["segment_flux"])[inside])[:args.n]
    x, y = np.rint(x[inside][brightest]), np.rint(y[inside][brightest])
    stamps = source_stamps(data, x, y)
    templates = profile_templates(psf.fwhm, psf.beta, size=stamps.shape[-1], pixel_scale=scale)

    def run(steps):
        neighbour_fits.POSITION_STEPS = steps
        t0 = time.perf_counter()
        out = fit_with_neighbours(stamps, templates, fwhm_pix, psf.beta, psf.sky_sigma)
        return time.perf_counter() - t0, out

    default = neighbour_fits.POSITION_STEPS
    times = {default: [], 0: []}
    try:
        for _ in range(args.repeat):
            for steps in (default, 0):
                seconds, fits = run(steps)
                times[steps].append(seconds)
                if steps:
                    refined = fits
                else:
                    peaks = fits
    finally:
        neighbour_fits.POSITION_STEPS = default
    best, best0 = refined[1], peaks[1]
    refined_s, peaks_s = np.median(times[default]), np.median(times[0])
    print(f"{args.field} {args.band}: {len(stamps)} sources, FWHM {psf.fwhm:.2f}\", "
          f"{refined[2].mean():.1f} neighbours per stamp")
    print(f"positions refined ({default} steps at most): {refined_s:.2f} s "
          f"({1e3 * refined_s / len(stamps):.1f} ms per source)")
    print(f"positions at the peaks (POSITION_STEPS = 0): {peaks_s:.2f} s "
          f"({1e3 * peaks_s / len(stamps):.1f} ms per source)")
    print(f"ratio refined / peaks: {refined_s / peaks_s:.2f}")
    print(f"best profile changed: {np.mean(best != best0):.1%} of the sources; "
          f"point or extended changed: {np.mean((best == 0) != (best0 == 0)):.1%}")


if __name__ == "__main__":
    main()
