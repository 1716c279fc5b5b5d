"""Tests of the simulation behind the shipped image models (sourceclf.image_recipes)."""

import numpy as np
import pytest

from sourceclf.bands import BANDS
from sourceclf.exceptions import InvalidInputError

pytest.importorskip("galsim")

from sourceclf.image_recipes import (MAGNITUDE_RANGES, SATURATION, add_realism,  # noqa: E402
                                     devrad_from_fluxes, saturate, simulated_sgq_catalog)


def _gaussian_star(peak, size=32, sigma=1.8):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2.0
    return (peak * np.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2))).astype(np.float32)


def test_saturate_leaves_a_hollow_streaked_core():
    level = SATURATION["r"]
    stamps = np.zeros((2, 5, 32, 32), dtype=np.float32)
    stamps[0, 2] = _gaussian_star(20 * level)  # far above saturation
    stamps[1, 2] = _gaussian_star(0.3 * level)  # below it: untouched
    faint = stamps[1].copy()
    saturate(stamps, np.random.default_rng(0))
    bright = stamps[0, 2]
    assert bright.max() < level
    # The interpolated core is far below what a star of that flux would peak at,
    # and lower than its own surroundings along the row: hollow.
    assert bright[15:17, 15:17].max() < 0.2 * level
    # Charge bled along the column: more rows than columns were replaced.
    changed = bright != _gaussian_star(20 * level)
    assert changed.any(axis=1).sum() > changed.any(axis=0).sum()
    np.testing.assert_array_equal(stamps[1], faint)


def test_saturate_is_reproducible():
    stamps = np.zeros((3, 5, 32, 32), dtype=np.float32)
    stamps[:, :] = _gaussian_star(10 * max(SATURATION.values()))
    a = saturate(stamps.copy(), np.random.default_rng(4))
    b = saturate(stamps.copy(), np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)


def test_simulated_catalog_classes_magnitudes_and_sizes(shared_data):
    t = simulated_sgq_catalog(600, random_state=2, data_dir=shared_data)
    cls = np.asarray(t["class"]).astype(str)
    assert {c: int((cls == c).sum()) for c in ("GALAXY", "QSO", "STAR")} == \
        {"GALAXY": 200, "QSO": 200, "STAR": 200}
    r = np.asarray(t["dered_r"])
    for c, pieces in MAGNITUDE_RANGES.items():
        lo, hi = min(p[0] for p in pieces), max(p[1] for p in pieces)
        assert lo <= r[cls == c].min() and r[cls == c].max() <= hi
    assert r[cls == "STAR"].min() < 14.0  # saturated stars are part of the training set
    # Galaxies moved brighter grew on the sky: bright ones are clearly resolved.
    radius = np.asarray(t["deVRad_r"])
    gal = cls == "GALAXY"
    assert np.median(radius[gal & (r < 17)]) > 1.5 * np.median(radius[gal & (r > 20)])


def test_add_realism_noise_level():
    from astropy.table import Table

    from sourceclf.simulate import SDSS_BAND_DEFAULTS

    n = 64
    noiseless = np.zeros((n, 5, 32, 32), dtype=np.float32)
    table = Table({"class": ["STAR"] * n})
    stamps = add_realism(np.empty_like(noiseless), noiseless, table, random_state=0,
                         neighbour_fraction=0.0, halo_fraction=0.0)
    for k, b in enumerate(BANDS):
        sigma = stamps[:, k].std()
        assert sigma == pytest.approx(SDSS_BAND_DEFAULTS[b]["sky_sigma"], rel=0.1)


def test_devrad_from_fluxes():
    fwhm = np.full((3, 5), 1.2)
    psf = np.array([[10.0] * 5, [6.0] * 5, [np.nan, 5.0, 5.0, 5.0, 5.0]])
    model = np.array([[10.0] * 5, [10.0] * 5, [10.0] * 5])
    radius = devrad_from_fluxes(psf, model, fwhm)
    assert np.all(radius[0] == 0)  # PSF flux = model flux: a point source
    assert np.all(radius[1] > 0)
    assert np.all(radius[2] > radius[1])  # less light in the PSF: larger
    assert radius[2, 0] == pytest.approx(np.median(radius[2, 1:]))  # the row's median


def test_cards_hold_the_trained_psf_range(shared_data):
    from sourceclf.models import model_card
    from sourceclf.recipes.image_training_set import trained_psf_range

    psf_range = trained_psf_range()
    assert 0.75 < psf_range["r"][0] < 0.9 and 2.2 < psf_range["r"][1] < 2.5
    for name in ("margnet-cnn-sgq", "margnet-sgq", "margformer-sgq"):
        assert model_card(name).domain["psf_fwhm"] == psf_range


