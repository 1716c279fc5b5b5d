"""A source's profile fitted together with its neighbours (sourceclf.neighbour_fits,
sourceclf.profile_fits.fit_with_neighbours)."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from sourceclf.psf import moffat_profile

pytest.importorskip("galsim")

from sourceclf.neighbour_fits import find_neighbours  # noqa: E402
from sourceclf.profile_fits import (PROFILE_RADII, fit_profiles,  # noqa: E402
                                    fit_with_neighbours, profile_templates)

SIZE, FWHM_PIX, BETA, NOISE = 32, 3.0, 3.5, 0.02
CENTRE = (SIZE - 1) / 2.0
TEMPLATES = profile_templates(FWHM_PIX * 0.396, BETA, size=SIZE)


def _star(x, y, flux):
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float)
    return flux * moffat_profile(xx - x, yy - y, FWHM_PIX, BETA)


def _noisy(image, seed=0):
    return image + np.random.default_rng(seed).normal(0.0, NOISE, image.shape)


def test_find_neighbours_leaves_out_the_centre_and_keeps_the_edge():
    image = _star(CENTRE, CENTRE, 50.0) + _star(24.3, 10.0, 20.0) + _star(SIZE + 1.0, 8.0, 200.0)
    found = find_neighbours(image, 0.05, exclusion=2.0)
    assert len(found) == 2
    inside = found[found[:, 0] < SIZE - 1][0]
    np.testing.assert_allclose(inside, (24.3, 10.0), atol=0.3)  # the 3 x 3 centroid
    assert ((found[:, 0] == SIZE - 1) & (found[:, 1] == 8.0)).any()  # a neighbour beyond the edge


def test_a_star_beside_a_brighter_star_is_a_point_source_of_its_own_flux():
    image = _noisy(_star(CENTRE, CENTRE, 30.0) + _star(CENTRE + 8.0, CENTRE - 3.0, 120.0))
    flux, best, count, blend = fit_with_neighbours(image[None], TEMPLATES, FWHM_PIX, BETA, NOISE)
    assert best[0] == 0 and count[0] >= 1  # the centroid's error may add one in the residual
    assert flux[0, 0] == pytest.approx(30.0, rel=0.03)
    # The neighbour's PSF-weighted light at the star over the sum of both (the true fluxes).
    point, there = _star(CENTRE, CENTRE, 1.0).ravel(), _star(CENTRE + 8.0, CENTRE - 3.0, 120.0)
    light = point @ there.ravel()
    assert blend[0] == pytest.approx(light / (light + 30.0 * point @ point), rel=0.1)
    assert 0.0 < blend[0] < 0.05  # 2.8 FWHM away: a little of its light reaches the star
    # Fitted alone, the neighbour's light makes it a large galaxy.
    _, alone = fit_profiles(image[None], TEMPLATES)
    assert PROFILE_RADII[alone[0]] >= 1.0


def test_a_neighbour_merged_with_the_star_is_found_in_the_residual():
    """1.4 FWHM apart: one peak in the smoothed stamp, the neighbour a shoulder."""
    image = _noisy(_star(CENTRE, CENTRE, 40.0) + _star(CENTRE + 4.2, CENTRE, 25.0), seed=1)
    assert len(find_neighbours(gaussian_filter(image, FWHM_PIX / 2.3548), 2 * NOISE, 2.25)) == 0
    flux, best, count, blend = fit_with_neighbours(image[None], TEMPLATES, FWHM_PIX, BETA, NOISE)
    # The matched filter places the star a quarter pixel towards the shoulder
    # (subpixel_offsets); found again on the stamp less the neighbour, the star is the PSF.
    assert count[0] == 1 and best[0] == 0
    assert flux[0, 0] == pytest.approx(40.0, rel=0.01)
    point, there = _star(CENTRE, CENTRE, 1.0).ravel(), _star(CENTRE + 4.2, CENTRE, 25.0)
    light = point @ there.ravel()
    # Found in the residual where it peaks, the neighbour is moved to its place
    # (refined_positions): its light at the star comes out right (an eighth low unmoved).
    assert blend[0] == pytest.approx(light / (light + 40.0 * point @ point), rel=0.05)
    _, alone = fit_profiles(image[None], TEMPLATES)
    assert alone[0] > 0


@pytest.mark.parametrize("k", [5, 8, 10])
def test_a_lone_galaxy_keeps_its_radius(k):
    """What is left of a galaxy around its centre is symmetric: no neighbour is made of it."""
    galaxies = np.stack([_noisy(40.0 * TEMPLATES[k].reshape(SIZE, SIZE), seed=s) for s in range(5)])
    flux, best, count, blend = fit_with_neighbours(galaxies, TEMPLATES, FWHM_PIX, BETA, NOISE)
    assert (count == 0).all() and (blend == 0).all()
    assert (np.abs(best - k) <= 1).all()
    np.testing.assert_allclose(flux[np.arange(5), best], 40.0, rtol=0.1)


def test_a_lone_star_is_fitted_as_without_neighbours():
    stars = np.stack([_noisy(_star(CENTRE, CENTRE, 20.0), seed=s) for s in range(5)])
    flux, best, count, blend = fit_with_neighbours(stars, TEMPLATES, FWHM_PIX, BETA, NOISE)
    plain, plain_best = fit_profiles(stars, TEMPLATES)
    assert (count == 0).all() and (best == 0).all() and (plain_best == 0).all()
    assert (blend == 0).all()
    np.testing.assert_allclose(flux[:, 0], plain[:, 0], rtol=0.01)


def test_blendedness_of_a_source_with_no_flux_of_its_own_is_one():
    from sourceclf.neighbour_fits import blendedness

    point = _star(CENTRE, CENTRE, 1.0).ravel()
    neighbour = _star(CENTRE + 5.0, CENTRE, 1.0).ravel()
    image = 50.0 * neighbour.reshape(SIZE, SIZE)
    assert blendedness(image, point, neighbour[None], 0.0) == 1.0
    assert blendedness(image, point, np.empty((0, SIZE * SIZE)), 0.0) == 0.0


@pytest.mark.parametrize("neighbour, rings", [
    ((SIZE - 1.2, SIZE - 1.2, 5000.0), True), ((SIZE - 1.0, 14.0, 1000.0), False),
    ((0.3, 20.0, 3000.0), True)])
def test_a_bright_neighbour_cut_by_the_edge_leaves_the_fit_as_it_is_wherever_the_star_sits(
        neighbour, rings):
    """The templates move to the star, not the stamp to them: a Fourier shift of the stamp
    would wrap the neighbour cut by the edge round the stamp and ring across it."""
    from sourceclf.profile_fits import centre_stamps
    from sourceclf.neighbour_fits import without_neighbours

    offsets = [(0.0, 0.0), (0.25, 0.25), (0.5, -0.25)]
    stamps = np.stack([_noisy(_star(CENTRE + dx, CENTRE + dy, 20.0) + _star(*neighbour))
                       for dx, dy in offsets])
    flux, best, count, _ = fit_with_neighbours(stamps, TEMPLATES, FWHM_PIX, BETA, NOISE)
    assert (best == best[0]).all() and PROFILE_RADII[best[0]] <= 0.2
    np.testing.assert_allclose(flux[np.arange(3), best], flux[0, best[0]], rtol=0.02)
    # Moving the stamps instead rings: the off-centre stars come out wider (the fainter
    # neighbour's ringing is soaked up by its refined position, refined_positions).
    moved = [fit_profiles(image[None], shapes)[1][0] for image, shapes, _ in
             without_neighbours(centre_stamps(stamps, FWHM_PIX, BETA), TEMPLATES, FWHM_PIX,
                                BETA, NOISE)]
    if rings:
        assert min(PROFILE_RADII[k] for k in moved[1:]) >= 0.4


def _crowded_stamps(brightest, n=60, seed=5):
    """Sources among neighbours anywhere (fluxes 10 to ``brightest`` against the source's 40),
    some beyond the stamp's edges, as stamps cut from a crowded frame are; and their profiles."""
    from scipy.ndimage import fourier_shift

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float)
    stamps, truth = [], []
    for _ in range(n):
        dx, dy = rng.choice([-0.5, -0.25, 0.0, 0.25, 0.5], 2)
        k = int(rng.choice([0, 0, 0, 2, 4, 6, 8]))
        image = 40.0 * np.fft.ifft2(fourier_shift(np.fft.fft2(TEMPLATES[k].reshape(SIZE, SIZE)),
                                                  (dy, dx))).real
        for _ in range(rng.poisson(8)):
            x, y = rng.uniform(-8, SIZE + 8, 2)
            if np.hypot(x - CENTRE - dx, y - CENTRE - dy) >= 6:
                flux = np.exp(rng.uniform(np.log(10.0), np.log(brightest)))
                image += flux * moffat_profile(xx - x, yy - y, FWHM_PIX, BETA)
        stamps.append(image + rng.normal(0.0, NOISE, image.shape))
        truth.append(k)
    return np.array(stamps), np.array(truth)


