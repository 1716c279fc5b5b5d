"""The PSF's shape as an image model's input: the ``psf_shape`` feature set (each band's
FWHM and Moffat index), measured per row by `sourceclf.inputs.model_inputs`, and the
index the image recipes train with (`sourceclf.recipes.image_training_set.fitted_psf_beta`)."""

import warnings

import numpy as np
import pytest
from astropy.table import Table

from sourceclf.bands import BANDS, SDSS_PIXEL_SCALE
from sourceclf.exceptions import InvalidInputError, SourceclfWarning
from sourceclf.features import available_feature_sets, get_feature_set
from sourceclf.inputs import model_inputs
from sourceclf.psf import moffat_profile

FWHM_PIXELS = 3.0


def _moffat_stamps(n, beta, random_state=0):
    """``n`` 5-band stamps of a bright star (FWHM 3 pixels, index ``beta``) in noise."""
    rng = np.random.default_rng(random_state)
    yy, xx = np.mgrid[:32, :32] - 16.0
    star = 2000.0 * moffat_profile(xx, yy, FWHM_PIXELS, beta)
    stamps = star[None, None] * rng.uniform(0.5, 2.0, (n, 1, 1, 1))
    return (stamps + rng.normal(0.0, 1.0, (n, 5, 32, 32))).astype(np.float32)


def test_the_psf_shape_feature_set_is_the_psf_of_the_images():
    shape, width = get_feature_set("psf_shape"), get_feature_set("psf_fwhm")
    assert shape.names == tuple(f"psf_fwhm_{b}" for b in BANDS) + tuple(
        f"psf_beta_{b}" for b in BANDS)
    assert shape.reads_image_psf and shape.reads_psf_shape
    assert width.reads_image_psf and not width.reads_psf_shape
    assert not get_feature_set("margnet24").reads_image_psf
    assert not get_feature_set("margnet24").reads_psf_shape
    columns = Table({**{f"psf_fwhm_{b}": [1.2] for b in BANDS},
                     **{f"psf_beta_{b}": [3.5] for b in BANDS}})
    columns["psf_fwhm_r"] = [0.02]
    columns["psf_fwhm_r"].unit = "arcmin"  # a width in other units is converted
    values = shape.compute(columns).values[0]
    np.testing.assert_allclose(values, [1.2, 1.2, 1.2, 1.2, 1.2] + [3.5] * 5, rtol=1e-6)
    assert "psf_shape" not in available_feature_sets(columns)  # never a catalog's


def test_model_inputs_measure_the_index_on_the_stamps_and_clip_it():
    table = Table({"id": np.arange(40)})
    stamps = _moffat_stamps(40, 2.5)
    fwhm = FWHM_PIXELS * SDSS_PIXEL_SCALE
    # Training (no range): the index as measured, per band, kept as an output column.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measured = model_inputs(table, feature_set="psf_shape", uses_images=True,
                                cutouts=stamps, psf=fwhm)
    assert measured.valid.all()
    np.testing.assert_allclose(measured.features[:, :5], fwhm, rtol=1e-6)
    np.testing.assert_allclose(measured.features[:, 5:], 2.5, atol=0.15)
    for b in BANDS:
        np.testing.assert_allclose(measured.columns[f"psf_beta_{b}"], 2.5, atol=0.15)
    # A model's trained range bounds it; the output column keeps the measured index.
    trained = {b: (3.0, 7.0) for b in BANDS}
    clipped = model_inputs(table, feature_set="psf_shape", uses_images=True, cutouts=stamps,
                           psf=fwhm, psf_beta_range=trained)
    np.testing.assert_allclose(clipped.features[:, 5:], 3.0)
    np.testing.assert_allclose(clipped.columns["psf_beta_r"], measured.columns["psf_beta_r"])
    # The FWHM-only set measures no index and keeps no such column.
    width = model_inputs(table, feature_set="psf_fwhm", uses_images=True, cutouts=stamps,
                         psf=fwhm)
    assert width.features.shape == (40, 5) and "psf_beta_r" not in width.columns