def test_frame_truth_calls_calibobj_stars_point_like(shared_data):
    from astropy.table import Table

    from sourceclf.frames import read_frame
    from sourceclf.psf import measure_psf
    from sourceclf.recipes.extent_truth import frame_truth

    folder = shared_data / "sdss_frame_004510-4-0030"
    data, wcs = read_frame(folder / "frame-r-004510-4-0030.fits.bz2")
    truth = frame_truth(data, wcs, measure_psf(data))
    assert 0.8 < np.mean(truth["clean"]) <= 1.0
    clean = truth[truth["clean"]]
    assert {"point", "extended"} == set(clean["truth"])
    stars = Table.read(folder / "calibobj_stars_004510-4-0030.fits")
    x, y = wcs.world_to_pixel_values(np.asarray(stars["RA"]), np.asarray(stars["DEC"]))
    d = np.hypot(x[:, None] - np.asarray(clean["x"])[None],
                 y[:, None] - np.asarray(clean["y"])[None])
    matched = clean[np.argmin(d, axis=1)[d.min(axis=1) < 2.0]]
    assert len(matched) >= 30
    assert np.mean(matched["truth"] == "point") >= 0.95  # 38 of 39
    assert not truth["no_peak"][truth["psf_star"]].any()
    # The locus is narrow on this quiet field (0.03-0.04 mag): few sources are undecided.
    assert np.mean(truth["ambiguous"][truth["clean"]]) < 0.1
    assert not truth["ambiguous"][~truth["clean"]].any()


def test_forced_extent_repeats_the_truth_and_shrinks_with_blur(shared_data):
    """Measured again at the truth's positions: the same extents on the same frame, and
    smaller ones for the extended sources (not the point sources) on a blurred copy."""
    from scipy.ndimage import gaussian_filter

    from sourceclf.frames import read_frame
    from sourceclf.exceptions import InvalidInputError
    from sourceclf.psf import measure_psf
    from sourceclf.recipes.extent_truth import EXTENT_POINT, forced_extent, frame_truth

    folder = shared_data / "sdss_frame_004510-4-0030"
    data, wcs = read_frame(folder / "frame-r-004510-4-0030.fits.bz2")
    psf = measure_psf(data)
    truth = frame_truth(data, wcs, psf)
    clean = np.asarray(truth["clean"])
    again = forced_extent(data, wcs, psf, truth)[clean]
    extent = np.asarray(truth["extent"])[clean]
    assert np.nanmedian(np.abs(again - extent)) < 0.01
    assert np.mean((again > EXTENT_POINT) == (extent > EXTENT_POINT)) >= 0.97
    blurred = gaussian_filter(data, 1.5)  # about 1.1" to 1.8"
    wide = forced_extent(blurred, wcs, measure_psf(blurred, fwhm_guess=1.8), truth)[clean]
    point, extended = extent < 0.05, extent > 0.4
    assert abs(np.nanmedian(wide[point])) < 0.03
    assert np.nanmedian(wide[extended]) < 0.8 * np.nanmedian(extent[extended])
    with pytest.raises(InvalidInputError, match="lacks column.*psf_star"):
        forced_extent(data, wcs, psf, truth["ra", "dec"])
    none = truth.copy()
    none["psf_star"] = False
    with pytest.raises(InvalidInputError, match="no psf_star row"):
        forced_extent(data, wcs, psf, none)


def test_extent_zero_follows_the_psf_stars_across_the_frame():
    from sourceclf.recipes.extent_truth import PLANE_MIN_STARS, extent_zero

    rng = np.random.default_rng(5)
    n = 40
    x, y = rng.uniform(0, 2048, n), rng.uniform(0, 1489, n)
    drift = -0.05 + 4e-5 * x - 3e-5 * y  # 0.12 mag from corner to corner
    stars = np.arange(n) < 25
    extent = drift + rng.normal(0.0, 0.005, n)
    extent[~stars] += rng.uniform(0.1, 1.0, (~stars).sum())  # galaxies: not fitted
    extent[0] = 0.8  # one PSF star blended after all: clipped
    zero = extent_zero(extent, x, y, stars)
    assert np.max(np.abs(zero - drift)) < 0.01
    # the galaxies' extents above a point source at their own position
    assert np.allclose(extent[~stars] - zero[~stars], extent[~stars] - drift[~stars], atol=0.01)
    # too few stars for a plane: their median everywhere
    few = np.arange(n) < PLANE_MIN_STARS - 1
    flat = extent_zero(extent, x, y, few)
    assert np.all(flat == np.median(extent[few]))
    assert np.all(np.isnan(extent_zero(extent, x, y, np.zeros(n, bool))))
    with pytest.raises(InvalidInputError, match="40 extents, 39 x"):
        extent_zero(extent, x[:-1], y, stars)


