"""sourceclf.recipes.extent_truth: the fluxes behind the truth, and SDSS's summed-flux type."""

from types import SimpleNamespace

import numpy as np
import pytest
from astropy.table import Table

from sourceclf.exceptions import InvalidInputError
from sourceclf.psf import moffat_profile
from sourceclf.recipes.extent_truth import (EXTENT_POINT, SUMMED_DETECTION, forced_extent,
                                            forced_fluxes, summed_extent)

SCALE = 0.396  # arcsec per pixel
FWHM, BETA, SIGMA = 3.0, 3.5, 1.0  # pixels, Moffat index, sky noise per pixel


def _frame(fluxes, widths, x, y, seed):
    """A 400x400 frame of Moffat sources (FWHM ``widths`` times the PSF's) and sky noise."""
    yy, xx = np.mgrid[:400, :400].astype(float)
    data = np.random.default_rng(seed).normal(0.0, SIGMA, (400, 400))
    for f, w, cx, cy in zip(fluxes, widths, x, y):
        data += f * moffat_profile(xx - cx, yy - cy, FWHM * w, BETA)
    return data.astype(np.float32)


@pytest.fixture(scope="module")
def field(tan_wcs):
    """Two bands of one field: 20 stars and 6 galaxies (twice the PSF's FWHM); the g
    frame shows the galaxies and the first 5 stars too faint to detect."""
    side = np.arange(40.0, 361.0, 60.0)
    x, y = (a.ravel() for a in np.meshgrid(side, side))  # 36 places, 60 pixels apart
    x, y = x[:26], y[:26]
    star = np.arange(26) < 20
    widths = np.where(star, 1.0, 2.0)
    r_flux = np.where(star, np.linspace(4000.0, 20000.0, 26), 10000.0)
    g_flux = np.where(np.arange(26) < 5, 2.0, 0.5 * r_flux)
    wcs = tan_wcs(scale=SCALE)
    ra, dec = wcs.pixel_to_world_values(x, y)
    truth = Table({"ra": ra, "dec": dec, "psf_star": star})
    psf = SimpleNamespace(fwhm=FWHM * SCALE, beta=BETA, sky_sigma=SIGMA)
    frames = {"r": _frame(r_flux, widths, x, y, 1), "g": _frame(g_flux, widths, x, y, 2)}
    return SimpleNamespace(frames=frames, wcs=wcs, psf=psf, truth=truth, star=star, x=x, y=y)


def test_forced_fluxes_are_those_of_forced_extent(field):
    data = field.frames["r"]
    f = forced_fluxes(data, field.wcs, field.psf, field.truth)
    assert np.array_equal(f["extent"], forced_extent(data, field.wcs, field.psf, field.truth))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = f["psf"] / f["total"]
    assert np.allclose(ratio[field.star], 1.0, atol=0.02)  # a point source's total
    assert (f["extent"][~field.star] > EXTENT_POINT).all()
    with pytest.raises(InvalidInputError, match="forced_fluxes: truth lacks column"):
        forced_fluxes(data, field.wcs, field.psf, field.truth["ra", "dec"])


def test_flux_errors_are_the_scatter_on_empty_sky(field):
    """At positions with no source, the PSF and aperture fluxes scatter by their errors."""
    rng = np.random.default_rng(4)
    data = rng.normal(0.0, SIGMA, (400, 400)).astype(np.float32)
    x, y = rng.uniform(40, 360, 300), rng.uniform(40, 360, 300)
    ra, dec = field.wcs.pixel_to_world_values(x, y)
    rows = Table({"ra": ra, "dec": dec, "psf_star": np.ones(300, bool)})
    f = forced_fluxes(data, field.wcs, field.psf, rows)
    assert np.all(f["psf_error"] == f["psf_error"][0])
    assert np.nanstd(f["psf"]) == pytest.approx(f["psf_error"][0], rel=0.15)
    assert np.nanstd(f["aperture"]) == pytest.approx(f["aperture_error"][0], rel=0.15)


def test_summed_extent_adds_the_detected_bands(field):
    fluxes = {b: forced_fluxes(data, field.wcs, field.psf, field.truth)
              for b, data in field.frames.items()}
    summed = summed_extent(fluxes)
    assert np.all(np.abs(summed[field.star]) < 0.03)
    assert (summed[~field.star] > EXTENT_POINT).all()
    faint = np.arange(26) < 5  # not detected in g: r alone decides them
    assert (fluxes["g"]["psf"][faint] < SUMMED_DETECTION * fluxes["g"]["psf_error"][faint]).all()
    assert np.allclose(summed[faint], summed_extent({"r": fluxes["r"]})[faint])
    # detected in both: the summed flux lies between the two bands' extents
    both = ~faint
    low = np.minimum(fluxes["r"]["extent"], fluxes["g"]["extent"])[both]
    high = np.maximum(fluxes["r"]["extent"], fluxes["g"]["extent"])[both]
    assert np.all((summed[both] >= low - 1e-9) & (summed[both] <= high + 1e-9))
    # no band detects a source: no extent
    nothing = {"r": dict(fluxes["r"], psf=np.zeros(26))}
    assert np.isnan(summed_extent(nothing)).all()
