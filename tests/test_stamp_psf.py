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


def test_the_mosaic_can_be_framed_by_the_stamps_own_sky_noise():
    rng = np.random.default_rng(1)
    stamps = rng.normal(0.0, 2.0, (5, 16, 16))
    bare = stamp_mosaic(stamps)
    framed = stamp_mosaic(stamps, border=7)
    assert framed.shape == (48 + 14, 48 + 14) and framed.dtype == np.float32
    assert np.array_equal(framed[7:-7, 7:-7], bare)
    ring = np.concatenate([framed[:7].ravel(), framed[-7:].ravel()])
    assert np.std(ring) == pytest.approx(2.0, rel=0.1) and abs(np.mean(ring)) < 0.1
    assert np.array_equal(framed, stamp_mosaic(stamps, border=7))  # a fixed seed


def test_the_outer_stamps_of_the_mosaic_are_fitted_at_a_wide_psf():
    """At a FWHM of 6 pixels the fit window (3.5 FWHM a side of a star) of a stamp on the
    grid's outer ring ran off a bare mosaic: of 16 stamps (4 a side) only the 4 inner
    ones were fitted, too few to measure (on the shared fields blurred to 1.9-2.2", u went
    unmeasured so).  Framed by sky noise, every stamp is fitted."""
    from sourceclf.psf import moffat_profile
    from sourceclf.stamp_psf import stamps_psf_at, stamps_psf_shape

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:32, :32] - 15.5
    stamps = np.array([3000.0 * moffat_profile(xx - dx, yy - dy, 6.0, 3.5)
                       + rng.normal(0.0, 1.0, (32, 32))
                       for dx, dy in rng.uniform(-0.5, 0.5, (16, 2))])
    seen = stamps_psf(stamps, pixel_scale=1.0, fwhm_guess=6.0)
    assert seen.n_stars == 16 and seen.fwhm == pytest.approx(6.0, abs=0.2)
    shape = stamps_psf_shape(stamps, 6.0, pixel_scale=1.0, min_stamps=5)
    assert shape.stars.all() and np.isfinite(shape.beta).all()
    at = stamps_psf_at(stamps, np.ones(16, dtype=bool), pixel_scale=1.0, fwhm_guess=6.0)
    assert at.n_stars == 16


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
    border = 2 * module._mosaic_border(1.0, module.SDSS_PIXEL_SCALE)
    assert seen["shape"] == (8 * side + border, 8 * side + border)


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


def test_each_seeing_gets_the_elongation_of_its_own_stamps():
    """`stamps_psf_shape` reads ``1 - b/a`` with the Moffat index, from the same fits: a
    group of stamps stretched along x is elongated, a round group is not."""
    from sourceclf.psf import moffat_profile
    from sourceclf.stamp_psf import SHAPE_GROUP_STAMPS, stamps_psf_shape

    n = SHAPE_GROUP_STAMPS
    yy, xx = np.mgrid[:32, :32] - 16.0
    noise = np.random.default_rng(4).normal(0.0, 1.0, (2 * n, 32, 32))
    stretched = 2000.0 * moffat_profile(xx * 0.6, yy, 4.0, 3.5) + noise[n:]
    shape = stamps_psf_shape(np.concatenate([_moffat_stamps(n, 3.0, 2.5, seed=1), stretched]),
                             np.repeat([3.0, 4.0], n), pixel_scale=1.0)
    assert (shape.source == "own").all()
    assert (shape.ellipticity[:n] < 0.05).all() and (shape.ellipticity[n:] > 0.2).all()
    assert shape.beta[0] == pytest.approx(2.5, abs=0.3)