def test_frame_truth_point_sources_sit_at_zero_over_a_drifting_frame(shared_data):
    """On 003184-2-0169 one PSF for the frame puts its point sources' extent 0.14 mag higher
    in one corner than in the other; zeroed by the plane, the locus of the bright ones is
    narrow (0.03 mag; 0.05 with one zero for the frame)."""
    from sourceclf.frames import read_frame
    from sourceclf.psf import measure_psf
    from sourceclf.recipes.extent_truth import frame_truth, forced_extent

    folder = shared_data / "sdss_frame_003184-2-0169"
    data, wcs = read_frame(folder / "frame-r-003184-2-0169.fits.bz2")
    psf = measure_psf(data)
    truth = frame_truth(data, wcs, psf)
    low, high = truth.meta["POINT_EXTENT_RANGE"]
    assert high - low > 0.08  # the drift that was zeroed
    clean = np.asarray(truth["clean"])
    bright = clean & (np.asarray(truth["r_mag"]) < 19.0)
    assert np.nanmedian(np.asarray(truth["extent_error"])[bright]) < 0.04
    stars = np.asarray(truth["psf_star"])
    extent = np.asarray(truth["extent"])
    x, y = np.asarray(truth["x"]), np.asarray(truth["y"])
    # no drift left: the stars on each half of the frame sit at the same level
    for coord in (x, y):
        low = stars & (coord < np.median(coord[stars]))
        assert abs(np.median(extent[low]) - np.median(extent[stars & ~low])) < 0.02
    again = forced_extent(data, wcs, psf, truth)[clean]
    assert np.nanmedian(np.abs(again - extent[clean])) < 0.01


def test_locus_width_follows_the_point_sources_not_the_galaxies():
    from sourceclf.recipes.extent_truth import locus_width

    rng = np.random.default_rng(3)
    r_mag = rng.uniform(16.0, 20.5, 4000)
    sigma = 0.01 + 0.03 * (r_mag - 16.0)  # wider at the faint end
    extent = rng.normal(0.0, sigma)
    galaxy = rng.random(4000) < 0.3
    extent[galaxy] = rng.uniform(0.1, 1.5, galaxy.sum())  # galaxies lie above the locus
    extent[:20] = -3.0  # a few wild measurements
    width = locus_width(extent, r_mag)
    assert width.shape == extent.shape
    for m in (16.5, 18.0, 19.5):
        near = np.abs(r_mag - m) < 0.2
        expected = 0.01 + 0.03 * (m - 16.0)
        assert abs(np.median(width[near]) / expected - 1.0) < 0.2, m
    assert np.all(np.isnan(locus_width([0.1, 0.2], [18.0, 19.0])))  # nothing below 0
    from sourceclf.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="3 extents but 2 magnitudes"):
        locus_width([0.1, -0.2, 0.0], [18.0, 19.0])


def test_frame_truth_leaves_out_light_without_a_peak(shared_data):
    # A ring of light (r about 18.5) has its centroid where there is no peak: the truth
    # must not call it point-like or extended (in the Galactic plane, merged starlight
    # made most of field 005405-6-0099's "extended" sources).
    from sourceclf.frames import read_frame
    from sourceclf.psf import measure_psf
    from sourceclf.recipes.extent_truth import frame_truth

    folder = shared_data / "sdss_frame_004510-4-0030"
    data, wcs = read_frame(folder / "frame-r-004510-4-0030.fits.bz2")
    psf = measure_psf(data)
    quiet = np.abs(data[:400, :400]) < 5 * psf.sky_sigma
    y, x = np.mgrid[-20:21, -20:21]
    centre = next((i, j) for i in range(40, 360, 7) for j in range(40, 360, 7)
                  if quiet[i - 20:i + 21, j - 20:j + 21].all())
    ring = np.exp(-0.5 * ((np.hypot(x, y) - 6.0) / 1.2) ** 2)
    data = data.copy()
    data[centre[0] - 20:centre[0] + 21, centre[1] - 20:centre[1] + 21] += 40 * ring / ring.sum()
    truth = frame_truth(data, wcs, psf)
    d = np.hypot(np.asarray(truth["x"]) - centre[1], np.asarray(truth["y"]) - centre[0])
    assert d.min() < 3.0
    ring_row = truth[np.argmin(d)]
    assert ring_row["no_peak"] and not ring_row["clean"]
    assert np.mean(truth["no_peak"]) < 0.05


