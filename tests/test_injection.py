"""Known sources drawn into real frames (sourceclf.recipes.injection)."""

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS

from sourceclf.bands import BANDS
from sourceclf.exceptions import InvalidInputError
from sourceclf.psf import PSFMeasurement, moffat_profile

pytest.importorskip("galsim")
pytest.importorskip("photutils")

from sourceclf.recipes.extent_truth import psf_aperture_fluxes  # noqa: E402
from sourceclf.recipes.injection import (empirical_psfs, field_blends,  # noqa: E402
                                         inject_sources, injected_truth, injection_catalog,
                                         place_sources, star_extent_offset)
from sourceclf.simulate import render_stamps  # noqa: E402

FWHM = 1.2  # arcsec
SCALE = 0.396
#: Each band's frame is shifted by a different fraction of a pixel, as SDSS's are.
SHIFTS = {"u": (0.0, 0.0), "g": (3.3, -2.7), "r": (-1.6, 0.4), "i": (5.5, 5.5), "z": (-4.2, 1.9)}


def _frames(noise=0.02, seed=0, bright=()):
    """Empty 300 x 240 frames with their own WCS each (and Moffat stars ``(x, y, flux)``).

    Also the PSF measurement and the GalSim PSF to draw sources through.
    """
    import galsim

    rng = np.random.default_rng(seed)
    frames, psf = {}, {}
    yy, xx = np.mgrid[:240, :300].astype(float)
    for b in BANDS:
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [150.0, 2.0]
        wcs.wcs.crpix = [150.0 + SHIFTS[b][0], 120.0 + SHIFTS[b][1]]
        wcs.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
        data = rng.normal(0.0, noise, (240, 300))
        for x, y, flux in bright:  # given in the r frame's pixels
            data += flux * moffat_profile(xx - x, yy - y, FWHM / SCALE, 3.5)
        frames[b] = (data.astype(np.float32), wcs)
        psf[b] = PSFMeasurement(FWHM, 0.0, 3.5, 0.0, 10, noise, None)
    return frames, psf, {b: galsim.Moffat(beta=3.5, fwhm=FWHM) for b in BANDS}


def _catalog(frames, pixels, classes, radii, r_mag=18.0):
    """Sources at r-frame pixels, the same magnitude in every band."""
    ra, dec = frames["r"][1].pixel_to_world_values(*np.transpose(pixels))
    table = Table({"ra": ra, "dec": dec, "class": classes})
    for b in BANDS:
        table[f"dered_{b}"] = np.full(len(table), r_mag)
        table[f"extinction_{b}"] = np.zeros(len(table))
        table[f"deVRad_{b}"] = np.asarray(radii, float)
    table["r_mag"] = np.full(len(table), r_mag)
    return table


def test_render_stamps_places_sources_at_given_offsets():
    table = _catalog(_frames()[0], [(100, 100)], ["STAR"], [0.0])
    offsets = np.zeros((1, 5, 2))
    offsets[0, 2] = (0.3, -0.2)
    stamps = render_stamps(table, noise=False, offsets=offsets, psf_scale=1.0)
    yy, xx = np.mgrid[:32, :32]
    r = stamps[0, 2]
    assert (xx * r).sum() / r.sum() == pytest.approx(15.5 + 0.3, abs=0.01)
    assert (yy * r).sum() / r.sum() == pytest.approx(15.5 - 0.2, abs=0.01)
    u = stamps[0, 0]
    assert (xx * u).sum() / u.sum() == pytest.approx(15.5, abs=0.01)
    with pytest.raises(InvalidInputError, match=r"offsets must be .* shape \(1, 5, 2\)"):
        render_stamps(table, offsets=np.zeros((1, 5)))


def test_sources_land_at_their_sky_position_in_every_band_with_their_flux():
    frames, _, psfs = _frames()
    before = {b: frames[b][0].copy() for b in BANDS}
    table = _catalog(frames, [(80.3, 90.6), (200.7, 150.2)], ["STAR", "STAR"], [0.0, 0.0])
    out = inject_sources(frames, table, psfs, random_state=0)
    for b in BANDS:
        np.testing.assert_array_equal(frames[b][0], before[b])  # the input is untouched
        added = out[b][0] - frames[b][0]
        x, y = frames[b][1].world_to_pixel_values(table["ra"], table["dec"])
        # Each band's own WCS puts the source elsewhere on its frame.
        np.testing.assert_allclose(x - [80.3, 200.7], SHIFTS[b][0] - SHIFTS["r"][0], atol=1e-6)
        yy, xx = np.indices(added.shape)
        for i in range(2):  # the centroid in a circle about the expected position
            circle = np.hypot(xx - x[i], yy - y[i]) < 8
            weight = added * circle
            assert (xx * weight).sum() / weight.sum() == pytest.approx(x[i], abs=0.05)
            assert (yy * weight).sum() / weight.sum() == pytest.approx(y[i], abs=0.05)
        fluxes = psf_aperture_fluxes(added, x, y, FWHM / SCALE, 3.5, aperture=6.0,
                                     background=(7.0, 8.0))
        # 10 ** (-0.4 * (18 - 22.5)) nanomaggies, to the Moffat's wing beyond 6 FWHM.
        np.testing.assert_allclose(fluxes["aperture"], 63.1, rtol=0.04)


