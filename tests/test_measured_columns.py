"""MargNet's catalog columns measured on simulated stamps (sourceclf.recipes.measured_columns)."""

import numpy as np
import pytest
from astropy.table import Table

from sourceclf.bands import BANDS
from sourceclf.exceptions import InvalidInputError, MissingColumnsError
from sourceclf.photometry import columns_from_fits
from sourceclf.profile_fits import PROFILE_RADII, centre_stamps, fit_profiles, profile_templates
from sourceclf.recipes.measured_columns import deblend_stamps, measure_stamp_columns

pytest.importorskip("galsim")

from sourceclf.simulate import render_stamps  # noqa: E402

_FWHM = {"u": 1.5, "g": 1.4, "r": 1.3, "i": 1.25, "z": 1.3}  # arcsec, the rendered PSF


def _catalog(n_each=12, r=17.5, radius=1.5):
    """Stars and de Vaucouleurs galaxies of one brightness in two fields of one PSF."""
    n = 2 * n_each
    colour = {"u": 1.6, "g": 0.6, "r": 0.0, "i": -0.3, "z": -0.5}
    table = Table({"field": np.arange(n) % 2,
                   "class": np.array(["STAR"] * n_each + ["GALAXY"] * n_each)})
    for b in BANDS:
        table[f"dered_{b}"] = np.full(n, r + colour[b])
        table[f"extinction_{b}"] = np.full(n, 0.1)
        table[f"deVRad_{b}"] = np.where(table["class"] == "GALAXY", radius, 0.0)
        table[f"psf_fwhm_{b}"] = np.full(n, _FWHM[b])
        table[f"psf_beta_{b}"] = np.full(n, 3.5)
        table[f"psffwhm_{b}"] = np.full(n, _FWHM[b] / 0.9)
    return table


def _render(table, seed=0):
    return render_stamps(table, random_state=seed, psf_scale=0.9, moffat_beta=3.5,
                         progress=False)


def test_measured_columns_tell_stars_from_galaxies_with_their_noise():
    table = _catalog()
    measured = measure_stamp_columns(table, _render(table))
    star = np.asarray(table["class"]) == "STAR"
    for b in "gri":
        radius = np.asarray(measured[f"deVRad_{b}"])
        assert np.median(radius[star]) <= 0.15
        # The galaxies' radius (1.5") is found to a grid step or two.
        assert 1.0 <= np.median(radius[~star]) <= 1.8
        # Bright stars: their magnitude back, short of the light in the PSF's wing
        # (these stamps have none).
        np.testing.assert_allclose(np.median(measured[f"dered_{b}"][star]),
                                   table[f"dered_{b}"][0], atol=0.05)
    # Galaxies are measured through one profile: their total flux and colours.
    np.testing.assert_allclose(np.median(measured["dered_r"][~star]), 17.5, atol=0.15)
    np.testing.assert_allclose(np.median(measured["g_r"]), 0.6, atol=0.05)
    # What was rendered is kept; colours are of the observed magnitudes.
    np.testing.assert_array_equal(measured["rendered_deVRad_r"], table["deVRad_r"])
    np.testing.assert_allclose(measured["g_r"], (measured["dered_g"] + 0.1)
                               - (measured["dered_r"] + 0.1))
    # The measured columns carry the noise the stamps carry: fainter, noisier.
    faint = _catalog(r=21.5)
    faint_measured = measure_stamp_columns(faint, _render(faint))
    assert (np.std(faint_measured["dered_r"][star])
            > 3 * np.std(measured["dered_r"][star]))


def test_profile_fit_finds_the_radius_and_the_centre():
    import galsim

    fwhm, beta = 1.4, 3.0
    templates = profile_templates(fwhm, beta)
    assert templates.shape == (len(PROFILE_RADII), 32 * 32)
    np.testing.assert_allclose(templates[0].sum(), 1.0, atol=0.01)  # the PSF, on the stamp
    psf = galsim.Moffat(beta=beta, fwhm=fwhm)
    images = []
    for radius, offset in ((0.0, (0.4, -0.3)), (1.0, (-0.25, 0.5)), (0.3, (0.0, 0.0))):
        obj = psf if radius == 0 else galsim.Convolve(
            galsim.DeVaucouleurs(half_light_radius=radius), psf)
        images.append(obj.withFlux(500.0).drawImage(nx=32, ny=32, scale=0.396,
                                                    method="no_pixel", offset=offset).array)
    flux, best = fit_profiles(centre_stamps(np.array(images), fwhm / 0.396, beta), templates)
    assert [PROFILE_RADII[k] for k in best] == [0.0, 1.0, 0.3]
    np.testing.assert_allclose(flux[np.arange(3), best], 500.0, rtol=0.03)
    # A stamp of sky alone has no fit of positive flux: the point source, flux <= 0.
    flux, best = fit_profiles(-np.abs(np.random.default_rng(0).normal(size=(1, 32, 32))),
                              templates)
    assert best[0] == 0 and flux[0, 0] < 0


