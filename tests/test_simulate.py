"""Tests of sourceclf.simulate: real-frame measurements, rendering and catalogs."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

from sourceclf.bands import BANDS
from sourceclf.exceptions import InvalidInputError, MissingColumnsError

galsim = pytest.importorskip("galsim")

from sourceclf.simulate import (SDSS_BAND_DEFAULTS, measure_frame_properties,  # noqa: E402
                                fit_stamp_psf, measure_sky_sigma, nanomaggies, render_stamps,
                                simulate_catalog)
from conftest import SHARED_DATA  # noqa: E402

SHARED = SHARED_DATA  # $SOURCECLF_DATA or ../shared/data (see conftest.py)
FIELD = SHARED / "sdss_frame_004510-4-0030"
# Stars used for PSF widths: unsaturated and well above the sky in the band.
FLUX_RANGE = (20.0, 2000.0)  # nanomaggies, r ~ 14.2-19.2


def _point_sources(mags, **extra):
    """A table of STAR rows with plain observed magnitudes ``u g r i z``."""
    t = Table({b: np.asarray(mags, dtype=float) for b in BANDS})
    t["class"] = "STAR"
    for name, value in extra.items():
        t[name] = value
    return t


# ---------------------------------------------------------------------------
# Measuring tools
# ---------------------------------------------------------------------------

def test_fit_stamp_psf_recovers_rendered_width():
    t = _point_sources([17.0] * 4, **{f"psffwhm_{b}": [0.9, 1.1, 1.3, 1.6] for b in BANDS})
    stamps = render_stamps(t, noise=False, psf_scale=1.0, moffat_beta=3.0, random_state=1)
    fit = fit_stamp_psf(stamps[:, 2])
    assert fit["success"].all()
    np.testing.assert_allclose(fit["fwhm"], [0.9, 1.1, 1.3, 1.6], rtol=0.01)
    np.testing.assert_allclose(fit["beta"], 3.0, rtol=0.02)
    assert np.all(np.abs(fit["x_center"] - 15.5) <= 0.5)
    kolmogorov = render_stamps(t, noise=False, psf="kolmogorov", psf_scale=1.0,
                               random_state=1)
    np.testing.assert_allclose(fit_stamp_psf(kolmogorov[:, 2])["fwhm"], [0.9, 1.1, 1.3, 1.6],
                               rtol=0.05)


def test_measure_sky_sigma():
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.02, (50, 5, 32, 32))
    noise[:, :, 14:18, 14:18] += 10.0  # a source in the middle is ignored
    sigma = measure_sky_sigma(noise)
    assert sigma.shape == (50, 5)
    np.testing.assert_allclose(np.median(sigma), 0.02, rtol=0.03)
    assert isinstance(measure_sky_sigma(noise[0, 0], mask_radius=0), float)
    with pytest.raises(InvalidInputError):
        measure_sky_sigma(np.zeros(5))


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def catalog():
    return simulate_catalog(30, random_state=5)


def test_shapes_dtypes_and_flux(catalog):
    stamps = render_stamps(catalog, random_state=0)
    assert stamps.shape == (30, 5, 32, 32) and stamps.dtype == np.float32
    assert render_stamps(catalog[:2], size=24, random_state=0).shape == (2, 5, 24, 24)
    assert render_stamps(catalog[:0]).shape == (0, 5, 32, 32)
    # Noise-free point sources hold their whole flux, in nanomaggies.
    t = _point_sources([18.0, 20.0])
    clean = render_stamps(t, noise=False, max_offset=0)
    np.testing.assert_allclose(clean.sum(axis=(2, 3)), nanomaggies([[18.0] * 5, [20.0] * 5]),
                               rtol=0.01)
    assert np.unravel_index(clean[0, 2].argmax(), (32, 32)) in {(15, 15), (15, 16), (16, 15),
                                                                (16, 16)}


def test_reproducible_with_a_seed(catalog):
    a = render_stamps(catalog[:5], random_state=7)
    b = render_stamps(catalog[:5], random_state=7)
    c = render_stamps(catalog[:5], random_state=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = render_stamps(catalog[:5], random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(a, d)
    assert simulate_catalog(12, random_state=4).pformat() == \
        simulate_catalog(12, random_state=4).pformat()


def test_magnitude_columns_are_interchangeable():
    cat = simulate_catalog(3, random_state=2)
    observed = {b: np.asarray(cat[f"dered_{b}"]) + np.asarray(cat[f"extinction_{b}"])
                for b in BANDS}
    base = render_stamps(cat, random_state=1)
    rest = ["class"] + [f"{k}_{b}" for b in BANDS for k in ("deVRad", "psffwhm")]
    for form in ("modelMag_{}", "{}", "MODELMAG_{}"):
        other = cat[rest]
        for b in BANDS:
            other[form.format(b)] = observed[b] * u.mag
        np.testing.assert_allclose(render_stamps(other, random_state=1), base, atol=1e-5)


def test_galaxies_more_extended_than_stars():
    n = 6
    t = Table({b: np.full(n, 18.5) for b in BANDS})
    t["class"] = ["STAR"] * 3 + ["GALAXY"] * 3
    for b in BANDS:
        t[f"deVRad_{b}"] = [1.0, 1.0, 1.0, 0.8, 1.0, 1.5] * u.arcsec  # stars ignore it
        t[f"psffwhm_{b}"] = 1.1 * u.arcsec
    stamps = render_stamps(t, random_state=3)
    fwhm = np.asarray(fit_stamp_psf(stamps[:, 2])["fwhm"])
    assert np.all(fwhm[3:] > 1.2 * fwhm[:3].max()), fwhm
    # Same flux, spread out: lower peaks, less flux near the centre, less
    # the larger the radius.
    assert np.all(stamps[3:, 2].max(axis=(1, 2)) < 0.6 * stamps[:3, 2].max(axis=(1, 2)).min())
    yy, xx = np.mgrid[:32, :32]
    central = np.hypot(xx - 15.5, yy - 15.5) < 3
    concentration = stamps[:, 2, central].sum(axis=1) / stamps[:, 2].sum(axis=(1, 2))
    assert np.all(concentration[3:] < 0.8 * concentration[:3].min()), concentration
    assert np.all(np.diff(concentration[3:]) < 0), concentration
    # Without a class column the radius decides; tiny radii are point sources.
    t.remove_column("class")
    for b in BANDS:
        t[f"deVRad_{b}"] = [0.0, 0.01, 1e-4, 0.8, 1.0, 1.5] * u.arcsec
    np.testing.assert_allclose(render_stamps(t, random_state=3), stamps, atol=1e-5)
    # A Sersic n=1 galaxy and a flattened one render too.
    t["deVAB_r"] = 0.5
    t["deVPhi_r"] = 30.0
    other = render_stamps(t, sersic_n=1.0, random_state=3, noise=False)
    assert np.all(np.isfinite(other))


def test_noise_as_configured():
    t = _point_sources([np.nan] * 40)  # no source: sky only
    stamps = render_stamps(t, random_state=0)
    sigma = np.median(measure_sky_sigma(stamps, mask_radius=0), axis=0)
    expected = [SDSS_BAND_DEFAULTS[b]["sky_sigma"] for b in BANDS]
    np.testing.assert_allclose(sigma, expected, rtol=0.03)
    assert np.all(render_stamps(t, noise=False) == 0)
    sky = render_stamps(t[:10], sky_sigma={"u": 1, "g": 2, "r": 3, "i": 4, "z": 5},
                        random_state=0)
    np.testing.assert_allclose(np.median(measure_sky_sigma(sky, mask_radius=0), axis=0),
                               [1, 2, 3, 4, 5], rtol=0.05)
    # Photon noise of the source itself makes bright stars noisier in the core.
    bright = _point_sources([14.0] * 20)
    noisy = render_stamps(bright, random_state=1, max_offset=0)
    quiet = render_stamps(bright, random_state=1, max_offset=0, poisson=False)
    core = (slice(None), 2, slice(14, 18), slice(14, 18))
    assert np.std(noisy[core] - noisy[core].mean(axis=0)) > 2 * np.std(
        quiet[core] - quiet[core].mean(axis=0))


def test_missing_columns_one_line():
    t = Table({"dered_u": [20.0], "g": [20.0], "r": [20.0], "i": [20.0], "z": [20.0],
               "class": ["GALAXY"]})
    with pytest.raises(MissingColumnsError) as excinfo:
        render_stamps(t)
    message = str(excinfo.value)
    assert "\n" not in message
    assert "extinction_u" in message
    for b in BANDS:
        assert f"deVRad_{b}" in message
    assert "dered_g" not in message
    # Stars and quasars need no radii.
    t["extinction_u"] = 0.1
    t["class"] = ["qso"]
    assert render_stamps(t).shape == (1, 5, 32, 32)


@pytest.mark.parametrize("kwargs, word", [
    ({"psf": "airy"}, "psf"),
    ({"size": 0}, "size"),
    ({"max_offset": -1}, "max_offset"),
    ({"sky_sigma": {"u": 1.0}}, "sky_sigma"),
    ({"psf_scale": "big"}, "psf_scale"),
    ({"random_state": "seed"}, "random_state"),
    ({"sersic_n": 10}, "sersic_n"),
    ({"nmgy_per_electron": {"r": 0.001}}, "nmgy_per_electron"),
])
def test_render_option_errors(catalog, kwargs, word):
    with pytest.raises(InvalidInputError, match=word):
        render_stamps(catalog[:1], **kwargs)


# ---------------------------------------------------------------------------
# Catalogs
# ---------------------------------------------------------------------------

def test_simulate_catalog_columns_and_classes():
    cat = simulate_catalog(301, random_state=0)
    assert len(cat) == 301
    for b in BANDS:
        for kind in ("dered", "deVRad", "psffwhm", "extinction"):
            assert f"{kind}_{b}" in cat.colnames
    assert {"u_g", "g_r", "r_i", "i_z", "class", "ra", "dec"} <= set(cat.colnames)
    labels, counts = np.unique(np.asarray(cat["class"]), return_counts=True)
    assert labels.tolist() == ["GALAXY", "QSO", "STAR"] and counts.tolist() == [101, 100, 100]
    observed = {b: np.asarray(cat[f"dered_{b}"]) + np.asarray(cat[f"extinction_{b}"])
                for b in BANDS}
    np.testing.assert_allclose(cat["u_g"], observed["u"] - observed["g"])
    np.testing.assert_allclose(cat["i_z"], observed["i"] - observed["z"])
    assert cat["deVRad_r"].unit == u.arcsec and cat["dered_r"].unit == u.mag
    qso = cat[cat["class"] == "QSO"]
    for colour, mean in (("u_g", 0.2), ("g_r", 0.2), ("r_i", 0.15), ("i_z", 0.1)):
        dereddened = np.asarray(qso[colour]) - (np.asarray(qso[f"extinction_{colour[0]}"])
                                                - np.asarray(qso[f"extinction_{colour[2]}"]))
        assert abs(np.median(dereddened) - mean) < 0.1, colour
    gal, star = cat[cat["class"] == "GALAXY"], cat[cat["class"] == "STAR"]
    assert np.median(gal["deVRad_r"]) > 3 * np.median(star["deVRad_r"])
    assert np.all((cat["dered_r"] >= 17) & (cat["dered_r"] <= 22.5))
    only = simulate_catalog(10, classes=["star"], random_state=0)
    assert set(only["class"].tolist()) == {"STAR"}


def test_simulate_catalog_errors():
    with pytest.raises(InvalidInputError, match="classes"):
        simulate_catalog(3, classes=["STAR", "PLANET"])
    with pytest.raises(InvalidInputError, match="n must"):
        simulate_catalog(-1)
    with pytest.raises(MissingColumnsError, match="class"):
        simulate_catalog(3, from_table=Table({"dered_r": [20.0]}))
    with pytest.raises(MissingColumnsError, match="deVRad_u"):
        simulate_catalog(3, from_table=Table({"dered_r": [20.0], "class": ["STAR"]}))
    with pytest.raises(InvalidInputError, match="cannot read from_table"):
        simulate_catalog(3, from_table="no_such_sim_table.fits")


def test_simulate_catalog_from_real_tables():
    sg = SHARED / "sdss_dr16_faint_compact_sg.fits"
    spectro = SHARED / "sdss_dr14_spectro_ugriz.fits"
    if not (sg.is_file() and spectro.is_file()):
        pytest.skip("../shared/data is absent")
    real = Table.read(sg)
    cat = simulate_catalog(60, from_table=real, qso_table=spectro, random_state=1)
    assert set(cat["class"].tolist()) == {"GALAXY", "QSO", "STAR"}
    rows = cat[cat["class"] != "QSO"]
    # Resampled rows are real rows: their dered_r values exist in the table.
    assert np.all(np.isin(np.asarray(rows["dered_r"], dtype=np.float32),
                          np.asarray(real["dered_r"], dtype=np.float32)))
    assert np.all(rows["dered_r"] >= 19.5)  # the faint set
    stamps = render_stamps(cat[:6], random_state=0)
    assert stamps.shape == (6, 5, 32, 32)


def test_rendered_stamps_feed_make_cutouts(catalog):
    from sourceclf.cutouts import make_cutouts

    stamps = render_stamps(catalog, random_state=0)
    result = make_cutouts(stamps, table=catalog)
    assert result.data is stamps and set(result.flags.tolist()) == {""}


# ---------------------------------------------------------------------------
# Against the real frames of field 4510-4-0030
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sdss():
    """The five real frames as open HDULists (read once) and the calibObj stars."""
    from sourceclf.utils._fits import open_fits

    if not FIELD.is_dir():
        pytest.skip("../shared/data/sdss_frame_004510-4-0030 is absent")

    def load(band):  # decompressed whole, in this thread (bz2 releases the GIL)
        path = FIELD / f"frame-{band}-004510-4-0030.fits.bz2"
        return open_fits(path, str(path))

    with ThreadPoolExecutor(max_workers=len(BANDS)) as pool:  # bz2 releases the GIL
        frames = dict(zip(BANDS, pool.map(load, BANDS)))
    stars = Table.read(FIELD / "calibobj_stars_004510-4-0030.fits")
    yield frames, stars
    for hdul in frames.values():
        hdul.close()


def test_defaults_are_what_the_frames_give(sdss):
    frames, stars = sdss
    props = measure_frame_properties(frames, stars, flux_range=FLUX_RANGE)
    assert props["band"].tolist() == list(BANDS)
    for row in props:
        ref = SDSS_BAND_DEFAULTS[row["band"]]
        assert row["n_stars"] >= 8
        for key in ("psf_fwhm", "moffat_beta", "catalog_psf_fwhm", "psf_scale", "sky_sigma",
                    "sky_level", "nmgy_per_electron"):
            assert row[key] == pytest.approx(ref[key], rel=0.01), (row["band"], key)


@pytest.fixture(scope="module")
def real_and_simulated(sdss):
    """Star stamps cut from the real frames, and the same stars simulated."""
    from sourceclf.cutouts import make_cutouts

    frames, stars = sdss
    real = make_cutouts(table=stars, images=frames)
    flux = np.asarray(stars["PSFFLUX"], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mags = 22.5 - 2.5 * np.log10(flux)  # NaN for the faintest: sky only
    table = Table({b: mags[:, k] for k, b in enumerate(BANDS)})
    for k, b in enumerate(BANDS):
        table[f"psffwhm_{b}"] = np.asarray(stars["PSF_FWHM"])[:, k]  # SDSS's own widths
    table["class"] = "STAR"
    simulated = render_stamps(table, random_state=2024)
    return real, simulated, flux


@pytest.mark.parametrize("band", BANDS)
def test_simulated_stars_look_like_real_ones(real_and_simulated, band):
    """Same code, same stars: PSF FWHM and sky noise agree within 10%."""
    real, simulated, flux = real_and_simulated
    k = BANDS.index(band)
    ok = real.flags == ""
    use = ok & (flux[:, k] >= FLUX_RANGE[0]) & (flux[:, k] <= FLUX_RANGE[1])
    widths = []
    for stamps in (real.data[use, k], simulated[use, k]):
        fit = fit_stamp_psf(stamps)
        good = np.asarray(fit["success"]) & (np.asarray(fit["peak_snr"]) >= 20)
        assert good.sum() >= 8
        widths.append(np.median(np.asarray(fit["fwhm"])[good]))
    sky_real = np.median(measure_sky_sigma(real.data[ok, k]))
    sky_sim = np.median(measure_sky_sigma(simulated[ok, k]))
    assert widths[1] == pytest.approx(widths[0], rel=0.10), widths
    assert sky_sim == pytest.approx(sky_real, rel=0.10), (sky_real, sky_sim)


# ---------------------------------------------------------------------------
# Observing conditions of simulated fields
# ---------------------------------------------------------------------------

def test_observing_conditions_span_sdss_seeing():
    from sourceclf.simulate import OBSERVING_CONDITIONS, draw_observing_conditions

    fields = draw_observing_conditions(4000, random_state=1)
    r = np.asarray(fields["psf_fwhm_r"])
    low, high = OBSERVING_CONDITIONS["r_fwhm"]["clip"]
    assert low <= r.min() and r.max() <= high
    # Both sharp fields (the shared ones: 0.82-1.27") and bad seeing are well covered.
    assert np.mean(r < 1.0) > 0.1 and np.mean((r > 1.6) & (r < 2.2)) > 0.15
    assert np.mean(r > 1.9) > 0.08
    # Bands follow r with the measured ratios: u the widest, i the narrowest.
    ratio = {b: np.median(np.asarray(fields[f"psf_fwhm_{b}"]) / r) for b in BANDS}
    assert ratio["u"] > ratio["g"] > ratio["r"] == 1.0 > ratio["i"]
    for b in BANDS:
        sky_low, sky_high = OBSERVING_CONDITIONS["sky_sigma"][b]
        sky = np.asarray(fields[f"sky_sigma_{b}"])
        assert sky_low / 1.1 <= sky.min() and sky.max() <= sky_high * 1.1
        beta = np.asarray(fields[f"psf_beta_{b}"])
        assert 2.5 <= beta.min() and beta.max() <= 12.0
    assert 0 <= fields["psf_e"].min() and fields["psf_e"].max() <= 0.12
    again = draw_observing_conditions(4000, random_state=1)
    assert all(np.array_equal(fields[c], again[c]) for c in fields.colnames)


def test_observing_conditions_errors():
    from sourceclf.simulate import draw_observing_conditions

    with pytest.raises(InvalidInputError, match="n_fields"):
        draw_observing_conditions(0)


def test_elliptical_psf_elongates_stars():
    t = _point_sources([16.0], **{f"psffwhm_{b}": [1.4] for b in BANDS})
    round_ = render_stamps(t, noise=False, max_offset=0, random_state=0)[0, 2]
    long_ = render_stamps(t, noise=False, max_offset=0, random_state=0,
                          psf_ellipticity=0.2, psf_angle=0.0)[0, 2]
    yy, xx = np.mgrid[:32, :32] - 15.5

    def moments(image):
        return (image * xx ** 2).sum() / image.sum(), (image * yy ** 2).sum() / image.sum()

    assert moments(round_)[0] == pytest.approx(moments(round_)[1], rel=0.02)
    assert moments(long_)[0] > 1.3 * moments(long_)[1]  # stretched along x
    assert long_.sum() == pytest.approx(round_.sum(), rel=1e-3)
    with pytest.raises(InvalidInputError, match="psf_ellipticity"):
        render_stamps(t, psf_ellipticity=1.5)