def test_the_same_stamps_are_measured_once_while_a_memo_is_open(monkeypatch):
    """Stamps cut afresh from the same input (MargNet's columns, then the model's inputs)
    are one measurement in a `psf_memo`, a failed one too; other stamps or FWHMs are
    another, and a closed memo keeps nothing."""
    import sourceclf.stamp_psf as module
    from sourceclf.field_psf import psf_memo

    calls = []
    real = module.measure_psf
    monkeypatch.setattr(module, "measure_psf", lambda *a, **k: calls.append(1) or real(*a, **k))
    stamps = _moffat_stamps(12, 3.0, 2.5, seed=1)
    noise = np.random.default_rng(0).normal(0.0, 1.0, (9, 32, 32))
    with psf_memo():
        first = module.stamps_psf_shape(stamps, 3.0, pixel_scale=1.0)
        again = module.stamps_psf_shape(stamps.copy(), np.full(12, 3.0), pixel_scale=1.0)
        assert len(calls) == 1 and again.ellipticity[0] == first.ellipticity[0]
        module.stamps_psf_shape(stamps, 3.0, rows=np.arange(10), pixel_scale=1.0)
        module.stamps_psf_shape(stamps, 3.1, pixel_scale=1.0)
        assert len(calls) == 3
        for _ in range(2):
            with pytest.raises(InvalidInputError, match="cannot measure the PSF"):
                module.stamps_psf(noise, pixel_scale=1.0, fwhm_guess=3.0)
        assert len(calls) == 4
    module.stamps_psf_shape(stamps, 3.0, pixel_scale=1.0)  # closed: measured again
    assert len(calls) == 5


def test_stamps_given_without_frames_are_flagged_when_their_psf_is_elongated(calibobj_field):
    """The calibObj stars' stamps of 4510-4-0030, cut from its frames smoothed along x
    (a shaken PSF) and given as ``cutouts=`` with their FWHM alone, come out with their
    ``psf_ellipticity_<b>`` and flagged ``psf_elongated`` (one warning), as the frames'
    rows are; cut from the native frames, they are not.  A band given as a
    `PSFMeasurement` takes its elongation from it."""
    import warnings

    from astropy.table import Table
    from scipy.ndimage import gaussian_filter1d

    from sourceclf.bands import BANDS
    from sourceclf.cutouts import make_cutouts
    from sourceclf.elongation import ELONGATION_LIMIT
    from sourceclf.exceptions import SourceclfWarning
    from sourceclf.field_psf import field_psfs
    from sourceclf.inputs import model_inputs

    cat, frames = calibobj_field
    table = Table({"ra": cat["ra"], "dec": cat["dec"]})
    shaken = {b: (gaussian_filter1d(data, 3.0, axis=1).astype(np.float32), wcs)
              for b, (data, wcs) in frames.items()}

    def inputs(images, psf):
        stamps = make_cutouts(table=table, images=images).data
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            made = model_inputs(table, feature_set="psf_fwhm", uses_images=True,
                                cutouts=stamps, psf=psf,
                                psf_range={b: (0.5, 3.5) for b in BANDS}, model_name="m")
        return made, [str(w.message) for w in said if issubclass(w.category, SourceclfWarning)
                      and "elongated" in str(w.message)]

    native = field_psfs(frames)
    sharp, said = inputs(frames, {b: m.fwhm for b, m in native.items()})
    assert not said and "psf_elongated" not in "".join(sharp.flags)
    assert np.ma.median(sharp.columns["psf_ellipticity_r"]) == pytest.approx(
        native["r"].ellipticity, abs=0.05)
    seen = field_psfs(shaken)
    smeared, said = inputs(shaken, {b: m.fwhm for b, m in seen.items()})
    assert seen["r"].ellipticity > ELONGATION_LIMIT
    assert np.ma.median(smeared.columns["psf_ellipticity_r"]) > ELONGATION_LIMIT
    assert all("psf_elongated" in f for f in smeared.flags[smeared.valid])
    assert len(said) == 1 and "its rows are flagged 'psf_elongated'" in said[0]
    # r given as a measurement (rounder than it is): r's elongation is the given one.
    given = {**{b: m.fwhm for b, m in seen.items()}, "r": seen["r"]._replace(ellipticity=0.01)}
    mixed, _ = inputs(shaken, given)
    np.testing.assert_allclose(mixed.columns["psf_ellipticity_r"], 0.01, rtol=1e-5)
    assert np.ma.median(mixed.columns["psf_ellipticity_g"]) > ELONGATION_LIMIT


