"""What refining the neighbours' positions and the source's offset costs and changes:
the profile fits of a crowded field's sources with their neighbours, three ways.

Run::

    python benchmarks/bench_neighbour_fits.py [--data ../shared/data]
        [--field 005405-6-0099] [--band r] [--n N] [--repeat 3]

`sourceclf.profile_fits.fit_with_neighbours` fits each source's profile
templates together with a PSF at each neighbour.  The neighbours' positions
are refined (`sourceclf.neighbour_fits.refined_positions`, up to
`~sourceclf.neighbour_fits.POSITION_STEPS` Gauss-Newton steps, before the
residual search for merged neighbours and again after it where it adds
some), and a stamp with neighbours is fitted again where the stamp less
their fitted light puts its source at another sub-pixel offset (up to
`~sourceclf.profile_fits.SOURCE_PASSES` fits).  On the clean bright sources
(r < 20.5) of one band of a real field that the real-field checks score
(`sourceclf.recipes.extent_truth.frame_truth`; the crowded 005405-6-0099 by
default, the PSF by `sourceclf.field_psf.field_psfs` as ``check_fields.py``
measures it; the first ``--n`` of them if given), cut as ``classify`` cuts
them (`sourceclf.photometry.source_stamps`, 32 x 32, not deblended), it
times the fits four ways, interleaved ``--repeat`` times: as
`sourceclf.photometry.measure_columns` fits them (with each source's
unmodelled light, `sourceclf.unmodelled_light`, for the ``confused``
flag); as shipped without it; one pass (``SOURCE_PASSES = 1``, the first
offset only); and at the peaks (``POSITION_STEPS = 0`` as well, the
neighbours at their peaks' centroids).  It prints the medians, their
ratios to the last and what the unmodelled light adds, the mean number of
neighbours per stamp, and the share of sources whose best profile (and
whose point-or-extended call) differs from the shipped fits'.
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
    from sourceclf.crowding import CONFUSED_LIMIT
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

    import sourceclf.profile_fits as profile_fits

    shipped = (neighbour_fits.POSITION_STEPS, profile_fits.SOURCE_PASSES)
    ways = {"with the unmodelled light (as measure_columns)": (*shipped, True),
            "as shipped": (*shipped, False),
            "one pass (SOURCE_PASSES = 1)": (shipped[0], 1, False),
            "at the peaks (POSITION_STEPS = 0 too)": (0, 1, False)}
    times = {way: [] for way in ways}
    fits = {}
    try:
        for _ in range(args.repeat):
            for way, (steps, passes, unmodelled) in ways.items():
                neighbour_fits.POSITION_STEPS, profile_fits.SOURCE_PASSES = steps, passes
                t0 = time.perf_counter()
                fits[way] = fit_with_neighbours(stamps, templates, fwhm_pix, psf.beta,
                                                psf.sky_sigma, return_unmodelled=unmodelled)
                times[way].append(time.perf_counter() - t0)
    finally:
        neighbour_fits.POSITION_STEPS, profile_fits.SOURCE_PASSES = shipped
    best = fits["as shipped"][1]
    last = np.median(times["at the peaks (POSITION_STEPS = 0 too)"])
    print(f"{args.field} {args.band}: {len(stamps)} sources, FWHM {psf.fwhm:.2f}\", "
          f"{fits['as shipped'][2].mean():.1f} neighbours per stamp")
    for way in ways:
        seconds = np.median(times[way])
        other = fits[way][1]
        print(f"{way}: {seconds:.2f} s ({1e3 * seconds / len(stamps):.1f} ms per source), "
              f"{seconds / last:.2f} x at the peaks; best profile differs from the shipped "
              f"fits' on {np.mean(best != other):.1%}, point or extended on "
              f"{np.mean((best == 0) != (other == 0)):.1%}")
    unmodelled = fits["with the unmodelled light (as measure_columns)"][4]
    cost = np.median(times[next(iter(ways))]) / np.median(times["as shipped"])
    print(f"the unmodelled light costs {cost:.2f} x the fits without it; it reaches the "
          f"confused flag's limit on {np.mean(unmodelled >= CONFUSED_LIMIT):.1%} of these "
          "sources")


if __name__ == "__main__":
    main()
