"""MargNet's columns measured on stamps given without their frames (sourceclf.stamp_columns)."""

import warnings

import numpy as np
import pytest
from astropy.table import Table

from sourceclf.bands import BANDS
from sourceclf.exceptions import MissingColumnsError, SourceclfWarning

pytest.importorskip("galsim")
pytest.importorskip("photutils")

from sourceclf.classification import frame_columns  # noqa: E402
from sourceclf.stamp_columns import KNOWN_PSF_SHARE, columns_from_stamps  # noqa: E402


@pytest.fixture(scope="module")
def positions_and_stamps():
    """Simulated sources' stamps, rendered as from two fields of different seeing, and a
    table of positions with each row's psffwhm_<b>."""
    from sourceclf.simulate import render_stamps, simulate_catalog

    catalog = simulate_catalog(60, random_state=4)
    for b in BANDS:
        catalog[f"psffwhm_{b}"] = np.where(np.arange(60) % 2, 1.1, 1.7)
    stamps = render_stamps(catalog, random_state=1)
    table = Table({"ra": np.arange(60.0), "dec": np.zeros(60)})
    for b in BANDS:
        table[f"psffwhm_{b}"] = catalog[f"psffwhm_{b}"]
    return table, stamps


def test_each_row_is_measured_through_its_psffwhm(positions_and_stamps):
    table, stamps = positions_and_stamps
    table = table.copy()
    table["psffwhm_g"][0] = np.nan  # this row cannot be measured; the others can
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = columns_from_stamps(table, stamps)
    assert out is not table and "dered_r" not in table.colnames
    # Unmeasured in g: no g magnitude, and no radius in any band (as for frames).
    assert not np.isfinite(out["dered_g"][0]) and not np.isfinite(out["deVRad_r"][0])
    assert np.isfinite(out["dered_g"][1:]).all() and np.isfinite(out["deVRad_r"][1:]).all()
    assert "FWHM from each row's psffwhm_<b>" in out.meta["CLFPSF"]
    assert "CLFPSF" not in table.meta
    np.testing.assert_allclose(out["psffwhm_r"][1:], table["psffwhm_r"][1:])


def test_stamps_mostly_without_a_psf_are_not_measured(positions_and_stamps):
    table, stamps = positions_and_stamps
    table = table.copy()
    lacking = int(len(table) * (1 - KNOWN_PSF_SHARE)) + 1
    table["psffwhm_z"][:lacking] = -9999.0  # SDSS's "no value"
    with pytest.warns(SourceclfWarning, match=f"{lacking} of 60 rows lack a positive "
                                              r"psffwhm_<b> in some band; give psf=") as said:
        assert columns_from_stamps(table, stamps) is table
        frame_columns(table, None, stamps)
    # Each warning names the caller's line, not one inside sourceclf.
    assert [w.filename for w in said] == [__file__] * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert columns_from_stamps(table, stamps, quiet=True) is table
    table.remove_column("psffwhm_u")
    with pytest.raises(MissingColumnsError, match="give psf= .* for all five bands"):
        columns_from_stamps(table, stamps)
    measured = columns_from_stamps(table, stamps, psf=1.4)  # psf= stands for them all
    assert np.isfinite(measured["dered_r"]).all() and "FWHM from psf=" in measured.meta["CLFPSF"]


def test_stamps_with_holes_are_measured_but_not_read_for_the_shared_sky_and_shape(
        positions_and_stamps):
    """Stamps make_cutouts flags (here all NaN, set to 0) do not enter the sky noise and
    Moffat indices that every row is fitted with: the other rows' columns are those of the
    same rows measured without them.  Their own rows are kept, unmeasured."""
    table, stamps = positions_and_stamps
    stamps = np.array(stamps)
    holed = np.arange(len(table)) % 3 == 0
    stamps[holed] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = columns_from_stamps(table, stamps)
        alone = columns_from_stamps(table[~holed], stamps[~holed])
    for name in ("dered_r", "deVRad_r", "u_g", "dered_z"):
        np.testing.assert_array_equal(out[name][~holed], alone[name])
    assert out.meta["CLFPSF"] == alone.meta["CLFPSF"].replace("(40 rows)", "(60 rows)")
    # The flagged rows keep their place; here their stamps hold no measurement at all (NaN,
    # set to 0), so their columns are NaN, not the faintest luptitude of a stamp of zeros.
    assert len(out) == len(table) and np.isnan(out["dered_r"][holed]).all()