def test_an_index_that_cannot_be_measured_is_said_and_read_as_the_trained_middle():
    table = Table({"id": np.arange(6)})
    noise = np.random.default_rng(1).normal(0.0, 1.0, (6, 5, 32, 32)).astype(np.float32)
    trained = {b: (3.0, 7.0) for b in BANDS}
    with pytest.warns(SourceclfWarning, match="Moffat index .* middle of the trained range"):
        inputs = model_inputs(table, feature_set="psf_shape", uses_images=True,
                              cutouts=noise, psf=1.2, psf_beta_range=trained)
    assert inputs.valid.all()
    np.testing.assert_allclose(inputs.features[:, 5:], np.sqrt(21.0), rtol=1e-6)
    assert np.ma.getmaskarray(inputs.columns["psf_beta_g"]).all()
    # Without a range (training) such rows cannot be used.
    with pytest.warns(SourceclfWarning, match="left out"):
        training = model_inputs(table, feature_set="psf_shape", uses_images=True,
                                cutouts=noise, psf=1.2)
    assert not training.valid.any() and "psf_beta_u" in training.flags[0]


def test_without_any_psf_both_are_the_trained_middle_and_the_rows_flagged():
    table = Table({"id": np.arange(3)})
    stamps = _moffat_stamps(3, 3.0)
    with pytest.warns(SourceclfWarning, match="psf="):
        inputs = model_inputs(table, feature_set="psf_shape", uses_images=True, cutouts=stamps,
                              psf_range={b: (0.8, 2.0) for b in BANDS},
                              psf_beta_range={b: (3.0, 7.0) for b in BANDS}, model_name="m")
    assert all(f == "psf_unknown" for f in inputs.flags)
    np.testing.assert_allclose(inputs.features[:, :5], np.sqrt(1.6), rtol=1e-6)
    np.testing.assert_allclose(inputs.features[:, 5:], np.sqrt(21.0), rtol=1e-6)


pytest.importorskip("galsim")


def test_the_trained_index_is_the_one_a_frame_s_stars_give(shared_data, monkeypatch):
    """`fitted_psf_beta` fits each field's drawn PSF as `measure_psf` fits a frame's stars:
    on a frame of that field's stars `measure_psf` gives the same index, and the wing
    lowers it below the drawn core's."""
    from sourceclf.psf import measure_psf
    from sourceclf.recipes import image_training_set as sim
    from sourceclf.simulate import render_stamps

    monkeypatch.setitem(sim.SIMULATION, "fields", 3)
    table = sim.simulated_sgq_catalog(30, random_state=3, data_dir=shared_data)
    sim.render_varied_psf(table, random_state=5)
    beta = sim.fitted_psf_beta(table, random_state=5)
    assert all(np.isfinite(beta[b]).all() for b in BANDS)
    for b in BANDS:  # one index per field
        for f in np.unique(table["field"]):
            assert np.ptp(beta[b][np.asarray(table["field"]) == f]) == 0
    assert np.mean(beta["r"] < np.asarray(table["psf_beta_r"])) > 0.5
    rng = np.random.default_rng(2)
    _, fields, _ = sim._field_conditions(len(table), 5)
    f = int(table["field"][0])
    stars = Table({b: rng.uniform(16.5, 18.0, 40) for b in BANDS})
    stars["class"] = "STAR"
    for b in BANDS:
        stars[f"psffwhm_{b}"] = table[f"psffwhm_{b}"][0]
    stamps = render_stamps(stars, size=64, noise=False, random_state=0,
                           **sim._field_psf_options(fields, f))
    frame = stamps[:, BANDS.index("r")].reshape(4, 10, 64, 64).transpose(0, 2, 1, 3)
    frame = frame.reshape(256, 640) + rng.normal(0.0, fields["sky_sigma_r"][f], (256, 640))
    measured = measure_psf(frame.astype(np.float32), fwhm_guess=float(table["psf_fwhm_r"][0]))
    assert measured.beta == pytest.approx(beta["r"][0], rel=0.1)
    with pytest.raises(InvalidInputError, match="not those of seed 6"):
        sim.fitted_psf_beta(table, random_state=6)


