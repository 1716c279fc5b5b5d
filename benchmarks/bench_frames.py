"""What classifying from full frames costs, step by step, on a real SDSS field.

Run::

    python benchmarks/bench_frames.py [--data ../shared/data] [--field 004510-4-0030]
                                      [--threads 2] [--repeat 3]

On one field's five corrected frames (read once, as ``classify`` reads them)
and the positions of its bright sources (``frame_truth``, r < 20.5), it
times, in one run and interleaved ``--repeat`` times: measuring each band's
PSF (`sourceclf.psf.measure_psf`), each band's offset from the r frame on
its PSF stars (`sourceclf.registration.band_offsets`, what ``classify`` adds
to register the frames), measuring MargNet's 24 columns on the
frames (`sourceclf.photometry.measure_columns`, given the PSFs), the frame's
coverage by sources (`sourceclf.crowding.source_coverage`), and the whole
``classify(positions, images=frames)`` with ``model='auto'`` (which measures
the columns and runs margnet-sgq) against the image-only
``model='margnet-cnn-sgq'`` (which measures them too, for the ``blended``
flag) and against that model on the same stamps given as cutouts with the
PSF (nothing measured, nothing cut) and ``model='auto'`` on them (MargNet's
columns and the PSF's shape measured on the stamps, then margnet-sgq:
`sourceclf.photometry.measure_stamp_columns`), and ``auto`` on the same stamps
without ``psf=`` but with ``psffwhm_<b>`` per row drawn uniformly from
0.8-2.5" (the worst case of `sourceclf.stamp_columns`: nearly every row a
FWHM group of its own, each with its profiles drawn; timing only, since the
stamps are not seen through those PSFs), and `sourceclf.injection_check` with
the model ``auto`` chose (150 known sources drawn into copies of the frames:
what ``--inject-check 150`` adds), and `sourceclf.streaming.classify_file` on
the positions written to a FITS file (what ``sourceclf-classify --image``
runs: it chooses the model on the measured columns, then classifies), and
``classify`` of a catalog that has MargNet's columns (measured once here),
called twice on the same frames with ``model='margnet-sgq'``, without and
within one `sourceclf.classification.frame_measurement_cache` (whose PSF
memo, `sourceclf.field_psf.psf_memo`, measures each frame's PSF once).  It
prints the medians and the ratios of the ``classify`` runs, of the check and
of ``classify_file`` to ``classify``, and of the two calls within the cache
to the two without; the load average is printed too (a
shared machine makes the wall-clock times upper bounds).
"""