def test_fields_render_with_their_own_psf_and_sky(shared_data, monkeypatch):
    from sourceclf.psf import CATALOG_PSF_SCALE
    from sourceclf.recipes import image_training_set as sim

    monkeypatch.setitem(sim.SIMULATION, "fields", 3)
    t = simulated_sgq_catalog(30, random_state=3, data_dir=shared_data)
    noiseless = sim.render_varied_psf(t, random_state=5)
    assert set(np.unique(t["field"])) <= {0, 1, 2}
    fwhm = sim.rendered_psf_fwhm(t)
    for b in BANDS:
        # The catalog width the 24-column models read is the rendered PSF's.
        np.testing.assert_allclose(t[f"psffwhm_{b}"] * CATALOG_PSF_SCALE[b], fwhm[b],
                                   rtol=1e-5)
        for f in np.unique(t["field"]):
            rows = np.asarray(t["field"]) == f
            assert np.ptp(fwhm[b][rows]) == 0 and np.ptp(t[f"sky_sigma_{b}"][rows]) == 0
    again = sim.render_varied_psf(simulated_sgq_catalog(30, random_state=3,
                                                        data_dir=shared_data), random_state=5)
    np.testing.assert_array_equal(noiseless, again)
    # Sky noise is the field's: stamps of a noisier field are noisier.
    stamps = np.empty_like(noiseless)
    add_realism(stamps, np.zeros_like(noiseless), t, random_state=0, noise_scatter=0.0,
                neighbour_fraction=0.0, halo_fraction=0.0)
    for k, b in enumerate(BANDS):
        np.testing.assert_allclose(stamps[:, k].std(axis=(1, 2)), t[f"sky_sigma_{b}"], rtol=0.15)


def test_the_psf_fwhm_a_model_trains_with_is_the_one_measure_psf_gives():
    """The image models read ``psf_fwhm_<b>`` in training and `measure_psf`'s FWHM on real
    frames: on a frame of a simulated field's stars the two must agree.  The CNN is steep
    in it: given 10% too small a FWHM on 003184-2-0169 it called 0.67 of the point sources
    STAR or QSO, against 0.86 (docs/scripts/psf_sensitivity.py, in docs/images.rst)."""
    from astropy.table import Table

    from sourceclf.psf import measure_psf
    from sourceclf.recipes import image_training_set as sim
    from sourceclf.simulate import SDSS_BAND_DEFAULTS, draw_observing_conditions, render_stamps

    rng = np.random.default_rng(8)
    fields = draw_observing_conditions(3, random_state=rng)
    size, n = 64, 40
    for f in range(len(fields)):
        stars = Table({b: rng.uniform(16.5, 18.5, n) for b in BANDS})
        stars["class"] = "STAR"
        for b in BANDS:
            stars[f"psffwhm_{b}"] = (fields[f"psf_fwhm_{b}"][f]
                                     / SDSS_BAND_DEFAULTS[b]["psf_scale"])
        stamps = render_stamps(stars, size=size, noise=False, random_state=f,
                               **sim._field_psf_options(fields, f))
        for b in ("g", "r", "i"):
            frame = stamps[:, BANDS.index(b)].reshape(4, 10, size, size)
            frame = frame.transpose(0, 2, 1, 3).reshape(4 * size, 10 * size)
            frame = frame + rng.normal(0.0, fields[f"sky_sigma_{b}"][f], frame.shape)
            label = float(fields[f"psf_fwhm_{b}"][f])
            measured = measure_psf(frame.astype(np.float32), fwhm_guess=label).fwhm
            assert measured == pytest.approx(label, rel=0.015), (f, b)


def _crowd_inputs():
    """120 noiseless stamps in 12 fields, each field's source of its own level."""
    from astropy.table import Table

    field = np.repeat(np.arange(12), 10)
    noiseless = np.zeros((120, 5, 32, 32), np.float32)
    noiseless[:, :, 14:18, 14:18] = (field + 1.0)[:, None, None, None]
    return Table({"field": field, "class": np.repeat(["STAR", "GALAXY"], 60)}), noiseless


def test_crowded_fields_take_neighbours_of_their_own_field():
    from sourceclf.recipes.stamp_realism import crowd_fields

    table, noiseless = _crowd_inputs()
    field = np.asarray(table["field"])
    out = noiseless.copy()
    crowded = crowd_fields(out, noiseless, field, np.random.default_rng(0), 0.5, (8.0, 8.0), 4)
    changed = (out != noiseless).any(axis=(1, 2, 3))
    assert np.array_equal(crowded, np.isin(field, field[changed]))  # whole fields
    assert 0 < len(np.unique(field[changed])) < 12
    assert changed[crowded].mean() > 0.9  # nearly every stamp of them
    level = (field + 1.0)[:, None, None, None]
    np.testing.assert_allclose(np.mod(out, level), 0.0)  # neighbours of the same field only
    # Eight neighbours each on average, a third of them on the stamp (the offsets reach
    # 28 pixels).
    added = (out - noiseless)[crowded].sum(axis=(1, 2, 3)) / noiseless[crowded].sum(axis=(1, 2, 3))
    assert 1.5 < added.mean() < 8