def test_the_trained_index_range_is_the_central_ninety_percent():
    from sourceclf.recipes.image import PSF_BETA_PERCENTILES, trained_beta_range

    beta = np.column_stack([np.linspace(2.0, 12.0, 1001) + k for k in range(5)])
    assert PSF_BETA_PERCENTILES == (5.0, 95.0)
    got = trained_beta_range(beta)
    assert got["u"] == [2.5, 11.5] and got["z"] == [6.5, 15.5]


def test_the_shipped_stack_keeps_a_cnn_reading_the_fwhm_alone():
    """margnet-sgq stacks the CNN as it was shipped (the PSF's FWHM alone): a CNN reading
    the PSF's shape cannot be its member."""
    from types import SimpleNamespace

    from sourceclf.recipes.image import margnet_sgq

    with pytest.raises(InvalidInputError, match="fwhm_cnn"):
        margnet_sgq(Table({"class": ["STAR"]}), np.zeros((1, 5, 32, 32), np.float32),
                    cnn=SimpleNamespace(feature_set="psf_shape"))


def test_a_psf_measurement_given_as_psf_gives_its_index_too():
    """``psf=`` may give each band's `PSFMeasurement` (the injection check gives the
    frames' own, measured before sources were drawn into copies of them): its FWHM and
    its Moffat index are read, and nothing is measured on the stamps."""
    from sourceclf.psf import PSFMeasurement

    table = Table({"id": np.arange(3)})
    noise = np.random.default_rng(1).normal(0.0, 1.0, (3, 5, 32, 32)).astype(np.float32)
    given = {b: PSFMeasurement(fwhm=1.1 + 0.1 * k, fwhm_std=0.02, beta=3.2 + k,
                               ellipticity=0.05, n_stars=20, sky_sigma=0.03, stars=None)
             for k, b in enumerate(BANDS)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stars on the stamps, and no warning
        inputs = model_inputs(table, feature_set="psf_shape", uses_images=True, cutouts=noise,
                              psf=given, psf_beta_range={b: (3.0, 6.5) for b in BANDS})
    np.testing.assert_allclose(inputs.features[0, :5], [1.1, 1.2, 1.3, 1.4, 1.5], rtol=1e-6)
    np.testing.assert_allclose(inputs.features[0, 5:], [3.2, 4.2, 5.2, 6.2, 6.5], rtol=1e-6)
    np.testing.assert_allclose(inputs.columns["psf_beta_z"], 7.2, rtol=1e-6)


def test_a_band_given_as_a_measurement_brings_its_index_and_the_others_are_measured():
    """``psf=`` mixing a `PSFMeasurement` (u) with FWHMs (the other bands): u's index is
    the measurement's, the others' are measured on the stamps, as for FWHMs alone."""
    from sourceclf.psf import PSFMeasurement

    table = Table({"id": np.arange(40)})
    stamps = _moffat_stamps(40, 2.5)
    fwhm = FWHM_PIXELS * SDSS_PIXEL_SCALE
    given = {b: fwhm for b in BANDS}
    given["u"] = PSFMeasurement(fwhm=fwhm, fwhm_std=0.02, beta=5.0, ellipticity=0.05,
                                n_stars=20, sky_sigma=0.03, stars=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inputs = model_inputs(table, feature_set="psf_shape", uses_images=True,
                              cutouts=stamps, psf=given)
    np.testing.assert_allclose(inputs.columns["psf_beta_u"], 5.0)
    for b in "griz":
        np.testing.assert_allclose(inputs.columns[f"psf_beta_{b}"], 2.5, atol=0.15)
