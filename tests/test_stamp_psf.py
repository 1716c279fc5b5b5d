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
    from sourceclf.field_psf import band_psf

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


def _moffat_stamps(n, fwhm_pix, beta, seed):
    """``n`` noisy stamps of one bright Moffat point source each, at the centre."""
    from sourceclf.psf import moffat_profile

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32] - 16.0
    return 2000.0 * moffat_profile(xx, yy, fwhm_pix, beta) + rng.normal(0.0, 1.0, (n, 32, 32))


def test_each_seeing_gets_the_shape_of_its_own_stamps():
    """Stamps of two seeings, each FWHM's shape measured apart; a small group and rows of
    unknown FWHM take the shape of all the stamps; none measurable gives NaN."""
    from sourceclf.stamp_psf import SHAPE_GROUP_STAMPS, fwhm_groups, stamps_moffat_index

    sharp = _moffat_stamps(SHAPE_GROUP_STAMPS, 3.0, 2.5, seed=1)
    wide = _moffat_stamps(SHAPE_GROUP_STAMPS, 5.0, 8.0, seed=2)
    few = _moffat_stamps(4, 4.0, 4.0, seed=3)
    fwhm = np.r_[np.full(SHAPE_GROUP_STAMPS, 3.0), np.full(SHAPE_GROUP_STAMPS, 5.0),
                 np.full(3, 4.0), np.nan]
    beta, source = stamps_moffat_index(np.concatenate([sharp, wide, few]), fwhm,
                                       pixel_scale=1.0)
    n = SHAPE_GROUP_STAMPS
    assert (source[:2 * n] == "own").all() and (source[2 * n:] == "all").all()
    assert beta[:n] == pytest.approx(2.5, abs=0.3) and beta[n:2 * n] == pytest.approx(8.0, abs=1.5)
    assert np.isfinite(beta[-1]) and (beta[2 * n:] == beta[-1]).all()  # all of them
    # One FWHM for all (psf=): measured once, on all the stamps.
    beta, source = stamps_moffat_index(sharp, 3.0, pixel_scale=1.0)
    assert (source == "own").all() and beta == pytest.approx(2.5, abs=0.3)
    # Nothing to measure on: NaN, and no source.
    beta, source = stamps_moffat_index(np.random.default_rng(0).normal(0, 1, (9, 32, 32)), 3.0,
                                       pixel_scale=1.0)
    assert np.isnan(beta).all() and (source == "").all()
    assert fwhm_groups([1.0, 1.009, 1.011])[:2].tolist() == [1.0, 1.0]


def test_the_moffat_index_is_read_on_the_rows_given():
    """rows= names the stamps read (make_cutouts' unflagged ones); the others are not read,
    yet every row gets its group's index, or that of all the stamps read."""
    from sourceclf.stamp_psf import SHAPE_GROUP_STAMPS, stamps_moffat_index

    n = SHAPE_GROUP_STAMPS
    sharp = _moffat_stamps(n, 3.0, 2.5, seed=1)
    holed = _moffat_stamps(n, 3.0, 8.0, seed=2)  # stands for stamps with a hole: not read
    stamps, fwhm = np.concatenate([sharp, holed]), np.full(2 * n, 3.0)
    read = np.arange(2 * n) < n
    beta, source = stamps_moffat_index(stamps, fwhm, rows=read, pixel_scale=1.0)
    alone, _ = stamps_moffat_index(sharp, 3.0, pixel_scale=1.0)
    assert (source == "own").all() and (beta == alone[0]).all()
    assert beta[0] == pytest.approx(2.5, abs=0.3)
    # Indices work as a mask does.  Two groups, each with too few stamps read: all's index.
    fwhm = np.r_[np.full(n, 3.0), np.full(n, 3.5)]
    beta, source = stamps_moffat_index(stamps, fwhm, rows=np.flatnonzero(read)[:n - 1],
                                       pixel_scale=1.0)
    assert (source == "all").all() and beta[0] == pytest.approx(2.5, abs=0.3)
    assert (beta == beta[0]).all()