def test_measure_stamp_columns_says_what_is_missing():
    table = _catalog(n_each=2)
    stamps = np.zeros((len(table), 5, 32, 32), np.float32)
    del table["psf_beta_r"]
    with pytest.raises(MissingColumnsError, match="psf_beta_r"):
        measure_stamp_columns(table, stamps)
    with pytest.raises(InvalidInputError, match="shape"):
        measure_stamp_columns(_catalog(n_each=2), stamps[:3])


def test_columns_from_fits():
    k = len(PROFILE_RADII)
    fluxes = np.full((2, 5, k), 100.0)  # nanomaggies: 17.5 mag
    fluxes[1, :, 8] = 200.0             # the extended source's best fit
    best = np.array([[0] * 5, [8] * 5])
    table = columns_from_fits(Table({"id": [1, 2]}), fluxes, best, np.full((2, 5), 1.4),
                              np.full((2, 5), 0.2))
    np.testing.assert_allclose(table["dered_r"], [17.5 - 0.2, 17.5 - 2.5 * np.log10(2) - 0.2],
                               atol=1e-3)
    np.testing.assert_allclose(table["deVRad_r"], [0.0, PROFILE_RADII[8]])
    np.testing.assert_allclose(table["psf_flux_g"], [100.0, 100.0])
    np.testing.assert_allclose(table["u_g"], 0.0, atol=1e-4)  # asinh softening
    np.testing.assert_allclose(table["extinction_z"], 0.2)


def _stars_with_neighbours(sky_sigma=0.05, seed=1):
    """Three r = 17.5 stars (observed 17.6): alone, with an equal neighbour 9 pixels
    away (3.6", resolved) and with one half as bright 1.5 pixels away (0.6", not)."""
    import galsim

    table = _catalog(n_each=3)[:3]
    for b in BANDS:
        table[f"sky_sigma_{b}"] = np.full(3, sky_sigma)
        table[f"psf_fwhm_{b}"] = np.full(3, 1.3)
    flux = 10 ** ((22.5 - 17.6) / 2.5)

    def star(scale, dx):
        return (galsim.Moffat(beta=3.5, fwhm=1.3).withFlux(flux * scale)
                .drawImage(nx=32, ny=32, scale=0.396, offset=(dx, 0.0)).array)

    images = [star(1, 0), star(1, 0) + star(1, 9), star(1, 0) + star(0.5, 1.5)]
    noise = np.random.default_rng(seed).normal(0, sky_sigma, (3, 5, 32, 32))
    return table, np.array([[image] * 5 for image in images]) + noise


def test_deblend_stamps_splits_resolved_neighbours_not_blended_ones():
    table, stamps = _stars_with_neighbours()
    deblended = deblend_stamps(table, stamps)
    assert deblended.shape == stamps.shape
    # Alone: the stamp, less its sky median (nothing else to remove).
    np.testing.assert_allclose(deblended[0, 2], stamps[0, 2] - np.median(stamps[0, 2]),
                               atol=0.05)
    # The resolved neighbour's pixels go (its peak lies 9 pixels right of the centre),
    # the source's own stay.
    assert deblended[1, 2, 15:17, 24:26].max() == 0.0
    assert deblended[1, 2, 15:17, 15:17].min() > 1.0
    measured = measure_stamp_columns(table, deblended)
    raw = measure_stamp_columns(table, stamps)
    np.testing.assert_allclose(measured["dered_r"][:2], 17.5, atol=0.05)
    assert abs(raw["dered_r"][1] - 17.5) > abs(measured["dered_r"][1] - 17.5)
    # The blended neighbour has no peak of its own: its light stays in the source's,
    # as on a real frame (the light of a 0.5 flux ratio is 0.44 mag).
    assert measured["dered_r"][2] < 17.5 - 0.3


def test_deblend_stamps_says_what_is_missing():
    table, stamps = _stars_with_neighbours()
    del table["sky_sigma_z"]
    with pytest.raises(MissingColumnsError, match="deblend_stamps.*sky_sigma_z"):
        deblend_stamps(table, stamps)
    table, stamps = _stars_with_neighbours()
    with pytest.raises(InvalidInputError, match="deblend_stamps.*shape"):
        deblend_stamps(table, stamps[:, :4])
