"""What a stamp's border median takes away on real fields: their sky, or neighbours' light.

The image models subtract each stamp's own sky before reading it: the median
of its outer `sourceclf.sky.STAMP_BORDER` pixels per band
(`sourceclf.models.AsinhNormalise`).  On a crowded field neighbours fall in
those pixels and raise the median; if they raised it much, a median that
leaves them out (sigma-clipped) would be the better sky.  This prints, for
the r and g frames of each field under ``--data`` (the clean bright sources
of ``check_fields.py``'s truth, r < 20.5), in units of the frame's sky noise
and averaged over the sources whose stamps `sourceclf.cutouts.make_cutouts`
leaves unflagged (none padded past a frame's edge):

* ``frame``: the median of the whole frame;
* ``background``: photutils' `~photutils.background.Background2D` (64-pixel
  boxes, sigma-clipped medians, the sources detected at 3 sky sigma masked)
  at each source: the frame's smooth background, without its sources;
* ``annulus``: the median of the source-free pixels of the truth's background
  annulus (4-6 FWHM, `sourceclf.recipes.extent_truth.psf_aperture_fluxes`);
* ``border``: the stamps' border median, as the models take it
  (`sourceclf.sky.stamp_sky_rows`);
* ``clipped``: the same border sigma-clipped, as `sourceclf.sky.stamp_sky`
  measures a stamp's sky (``stamp_sky_rows(clip=True)``: astropy's
  `~astropy.stats.sigma_clipped_stats`, 3 sigma, MAD);
* ``border - bkg``: what the border adds to the background, the neighbours'
  share, and ``clipped - bkg`` what clipping leaves of it.

Run from the repository root (reads ``../shared/data``, about a minute)::

    python docs/scripts/border_sky_check.py
"""

import argparse
import warnings

import numpy as np
from check_fields import (SHARED_DATA, each_field, find_fields,  # beside this script
                          no_fields_message, read_field)

#: Bands printed.
BANDS_SHOWN = ("g", "r")


def frame_background(data, sigma):
    """photutils' smooth background of a frame, its sources (3 ``sigma``) masked."""
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground
    from photutils.segmentation import detect_sources

    sources = detect_sources(data, 3.0 * sigma, 5)
    mask = None if sources is None else sources.data > 0
    # crowded boxes are mostly masked: keep every box with a tenth of its pixels
    return Background2D(data, 64, filter_size=3, sigma_clip=SigmaClip(3.0),
                        bkg_estimator=MedianBackground(), mask=mask,
                        exclude_percentile=90).background


def band_row(data, wcs, psf, clean, rows, border, clipped):
    """The printed figures of one band (sky sigmas, means over the sources ``rows`` of
    ``clean``), given their stamps' ``border`` and ``clipped`` medians."""
    from sourceclf.bands import SDSS_PIXEL_SCALE
    from sourceclf.recipes.extent_truth import psf_aperture_fluxes
    from sourceclf.photometry import detect_segments

    sigma = psf.sky_sigma
    x, y = wcs.world_to_pixel_values(np.asarray(clean["ra"], float)[rows],
                                     np.asarray(clean["dec"], float)[rows])
    ny, nx = np.shape(data)
    ix, iy = np.clip(np.rint(x).astype(int), 0, nx - 1), np.clip(np.rint(y).astype(int), 0, ny - 1)
    background = frame_background(data, sigma)[iy, ix]
    _, segm = detect_segments(data, psf.fwhm / SDSS_PIXEL_SCALE, sigma)
    labels = segm.data[iy, ix] if segm is not None else None
    annulus = psf_aperture_fluxes(data, x, y, psf.fwhm / SDSS_PIXEL_SCALE, psf.beta,
                                  segments=None if segm is None else segm.data,
                                  labels=labels)["background"]
    return {"frame": np.median(data) / sigma, "background": np.mean(background) / sigma,
            "annulus": np.nanmean(annulus) / sigma, "border": np.mean(border) / sigma,
            "clipped": np.mean(clipped) / sigma,
            "border - bkg": np.mean(border - background) / sigma,
            "clipped - bkg": np.mean(clipped - background) / sigma}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_DATA), help="folder of SDSS fields")
    args = parser.parse_args(argv)
    fields = find_fields(args.data)
    if not fields:
        parser.error(no_fields_message(args.data))

    from astropy.table import Table

    from sourceclf.cutouts import make_cutouts
    from sourceclf.recipes.extent_truth import frame_truth
    from sourceclf.sky import stamp_sky_rows

    columns = ("frame", "background", "annulus", "border", "clipped", "border - bkg",
               "clipped - bkg")
    print("sky sigmas of each band's frame, means over the clean sources r < 20.5 "
          "whose stamps are not flagged")
    print(f"{'field':<14} {'band':<4} {'n':>4} " + " ".join(f"{c:>13}" for c in columns))

    def run(field):
        name, native, psf = read_field(field)
        truth = frame_truth(*native["r"], psf["r"])
        clean = truth[truth["clean"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cut = make_cutouts(table=Table({"ra": np.asarray(clean["ra"]),
                                            "dec": np.asarray(clean["dec"])}),
                               images=native)
        rows = np.flatnonzero(np.asarray(cut.flags) == "")
        # every band's border medians at once, plain and sigma-clipped
        border, clipped = (stamp_sky_rows(cut.data, rows, clip=clip) for clip in (False, True))
        for band in BANDS_SHOWN:
            row = band_row(*native[band], psf[band], clean, rows, border[band][0][rows],
                           clipped[band][0][rows])
            print(f"{name:<14} {band:<4} {len(rows):>4} "
                  + " ".join(f"{row[c]:>+13.2f}" for c in columns), flush=True)

    each_field(fields, run)


if __name__ == "__main__":
    main()