@pytest.mark.parametrize("fwhm_pix", [3.0, 4.0])
def test_a_bright_neighbours_pull_on_the_sources_offset_is_undone(fwhm_pix, monkeypatch):
    """A neighbour five times brighter 5 pixels away draws the PSF matched filter half a
    pixel off the star; found again on the stamp less the neighbour, it is the PSF."""
    import sourceclf.profile_fits
    from sourceclf.profile_fits import subpixel_offsets

    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float)
    templates = profile_templates(fwhm_pix * 0.396, BETA, size=SIZE)
    image = _noisy(40.0 * moffat_profile(xx - CENTRE, yy - CENTRE, fwhm_pix, BETA)
                   + 200.0 * moffat_profile(xx - CENTRE - 5.0, yy - CENTRE, fwhm_pix, BETA))
    assert subpixel_offsets(image[None], fwhm_pix, BETA)[0, 0] == 0.5
    flux, best, count, _ = fit_with_neighbours(image[None], templates, fwhm_pix, BETA, NOISE)
    assert best[0] == 0 and count[0] == 1
    assert flux[0, 0] == pytest.approx(40.0, rel=0.01)
    monkeypatch.setattr(sourceclf.profile_fits, "SOURCE_PASSES", 1)  # the first offset only
    flux, best, count, _ = fit_with_neighbours(image[None], templates, fwhm_pix, BETA, NOISE)
    assert best[0] != 0 or count[0] != 1 or abs(flux[0, 0] / 40.0 - 1.0) > 0.05