import contextlib
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def main(argv=None):
    from bench_common import bright_sources, field_frames, field_parser

    parser = field_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    import sourceclf
    from sourceclf.bands import BANDS, SDSS_PIXEL_SCALE
    from sourceclf.classification import frame_measurement_cache
    from sourceclf.crowding import source_coverage
    from sourceclf.injection_check import injection_check
    from sourceclf.photometry import measure_columns
    from sourceclf.psf import CATALOG_PSF_SCALE, measure_psf
    from sourceclf.registration import band_offsets
    from sourceclf.stamp_psf import PSF_FWHM_STEP
    from sourceclf.streaming import classify_file

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    frames = field_frames(args.data, args.field)
    read = time.perf_counter() - t0
    psf = {b: measure_psf(frames[b][0]) for b in BANDS}
    positions, stamps = bright_sources(frames, psf["r"])
    scratch = tempfile.TemporaryDirectory()
    catalog, out = Path(scratch.name) / "positions.fits", Path(scratch.name) / "out.fits"
    positions.write(catalog)
    with_columns = measure_columns(positions, frames, psf)[0]
    spread = positions.copy()  # each row its own FWHM over SDSS's range
    for b in BANDS:
        spread[f"psffwhm_{b}"] = (np.random.default_rng(BANDS.index(b)).uniform(
            0.8, 2.5, len(positions)) / CATALOG_PSF_SCALE[b])

    def twice(memo):
        """Two classify calls of the catalog with its columns, within one cache or not."""
        with frame_measurement_cache() if memo else contextlib.nullcontext():
            for _ in range(2):
                sourceclf.classify(with_columns, images=frames, model="margnet-sgq",
                                   confidence=0.9, progress=False, device="cpu")

    steps = {
        "PSF, 5 bands (measure_psf)": lambda: [measure_psf(frames[b][0]) for b in BANDS],
        "bands on r (band_offsets)": lambda: band_offsets(frames, psf),
        "24 columns (measure_columns)": lambda: measure_columns(positions, frames, psf),
        "coverage, r (source_coverage)": lambda: source_coverage(
            frames["r"][0], psf["r"].fwhm / SDSS_PIXEL_SCALE, psf["r"].sky_sigma),
        "classify, auto (margnet-sgq)": lambda: sourceclf.classify(
            positions, images=frames, confidence=0.9, progress=False, device="cpu"),
        "classify, margnet-cnn-sgq": lambda: sourceclf.classify(
            positions, images=frames, model="margnet-cnn-sgq", confidence=0.9,
            progress=False, device="cpu"),
        "margnet-cnn-sgq, stamps given": lambda: sourceclf.classify(
            positions, stamps, psf={b: psf[b].fwhm for b in BANDS}, model="margnet-cnn-sgq",
            confidence=0.9, progress=False, device="cpu"),
        "auto, stamps given (margnet-sgq)": lambda: sourceclf.classify(
            positions, stamps, psf={b: psf[b].fwhm for b in BANDS}, confidence=0.9,
            progress=False, device="cpu"),
        "auto, stamps, psffwhm 0.8-2.5\" per row": lambda: sourceclf.classify(
            spread, stamps, confidence=0.9, progress=False, device="cpu"),
        "injection check, 150 (margnet-sgq)": lambda: injection_check(
            frames, model="margnet-sgq", device="cpu"),
        "classify_file, auto (one chunk)": lambda: classify_file(
            catalog, out, images=frames, confidence=0.9, progress=False, device="cpu",
            overwrite=True),
        "2 x classify, columns given": lambda: twice(False),
        "2 x classify, columns given, 1 cache": lambda: twice(True),
    }
    times = {name: [] for name in steps}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, step in steps.items():  # warm up: models loaded, caches filled
            step()
        for _ in range(args.repeat):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
    print(f"field {args.field}: {len(positions)} sources of r < 20.5; five frames read "
          f"(bz2) in {read:.1f} s; torch {torch.__version__}, {args.threads} threads; "
          f"median of {args.repeat}")
    for name, values in times.items():
        print(f"  {name:36s} {np.median(values):6.2f} s")
    auto = np.median(times["classify, auto (margnet-sgq)"])
    cnn = np.median(times["classify, margnet-cnn-sgq"])
    stamps_only = np.median(times["margnet-cnn-sgq, stamps given"])
    print(f"classify, auto / margnet-cnn-sgq on frames: {auto / cnn:.2f}")
    registration = np.median(times["bands on r (band_offsets)"])
    print(f"registering the bands on r / classify, auto: {registration / auto:.3f}")
    print(f"margnet-cnn-sgq on frames / on the stamps given: {cnn / stamps_only:.2f}")
    stamps_auto = np.median(times["auto, stamps given (margnet-sgq)"])
    print(f"on the stamps given, auto (columns and PSF shape measured on them) / "
          f"margnet-cnn-sgq: {stamps_auto / stamps_only:.2f}")
    per_row = np.median(times["auto, stamps, psffwhm 0.8-2.5\" per row"])
    groups = len(np.unique(np.round(np.asarray(spread["psffwhm_r"]) * CATALOG_PSF_SCALE["r"]
                                    / PSF_FWHM_STEP)))
    print(f"on the stamps given, auto with a FWHM per row over 0.8-2.5\" ({groups} FWHM groups "
          f"in r) / with one psf=: {per_row / stamps_auto:.2f}")
    check = np.median(times["injection check, 150 (margnet-sgq)"])
    print(f"injection check / classify, auto: {check / auto:.2f}")
    streamed = np.median(times["classify_file, auto (one chunk)"])
    print(f"classify_file (what sourceclf-classify runs) / classify, auto: {streamed / auto:.2f}")
    kept = np.median(times["2 x classify, columns given, 1 cache"])
    print(f"two classify calls on the same frames, within one frame_measurement_cache / "
          f"without: {kept / np.median(times['2 x classify, columns given']):.2f}")
    scratch.cleanup()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