def test_add_realism_crowds_a_share_of_the_fields_and_leaves_the_rest_as_it_was():
    """Version 10's crowded fields change their own stamps only: every other draw is
    version 9's, and the deblended copy (what the catalog columns are measured on)
    keeps none of the crowd's light."""
    from sourceclf.recipes.stamp_realism import crowded_rows

    table, noiseless = _crowd_inputs()
    options = dict(random_state=3, noise_scatter=0.1, neighbour_fraction=0.4, halo_fraction=0.2)
    plain, plain_deblended = np.empty_like(noiseless), np.empty_like(noiseless)
    add_realism(plain, noiseless, table, deblended=plain_deblended, **options)
    np.testing.assert_array_equal(
        add_realism(np.empty_like(noiseless), noiseless, table, crowded_share=0.0, **options),
        plain)
    crowded, deblended = np.empty_like(noiseless), np.empty_like(noiseless)
    add_realism(crowded, noiseless, table, deblended=deblended, crowded_share=0.5,
                crowded_means=(6.0, 6.0), **options)
    rows = (crowded != plain).any(axis=(1, 2, 3))
    assert 0.2 < rows.mean() < 0.8
    # The crowded fields are known without rendering (to score them apart): every changed
    # row is in one, and nearly every row of them changed (a neighbour may fall off).
    known = crowded_rows(table, random_state=3, share=0.5)
    assert not (rows & ~known).any() and rows[known].mean() > 0.9
    flux = (crowded - plain).sum(axis=(1, 2, 3))
    own = noiseless.sum(axis=(1, 2, 3))
    # Six neighbours each on average, a third of them on the stamp (the offsets reach
    # 28 pixels).
    assert np.mean(flux[rows] / own[rows]) > 1.5
    np.testing.assert_array_equal(deblended[~rows], plain_deblended[~rows])
    # The crowd adds photon noise to the deblended copy, not light.
    light = (deblended - plain_deblended).sum(axis=(1, 2, 3))
    assert np.abs(light[rows]).sum() < 0.01 * flux[rows].sum()
    with pytest.raises(InvalidInputError, match="'field' column"):
        add_realism(np.empty_like(noiseless), noiseless, table[["class"]], crowded_share=0.5)
    with pytest.raises(InvalidInputError, match="needs crowded_means"):
        add_realism(np.empty_like(noiseless), noiseless, table, crowded_share=0.5)
    # A generator seeded like the int draws the same crowd (its own stream is spawned from it).
    options["random_state"] = np.random.default_rng(3)
    np.testing.assert_array_equal(
        add_realism(np.empty_like(noiseless), noiseless, table, deblended=np.empty_like(noiseless),
                    crowded_share=0.5, crowded_means=(6.0, 6.0), **options), crowded)


def test_simulation_versions():
    from sourceclf.recipes.image_training_set import (SIMULATION, SIMULATIONS,
                                                      simulation_settings)

    assert simulation_settings() is SIMULATION is SIMULATIONS[9]  # the shipped models'
    assert simulation_settings("10") is SIMULATIONS[10]
    assert simulation_settings(9)["version"] == 9 and "crowded_share" not in SIMULATIONS[9]
    # Version 10 is version 9 with crowded fields.
    assert {k: v for k, v in SIMULATIONS[10].items()
            if k not in ("version", "crowded_share", "crowded_means")} == {
        k: v for k, v in SIMULATIONS[9].items() if k != "version"}
    with pytest.raises(InvalidInputError, match="no simulation version 8; versions are 9, 10"):
        simulation_settings(8)


def test_trained_psf_range_covers_bad_seeing():
    from sourceclf.recipes.image_training_set import trained_psf_range

    psf_range = trained_psf_range()
    assert 0.75 < psf_range["r"][0] < 0.9 and 2.2 < psf_range["r"][1] <= 2.5
    assert psf_range == trained_psf_range()


def test_image_cards_give_held_out_accuracy_per_magnitude():
    from sourceclf.models import model_card
    from sourceclf.recipes.image import MAGNITUDE_EDGES

    for name in ("margnet-cnn-sgq", "margnet-sgq", "margformer-sgq"):
        metrics = model_card(name).metrics
        by_mag = metrics["test_by_magnitude"]
        assert by_mag["band"] == "r" and len(by_mag["bins"]) == len(MAGNITUDE_EDGES) + 1
        assert sum(by_mag["n"]) == metrics["test"]["n"]  # every held-out row, once
        # Bright sources are easier to tell apart than faint ones.
        assert by_mag["accuracy"][1] > by_mag["accuracy"][-2]


def test_refresh_card_refuses_a_model_of_another_simulation():
    from astropy.table import Table

    from sourceclf.exceptions import SourceclfError
    from sourceclf.image_recipes import refresh_card

    table = Table({"dered_r": np.full(10, 20.0)})
    with pytest.raises(SourceclfError, match="simulation version .* retrain it"):
        refresh_card("margnet-cnn-sgq", table, np.zeros((10, 5, 32, 32), np.float32))