def test_a_neighbour_centred_between_pixels_is_one_neighbour():
    """Its smoothed image has two equal maxima side by side: one peak, not two PSFs in one
    place."""
    image = _star(CENTRE, CENTRE, 40.0) + _star(CENTRE + 6.0, CENTRE, 200.0)  # both between
    smooth = gaussian_filter(image, FWHM_PIX / 2.3548)                         # pixels in x, y
    found = find_neighbours(smooth, 2 * NOISE, 2.25)
    assert len(found) == 1
    np.testing.assert_allclose(found[0], (CENTRE + 6.0, CENTRE), atol=0.5)
    _, best, count, _ = fit_with_neighbours(image[None], TEMPLATES, FWHM_PIX, BETA, NOISE)
    assert count[0] == 1 and best[0] == 0


def test_crowded_stamps_cut_from_a_larger_image_keep_their_profiles():
    """The fits with neighbours find the source's profile among neighbours up to 5 times
    brighter."""
    stamps, truth = _crowded_stamps(200.0)
    _, best, _, _ = fit_with_neighbours(stamps, TEMPLATES, FWHM_PIX, BETA, NOISE)
    assert (np.abs(best - truth) <= 1).mean() >= 0.95  # the radius, to one template
    assert ((best == 0) == (truth == 0)).mean() >= 0.95  # point or extended


