"""The truth's extent measured with each source's neighbours fitted and removed."""

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS

from sourceclf.exceptions import InvalidInputError
from sourceclf.psf import PSFMeasurement, moffat_profile
from sourceclf.recipes.deblended_truth import deblended_extent, deblended_fluxes
from sourceclf.recipes.extent_truth import EXTENT_POINT, psf_aperture_extent

FWHM, SCALE, BETA, NOISE = 1.2, 0.396, 3.5, 0.02
FWHM_PIX = FWHM / SCALE

#: x, y, flux, FWHM (arcsec) of each source of the frame.
STARS = [(40.0, 40.0, 60.0), (260.0, 40.0, 60.0), (40.0, 200.0, 60.0), (260.0, 200.0, 60.0)]
CROWDED_STAR = (100.0, 120.0, 40.0)
NEIGHBOUR = (107.5, 121.0, 25.0)  # 7.6 pixels, 2.5 FWHM away: inside the star's aperture
GALAXY = (200.0, 120.0, 50.0)
GALAXY_NEIGHBOUR = (208.0, 114.0, 20.0)


def _frame():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:240, :300].astype(float)
    data = rng.normal(0.0, NOISE, (240, 300))
    for x, y, flux in STARS + [CROWDED_STAR, NEIGHBOUR, GALAXY_NEIGHBOUR]:
        data += flux * moffat_profile(xx - x, yy - y, FWHM_PIX, BETA)
    x, y, flux = GALAXY  # a point source convolved with a wide profile: about 2.7 FWHM
    data += flux * moffat_profile(xx - x, yy - y, 2.7 * FWHM_PIX, BETA)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [150.0, 120.0]
    wcs.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
    return data, wcs


def _truth(wcs):
    rows = STARS + [CROWDED_STAR, GALAXY]
    ra, dec = wcs.pixel_to_world_values(*np.array([(x, y) for x, y, _ in rows]).T)
    return Table({"ra": ra, "dec": dec,
                  "psf_star": [True] * len(STARS) + [False, False]})


def test_a_star_beside_a_neighbour_is_point_like_once_the_neighbour_is_removed():
    data, wcs = _frame()
    psf = PSFMeasurement(FWHM, 0.0, BETA, 0.0, 4, NOISE, None)
    truth = _truth(wcs)
    extent = deblended_extent(data, wcs, psf, truth)
    positions = np.array([(x, y) for x, y, _ in STARS + [CROWDED_STAR, GALAXY]])
    plain = psf_aperture_extent(data, *positions.T, FWHM_PIX, BETA)
    plain -= np.median(plain[:len(STARS)])
    star, galaxy = len(STARS), len(STARS) + 1
    assert plain[star] > EXTENT_POINT  # the neighbour's light in the aperture
    assert abs(extent[star]) < 0.05
    assert extent[galaxy] > 0.5  # its own wide light stays, its neighbour goes
    assert np.all(np.abs(extent[:len(STARS)]) < 0.02)


def test_fluxes_count_the_neighbours_and_leave_the_edge_out():
    data, _ = _frame()
    x, y = [CROWDED_STAR[0], STARS[0][0], 2.0], [CROWDED_STAR[1], STARS[0][1], 2.0]
    fluxes = deblended_fluxes(data, x, y, FWHM_PIX, BETA, NOISE)
    assert fluxes["n_neighbours"][0] >= 1
    assert fluxes["n_neighbours"][1] == 0
    assert fluxes["psf"][0] == pytest.approx(CROWDED_STAR[2], rel=0.05)
    assert np.isnan(fluxes["psf"][2]) and fluxes["n_neighbours"][2] == 0


def test_bad_input_is_named():
    data, wcs = _frame()
    psf = PSFMeasurement(FWHM, 0.0, BETA, 0.0, 4, NOISE, None)
    truth = _truth(wcs)
    with pytest.raises(InvalidInputError, match="lacks column.*psf_star"):
        deblended_extent(data, wcs, psf, truth["ra", "dec"])
    truth["psf_star"] = False
    with pytest.raises(InvalidInputError, match="no psf_star row"):
        deblended_extent(data, wcs, psf, truth)
    with pytest.raises(InvalidInputError, match="2-D"):
        deblended_fluxes(data[0], [1.0], [1.0], FWHM_PIX, BETA, NOISE)
    with pytest.raises(InvalidInputError, match="2 x positions but 1 y"):
        deblended_fluxes(data, [1.0, 2.0], [1.0], FWHM_PIX, BETA, NOISE)
