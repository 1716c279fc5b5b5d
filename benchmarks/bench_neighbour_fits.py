"""What refining the neighbours' positions costs and changes: the profile fits of a
crowded field's sources with their neighbours, positions refined or left at the peaks.

Run::

    python benchmarks/bench_neighbour_fits.py [--data ../shared/data]
        [--field 005405-6-0099] [--band r] [--n N] [--repeat 3]

`sourceclf.profile_fits.fit_with_neighbours` fits each source's profile
templates together with a PSF at each neighbour; since the positions are
refined (`sourceclf.neighbour_fits.refined_positions`, up to
`~sourceclf.neighbour_fits.POSITION_STEPS` Gauss-Newton steps), each stamp
with neighbours costs those steps' small least-squares fits too.  On the
clean bright sources (r < 20.5) of one band of a real field that the
real-field checks score (`sourceclf.recipes.extent_truth.frame_truth`; the
crowded 005405-6-0099 by default, the PSF by `sourceclf.field_psf.field_psfs`
as ``check_fields.py`` measures it;
the first ``--n`` of them if given), cut as ``classify`` cuts them
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
    parser.add_argument("--n", type=int, default=None, help="at most this many sources")
    args = parser.parse_args(argv)

    import sourceclf.neighbour_fits as neighbour_fits
    from sourceclf.bands import BANDS, SDSS_PIXEL_SCALE
    from sourceclf.field_psf import field_psfs
    from sourceclf.frames import read_frame
    from sourceclf.photometry import source_stamps
    from sourceclf.profile_fits import fit_with_neighbours, profile_templates
    from sourceclf.recipes.extent_truth import frame_truth

    folder = args.data / f"sdss_frame_{args.field}"
    native = {b: read_frame(folder / f"frame-{b}-{args.field}.fits.bz2") for b in BANDS}
    psf = field_psfs(native)[args.band]  # as check_fields.py measures it
    data, wcs = native[args.band]
    fwhm_pix = psf.fwhm / SDSS_PIXEL_SCALE
    truth = frame_truth(data, wcs, psf)  # the checks' bright clean sources
    clean = truth[truth["clean"]][:args.n]
    stamps = source_stamps(data, np.rint(clean["x"]), np.rint(clean["y"]))
    templates = profile_templates(psf.fwhm, psf.beta, size=stamps.shape[-1],
                                  pixel_scale=SDSS_PIXEL_SCALE)

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
