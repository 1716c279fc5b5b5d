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
    # (subpixel_offsets), so the narrowest profile may beat the PSF: still point-like.
    assert count[0] == 1 and PROFILE_RADII[best[0]] <= 0.1
    assert flux[0, 0] == pytest.approx(40.0, rel=0.05)
    point, there = _star(CENTRE, CENTRE, 1.0).ravel(), _star(CENTRE + 4.2, CENTRE, 25.0)
    light = point @ there.ravel()
    # Found in the residual, the neighbour sits where the residual peaks, not at its
    # true place: its light at the star comes out a fifth low.
    assert blend[0] == pytest.approx(light / (light + 40.0 * point @ point), rel=0.3)
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


@pytest.mark.parametrize("neighbour", [(SIZE - 1.2, SIZE - 1.2, 5000.0), (SIZE - 1.0, 14.0, 1000.0),
                                       (0.3, 20.0, 3000.0)])
def test_a_bright_neighbour_cut_by_the_edge_leaves_the_fit_as_it_is_wherever_the_star_sits(
        neighbour):
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
    # Moving the stamps instead rings: the off-centre stars come out wider.
    moved = [fit_profiles(image[None], shapes)[1][0] for image, shapes, _ in
             without_neighbours(centre_stamps(stamps, FWHM_PIX, BETA), TEMPLATES, FWHM_PIX,
                                BETA, NOISE)]
    assert min(PROFILE_RADII[k] for k in moved[1:]) >= 0.4


def test_crowded_stamps_cut_from_a_larger_image_keep_their_profiles():
    """Sources among neighbours anywhere, some beyond the stamp's edges (as stamps cut from a
    crowded frame are): the fits with neighbours find the source's profile."""
    from scipy.ndimage import fourier_shift

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float)
    stamps, truth = [], []
    for _ in range(60):
        dx, dy = rng.choice([-0.5, -0.25, 0.0, 0.25, 0.5], 2)
        k = int(rng.choice([0, 0, 0, 2, 4, 6, 8]))
        image = 40.0 * np.fft.ifft2(fourier_shift(np.fft.fft2(TEMPLATES[k].reshape(SIZE, SIZE)),
                                                  (dy, dx))).real
        for _ in range(rng.poisson(8)):
            x, y = rng.uniform(-8, SIZE + 8, 2)
            if np.hypot(x - CENTRE - dx, y - CENTRE - dy) >= 6:
                flux = np.exp(rng.uniform(np.log(10.0), np.log(200.0)))
                image += flux * moffat_profile(xx - x, yy - y, FWHM_PIX, BETA)
        stamps.append(image + rng.normal(0.0, NOISE, image.shape))
        truth.append(k)
    _, best, _, _ = fit_with_neighbours(np.array(stamps), TEMPLATES, FWHM_PIX, BETA, NOISE)
    truth = np.array(truth)
    assert (np.abs(best - truth) <= 1).mean() >= 0.95  # the radius, to one template
    assert ((best == 0) == (truth == 0)).mean() >= 0.95  # point or extended
