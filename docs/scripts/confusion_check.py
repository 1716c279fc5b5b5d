"""How much light the catalog columns' fits leave around each source, and what it costs.

Run from the repository root (reads ``../shared/data``; about a minute per field
and seeing)::

    python docs/scripts/confusion_check.py [--data DATA] [--seeings 1.6,1.9,2.2]
                                           [--models margnet-sgq] [FIELDS ...]

The known sources of ``check_fields.py --inject`` (150 stars and galaxies,
r = 16-20.5, drawn into each field's frames at its default placement) are
classified as `sourceclf.classify` classifies positions on frames, at the
field's own seeing and blurred (``check_fields.py``'s blur).  For each source
and each of the bands g, r, i its stamp is fitted as
`sourceclf.photometry.measure_columns` fits it
(`sourceclf.profile_fits.fit_with_neighbours`: each profile with a PSF at every
neighbour found and a constant sky), and the residual of its best profile's
fit, smoothed by a Gaussian of the PSF's width (the scale of a faint galaxy's
wings), is read over the pixels 1 to 3 FWHM from the source and at least a
FWHM from every neighbour fitted: its root mean square over the sky noise's
alone after the same smoothing is the source's *left light* (`left_light`).
Its mean in each ring of a pixel about the source is taken off first (what
is left of the source's own light is mostly round).  It is about 1 around a
source that holds nothing but itself, its fitted neighbours and the sky's
noise, and more where light the fits do not model lies around it: sources
too faint to be found, neighbours' wings beyond the Moffat PSF and their
shapes, and the source's own light that is not round (an elongated galaxy,
a bright star's PSF a little off round).  The largest over g, r, i is kept per source.
For each field and seeing it prints the median and 90th percentile of the
left light, the share of sources above 2, and each model's balanced
accuracy (``check_fields.score``) over all the sources and in the thirds of
the field's sources by left light.  A diagnosis, never recorded.
"""

import argparse
import warnings

import numpy as np
from check_fields import (SEEINGS, add_diagnosis_options, blur_seed,  # beside this script
                          blurred, classify_positions, each_field, find_fields, float_list,
                          injected_sources, no_fields_message, read_field, score, seen_psf)

#: Bands whose left light is measured; each source keeps the largest.
BANDS_READ = ("g", "r", "i")

_parse_seeings = float_list("--seeings", "r FWHMs in arcsec", "1.6,1.9",
                            lambda v: all(0 < s < 5 for s in v))


def left_light(stamps, templates, fwhm_pix, beta, sky_sigma):
    """The light the fits leave around each stamp's source, over the sky noise's.

    Parameters
    ----------
    stamps : array-like, shape (n, size, size)
        One band's stamps less their sky, as `sourceclf.photometry.source_stamps`
        cuts them (non-finite beyond a frame's edge).
    templates : array-like, shape (k, size * size)
        `sourceclf.profile_fits.profile_templates` of the band's PSF.
    fwhm_pix, beta : float
        FWHM (pixels) and Moffat index of the band's PSF, as the fits take them.
    sky_sigma : float
        The sky's noise per pixel, the unit of the result.

    Returns
    -------
    `numpy.ndarray`, shape (n,)
        Root mean square of the residual of the best profile's fit with the
        neighbours and the sky, smoothed by a Gaussian of the PSF's width and
        less each ring's mean, over 1-3 FWHM from the source (where
        `~sourceclf.profile_fits.subpixel_offsets` puts it) and at least a FWHM
        from each neighbour fitted (`sourceclf.unmodelled_light.annulus_residual`),
        divided by the sky noise after that smoothing
        (`~sourceclf.unmodelled_light.smoothed_noise`): about 1 where the fits
        model all the light.  The fits are the first pass of
        `~sourceclf.profile_fits.fit_with_neighbours`
        (`~sourceclf.neighbour_fits.without_neighbours`, then
        `~sourceclf.profile_fits.fit_profiles`), which fits a stamp again only
        where its source's offset moves once the neighbours are taken off.
        NaN where fewer than
        `~sourceclf.unmodelled_light.UNMODELLED_MIN_PIXELS` pixels are read.
    """
    from sourceclf.neighbour_fits import without_neighbours
    from sourceclf.profile_fits import fit_profiles, subpixel_offsets, templates_at
    from sourceclf.unmodelled_light import annulus_residual, smoothed_noise

    stamps = np.asarray(stamps, dtype=np.float64)
    present = np.isfinite(stamps)
    filled = np.where(present, stamps, 0.0)
    offsets = subpixel_offsets(filled, fwhm_pix, beta)
    noise = smoothed_noise(sky_sigma, fwhm_pix)
    out = np.full(len(stamps), np.nan)
    for i in range(len(stamps)):
        dx, dy = offsets[i]
        moved = templates_at(templates, dx, dy)
        (image, shapes, neighbours), = without_neighbours(
            filled[i][None], moved, fwhm_pix, beta, sky_sigma, (dx, dy), present[i][None])
        shape = shapes[fit_profiles(image[None], shapes)[1][0]]
        norm = shape @ shape
        residual = image - (shape @ image) / norm * shape if norm > 0 else image
        values = annulus_residual(residual, fwhm_pix, (dx, dy), neighbours, present[i])[0]
        if values is not None:
            out[i] = np.sqrt(np.mean(values ** 2)) / noise
    return out


