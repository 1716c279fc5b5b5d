"""The image models on stamps given without their frames, next to the frames themselves.

A user with cutouts (``cutouts=``, ``--cutouts``) and their PSF (``psf=``,
``--psf``) but without MargNet's catalog columns gets the columns measured
on the stamps (`sourceclf.photometry.measure_stamp_columns`), so that
``model="auto"`` chooses ``margnet-sgq`` as it does for frames; without
``psf`` it chooses the image-only ``margnet-cnn-sgq``.  For each field given
(as ``check_fields.py`` finds them), at its own seeing and blurred to 1.6",
1.9" and 2.2" (as ``check_fields.py`` blurs them, same seeds), this scores on
the field's own clean bright sources (``check_fields.py``'s truth):

* ``frames``: ``margnet-sgq`` with the columns measured on the frames
  through the PSF measured on them (its Moffat index included), as
  ``check_fields.py`` records it in the card;
* ``stamps``: ``classify(positions, cutouts=stamps, psf=FWHM)`` with
  ``model="auto"`` (the model it chose is printed), the stamps cut from the
  same frames (`sourceclf.cutouts.make_cutouts`), the PSF given by its FWHM
  alone, as a user gives it (its Moffat index measured on the stamps' own
  point sources, `sourceclf.stamp_psf.stamps_psf`);
* ``cnn``: ``margnet-cnn-sgq`` on the same stamps and PSF, what ``auto``
  chose for stamps before their columns were measured.

Each line gives the fraction of point-like sources called STAR or QSO, of
extended ones called GALAXY, and their mean (balanced accuracy); each
seeing's first line also the r-band PSF measured on the frame and on the
stamps (FWHM and Moffat index), and where each band's PSF shape on the
stamps comes from (`sourceclf.stamp_psf.band_psf_shapes`: ``own``, fitted
on the band's own stamps, with how many were; ``borrowed``, at the stamps
the other bands showed to be point sources; ``none``, not measured)::

    python docs/scripts/stamps_check.py 004510-4-0030 001992-1-0087 003184-2-0169
    python docs/scripts/stamps_check.py 004510-4-0030 001992-1-0087 003184-2-0169 \
        --kernel kolmogorov    # blurred as the atmosphere blurs (check_fields.py --kernel)

With ``--together``, the stamps of every field and seeing are then
classified once more, all in one catalog, as a catalog of cutouts from many
frames comes: each row with its frame's FWHM as SDSS gives it
(``psffwhm_<b>``, the FWHM over `sourceclf.psf.CATALOG_PSF_SCALE`) and no
``psf=`` (``together``: each row measured through its own FWHM, the Moffat
index measured on the stamps of each FWHM,
`sourceclf.stamp_psf.stamps_moffat_index`), and with one FWHM for all
given as ``psf=`` (``one psf``: the median over the rows), scored per field
and seeing.

It measures; it tunes nothing and records nothing.
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

import sourceclf
from sourceclf.bands import BANDS
from sourceclf.cutouts import make_cutouts
from sourceclf.field_psf import psf_memo
from sourceclf.models import load_model
from sourceclf.psf import CATALOG_PSF_SCALE
from sourceclf.recipes.extent_truth import frame_truth
from sourceclf.simulate.degrade import KERNELS
from sourceclf.stamp_psf import band_psf_shapes, stamps_psf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_fields import (SEEINGS, SHARED_DATA, blurred_with_psf,  # noqa: E402
                          classify_positions, find_fields, read_field, score)


def on_stamps(sources, stamps, psf, model="auto"):
    """``sourceclf.classify`` of ``sources`` given as ``stamps`` (cut from the frames once
    per seeing) and ``psf`` (``{band: PSFMeasurement}``) by its FWHMs alone; warnings
    silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sourceclf.classify(sources, cutouts=stamps, psf={b: psf[b].fwhm for b in BANDS},
                                  model=model, confidence=None, device="cpu", progress=False)


