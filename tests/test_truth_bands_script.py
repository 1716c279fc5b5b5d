"""docs/scripts/truth_bands.py: the fields' truth from g, r and i together."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("truth_bands")


def test_bands_combine_by_their_noise(script):
    """A band whose point-source locus is ten times narrower carries the combination,
    and a band unmeasured on a source leaves the others to decide it."""
    rng = np.random.default_rng(0)
    n = 400
    r_mag = rng.uniform(17.0, 20.5, n)
    truth = np.where(np.arange(n) % 4 == 0, 0.5, 0.0)  # a quarter extended
    sharp = truth + rng.normal(0.0, 0.01, n)
    blunt = truth + rng.normal(0.0, 0.1, n)
    blunt[0] = np.nan
    together = script.combined_extent({"g": blunt, "r": sharp}, r_mag)
    assert np.std(together - truth) < 0.02 < np.std(blunt[1:] - truth[1:])
    assert together[0] == pytest.approx(sharp[0])
    assert np.isnan(script.combined_extent({"g": np.full(3, np.nan)}, r_mag[:3])).all()
    assert (script.classes(together) == np.where(truth > 0, "extended", "point")).all()


def test_ambiguity(script):
    from sourceclf.recipes.extent_truth import EXTENT_POINT

    r_mag = np.full(8, 18.0)
    extent = np.array([-0.02, -0.01, -0.03, -0.02, 0.0, EXTENT_POINT + 0.01, 0.5, 1.0])
    unsure = script.ambiguous(extent, r_mag)
    assert unsure.tolist() == [False] * 5 + [True, False, False]
    assert script.width_text(extent, r_mag).split()[1:] == ["--", "--"]


def test_noise_text_is_the_extents_sky_noise_per_bin(script):
    """1% PSF and aperture flux errors make a 0.015 mag extent noise; no row, no figure."""
    r_mag = np.array([18.0, 18.5, 19.5, 19.6])
    fluxes = {"psf": np.array([100.0, 100.0, 10.0, 10.0]), "total": np.full(4, 100.0),
              "psf_error": np.array([1.0, 1.0, 1.0, 1.0]), "aperture_error": np.full(4, 1.0)}
    assert script.noise_text(fluxes, r_mag).split() == ["0.015", "0.109", "--"]