def sources_left_light(sources, frames, psf):
    """`left_light` of each position of ``sources`` (``ra``, ``dec``) on ``frames``
    (``{band: (data, wcs)}``), the largest over `BANDS_READ`, each band's stamps cut and
    fitted as `sourceclf.photometry.measure_columns` cuts and fits them
    (`~sourceclf.photometry.frame_stamps`, through ``psf``: ``{band: PSFMeasurement}``);
    NaN off the frames."""
    from sourceclf.photometry import STAMP_SIZE, frame_stamps
    from sourceclf.profile_fits import profile_templates

    light = np.full((len(BANDS_READ), len(sources)), np.nan)
    for k, cut in enumerate(frame_stamps(frames, psf, sources["ra"], sources["dec"],
                                         bands=BANDS_READ)):
        if not cut.inside.any():
            continue
        p = psf[cut.band]
        templates = profile_templates(p.fwhm, p.beta, size=STAMP_SIZE, pixel_scale=cut.scale)
        light[k, cut.inside] = left_light(cut.stamps, templates, p.fwhm / cut.scale, p.beta,
                                          p.sky_sigma)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a source without a figure: NaN
        return np.nanmax(light, axis=0)


def thirds_text(labels, result, light):
    """``'0.99 (50) 0.94 (50) 0.84 (50)'``: the balanced accuracy in each third of the
    sources by ``light`` (and their numbers; a source without a figure is in none)."""
    cuts = np.nanpercentile(light, [100 / 3, 200 / 3])
    which = np.where(np.isfinite(light), np.digitize(light, cuts), -1)
    parts = []
    for k in range(3):
        rows = np.flatnonzero(which == k)
        row = score(labels[rows], result[rows])
        parts.append(f"{row['balanced']:.2f} ({len(rows)})")
    return " ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fields", nargs="*", help="fields, run-camcol-field (default: all)")
    add_diagnosis_options(parser, ["margnet-sgq"])
    parser.add_argument("--seeings", type=_parse_seeings, default=None,
                        help="r FWHMs to blur to, arcsec, besides the native seeing "
                        "(default: check_fields.py's 1.6,1.9,2.2)")
    args = parser.parse_args(argv)
    found = find_fields(args.data, names=args.fields)
    if not found:
        parser.error(no_fields_message(args.data))

    import sourceclf
    from sourceclf.field_psf import psf_memo
    from sourceclf.recipes.extent_truth import frame_truth
    from sourceclf.recipes.injection import injection_catalog
    from sourceclf.simulate import degrade_frames

    seeings = [None] + list(SEEINGS[1:] if args.seeings is None else args.seeings)
    from sourceclf.exceptions import SourceclfError

    try:
        models = {m: sourceclf.load_model(m) for m in args.models}
    except SourceclfError as exc:  # an unknown model: named in one line
        parser.error(str(exc))
    print("left light: the light the fits leave 1-3 FWHM around each known source drawn in, "
          "over the sky noise's (largest of g, r, i); balanced accuracy over all sources "
          "and in the thirds by left light (low, middle, high; sources)")

    def quiet(*_):
        pass

    def run(field):
        name, native, psf = read_field(field)
        truth = frame_truth(*native["r"], psf["r"])
        observed, sources, labels = injected_sources(native, psf, truth, injection_catalog(),
                                                     name, quiet)[:3]
        for seeing in seeings:
            with psf_memo():
                if seeing is None:
                    frames, seen = observed, psf
                else:
                    frames, targets = degrade_frames(observed, seeing, psf=psf,
                                                     random_state=blur_seed(seeing))
                    seen = seen_psf(blurred(native, psf, seeing), psf, seeing, targets, name,
                                    quiet)
                light = sources_left_light(sources, frames, seen)
                results = classify_positions(sources, frames, seen, models)
            head = (f"{name} r FWHM {seen['r'].fwhm:.2f}\": left light median "
                    f"{np.nanmedian(light):.1f}, 90% {np.nanpercentile(light, 90):.1f}, "
                    f"above 2: {np.mean(light > 2):.2f}")
            for model, result in results.items():
                print(f"{head} | {model} balanced {score(labels, result)['balanced']:.2f} "
                      f"| by thirds {thirds_text(labels, result, light)}", flush=True)

    each_field(found, run)


if __name__ == "__main__":
    main()