def band_sources(stamps, seen):
    """Where each band's PSF shape on ``stamps`` (given with ``seen``'s FWHMs) comes from,
    as `sourceclf.classify` measures it (`sourceclf.stamp_psf.band_psf_shapes`): e.g.
    ``'u borrowed, g own (31 stars), ...'``; ``none`` where it cannot be measured."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shapes = band_psf_shapes(stamps, {b: seen[b].fwhm for b in BANDS})
    parts = []
    for b in BANDS:
        source = str(shapes[b].source[0]) or "none"
        stars = int(shapes[b].stars.sum())
        parts.append(f"{b} {source}" + (f" ({stars} stars)" if source == "own" else ""))
    return ", ".join(parts)


def line(what, result, labels):
    """``'stamps margnet-sgq      point 0.97 extended 0.93 balanced 0.95'``."""
    row = score(labels, result)
    return (f"{what:<7} {result.meta['CLFMODEL']:<16} point {row['point_as_star_or_qso']:.2f} "
            f"extended {row['extended_as_galaxy']:.2f} balanced {row['balanced']:.2f}")


def together(runs):
    """Lines scoring the stamps of every run (``(name, seeing label, sources, stamps, PSF,
    labels)``) classified in one catalog: with each row's ``psffwhm_<b>``, and with the
    median FWHM given as ``psf=``."""
    catalog = vstack([run[2] for run in runs], metadata_conflicts="silent")
    for b in BANDS:
        catalog[f"psffwhm_{b}"] = np.concatenate([np.full(len(run[2]), run[4][b].fwhm)
                                                  for run in runs]) / CATALOG_PSF_SCALE[b]
    stamps = np.concatenate([run[3] for run in runs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own = sourceclf.classify(catalog, cutouts=stamps, confidence=None, device="cpu",
                                 progress=False)
        median = {b: float(np.median(catalog[f"psffwhm_{b}"]) * CATALOG_PSF_SCALE[b])
                  for b in BANDS}
        catalog.remove_columns([f"psffwhm_{b}" for b in BANDS])
        one = sourceclf.classify(catalog, cutouts=stamps, psf=median, confidence=None,
                                 device="cpu", progress=False)
    lines = [f"together: {len(catalog)} rows of {len(runs)} fields and seeings; "
             f"one psf: r FWHM {median['r']:.2f}\"", str(own.meta.get("CLFPSF"))]
    start = 0
    for name, label, sources, _, seen, labels in runs:
        rows = slice(start, start + len(sources))
        start += len(sources)
        for what, result in (("together", own), ("one psf", one)):
            lines.append(f"{name} {label:<6} r FWHM {seen['r'].fwhm:.2f}\"  "
                         f"{line(what, result[rows], labels)}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fields", nargs="+", help="fields, e.g. 004510-4-0030")
    parser.add_argument("--data", type=Path, default=SHARED_DATA,
                        help="folder holding the fields' frames (as check_fields.py)")
    parser.add_argument("--together", action="store_true",
                        help="then classify every field's and seeing's stamps in one catalog")
    parser.add_argument("--kernel", choices=KERNELS, default="gaussian",
                        help="how the frames are blurred, as check_fields.py --kernel "
                             "(default gaussian)")
    args = parser.parse_args(argv)
    fields = find_fields(args.data, args.fields)
    if not fields:
        parser.error(f"none of {', '.join(args.fields)} has its five frames under {args.data}")
    margnet = {"margnet-sgq": load_model("margnet-sgq")}
    runs = []
    for name, paths in fields.items():
        name, native, psf = read_field((name, paths))
        truth = frame_truth(*native["r"], psf["r"])
        clean = truth[truth["clean"]]
        labels = np.asarray(clean["truth"]).astype(str)
        sources = Table({"ra": np.asarray(clean["ra"]), "dec": np.asarray(clean["dec"])})
        print(f"{name}: {int((labels == 'point').sum())} point-like, "
              f"{int((labels == 'extended').sum())} extended", flush=True)
        for seeing in SEEINGS:
            frames, seen = blurred_with_psf(native, psf, seeing, name, args.kernel)
            label = "native" if seeing is None else f'{seeing:.1f}"'
            stamps = make_cutouts(table=sources, images=frames).data
            with psf_memo():  # each band's stamps measured once, for the line and each model
                shape = stamps_psf(stamps[:, BANDS.index("r")], fwhm_guess=seen["r"].fwhm)
                print(f"  {label:<6} r PSF: frame {seen['r'].fwhm:.2f}\" "
                      f"beta {seen['r'].beta:.2f}, stamps {shape.fwhm:.2f}\" "
                      f"beta {shape.beta:.2f} ({shape.n_stars} stars); "
                      f"the stamps' PSF shape per band: {band_sources(stamps, seen)}", flush=True)
                on_frames = classify_positions(sources, frames, seen, margnet)["margnet-sgq"]
                results = {"frames": on_frames,
                           "stamps": on_stamps(sources, stamps, seen),
                           "cnn": on_stamps(sources, stamps, seen, "margnet-cnn-sgq")}
            for what, result in results.items():
                print(f"  {label:<6} r FWHM {seen['r'].fwhm:.2f}\"  {line(what, result, labels)}",
                      flush=True)
            if args.together:
                runs.append((name, label, sources, stamps, seen, labels))
    if runs:
        print("\n".join(together(runs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