def test_models_reading_catalog_columns_need_the_same_measured_columns():
    from types import SimpleNamespace

    from sourceclf.recipes.image import same_simulation
    from sourceclf.recipes.image_training_set import SIMULATION

    def model(feature_set, **sim):
        return SimpleNamespace(feature_set=feature_set, card=SimpleNamespace(
            training={"simulation": {"version": SIMULATION["version"], "n": 100, "seed": 7,
                                     **sim}}))

    # The CNN reads no catalog column: the stamps are all it shares with the simulation.
    assert same_simulation(model("psf_fwhm"), 100, 7)
    assert not same_simulation(model("psf_fwhm"), 100, 8)
    assert not same_simulation(model("psf_fwhm", version=SIMULATION["version"] - 1), 100, 7)
    # A model reading MargNet's columns trained on columns copied from the catalog
    # (before the key existed) is not one trained on measured columns.
    assert not same_simulation(model("margnet24"), 100, 7)
    assert same_simulation(model("margnet24", catalog_columns=SIMULATION["catalog_columns"]),
                           100, 7)
    # Nor is one trained on columns all measured on exactly deblended stamps (2).
    assert not same_simulation(model("margnet24", catalog_columns=2), 100, 7)


def test_cards_bin_by_the_rendered_magnitude():
    """Cards of models reading measured columns bin their rows as the CNN's card does."""
    from astropy.table import Table

    from sourceclf.recipes.image import _rendered_r

    measured = Table({"dered_r": [20.9, 21.3], "rendered_dered_r": [21.2, 20.8]})
    np.testing.assert_array_equal(_rendered_r(measured), [21.2, 20.8])
    np.testing.assert_array_equal(_rendered_r(Table({"dered_r": [20.9]})), [20.9])


def test_training_set_measures_its_columns_and_caches_them_apart(shared_data, tmp_path,
                                                                 monkeypatch):
    """The catalog columns are measured on the stamps, not copied: half the rows through
    the package's own deblender, the others on the exactly deblended stamps; and the
    cache keeps the rendering apart from the measurement."""
    from astropy.table import Table

    from sourceclf.recipes import image_training_set as sim
    from sourceclf.recipes.measured_columns import deblend_stamps, measure_stamp_columns

    monkeypatch.setitem(sim.SIMULATION, "fields", 2)
    table, stamps = sim.simulated_training_set(24, random_state=5, data_dir=shared_data,
                                               cache_dir=tmp_path)
    stem = f"sim-sgq-v{sim.SIMULATION['version']}-n24-seed5"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{stem}-columns3.ecsv", f"{stem}-deblended.npy", f"{stem}.ecsv",
                     f"{stem}.npy"]
    assert table.meta["simulation_version"] == sim.SIMULATION["version"]
    assert "crowded_field" not in table.colnames  # version 9 crowds no field
    assert stamps.shape == (24, 5, 32, 32) and stamps.dtype == np.float32
    # Measured, not copied: the rendered values are kept beside them.
    assert not np.allclose(table["dered_r"], table["rendered_dered_r"])
    through = np.asarray(table["frame_deblended"])
    assert 0 < through.sum() < 24
    # Exactly deblended, a source's own light; through the deblender, a neighbour's
    # may come in, as on a real frame.
    np.testing.assert_allclose(table["dered_r"][~through], table["rendered_dered_r"][~through],
                               atol=1.5)
    rendered = Table.read(tmp_path / f"{stem}.ecsv", format="ascii.ecsv")
    exact = measure_stamp_columns(
        rendered, np.load(tmp_path / f"{stem}-deblended.npy").astype(np.float32))
    frame = measure_stamp_columns(rendered, deblend_stamps(rendered, stamps))
    for name in ("dered_r", "deVRad_g", "u_g", "psf_flux_z"):
        np.testing.assert_allclose(table[name][~through], exact[name][~through])
        np.testing.assert_allclose(table[name][through], frame[name][through])
    # Read back from the cache: the same numbers.
    again, cached = sim.simulated_training_set(24, random_state=5, data_dir=shared_data,
                                               cache_dir=tmp_path)
    np.testing.assert_array_equal(cached, stamps)
    np.testing.assert_allclose(again["deVRad_g"], table["deVRad_g"])
    # A new measurement needs no new rendering: without its columns file the
    # columns are measured again from the cached deblended stamps.
    rendered = (tmp_path / f"{stem}.npy").stat().st_mtime_ns
    (tmp_path / f"{stem}-columns3.ecsv").unlink()
    measured, _ = sim.simulated_training_set(24, random_state=5, data_dir=shared_data,
                                             cache_dir=tmp_path)
    assert (tmp_path / f"{stem}-columns3.ecsv").is_file()
    assert (tmp_path / f"{stem}.npy").stat().st_mtime_ns == rendered
    np.testing.assert_allclose(measured["dered_r"], table["dered_r"])


