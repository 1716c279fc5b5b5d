"""The PSF of stamps given without their frames (sourceclf.stamp_psf)."""

import numpy as np
import pytest

from sourceclf.exceptions import InvalidInputError
from sourceclf.stamp_psf import MOSAIC_STAMPS, stamp_mosaic, stamps_psf

pytest.importorskip("photutils")


def test_the_mosaic_lays_each_stamp_less_its_median_in_a_grid():
    stamps = np.arange(5)[:, None, None] + np.zeros((5, 4, 4))
    stamps[1, 0, 0] = 10.0
    stamps[2, 1, 1] = np.nan
    mosaic = stamp_mosaic(stamps)
    assert mosaic.shape == (12, 12) and mosaic.dtype == np.float32
    assert mosaic[0, 4] == 9.0  # stamp 1, its median (1) taken off
    assert mosaic[1:4, 8:12].max() == 0.0 and np.isfinite(mosaic).all()  # NaN -> the sky
    assert (mosaic[8:, :] == 0).all()  # the grid's empty places
    with pytest.raises(InvalidInputError, match=r"expected \(N, H, W\)"):
        stamp_mosaic(np.zeros((4, 4)))


def test_stamps_of_a_real_field_show_its_psf(calibobj_field):
    """The calibObj stars' stamps of 4510-4-0030 give the frame's PSF."""
    from astropy.table import Table

    from sourceclf.cutouts import make_cutouts
    from sourceclf.psf import band_psf

    cat, frames = calibobj_field
    stamps = make_cutouts(table=Table({"ra": cat["ra"], "dec": cat["dec"]}),
                          images=frames).data
    frame = band_psf(frames["r"], "r")
    seen = stamps_psf(stamps[:, 2], fwhm_guess=1.2)
    assert seen.fwhm == pytest.approx(frame.fwhm, abs=0.03)
    assert seen.beta == pytest.approx(frame.beta, abs=0.6)
    assert seen.n_stars >= 10


def test_too_few_point_sources_is_a_clear_error():
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidInputError, match="cannot measure the PSF of my stamps"):
        stamps_psf(rng.normal(0.0, 1.0, (9, 32, 32)), label="my stamps")


def test_a_large_set_is_read_evenly_spaced(monkeypatch):
    import sourceclf.stamp_psf as module

    seen = {}

    def measure_psf(image, **kwargs):
        seen["shape"] = image.shape

    monkeypatch.setattr(module, "measure_psf", measure_psf)
    stamps_psf(np.zeros((MOSAIC_STAMPS + 700, 8, 8), dtype=np.float32))
    side = int(np.ceil(np.sqrt(MOSAIC_STAMPS)))
    assert seen["shape"] == (8 * side, 8 * side)