def test_refined_neighbour_positions_keep_profiles_among_neighbours_fifty_times_brighter(
        monkeypatch):
    """A bright neighbour's PSF placed at its peak's centroid, a few tenths of a pixel off,
    leaves residuals brighter than the source: refined, the fits find the profile."""
    import sourceclf.neighbour_fits

    stamps, truth = _crowded_stamps(2000.0)
    _, best, _, _ = fit_with_neighbours(stamps, TEMPLATES, FWHM_PIX, BETA, NOISE)
    assert (np.abs(best - truth) <= 1).mean() >= 0.95
    assert ((best == 0) == (truth == 0)).mean() >= 0.95
    monkeypatch.setattr(sourceclf.neighbour_fits, "POSITION_STEPS", 0)  # the peaks' centroids
    _, best, _, _ = fit_with_neighbours(stamps, TEMPLATES, FWHM_PIX, BETA, NOISE)
    assert (np.abs(best - truth) <= 1).mean() < 0.7


@pytest.mark.parametrize("neighbour, within", [((26.0, 8.5, 2000.0), 0.05),
                                               ((SIZE + 1.5, 8.3, 2000.0), 0.25),
                                               ((-1.2, 20.4, 3000.0), 0.1)])
def test_refined_positions_move_a_bright_neighbour_to_its_place(neighbour, within):
    """Inside the stamp from its peak's centroid, beyond the edge from the edge pixel."""
    from sourceclf.neighbour_fits import refined_positions

    image = _noisy(_star(CENTRE, CENTRE, 40.0) + _star(*neighbour))
    found = find_neighbours(gaussian_filter(image, FWHM_PIX / 2.3548), 2 * NOISE, 2.25)
    assert len(found) == 1 and np.hypot(*(found[0] - neighbour[:2])) > 0.3
    moved = refined_positions(image, _star(CENTRE, CENTRE, 1.0).ravel(), found, FWHM_PIX, BETA,
                              NOISE)
    assert np.hypot(*(moved[0] - neighbour[:2])) < within


def test_refined_positions_leave_faint_neighbours_and_move_no_farther_than_their_reach():
    from sourceclf.neighbour_fits import POSITION_REACH, refined_positions

    point = _star(CENTRE, CENTRE, 1.0).ravel()
    image = _noisy(_star(CENTRE, CENTRE, 40.0) + _star(24.4, 24.7, 0.6) + _star(6.0, 8.0, 500.0))
    start = np.array([[24.0, 24.3], [4.0, 8.0]])  # the bright one two pixels off
    moved = refined_positions(image, point, start, FWHM_PIX, BETA, NOISE)
    np.testing.assert_array_equal(moved[0], start[0])  # below POSITION_SIGNIFICANCE: stays
    np.testing.assert_allclose(moved[1], (4.0 + POSITION_REACH, 8.0), atol=0.05)
    assert refined_positions(image, point, np.empty((0, 2)), FWHM_PIX, BETA, NOISE).shape == (0, 2)


@pytest.mark.parametrize("k", [0, 8])
def test_refined_positions_keep_neighbours_out_of_the_sources_own_light(k):
    """A neighbour found just outside the exclusion zone is pulled into it by the source's
    light (and a truly closer neighbour's); it stops on the zone's edge, where fits of an
    extended source put its light on the neighbour otherwise."""
    from sourceclf.neighbour_fits import refined_positions

    point = _star(CENTRE, CENTRE, 1.0).ravel()
    image = _noisy(100.0 * TEMPLATES[k].reshape(SIZE, SIZE) + _star(CENTRE + 1.6, CENTRE, 30.0))
    start = np.array([[CENTRE + 2.4, CENTRE]])
    free = refined_positions(image, point, start, FWHM_PIX, BETA, NOISE)
    assert free[0, 0] - CENTRE < 2.1  # drawn into the source
    kept = refined_positions(image, point, start, FWHM_PIX, BETA, NOISE, (CENTRE, CENTRE), 2.25)
    assert np.hypot(*(kept[0] - CENTRE)) == pytest.approx(2.25, abs=1e-6)