def test_stamps_only_training_set_skips_the_columns(shared_data, tmp_path, monkeypatch):
    """The CNN reads no catalog column: its training set is rendered, cached and returned
    without measuring them (the slow part of the other models' sets), in any version."""
    from sourceclf.recipes import image_training_set as sim
    from sourceclf.recipes.image import FEATURE_SETS, RECIPES

    assert set(FEATURE_SETS) == set(RECIPES)
    assert [n for n, f in FEATURE_SETS.items() if f != "margnet24"] == ["margnet-cnn-sgq"]
    monkeypatch.setitem(sim.SIMULATIONS[10], "fields", 2)
    table, stamps = sim.simulated_training_set(12, random_state=5, data_dir=shared_data,
                                               cache_dir=tmp_path, version=10, columns=False)
    assert table.meta["simulation_version"] == 10 and stamps.shape == (12, 5, 32, 32)
    assert "frame_deblended" not in table.colnames and "rendered_dered_r" not in table.colnames
    # Its crowded fields' rows are marked, as add_realism drew them.
    np.testing.assert_array_equal(table["crowded_field"], sim.crowded_rows(
        table, random_state=5 + 2, share=sim.SIMULATIONS[10]["crowded_share"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sim-sgq-v10-n12-seed5-deblended.npy", "sim-sgq-v10-n12-seed5.ecsv",
        "sim-sgq-v10-n12-seed5.npy"]


@pytest.mark.parametrize("recipe, columns", [("margnet-cnn-sgq", False), ("margnet-sgq", True),
                                             ("all", True), ("simulate", True)])
def test_the_recipes_measure_columns_only_for_models_that_read_them(monkeypatch, recipe,
                                                                    columns):
    from sourceclf.recipes import image_cli

    asked = {}

    def training_set(n, **options):
        asked.update(options)
        raise KeyboardInterrupt  # stop before any rendering or training

    monkeypatch.setattr(image_cli, "simulated_training_set", training_set)
    with pytest.raises(KeyboardInterrupt):
        image_cli.main([recipe, "--simulation", "10", "--threads", "1"])
    assert asked["columns"] is columns and asked["version"] == 10


def test_training_writes_the_models_conformal_thresholds(shared_data, tmp_path,
                                                         monkeypatch, capsys):
    """A retrained model is saved with thresholds of its own calibration, not left beside
    the previous model's."""
    import json

    from sourceclf.models import load_model
    from sourceclf.recipes import image as recipes
    from sourceclf.recipes import image_cli
    from sourceclf.recipes import image_training_set as sim

    monkeypatch.setitem(sim.SIMULATION, "fields", 2)
    # The training itself is the recipes' (minutes); here a shipped model stands in.
    monkeypatch.setitem(recipes.RECIPES, "margnet-cnn-sgq",
                        lambda table, stamps, **kwargs: load_model("margnet-cnn-sgq"))
    argv = ["margnet-cnn-sgq", "--n", "24", "--data-dir", str(shared_data),
            "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "models"),
            "--jobs", "1", "--threads", "1"]
    assert image_cli.main(argv) == 0
    directory = tmp_path / "models" / "margnet-cnn-sgq"
    card = json.loads((directory / "card.json").read_text())
    reference = card["extra"]["conformal_thresholds"]
    assert (directory / reference["file"]).is_file()
    assert "wrote" in capsys.readouterr().out


def test_cnn_member_takes_a_fwhm_cnn_or_an_ensembles_member():
    """margnet-sgq can keep the CNN of a FWHM-only CNN or of a trained margnet-sgq; any
    other model is refused with a line naming it."""
    import types

    from sourceclf.exceptions import InvalidInputError
    from sourceclf.models import load_model
    from sourceclf.recipes.image import cnn_member

    stack = load_model("margnet-sgq")
    assert cnn_member(stack) is stack.module.cnn
    network = object()
    assert cnn_member(types.SimpleNamespace(feature_set="psf_fwhm", module=network)) is network
    for name in ("margnet-cnn-sgq", "margformer-sgq", "bayesian-margnet-sgq"):
        with pytest.raises(InvalidInputError, match=f"not '{name}'"):
            cnn_member(load_model(name))


def test_margnet_sgq_refuses_a_cnn_it_cannot_stack_before_training():
    from sourceclf.exceptions import InvalidInputError
    from sourceclf.models import load_model
    from sourceclf.recipes.image import margnet_sgq

    with pytest.raises(InvalidInputError, match="feature set psf_shape"):
        margnet_sgq(None, None, cnn=load_model("margnet-cnn-sgq"))


@pytest.mark.parametrize("recipe, cnn, error", [
    ("margnet-sgq", "margnet-cnn-sgq", "--cnn margnet-cnn-sgq: "),
    ("margnet-sgq", "margnet-cnn-sgq", "feature set psf_shape"),
    ("all", "no-such-model", "--cnn no-such-model: "),
    ("margformer-sgq", "margnet-sgq", "--cnn is for margnet-sgq (or all), not margformer-sgq"),
    ("margnet-sgq --refresh", "margnet-sgq", "--refresh trains nothing"),
])
def test_the_command_line_checks_cnn_before_rendering(monkeypatch, capsys, recipe, cnn, error):
    from sourceclf.recipes import image_cli

    def training_set(n, **options):
        raise AssertionError("rendered before --cnn was checked")

    monkeypatch.setattr(image_cli, "simulated_training_set", training_set)
    with pytest.raises(SystemExit) as exit_:
        image_cli.main(recipe.split() + ["--cnn", cnn, "--threads", "1"])
    assert exit_.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("python -m sourceclf.image_recipes: error: ")
    assert error in message


def test_the_command_line_keeps_the_cnn_of_a_margnet_sgq_of_its_simulation(monkeypatch, capsys):
    """``--cnn margnet-sgq`` (the shipped ensemble, simulation 9 of 36,000 sources) is kept
    for that simulation, and refused for another."""
    from astropy.table import Table

    from sourceclf.recipes import image as recipes
    from sourceclf.recipes import image_cli

    kept = {}

    def training_set(n, **options):
        return Table({"id": np.arange(3)}), np.zeros((3, 5, 32, 32), np.float32)

    def recipe(table, stamps, *, cnn=None, data_dir=None):
        kept["cnn"] = cnn
        raise KeyboardInterrupt  # stop before training

    monkeypatch.setattr(image_cli, "simulated_training_set", training_set)
    monkeypatch.setitem(recipes.RECIPES, "margnet-sgq", recipe)
    with pytest.raises(KeyboardInterrupt):
        image_cli.main(["margnet-sgq", "--cnn", "margnet-sgq", "--threads", "1"])
    assert kept["cnn"].name == "margnet-sgq"
    assert "keeping the CNN of margnet-sgq" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        image_cli.main(["margnet-sgq", "--cnn", "margnet-sgq", "--simulation", "10"])
    assert "trained on another simulation, not version 10" in capsys.readouterr().err


def test_refresh_frame_checks_writes_the_checks_into_the_card_alone(
        calibobj_field, shared_data, tmp_path, monkeypatch, capsys):
    """``--refresh-frames``: the real-frame checks of an installed card measured again
    (`frame_star_check`, `frame_galaxy_check`: what the recipe runs after training, here
    replaced by stand-ins), without the simulation; only card.json moves."""
    import shutil

    from sourceclf.exceptions import SourceclfError
    from sourceclf.models import load_model
    from sourceclf.recipes import image
    from sourceclf.recipes.image_cli import main

    _, frames = calibobj_field
    copy = tmp_path / "margnet-cnn-sgq"
    shutil.copytree(load_model("margnet-cnn-sgq").directory, copy)
    kept = {p.name: p.read_bytes() for p in copy.iterdir() if p.name != "card.json"}
    seen = []

    def check(what):
        def run(clf, data_dir, given):
            assert given is frames and clf.name == "margnet-cnn-sgq"
            seen.append(what)
            return {"n": 1, what: 0.5}
        return run

    monkeypatch.setattr(image, "frame_star_check", check("point_fraction"))
    monkeypatch.setattr(image, "frame_galaxy_check", check("galaxy_fraction"))
    assert image.refresh_frame_checks(copy, data_dir=shared_data, frames=frames) == (
        copy / "card.json")
    metrics = load_model(copy).card.metrics
    assert metrics["real_frame_stars"] == {"n": 1, "point_fraction": 0.5}
    assert metrics["real_frame_extended"] == {"n": 1, "galaxy_fraction": 0.5}
    assert seen == ["point_fraction", "galaxy_fraction"]
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.name != "card.json"} == kept
    with pytest.raises(SourceclfError, match="reads no images"):
        image.refresh_frame_checks("ugriz-sgq", data_dir=shared_data, frames=frames)
    for argv, error in ((["simulate"], "--refresh-frames takes a model name or all"),
                        (["margnet-sgq", "--refresh"], "not with --refresh or --cnn")):
        with pytest.raises(SystemExit):
            main(argv + ["--refresh-frames"])
        assert error in capsys.readouterr().err
    # the frames absent: one line, no traceback
    with pytest.raises(SystemExit):
        main(["margnet-cnn-sgq", "--refresh-frames", "--data-dir", str(tmp_path / "none")])
    assert capsys.readouterr().err.strip().endswith(
        "error: the frames of field 4510-4-0030 are not in the data folder "
        f"({tmp_path / 'none'})")
