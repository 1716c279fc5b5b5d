import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, Table

from sourceclf.bands import BANDS
from sourceclf.exceptions import InvalidInputError, MissingColumnsError, SourceclfWarning
from sourceclf.features import (FEATURE_SETS, available_feature_sets, compute_features,
                                get_feature_set)

MARGNET = FEATURE_SETS["margnet24"].names


def full_row_table(n=3):
    rng = np.random.default_rng(0)
    t = Table()
    for b in BANDS:
        t[f"dered_{b}"] = rng.uniform(18, 22, n)
        t[f"deVRad_{b}"] = rng.uniform(0, 1, n)
        t[f"psffwhm_{b}"] = rng.uniform(1, 1.5, n)
        t[f"extinction_{b}"] = rng.uniform(0.01, 0.2, n)
    obs = {b: t[f"dered_{b}"] + t[f"extinction_{b}"] for b in BANDS}
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        t[f"{a}_{b}"] = obs[a] - obs[b]
    return t, obs


def test_margnet24_order_and_values():
    t, _ = full_row_table()
    fm = compute_features(t, "margnet24")
    assert fm.names == MARGNET
    assert fm.values.dtype == np.float32
    assert fm.values.shape == (3, 24)
    np.testing.assert_allclose(fm.values[:, 0], t["dered_u"], rtol=1e-6)
    assert fm.valid.all()


def test_margnet24_derived_from_model_magnitudes():
    t, obs = full_row_table()
    reference = compute_features(t, "margnet24").values
    derived = Table()
    for b in BANDS:
        derived[f"modelMag_{b.upper()}"] = obs[b]
        derived[f"EXTINCTION_{b}"] = t[f"extinction_{b}"]
        derived[f"deVRad_{b}"] = t[f"deVRad_{b}"]
        derived[f"psfFWHM_{b}"] = t[f"psffwhm_{b}"]
    np.testing.assert_allclose(compute_features(derived, "margnet24").values, reference,
                               rtol=1e-5)


def test_extinction_derived_from_mag_minus_dered():
    t, obs = full_row_table()
    reference = compute_features(t, "margnet24").values
    for b in BANDS:
        t[b] = obs[b]
        del t[f"extinction_{b}"]
    for c in ("u_g", "g_r", "r_i", "i_z"):
        del t[c]
    np.testing.assert_allclose(compute_features(t, "margnet24").values, reference, rtol=1e-5)


def test_extinction_derived_from_the_colour_excess():
    """A catalog with model magnitudes and E(B-V) (any accepted name) gets SDSS's
    extinction: E(B-V) times Schlafly & Finkbeiner's A_b / E(B-V)."""
    from sourceclf.bands import EXTINCTION_COEFFICIENTS

    t, obs = full_row_table()
    ebv = np.array([0.01, 0.1, 0.8])
    for b in BANDS:
        t[f"extinction_{b}"] = ebv * EXTINCTION_COEFFICIENTS[b]
        t[f"dered_{b}"] = obs[b] - t[f"extinction_{b}"]
    reference = compute_features(t, "margnet24").values
    derived = Table({"E(B-V)": ebv})
    for b in BANDS:
        derived[f"modelMag_{b}"] = obs[b]
        derived[f"deVRad_{b}"] = t[f"deVRad_{b}"]
        derived[f"psffwhm_{b}"] = t[f"psffwhm_{b}"]
    np.testing.assert_allclose(compute_features(derived, "margnet24").values, reference,
                               rtol=1e-5)
    del derived["E(B-V)"]
    with pytest.raises(MissingColumnsError, match="or ebv"):
        compute_features(derived, "margnet24")


def test_sdss_extinction_is_the_colour_excess_times_the_coefficients(shared_data):
    """SDSS's own extinction_<b> (the calibObj stars of 004510-4-0030) has the ratios of
    sourceclf.bands.EXTINCTION_COEFFICIENTS."""
    from sourceclf.bands import EXTINCTION_COEFFICIENTS

    path = shared_data / "sdss_frame_004510-4-0030" / "calibobj_stars_004510-4-0030.fits"
    if not path.is_file():
        pytest.skip("calibObj stars of 004510-4-0030 absent")
    extinction = np.asarray(Table.read(path)["EXTINCTION"], float)
    ebv = extinction[:, BANDS.index("r")] / EXTINCTION_COEFFICIENTS["r"]
    for k, b in enumerate(BANDS):
        np.testing.assert_allclose(extinction[:, k], ebv * EXTINCTION_COEFFICIENTS[b],
                                   rtol=2e-3)


def test_ugriz_from_plain_dered_plus_extinction_and_quantities():
    t, obs = full_row_table()
    t["dered_r"].unit = u.mag
    fm = compute_features(t, "ugriz")
    np.testing.assert_allclose(fm.values[:, 0], obs["r"], rtol=1e-6)
    np.testing.assert_allclose(fm.values[:, 1], obs["u"] - obs["g"], rtol=1e-5)


def test_quantity_radii_in_other_units():
    t, _ = full_row_table(1)
    t["deVRad_r"] = t["deVRad_r"] / 3600 * u.deg
    fm = compute_features(t, "margnet24")
    ref = compute_features(full_row_table(1)[0], "margnet24")
    np.testing.assert_allclose(fm.values, ref.values, rtol=1e-5)