def test_the_truth_comes_from_each_sources_noiseless_image():
    frames, psf, psfs = _frames()
    table = _catalog(frames, [(60, 60), (120, 60), (180, 60), (240, 60)],
                     ["STAR", "GALAXY", "GALAXY", "GALAXY"], [0.0, 0.02, 0.3, 1.5])
    extent, truth = injected_truth(frames, table, psfs, psf)
    assert extent[0] == pytest.approx(0.0, abs=1e-6)
    assert extent[1] < 0.02  # below the radius drawn as a point
    assert extent[1] < extent[2] < extent[3]
    assert truth.tolist() == ["point", "point", "extended", "extended"]


def test_the_truth_sums_the_bands_that_detect_the_source():
    """SDSS's objc_type: a galaxy whose r-band radius collapsed to a point (as SDSS's
    per-band de Vaucouleurs fits sometimes do) but extended in its other bands is
    extended; a band that cannot detect the source on the frame does not count."""
    frames, psf, psfs = _frames()
    table = _catalog(frames, [(60, 60), (120, 60), (180, 60)], ["STAR", "GALAXY", "GALAXY"],
                     [0.0, 0.0, 0.0])
    for b in "ug":
        table[f"deVRad_{b}"] = [0.0, 2.0, 0.0]
    table["deVRad_i"] = [0.0, 2.0, 2.0]
    table["deVRad_z"] = [0.0, 2.0, 2.0]
    extent, truth = injected_truth(frames, table, psfs, psf)
    assert extent[0] == pytest.approx(0.0, abs=1e-6)
    assert truth.tolist() == ["point", "extended", "extended"]
    # i and z so noisy that they cannot see the sources: the third is left with the
    # bands that show it point-like.
    noisy = dict(psf, i=psf["i"]._replace(sky_sigma=1e4), z=psf["z"]._replace(sky_sigma=1e4))
    extent, truth = injected_truth(frames, table, psfs, noisy)
    assert extent[2] == pytest.approx(0.0, abs=1e-3)
    assert truth.tolist() == ["point", "extended", "point"]
    with pytest.raises(InvalidInputError, match="measured needs each band's PSFMeasurement, "
                                                "lacks u, g, i, z"):
        injected_truth(frames, table, psfs, {"r": psf["r"]})


def test_the_empirical_psf_is_the_frames_own():
    """Built from the frame's stars: a wide-winged PSF comes back with its width and wings."""
    import galsim

    from sourceclf.psf import measure_psf

    truth = galsim.Add([galsim.Moffat(beta=4.0, fwhm=FWHM).withFlux(0.9),
                        galsim.Moffat(beta=2.5, fwhm=3 * FWHM).withFlux(0.1)])
    rng = np.random.default_rng(5)
    frames, psf = {}, {}
    for b in BANDS:
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval, wcs.wcs.crpix = [150.0, 2.0], [150.0, 150.0]
        wcs.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
        data = rng.normal(0.0, 0.02, (300, 300))
        for x, y in rng.uniform(30, 270, (12, 2)):
            star = galsim.Image(41, 41, scale=SCALE)
            truth.withFlux(400.0).drawImage(star, method="no_pixel",
                                            offset=(x % 1 - 0.5, y % 1 - 0.5))
            x0, y0 = int(x) - 20 + 1, int(y) - 20 + 1
            data[y0 - 1:y0 + 40, x0 - 1:x0 + 40] += star.array
        frames[b] = (data.astype(np.float32), wcs)
        psf[b] = measure_psf(data, min_stars=3)
    psfs = empirical_psfs(frames, psf)
    # Stars drawn in through it look as extended as the frame's own.
    table = _catalog(frames, [(60.0, 60.0), (240.0, 240.0), (60.0, 240.0)], ["STAR"] * 3,
                     [0.0] * 3, r_mag=17.0)
    after = inject_sources(frames, table, psfs, random_state=0)
    assert abs(star_extent_offset(frames["r"], after["r"], table, psf["r"])) < 0.01
    # Through a PSF 20% too wide they would not (the check can fail).
    wide = {b: galsim.Moffat(beta=4.0, fwhm=1.2 * FWHM) for b in BANDS}
    after = inject_sources(frames, table, wide, random_state=0)
    assert star_extent_offset(frames["r"], after["r"], table, psf["r"]) > 0.05
    drawn = psfs["r"].drawImage(nx=31, ny=31, scale=SCALE, method="no_pixel").array
    expected = truth.drawImage(nx=31, ny=31, scale=SCALE, method="no_pixel").array
    assert drawn.sum() == pytest.approx(1.0, abs=0.01)
    assert drawn.max() == pytest.approx(expected.max(), rel=0.05)
    # The same light within 2 and beyond 6 pixels (the wing holds 6%).
    r = np.hypot(*np.indices((31, 31)) - 15.0)
    assert drawn[r < 2].sum() == pytest.approx(expected[r < 2].sum(), abs=0.02)
    assert drawn[r > 6].sum() == pytest.approx(expected[r > 6].sum(), abs=0.005)
    # A source drawn half a pixel off centre keeps its peak.
    off = {"nx": 31, "ny": 31, "scale": SCALE, "method": "no_pixel", "offset": (0.5, 0.5)}
    assert (psfs["r"].drawImage(**off).array.max()
            == pytest.approx(truth.drawImage(**off).array.max(), rel=0.05))


