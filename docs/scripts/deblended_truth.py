"""Does the truth of the crowded fields change when each source's neighbours are removed?

The truth of ``check_fields.py`` (`sourceclf.recipes.extent_truth.frame_truth`)
measures ``m_psf - m_aperture`` on each source's own segment of the r frame.
This script measures it again with each source's neighbours fitted and
subtracted (`sourceclf.recipes.deblended_truth.deblended_extent`), and prints
for every shared field at its own seeing:

1. the clean sources' classes under both truths, and how many change;
2. known sources drawn into the frames (``check_fields.py --inject``'s 150,
   their truth from their noiseless images): the share of the point-like
   ones each truth calls extended and of the extended ones it calls extended,
   for all of them and for those not on a brighter source of the field
   (`sourceclf.recipes.injection.field_blends`, which the field's own clean
   rows are free of): how right each truth is where the answer is known;
   and the r magnitude, extent and neighbours found of each star of the
   latter that the deblended truth calls extended;
3. each model's balanced accuracy on the clean sources against both truths.

Run from the repository root (about eight minutes for the five fields with the
three models on two CPU cores)::

    python docs/scripts/deblended_truth.py [--data ../shared/data] [--models A,B] [FIELD ...]

``--models none`` leaves the models out.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table

from sourceclf.models import load_model
from sourceclf.recipes.deblended_truth import deblended_extent, deblended_fluxes
from sourceclf.recipes.extent_truth import EXTENT_POINT, forced_extent, frame_truth
from sourceclf.recipes.injection import INJECTION, injection_catalog
from sourceclf.utils._wcs import pixel_scale

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_fields  # noqa: E402  (the same fields, injection and scores)

MODELS = ("margnet-sgq", "margnet-cnn-sgq", "margformer-sgq")


def classes(extent):
    """``'extended'`` above `EXTENT_POINT`, else ``'point'`` (NaN: ``'point'``, as the cut)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.asarray(extent, float) > EXTENT_POINT, "extended", "point")


def injected_lines(name, native, psf, truth, log):
    """How each truth calls the sources drawn into the field (item 2)."""
    injection = injection_catalog(random_state=INJECTION["seed"])
    frames, _, labels, blended, r_mag, cut_rows = check_fields.injected_sources(
        native, psf, truth, injection, name, log)
    n = len(labels)
    segment = classes(forced_extent(*frames["r"], psf["r"], cut_rows)[:n])
    extent = deblended_extent(*frames["r"], psf["r"], cut_rows)[:n]
    deblended = classes(extent)
    lines = []
    for which, rows in (("all", np.ones(n, bool)), ("not on a brighter source", ~blended)):
        point, extended = rows & (labels == "point"), rows & (labels == "extended")
        shares = [f"{label} truth calls {np.mean(calls[point] == 'extended'):.2f} of "
                  f"{point.sum()} point-like and {np.mean(calls[extended] == 'extended'):.2f} "
                  f"of {extended.sum()} extended sources extended"
                  for label, calls in (("segment", segment), ("deblended", deblended))]
        lines.append(f"{name} injected, {which}: " + "; ".join(shares))
    misses = np.flatnonzero(~blended & (labels == "point") & (deblended == "extended"))
    if len(misses):
        data, wcs = frames["r"]
        x, y = wcs.celestial.world_to_pixel_values(np.asarray(cut_rows["ra"][misses], float),
                                                   np.asarray(cut_rows["dec"][misses], float))
        found = deblended_fluxes(data, x, y, psf["r"].fwhm / pixel_scale(wcs), psf["r"].beta,
                                 psf["r"].sky_sigma)["n_neighbours"]
        lines.append(f"{name} injected stars not on a brighter source that the deblended "
                     "truth calls extended: " + "; ".join(
                         f"r {r_mag[i]:.2f}, extent {extent[i]:+.3f}, {k} neighbours"
                         for i, k in zip(misses, found)))
    return lines


def field_lines(field, models, log):
    """Items 1-3 for one field."""
    name, native, psf = check_fields.read_field(field)
    truth = frame_truth(*native["r"], psf["r"])
    clean = truth[truth["clean"]]
    segment = np.asarray(clean["truth"]).astype(str)
    measured = truth[np.asarray(truth["clean"]) | np.asarray(truth["psf_star"])]
    extent = deblended_extent(*native["r"], psf["r"], measured)[np.asarray(measured["clean"])]
    deblended = classes(extent)
    lines = [f"{name}: {len(clean)} clean sources; segment truth {np.sum(segment == 'point')} "
             f"point-like, {np.sum(segment == 'extended')} extended; deblended "
             f"{np.sum(deblended == 'point')} point-like, {np.sum(deblended == 'extended')} "
             f"extended; {np.sum((segment == 'extended') & (deblended == 'point'))} extended -> "
             f"point-like, {np.sum((segment == 'point') & (deblended == 'extended'))} "
             "point-like -> extended"]
    lines += injected_lines(name, native, psf, truth, log)
    if models:
        sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
        for model, result in check_fields.classify_positions(sources, native, psf,
                                                             models).items():
            lines.append(f"{name} {model}: balanced " + ", ".join(
                f"{which} truth {check_fields.score_text(check_fields.score(labels, result))}"
                for which, labels in (("segment", segment), ("deblended", deblended))))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fields", nargs="*", help="fields (default: all in --data)")
    parser.add_argument("--data", default=check_fields.SHARED_DATA,
                        type=Path, help="folder holding the fields' frames "
                                        "(check_fields.py's --data)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated shipped models, or none")
    args = parser.parse_args(argv)
    fields = check_fields.find_fields(args.data, args.fields)
    names = [] if args.models == "none" else args.models.split(",")
    models = {m: load_model(m) for m in names}
    for field in fields.items():
        for line in field_lines(field, models, lambda text: None):
            print(line, flush=True)


if __name__ == "__main__":
    main()
