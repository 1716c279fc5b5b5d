"""Helpers shared by the benchmark scripts."""

import argparse
from pathlib import Path

import numpy as np

#: The real SDSS data beside the repository (``../shared/data``).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def field_parser(description, *, field=True):
    """The arguments of a benchmark on a real field's frames: ``--data`` (default
    `SHARED_DATA`), ``--field`` (default 004510-4-0030; with ``field``) and ``--repeat``
    (interleaved runs, default 3)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    if field:
        parser.add_argument("--field", default="004510-4-0030")
    parser.add_argument("--repeat", type=int, default=3)
    return parser


def field_frames(data, field):
    """A field's five corrected frames, ``{band: (data, wcs)}``, each read once
    (``<data>/sdss_frame_<field>/frame-<band>-<field>.fits.bz2``)."""
    from sourceclf.bands import BANDS
    from sourceclf.frames import read_frame

    folder = Path(data) / f"sdss_frame_{field}"
    return {b: read_frame(folder / f"frame-{b}-{field}.fits.bz2") for b in BANDS}


def bright_sources(frames, psf_r):
    """The positions (``ra``, ``dec``) of a field's bright sources (r < 20.5,
    `sourceclf.recipes.extent_truth.frame_truth`, as the real-field checks take them) and
    their stamps as `sourceclf.cutouts.make_cutouts` cuts them; ``psf_r``: the r frame's
    `~sourceclf.psf.PSFMeasurement`."""
    from astropy.table import Table

    from sourceclf.cutouts import make_cutouts
    from sourceclf.recipes.extent_truth import frame_truth

    truth = frame_truth(*frames["r"], psf_r)
    positions = Table({"ra": np.asarray(truth["ra"]), "dec": np.asarray(truth["dec"])})
    return positions, make_cutouts(table=positions, images=frames).data


def synthetic_features(n_rows, seed=0):
    """MargNet's 24 features (float32) of ``n_rows`` synthetic SDSS-like sources.

    Drawn with `sourceclf.demo.demo_catalog` (Gaussian mixtures fitted to SDSS
    DR16 faint compact galaxies and stars); rows with missing values dropped.
    """
    from sourceclf.demo import demo_catalog
    from sourceclf.features import compute_features

    blocks, done, k = [], 0, 0
    while done < n_rows:
        n = min(250_000, n_rows - done)
        fm = compute_features(demo_catalog(n, random_state=seed + k), "margnet24")
        blocks.append(fm.values[fm.valid])
        done += int(fm.valid.sum())
        k += 1
    return np.ascontiguousarray(np.concatenate(blocks)[:n_rows], dtype=np.float32)


def peak_rss_mb():
    """Peak resident memory of this process so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