def test_positions_keep_apart_and_inside_every_band():
    frames = _frames()[0]
    ra, dec = place_sources(frames, 20, min_separation=30, edge=40, random_state=3)
    assert len(ra) == 20
    for b in BANDS:
        x, y = frames[b][1].world_to_pixel_values(ra, dec)
        assert (x >= 40).all() and (x <= 299 - 40).all()
        assert (y >= 40).all() and (y <= 239 - 40).all()
    x, y = frames["r"][1].world_to_pixel_values(ra, dec)
    gaps = np.hypot(x[:, None] - x, y[:, None] - y) + np.eye(20) * 1e9
    assert gaps.min() >= 30
    with pytest.raises(InvalidInputError, match="only .* of 200 positions fit"):
        place_sources(frames, 200, min_separation=30, edge=40)


def test_a_source_on_a_brighter_neighbour_is_marked_blended():
    frames, psf, _ = _frames(bright=[(100.0, 100.0, 2000.0), (200.0, 100.0, 5.0)])
    table = _catalog(frames, [(101.5, 100.0), (200.0, 101.0), (150.0, 180.0)],
                     ["STAR"] * 3, [0.0] * 3)
    blended = field_blends(*frames["r"], psf["r"], table)
    # On a star 30 times brighter; next to one a tenth as bright; alone.
    assert blended.tolist() == [True, False, False]


def test_bad_input_is_named():
    frames, psf, psfs = _frames()
    table = _catalog(frames, [(5, 5)], ["STAR"], [0.0])
    with pytest.raises(InvalidInputError, match="stamp crosses the border of band"):
        inject_sources(frames, table, psfs)
    with pytest.raises(InvalidInputError, match=r"lack band\(s\) z"):
        inject_sources({b: frames[b] for b in BANDS[:4]}, table, psfs)
    with pytest.raises(InvalidInputError, match=r"lacks column\(s\) ra, dec"):
        inject_sources(frames, Table({"x": [1]}), psfs)
    with pytest.raises(InvalidInputError, match="band u's PSF measurement lists fewer"):
        empirical_psfs(frames, psf)
    with pytest.raises(InvalidInputError, match=r"lack band\(s\) u"):
        place_sources({b: frames[b] for b in BANDS[1:]}, 3)


def test_the_injection_catalog_holds_the_training_populations_bright_end(shared_data):
    catalog = injection_catalog(20, galaxy_fraction=0.6, r_range=(17.0, 20.0), random_state=1,
                                data_dir=shared_data)
    classes = np.asarray(catalog["class"]).astype(str)
    assert (classes == "GALAXY").sum() == 12 and (classes == "STAR").sum() == 8
    assert ((catalog["r_mag"] >= 17.0) & (catalog["r_mag"] < 20.0)).all()
    np.testing.assert_allclose(catalog["r_mag"], catalog["dered_r"] + catalog["extinction_r"])
    again = injection_catalog(20, galaxy_fraction=0.6, r_range=(17.0, 20.0), random_state=1,
                              data_dir=shared_data)
    np.testing.assert_array_equal(again["r_mag"], catalog["r_mag"])
    with pytest.raises(InvalidInputError, match="galaxy_fraction"):
        injection_catalog(20, galaxy_fraction=1.5)