def test_sentinels_and_masks_mark_rows_invalid_with_reasons():
    t, _ = full_row_table(4)
    t["dered_u"][1] = -9999
    t["psffwhm_g"][2] = np.nan
    t["deVRad_z"] = MaskedColumn(t["deVRad_z"], mask=[False, False, False, True])
    fm = compute_features(t, "margnet24")
    assert fm.valid.tolist() == [True, False, False, False]
    assert fm.reasons().tolist() == ["", "missing:dered_u", "missing:psffwhm_g",
                                     "missing:deVRad_z"]


def test_derived_colour_inherits_missing_magnitude():
    t = Table({"u": [-9999.0], "g": [18.0], "r": [17.5], "i": [17.2], "z": [17.1]})
    fm = compute_features(t, "ugriz")
    assert not fm.valid[0]
    assert fm.reasons()[0] == "missing:u-g"


def test_missing_columns_listed_in_one_error():
    t, _ = full_row_table()
    del t["deVRad_r"], t["psffwhm_i"]
    with pytest.raises(MissingColumnsError) as err:
        compute_features(t, "margnet24")
    msg = str(err.value)
    assert "deVRad_r" in msg and "psffwhm_i" in msg and "\n" not in msg


def test_missing_columns_names_alternatives():
    t = Table({"u": [1.0], "g": [1.0], "i": [1.0], "z": [1.0]})
    with pytest.raises(MissingColumnsError, match=r"r \(from r or modelMag_r"):
        compute_features(t, "ugriz")


def test_unknown_feature_set():
    with pytest.raises(InvalidInputError, match="unknown feature set 'x'"):
        get_feature_set("x")


def test_available_feature_sets_and_empty_table():
    t, _ = full_row_table()
    assert available_feature_sets(t) == ["margnet24", "ugriz", "ugriz10", "ugriz15"]
    assert available_feature_sets(Table({"u": [1.0]})) == []
    fm = compute_features(t[:0], "ugriz")
    assert fm.values.shape == (0, 5)


# --- ugriz_psf: PSF minus model magnitudes (issue 16, item 12) ---

def psf_catalog(n=300, random_state=0):
    """Stars (psfMag ~ modelMag) and galaxies (psfMag fainter by ~0.6) with ugriz colours."""
    rng = np.random.default_rng(random_state)
    star = rng.random(n) < 0.5
    t = Table()
    t["class"] = np.where(star, "STAR", "GALAXY")
    r = rng.uniform(17, 21, n)
    offsets = {"u": 1.6, "g": 0.6, "r": 0.0, "i": -0.2, "z": -0.3}
    for b in BANDS:
        t[b] = r + offsets[b] + rng.normal(0, 0.3, n)
        t[f"psfMag_{b}"] = t[b] + np.where(star, 0.0, 0.6) + rng.normal(0, 0.05, n)
    return t


def test_ugriz_psf_features():
    t = psf_catalog(4)
    fm = compute_features(t, "ugriz_psf")
    assert fm.names == ("r", "u-g", "g-r", "r-i", "i-z", "psf-model_u", "psf-model_g",
                        "psf-model_r", "psf-model_i", "psf-model_z")
    np.testing.assert_allclose(fm.values[:, 7], t["psfMag_r"] - t["r"], rtol=1e-5)
    # PSF fluxes in nanomaggies serve too.
    flux = t.copy()
    flux.remove_column("psfMag_r")
    flux["psfFlux_r"] = 10 ** ((22.5 - np.asarray(t["psfMag_r"])) / 2.5)
    np.testing.assert_allclose(compute_features(flux, "ugriz_psf").values, fm.values,
                               atol=1e-5)
    with pytest.raises(MissingColumnsError, match=r"psf-model_u \(from psfMag_u"):
        compute_features(Table({b: [18.0] for b in BANDS}), "ugriz_psf")
    assert "ugriz_psf" in available_feature_sets(t)


def test_unused_psf_magnitudes_are_pointed_out():
    t = psf_catalog(4)
    with pytest.warns(SourceclfWarning, match="feature_set='ugriz_psf'"):
        compute_features(t, "ugriz")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SourceclfWarning)
        compute_features(t, "ugriz_psf")
        t.remove_columns([f"psfMag_{b}" for b in BANDS])
        compute_features(t, "ugriz")


def test_train_and_classify_on_psf_minus_model_magnitudes():
    from sourceclf import classify, train

    t = psf_catalog(300)
    clf = train(t, model="dt", feature_set="ugriz_psf", search=False)
    assert clf.feature_set == "ugriz_psf"
    new = psf_catalog(100, random_state=1)
    out = classify(new, model=clf, confidence=0.9)
    assert np.mean(out["pred_class"] == new["class"]) > 0.9
    # Under other names, through columns=.
    renamed = Table({f"{b}PSF": new[f"psfMag_{b}"] for b in BANDS})
    for b in BANDS:
        renamed[f"{b}mag"] = new[b]
    columns = {**{f"psfMag_{b}": f"{b}PSF" for b in BANDS}, **{b: f"{b}mag" for b in BANDS}}
    again = classify(renamed, model=clf, confidence=0.9, columns=columns)
    np.testing.assert_array_equal(again["prob_star"], out["prob_star"])