def test_only_each_stamp_s_own_source_is_fitted(monkeypatch):
    """The PSF stars of a mosaic are the stamps' own sources, at their centres, not the
    neighbours in their corners (which a stamp's border may cut, and the next stamp's
    pixels join): on the crowded field 005405-6-0099 blurred to 2.2", those read the
    PSF as elongated (1 - b/a 0.20-0.28, the frames' 0.03-0.05)."""
    import sourceclf.stamp_psf as module
    from sourceclf.psf import moffat_profile

    yy, xx = np.mgrid[:32, :32].astype(float)
    own = 2000.0 * moffat_profile(xx - 16.0, yy - 16.0, 3.0, 3.5)
    corner = 3000.0 * moffat_profile(xx - 3.0, yy - 29.0, 3.0, 3.5)  # a whole neighbour
    stamps = own + corner + np.random.default_rng(5).normal(0.0, 1.0, (40, 32, 32))

    def offsets(seen):
        border = module._mosaic_border(3.0, 1.0)
        x, y = np.asarray(seen.stars["x"]) - border, np.asarray(seen.stars["y"]) - border
        return np.hypot(x % 32 - 15.5, y % 32 - 15.5)

    seen = module.stamps_psf(stamps, pixel_scale=1.0, fwhm_guess=3.0)
    assert seen.fwhm == pytest.approx(3.0, abs=0.1) and seen.ellipticity < 0.05
    assert seen.n_stars >= 20 and (offsets(seen) <= module.STAMP_CENTRE_RADIUS).all()
    monkeypatch.setattr(module, "STAMP_CENTRE_RADIUS", 100.0)  # any star: the corners' too
    assert (offsets(module.stamps_psf(stamps, pixel_scale=1.0, fwhm_guess=3.0)) > 10).any()


def test_a_band_with_too_few_point_sources_of_its_own_borrows_the_other_bands():
    """Stamps whose u sources are too faint to be found as PSF stars (S/N about 30, the
    finder asks 50) are measured at the stamps the other bands showed to be point sources,
    as a frame's band borrows its field's stars; with no other band there is nothing to
    borrow, and the rows keep no shape."""
    from sourceclf.psf import moffat_profile
    from sourceclf.stamp_psf import band_psf_shapes

    yy, xx = np.mgrid[:32, :32] - 16.0
    core = moffat_profile(xx, yy, 3.0, 4.0)  # unit flux
    rng = np.random.default_rng(7)
    stamps = np.stack([(250.0 if k == 0 else 2000.0) * core + rng.normal(0.0, 1.0, (40, 32, 32))
                       for k in range(5)], axis=1)
    fwhm = {b: 3.0 * 0.396 for b in "ugriz"}
    shapes = band_psf_shapes(stamps, fwhm)
    assert (shapes["u"].source == "borrowed").all() and not shapes["u"].stars.any()
    assert shapes["u"].beta[0] == pytest.approx(4.0, abs=0.6)
    assert shapes["u"].ellipticity[0] < 0.06
    assert (shapes["r"].source == "own").all() and shapes["r"].stars.sum() >= 30
    alone = band_psf_shapes(stamps, fwhm, bands=("u",))
    assert (alone["u"].source == "").all() and np.isnan(alone["u"].beta).all()


def test_stamps_psf_at_names_a_mismatch_of_rows_and_stamps():
    from sourceclf.stamp_psf import stamps_psf_at

    with pytest.raises(InvalidInputError, match="stamps_psf_at: 3 rows named for 9 stamps"):
        stamps_psf_at(np.zeros((9, 32, 32)), np.ones(3, dtype=bool))