def test_pixels_beyond_a_frames_edge_weigh_nothing_in_the_fits():
    """A stamp cut at a frame's edge: the part beyond it (NaN) holds no measurement.  Fitted
    on the pixels it has, with its sky, the star keeps its flux and stays a point source,
    and a sky left a little off zero changes no fit; read as pixels of 0, the same sky
    leaves a step at the edge that moves every flux (the counterfactual)."""
    star = _noisy(_star(CENTRE, CENTRE, 30.0) + _star(CENTRE + 7.0, CENTRE + 2.0, 60.0), seed=3)
    fits = {}
    for fill in (np.nan, 0.0):
        for sky in (-0.5 * NOISE, 0.0, 0.5 * NOISE):
            cut = star + sky
            cut[:, :9] = fill  # beyond the frame's left edge, 2 FWHM from the star
            fits[fill, sky] = fit_with_neighbours(cut[None], TEMPLATES, FWHM_PIX, BETA, NOISE)
    for sky in (-0.5 * NOISE, 0.0, 0.5 * NOISE):
        flux, best, count, blend = fits[np.nan, sky]
        assert best[0] == 0 and count[0] == 1 and 0.0 < blend[0] < 0.05
        assert flux[0, 0] == pytest.approx(30.0, rel=0.03)
        np.testing.assert_allclose(flux, fits[np.nan, 0.0][0], rtol=1e-9)
    zeros = np.abs(fits[0.0, 0.5 * NOISE][0] - fits[0.0, 0.0][0]) / fits[0.0, 0.0][0]
    assert zeros.max() > 0.005  # 0.7% on the widest profile (0.3% on the point source)
    whole = fit_with_neighbours((star + 0.5 * NOISE)[None], TEMPLATES, FWHM_PIX, BETA, NOISE)[0]
    assert fits[np.nan, 0.5 * NOISE][0][0, 0] == pytest.approx(whole[0, 0], rel=1e-3)


def test_missing_pixels_are_zero_in_all_that_without_neighbours_yields():
    from sourceclf.neighbour_fits import without_neighbours

    image = _noisy(_star(CENTRE, CENTRE, 30.0) + _star(CENTRE + 7.0, CENTRE - 5.0, 60.0))
    present = np.ones(image.shape, dtype=bool)
    present[-6:] = False
    image[~present] = 123.0  # whatever a missing pixel holds, it is not read
    (flat, shapes, neighbours), = without_neighbours(image[None], TEMPLATES, FWHM_PIX, BETA,
                                                     NOISE, present=present[None])
    gone = ~present.ravel()
    assert len(neighbours) >= 1
    assert not flat[gone].any() and not shapes[:, gone].any() and not neighbours[:, gone].any()
    # without a mask, non-finite pixels are the missing ones
    image[~present] = np.nan
    (again, _, _), = without_neighbours(image[None], TEMPLATES, FWHM_PIX, BETA, NOISE)
    np.testing.assert_allclose(again, flat)


def test_a_stamp_without_a_measured_pixel_gets_no_flux():
    """All NaN (a position beyond every frame, given to the fits directly): NaN fluxes,
    and no error nor warning (warnings are errors in the tests)."""
    stamps = np.stack([_noisy(_star(CENTRE, CENTRE, 30.0)), np.full((SIZE, SIZE), np.nan)])
    flux, best, count, blend = fit_with_neighbours(stamps, TEMPLATES, FWHM_PIX, BETA, NOISE)
    assert np.isfinite(flux[0]).all() and best[0] == 0
    assert np.isnan(flux[1]).all() and count[1] == 0 and blend[1] == 0.0


def test_a_mask_of_another_shape_is_named():
    from sourceclf.neighbour_fits import without_neighbours

    image = _noisy(_star(CENTRE, CENTRE, 30.0))
    with pytest.raises(ValueError, match=r"present has shape \(32, 32\), expected the images' "
                                         r"\(1, 32, 32\)"):
        next(without_neighbours(image[None], TEMPLATES, FWHM_PIX, BETA, NOISE,
                                present=np.ones((SIZE, SIZE), bool)))