def test_a_catalog_file_of_positions_and_stamps_is_classified_chunk_by_chunk(
        positions_and_stamps, tmp_path, monkeypatch):
    """sourceclf.streaming measures each chunk's stamps on its own rows (the first chunk's
    too, where auto chooses the model: it was given every row's stamps, and refused), and
    the first chunk's once (for auto's choice, then to classify it); classify reads a stamps
    file once, for the columns and the model."""
    from sourceclf import classify, cutouts, stamp_columns
    from sourceclf.streaming import classify_file

    table, stamps = positions_and_stamps
    table, stamps = table[1::2][:20], stamps[1::2][:20]  # one seeing: one PSF to draw
    table.write(tmp_path / "positions.fits")
    np.save(tmp_path / "stamps.npy", stamps)
    reads, measured = [], []
    from_file = cutouts._from_file
    monkeypatch.setattr(cutouts, "_from_file",
                        lambda *args, **kwargs: reads.append(args) or from_file(*args, **kwargs))
    measure = stamp_columns.measure_stamp_columns
    monkeypatch.setattr(stamp_columns, "measure_stamp_columns",
                        lambda source, *args, **kwargs: measured.append(len(source))
                        or measure(source, *args, **kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the simulated stamps' sets (not the point here)
        classify_file(tmp_path / "positions.fits", tmp_path / "out.fits", cutouts=stamps,
                      chunk_size=10, progress=False)
        assert measured == [10, 10]
        whole = classify(table, tmp_path / "stamps.npy")
    assert len(reads) == 1 and measured == [10, 10, 20]
    out = Table.read(tmp_path / "out.fits")
    out.convert_bytestring_to_unicode()
    assert out.meta["CLFMODEL"] == whole.meta["CLFMODEL"] == "margnet-sgq"
    assert "FWHM from each row's psffwhm_<b>" in out.meta["CLFPSF"]
    assert not any("missing" in flag for flag in out["pred_flag"])
    # Each chunk measures its stamps' Moffat index on its own rows: nearly the same classes.
    assert np.mean(out["pred_class"].astype(str) == whole["pred_class"].astype(str)) >= 0.9


def test_the_measurement_cache_keeps_the_stamps_columns_of_the_same_rows(
        positions_and_stamps, monkeypatch):
    """Within frame_measurement_cache the same stamps and rows are measured once; other
    psffwhm values, or another array, are measured again."""
    from sourceclf import classify, stamp_columns
    from sourceclf.classification import frame_measurement_cache

    table, stamps = positions_and_stamps
    table, stamps = table[1::2][:10], np.array(stamps[1::2][:10])
    measured = []
    measure = stamp_columns.measure_stamp_columns
    monkeypatch.setattr(stamp_columns, "measure_stamp_columns",
                        lambda source, *args, **kwargs: measured.append(len(source))
                        or measure(source, *args, **kwargs))
    wider = table.copy()
    for b in BANDS:
        wider[f"psffwhm_{b}"] = 1.3
    with warnings.catch_warnings(), frame_measurement_cache():
        warnings.simplefilter("ignore")
        first = classify(table, stamps, model="margnet-sgq", confidence=None)
        again = classify(table, stamps, model="margnet-sgq", confidence=None)
        assert len(measured) == 1
        classify(wider, stamps, model="margnet-sgq", confidence=None)
        classify(table, stamps.copy(), model="margnet-sgq", confidence=None)
    assert len(measured) == 3
    assert (first["pred_class"] == again["pred_class"]).all()


def _measurement(fwhm, beta):
    from sourceclf.psf import PSFMeasurement
    return PSFMeasurement(fwhm=fwhm, fwhm_std=0.02, beta=beta, ellipticity=0.05, n_stars=20,
                          sky_sigma=0.03, stars=None)


def test_a_psf_measurement_given_as_psf_brings_its_moffat_index(
        positions_and_stamps, monkeypatch):
    """A band given as a `PSFMeasurement` is fitted through its FWHM and index; a band
    given as a FWHM gets the index measured on the stamps, as before."""
    import sourceclf.stamp_columns as stamp_columns

    table, stamps = positions_and_stamps
    fwhm = {b: 1.4 for b in BANDS}
    seen = {}
    real = stamp_columns.measure_stamp_columns

    def spy(table, stamps, psf, sky, *, beta=None, **kwargs):
        seen.update(beta)
        return real(table, stamps, psf, sky, beta=beta, **kwargs)

    monkeypatch.setattr(stamp_columns, "measure_stamp_columns", spy)
    plain = columns_from_stamps(table, stamps, psf=fwhm)
    measured = {b: np.array(v) for b, v in seen.items()}
    given = dict(fwhm, r=_measurement(1.4, 6.5))
    out = columns_from_stamps(table, stamps, psf=given)
    np.testing.assert_array_equal(seen["r"], 6.5)
    assert not np.allclose(measured["r"], 6.5)
    for b in "ugiz":
        np.testing.assert_array_equal(seen[b], measured[b])
    assert "r 6.5 given as psf=" in out.meta["CLFPSF"]
    assert "given as psf=" not in plain.meta["CLFPSF"]
    # The index changes the r fits (and the model magnitudes, read through r's best
    # profile, as SDSS's), not the other bands' own radii.
    np.testing.assert_array_equal(out["deVRad_g"], plain["deVRad_g"])
    assert not np.array_equal(out["deVRad_r"], plain["deVRad_r"])


def test_frame_columns_keep_a_given_measurement_for_the_fits(monkeypatch):
    """``psf=`` given as each band's `PSFMeasurement` reaches the fits on the frames as it
    is (its Moffat index too), not as its FWHM alone; a FWHM stays a FWHM."""
    import sourceclf.classification as classification
    from sourceclf.demo import demo_frames

    catalog, frames = demo_frames(n=6, random_state=0)
    positions = catalog["ra", "dec"]
    handed = []

    def fake(table, frames, psf=None):
        handed.append(psf)
        return table.copy(), psf

    monkeypatch.setattr(classification, "measure_columns", fake)
    given = {b: _measurement(1.3, 2.9) for b in BANDS}
    classification.frame_columns(positions, frames, psf=given)
    classification.frame_columns(positions, frames, psf=1.3)
    assert all(handed[0][b] is given[b] for b in BANDS)
    assert handed[1] == {b: 1.3 for b in BANDS}
