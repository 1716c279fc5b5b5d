import re
import numpy as np
import pytest
from astropy import units as u
from astropy.table import Column, MaskedColumn, QTable

from sourceclf.columns import ColumnFinder, clean_column, decode_strings
from sourceclf.exceptions import InvalidInputError


def test_sentinels_nan_inf_and_masks_become_nan():
    col = MaskedColumn([18.0, -9999.0, -999.0, np.nan, np.inf, 19.5],
                       mask=[False, False, False, False, False, True])
    values = clean_column(col)
    assert values[0] == 18.0
    assert np.isnan(values[1:]).all()


def test_non_detection_placeholders_become_nan():
    # 99 / 99.99 are survey placeholders for non-detections, not magnitudes.
    values = clean_column(Column([99.0, 99.99, 999.0, 41.0, 39.5, 25.1]))
    assert np.isnan(values[:4]).all()
    assert values[4:].tolist() == [39.5, 25.1]
    # Only magnitudes: a radius of 99 arcsec is a radius.
    assert clean_column(Column([99.0]), unit="arcsec")[0] == 99.0


def test_placeholder_magnitude_leaves_the_row_unclassified():
    from astropy.table import Table

    from sourceclf import classify

    t = Table({"u": [99.0, 19.5], "g": [18.2, 18.2], "r": [17.6, 17.6], "i": [17.4, 17.4],
               "z": [17.3, 17.3]})
    out = classify(t, model="ugriz-sgq", confidence=None)
    assert out["pred_class"].mask.tolist() == [True, False]
    assert out["pred_flag"][0].startswith("missing:")


def test_quantity_and_unit_columns_are_converted():
    assert clean_column(Column([1.0], unit="deg"), unit="arcsec")[0] == pytest.approx(3600)
    assert clean_column(u.Quantity([2.0], u.arcmin), unit="arcsec")[0] == pytest.approx(120)
    assert clean_column(u.Quantity([17.0], u.mag))[0] == 17.0
    assert clean_column(u.Magnitude([17.0], u.ABmag))[0] == 17.0


def test_unconvertible_unit_names_the_column():
    with pytest.raises(InvalidInputError, match="column 'deVRad_r' has unit 'pix'"):
        clean_column(Column([1.0], unit="pix"), unit="arcsec", name="deVRad_r")


def test_non_numeric_column_is_refused():
    with pytest.raises(InvalidInputError, match="must be numeric"):
        clean_column(Column(["a"]), name="r")


def test_finder_is_case_insensitive():
    finder = ColumnFinder(QTable({"DERED_R": [1.0] * u.mag}))
    assert finder.find("dered_r") == "DERED_R"
    assert finder.find("nothing") is None


def test_finder_rejects_non_tables():
    with pytest.raises(InvalidInputError, match="expected an astropy Table"):
        ColumnFinder({"r": [1.0]})


def _fluxes(mags, zero_point=22.5):
    return 10 ** (-0.4 * (np.asarray(mags) - zero_point))


@pytest.mark.parametrize("mags, zero_point", [
    (np.linspace(16, 21, 50), 22.5),    # bright, in nanomaggies
    (np.linspace(19, 22.5, 50), 22.5),  # faint: many fluxes look like magnitudes (2.5-25)
    (np.linspace(16, 21, 50), 8.9),     # in Jy
    (np.linspace(16, 17.2, 50), 22.5),  # within 1.2 mag (a factor 3), above 40: each value once
])
def test_plain_fluxes_read_as_magnitudes_are_refused(mags, zero_point):
    """Fluxes without a unit were read as magnitudes: most rows missing, the rest absurd,
    no word said."""
    table = Table({b: _fluxes(mags, zero_point) for b in "ugriz"})
    with pytest.raises(InvalidInputError) as excinfo:
        ColumnFinder(table).values("u")
    message = str(excinfo.value)
    assert "\n" not in message and "column 'u' has no unit" in message
    assert "not magnitudes" in message and "unit = 'nmgy'" in message
    with pytest.raises(InvalidInputError, match="column '[ugriz]' has no unit"):
        classify(table, model="ugriz-sgq")


def test_magnitudes_with_placeholders_colours_and_units_are_not_refused():
    mags = np.linspace(16, 21, 50)
    u_band = mags.copy()
    u_band[:40] = [99.99, 99.0, -9999.0, 999.0] * 10  # mostly non-detections: a few values
    table = Table({"u": u_band, "r": mags, "u_g": np.linspace(-0.5, 3.5, 50),
                   "g": Column(np.linspace(5, 9, 50), unit="mag"),  # bright, but said so
                   "i": Column(_fluxes(mags), unit="nmgy")})
    finder = ColumnFinder(table)
    assert np.isnan(finder.values("u")[:40]).sum() == 40
    np.testing.assert_allclose(finder.values("u")[40:], mags[40:])
    np.testing.assert_allclose(finder.values("u_g"), table["u_g"])
    np.testing.assert_allclose(finder.values("g"), table["g"])
    np.testing.assert_allclose(finder.values("i"), mags)
    assert np.isfinite(ColumnFinder(Table({"r": [99.99, 120.0, 0.5]})).values("r")).sum() == 1
    # A few placeholders of their own (99, 99.99, 999, each once) among 20 magnitudes.
    odd = np.r_[np.linspace(16, 21, 17), 99.0, 99.99, 999.0]
    assert np.isnan(ColumnFinder(Table({"r": odd})).values("r")).sum() == 3


def test_decode_strings():
    assert decode_strings(np.array([b"STAR  ", b"QSO"])).tolist() == ["STAR", "QSO"]
    assert decode_strings(np.array(["GALAXY "], dtype=object)).tolist() == ["GALAXY"]


# --- Column mapping (columns=, --column), suggestions, fluxes, aliases, units (issue 16) ---

import warnings  # noqa: E402

from astropy.io import fits  # noqa: E402
from astropy.table import Table  # noqa: E402

from sourceclf import calibrate, classify, classify_file, evaluate, train  # noqa: E402
from sourceclf.cli import main  # noqa: E402
from sourceclf.columns import (map_columns, parse_column_options,  # noqa: E402
                               suggest_columns)
from sourceclf.demo import demo_catalog  # noqa: E402
from sourceclf.exceptions import MissingColumnsError, SourceclfWarning  # noqa: E402
from sourceclf.features import compute_features  # noqa: E402

FOREIGN = {"u": "umag", "g": "gPSFMag", "r": "cModelMag_r", "i": "i_mag", "z": "MAG_Z"}


def foreign_catalog(n=40, random_state=3):
    """The demo catalog's ugriz magnitudes under other surveys' names, and the original."""
    demo = demo_catalog(n, random_state=random_state)
    t = Table({name: np.asarray(demo[band]) for band, name in FOREIGN.items()})
    t["class"] = demo["class"]
    return t, demo


def test_map_columns_is_a_view_and_leaves_the_catalog_alone():
    t, _ = foreign_catalog(5)
    view = map_columns(t, {"u": "umag", "R": "cmodelmag_r"})
    assert t.colnames == list(FOREIGN.values()) + ["class"]
    assert "u" in view.colnames and "r" in view.colnames and "umag" in view.colnames
    assert np.shares_memory(view["u"], t["umag"])
    assert np.shares_memory(view["r"], t["cModelMag_r"])
    assert map_columns(t) is t and map_columns(t, {}) is t


def test_classify_with_columns_matches_sdss_names_and_keeps_the_catalogs_names():
    t, demo = foreign_catalog()
    before = t.copy()
    ref = classify(demo, model="ugriz-sgq", confidence=0.9)
    out = classify(t, model="ugriz-sgq", confidence=0.9, columns=FOREIGN)
    assert out.colnames[:6] == t.colnames
    np.testing.assert_array_equal(out["prob_star"], ref["prob_star"])
    assert t.colnames == before.colnames and all((t[c] == before[c]).all() for c in t.colnames)
    # model='auto' chooses on the mapped names too.
    assert classify(t, columns=FOREIGN, confidence=None).meta["CLFMODEL"] == "ugriz-sgq"


def test_a_mapped_input_hides_the_catalogs_own_column_of_that_name():
    t, demo = foreign_catalog()
    t["u"] = 30.0  # e.g. a wrong or other-system u: the mapping wins, silently
    t["MODELMAG_U"] = 31.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", SourceclfWarning)
        out = classify(t, model="ugriz-sgq", confidence=None, columns=FOREIGN)
    ref = classify(demo, model="ugriz-sgq", confidence=None)
    np.testing.assert_array_equal(out["prob_star"], ref["prob_star"])
    assert (out["u"] == 30.0).all()


@pytest.mark.parametrize("columns, fragment", [
    ({"x_mag": "umag"}, "unknown input name 'x_mag'"),
    ({"dered_rr": "umag"}, "did you mean 'dered_r'?"),
    ({"u": "umagg"}, "the catalog has no column 'umagg' (did you mean 'umag'?)"),
    ({"u": "umag", "g": "umag"}, "maps both 'u' and 'g' to column 'umag'"),
    ({"u": "umag", "U": "gPSFMag"}, "gives input 'u' twice"),
    ({"u": 3}, "must map names to names"),
    (["u", "umag"], "columns must be a dict"),
])
def test_bad_mappings_get_one_line_errors(columns, fragment):
    t, _ = foreign_catalog(3)
    with pytest.raises(InvalidInputError) as info:
        classify(t, model="ugriz-sgq", columns=columns)
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["umag", "u_mag", "mag_u", "MAG_U", "psfMag_u", "cModelMag_u",
                                  "UMAG", "petroMag_u", "uPSFMag", "cModelFlux_u"])
def test_missing_columns_suggest_the_mapping(name):
    demo = demo_catalog(3)
    t = Table({b: demo[b] for b in "griz"})
    t[name] = demo["u"]
    with pytest.raises(MissingColumnsError) as info:
        compute_features(t, "ugriz")
    message = str(info.value)
    assert f"the catalog has '{name}': use columns={{'u': '{name}'}} (CLI: --column u={name})" \
        in message
    assert "\n" not in message


def test_suggestions_prefer_model_magnitudes_and_skip_present_inputs():
    t = Table({c: [1.0] for c in ("psfMag_r", "cModelMag_r", "u", "umag")})
    assert suggest_columns(t) == ("the catalog has 'cModelMag_r': use columns={'r': "
                                  "'cModelMag_r'} (CLI: --column r=cModelMag_r)")
    assert suggest_columns(Table({"r": [1.0]})) == ""


def test_sdss_fluxes_in_nanomaggies_become_magnitudes():
    flux = Table({"modelFlux_r": [1.0, 100.0, 0.0, -3.0, -9999.0]})
    assert ColumnFinder(flux).values("r", "modelFlux_r")[:2].tolist() == [22.5, 17.5]
    assert np.isnan(ColumnFinder(flux).values("modelFlux_r")[2:]).all()
    # A flux unit converts whatever the name; Jy as AB.
    assert clean_column(Column([1.0], unit="nmgy"))[0] == pytest.approx(22.5)
    assert clean_column(Column([3631.0], unit="Jy"))[0] == pytest.approx(0.0, abs=1e-12)
    assert clean_column(Column([10.0], unit="nanomaggies"))[0] == pytest.approx(20.0)


def test_classify_reads_model_fluxes_and_mapped_cmodel_fluxes():
    demo = demo_catalog(30, random_state=4)
    ref = classify(demo, model="ugriz-sgq", confidence=None)
    t = Table({b: np.asarray(demo[b]) for b in "ugiz"})
    t["modelFlux_r"] = 10 ** ((22.5 - np.asarray(demo["r"])) / 2.5)
    t["modelFlux_r"][0] = -0.5  # a negative flux: a non-detection, the row is left out
    out = classify(t, model="ugriz-sgq", confidence=None)
    np.testing.assert_allclose(out["prob_star"][1:], ref["prob_star"][1:], atol=1e-5)
    assert out["pred_class"].mask[0] and out["pred_flag"][0].startswith("missing:")
    t.rename_column("modelFlux_r", "cModelFlux_r")
    mapped = classify(t, model="ugriz-sgq", confidence=None, columns={"r": "cModelFlux_r"})
    np.testing.assert_array_equal(mapped["prob_star"], out["prob_star"])


def test_aliases_that_disagree_warn_and_say_which_is_used():
    demo = demo_catalog(10)
    t = Table({b: np.asarray(demo[b]) for b in "ugriz"})
    t["modelMag_u"] = t["u"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SourceclfWarning)
        classify(t, model="ugriz-sgq", confidence=None)  # equal values: no warning
    t["modelMag_u"] = t["u"] + 0.3
    with pytest.warns(SourceclfWarning,
                      match=r"columns 'u' and 'modelMag_u' both give input 'u' and their values "
                            r"differ; 'u' is used \(pass columns=\{'u': 'modelMag_u'\}"):
        classify(t, model="ugriz-sgq", confidence=None)


@pytest.mark.parametrize("unit", ["foo", "ABmag", "mag(AB)", "AB mag", "mags"])
def test_unit_strings_astropy_cannot_parse(unit):
    col = Column([17.0, 18.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy: "did not parse as unit"
        col.unit = unit
    if unit == "foo":
        with pytest.raises(InvalidInputError,
                           match="column 'dered_u' has unit 'foo', which is not a unit astropy "
                                 "knows"):
            clean_column(col, name="dered_u")
    else:
        assert clean_column(col).tolist() == [17.0, 18.0]
    with pytest.raises(InvalidInputError, match="cannot be converted to arcsec|not a unit"):
        clean_column(col, unit="arcsec", name="deVRad_u")


def test_classify_names_the_column_with_an_unknown_unit():
    demo = demo_catalog(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        demo["dered_u"].unit = "foo"
    with pytest.raises(InvalidInputError, match="column 'dered_u' has unit 'foo'"):
        classify(demo, model="margnet-photometry-sg")


def _fits_with_unit(path, demo, unit):
    """``demo`` as a FITS table whose dered_u has TUNIT ``unit`` written verbatim."""
    demo.write(path)
    fits.setval(path, f"TUNIT{demo.colnames.index('dered_u') + 1}", value=unit, ext=1)
    return path


@pytest.mark.filterwarnings("ignore::astropy.units.UnitsWarning")  # astropy's, on reading
def test_fits_tunit_abmag_and_foo_through_classify_and_the_cli(tmp_path, capsys):
    demo = demo_catalog(20, random_state=6)
    demo["class"] = demo["class"].astype(str)
    ref = classify(demo, model="margnet-photometry-sg", confidence=None)
    good = _fits_with_unit(tmp_path / "ab.fits", demo, "ABmag")
    bad = _fits_with_unit(tmp_path / "foo.fits", demo, "foo")
    good_table, bad_table = Table.read(good), Table.read(bad)
    out = classify(good_table, model="margnet-photometry-sg", confidence=None)
    np.testing.assert_array_equal(out["prob_star"], ref["prob_star"])
    with pytest.raises(InvalidInputError, match="column 'dered_u' has unit 'foo'"):
        classify(bad_table, model="margnet-photometry-sg")
    assert main([str(good), "--model", "margnet-photometry-sg", "--no-progress"]) == 0
    capsys.readouterr()
    assert main([str(bad), "--model", "margnet-photometry-sg", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "column 'dered_u' has unit 'foo'" in err[0], err
    assert not (tmp_path / "foo_classified.fits").exists()


def test_cli_column_option(tmp_path, capsys):
    t, demo = foreign_catalog(30)
    path = tmp_path / "other.fits"
    t.write(path)
    args = [str(path), "--no-progress", "--chunk-size", "16", "--threads", "1", "--device",
            "cpu"]  # bit for bit with the in-memory run: on the CPU (pad_rows)
    for name, column in FOREIGN.items():
        args += ["--column", f"{name}={column}"]
    assert main(args) == 0, capsys.readouterr().err
    out = Table.read(tmp_path / "other_classified.fits")
    assert out.colnames[:6] == t.colnames and out.meta["CLFMODEL"] == "ugriz-sgq"
    ref = classify(demo, model="ugriz-sgq", device="cpu")
    np.testing.assert_array_equal(out["prob_star"], ref["prob_star"])
    for bad, fragment in (["--column", "u"], "--column takes NAME=COLUMN (e.g. --column u=umag)"), \
            (["--column", "u=nothing"], "the catalog has no column 'nothing'"):
        assert main([str(path), "-o", str(tmp_path / "x.fits"), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], err
        assert not (tmp_path / "x.fits").exists()


def test_errors_name_the_mapped_column_when_auto_reads_a_sample_of_rows(monkeypatch):
    """model='auto' judges a sample of a large catalog's rows: errors raised there named
    sourceclf's column ('r') and told the user to give that column a unit."""
    import sourceclf.model_choice

    monkeypatch.setattr(sourceclf.model_choice, "CHOICE_SAMPLE_ROWS", 20)
    demo = demo_catalog(60, random_state=3)
    fluxes = Table({f"flux_{b}": 10 ** (-0.4 * (np.asarray(demo[b]) - 22.5)) for b in "ugriz"})
    with pytest.raises(InvalidInputError, match=r"column 'flux_[ugriz]' has no unit") as err:
        classify(fluxes, columns={b: f"flux_{b}" for b in "ugriz"})
    assert "--unit flux_" in str(err.value)


def test_cli_unit_option_reads_a_csv_of_fluxes(tmp_path, capsys):
    """A CSV holds no units: fluxes in it were refused (or, before, misread) with no way
    to say what they are on the command line."""
    demo = demo_catalog(40, random_state=3)
    fluxes = Table({f"flux_{b}": 10 ** (-0.4 * (np.asarray(demo[b]) - 22.5)) for b in "ugriz"})
    for suffix in (".csv", ".fits", ".parquet"):  # read whole, streamed, streamed
        fluxes.write(tmp_path / f"flux{suffix}")
    mapping = [a for b in "ugriz" for a in ("--column", f"{b}=flux_{b}")]
    units = [a for b in "ugriz" for a in ("--unit", f"flux_{b}=nmgy")]
    ref = classify(demo, model="ugriz-sgq", device="cpu", confidence=None)
    for suffix in (".csv", ".fits", ".parquet"):
        out_path = tmp_path / f"out{suffix}.ecsv"
        assert main([str(tmp_path / f"flux{suffix}"), "-o", str(out_path), "--model",
                     "ugriz-sgq", "--device", "cpu", "--no-progress", *mapping, *units]) == 0
        out = Table.read(out_path)
        assert str(out["flux_r"].unit) == "nmgy", suffix  # the output keeps the unit given
        np.testing.assert_allclose(out["prob_star"], ref["prob_star"], atol=1e-5)
    text = (tmp_path / "flux.csv").read_text().splitlines()  # a 'null': read as text
    header = text[0].split(",")
    row = text[3].split(",")
    row[header.index("flux_r")] = "null"
    text[3] = ",".join(row)
    (tmp_path / "null.csv").write_text("\n".join(text) + "\n")
    assert main([str(tmp_path / "null.csv"), "-o", str(tmp_path / "null.ecsv"), "--model",
                 "ugriz-sgq", "--no-progress", *mapping, *units]) == 0
    out, before = Table.read(tmp_path / "null.ecsv"), Table.read(tmp_path / "out.csv.ecsv")
    assert out["pred_flag"][2].startswith("missing:r")
    others = np.arange(len(out)) != 2
    np.testing.assert_array_equal(out["pred_class"][others], before["pred_class"][others])
    capsys.readouterr()
    for extra, fragment in (
            ([], "has no unit and holds numbers that are not magnitudes"),
            (["--unit", "flux_x=nmgy"], "units: the catalog has no column 'flux_x' (did you "
                                        "mean 'flux_"),
            (["--unit", "flux_r=foo"], "column 'flux_r' has unit 'foo'"),
            (["--unit", "flux_r"], "--unit takes COLUMN=UNIT (e.g. --unit flux_r=nmgy)")):
        assert main([str(tmp_path / "flux.csv"), "-o", str(tmp_path / "x.ecsv"),
                     *mapping, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], (extra, err)
        if not extra:  # the catalog's name, not sourceclf's
            assert re.search(r"column '(flux_[ugriz])' .*CLI: --unit \1=nmgy", err[0]), err
        assert not (tmp_path / "x.ecsv").exists()


def test_parse_column_options():
    assert parse_column_options(None) is None
    assert parse_column_options([" u = umag", "r=rmag"]) == {"u": "umag", "r": "rmag"}
    with pytest.raises(InvalidInputError, match="gives u twice"):
        parse_column_options(["u=a", "u=b"])


@pytest.mark.filterwarnings("ignore:the calibration data of model 'ugriz-sgq' have no QSO")
def test_classify_file_calibrate_train_and_evaluate_take_columns(tmp_path):
    t, demo = foreign_catalog(200, random_state=7)
    t.write(tmp_path / "in.fits")
    summary = classify_file(tmp_path / "in.fits", tmp_path / "out.fits", chunk_size=64,
                            progress=False, threads=1, columns=FOREIGN)
    assert summary.n_rows == 200
    recal = calibrate(t, model="ugriz-sgq", columns=FOREIGN)
    assert recal.card.training["calibration"]["n_calibration"] == 200
    assert "r" in recal.calibration.colnames  # the mapped r, kept for Mondrian bins
    result = evaluate(classify(t, model=recal, columns=FOREIGN), columns=FOREIGN)
    assert result.mag_column == "r" and result.per_bin is not None
    clf = train(t, model="dt", search=False, columns=FOREIGN)
    assert clf.feature_set == "ugriz"
    assert len(classify(t, model=clf, columns=FOREIGN, confidence=None)) == 200


def test_classify_dask_takes_columns():
    dd = pytest.importorskip("dask.dataframe")
    from sourceclf.dask import classify_dask

    t, demo = foreign_catalog(30)
    ddf = dd.from_pandas(t.to_pandas(), npartitions=3)
    out = classify_dask(ddf, columns=FOREIGN, confidence=None).compute()
    ref = classify(demo, model="ugriz-sgq", confidence=None)
    np.testing.assert_allclose(out["prob_star"].to_numpy(), ref["prob_star"], rtol=1e-6)
    assert "umag" in out.columns and "u" not in out.columns


def test_auto_choice_suggests_the_mapping_for_foreign_names():
    """With model='auto', a catalog of umag..zmag gets the mapping to use, in one line."""
    import sourceclf
    from sourceclf.exceptions import MissingColumnsError

    table = Table({f"{b}mag": np.linspace(17.0, 20.0, 5) for b in "ugriz"})
    with pytest.raises(MissingColumnsError) as info:
        sourceclf.classify(table)
    message = str(info.value)
    assert "\n" not in message
    assert "columns={'u': 'umag'," in message and "--column r=rmag" in message


def test_mondrian_by_a_mapped_column():
    """by='r' finds the catalog's own r column through columns=."""
    t, demo = foreign_catalog()
    ref = classify(demo, model="ugriz-sgq", confidence=0.9, by="r")
    out = classify(t, model="ugriz-sgq", confidence=0.9, by="r", columns=FOREIGN)
    np.testing.assert_array_equal(np.asarray(out["pred_set"]), np.asarray(ref["pred_set"]))
    assert out.meta["CLFGROUP"] == ref.meta["CLFGROUP"]


# -- SDSS's per-band array columns --------------------------------------------------------

def _as_arrays(table, kinds=("dered", "extinction", "deVRad", "psffwhm")):
    """``table`` as SDSS's photoObj files hold it: one (N, 5) column per quantity."""
    names = ("objid", "ra", "dec", "u", "g", "r", "i", "z", "class")
    out = Table({name: table[name] for name in names})
    for kind in kinds:
        out[kind.upper()] = np.column_stack([table[f"{kind}_{b}"] for b in "ugriz"])
    return out


def test_band_array_columns_are_read_band_by_band(tmp_path):
    from sourceclf.columns import band_array_views, map_columns
    from sourceclf.demo import demo_catalog

    catalog = demo_catalog(300, random_state=4)
    arrays = _as_arrays(catalog)
    arrays["PSF_FWHM"] = arrays["PSFFWHM"]  # would be taken for the output's psf_fwhm_<b>
    arrays["FLAGS3"] = np.zeros((300, 3), dtype=int)
    view = band_array_views(arrays)
    assert "EXTINCTION_r" in view.colnames and "DEVRAD_z" in view.colnames
    assert not any(n.startswith(("PSF_FWHM_", "FLAGS3_")) for n in view.colnames)
    assert arrays.colnames == list(_as_arrays(catalog).colnames) + ["PSF_FWHM", "FLAGS3"]
    np.testing.assert_array_equal(ColumnFinder(map_columns(arrays)).values("deVRad_g"),
                                  catalog["deVRad_g"])
    # A catalog with the per-band columns already keeps them.
    arrays["EXTINCTION_u"] = 9.0
    assert "EXTINCTION_r" not in band_array_views(arrays).colnames
    del arrays["EXTINCTION_u"], arrays["PSF_FWHM"], arrays["FLAGS3"]
    # The same classes from the arrays as from the per-band columns; the output keeps
    # the catalog's own columns.
    expected = classify(catalog, model="margnet-photometry-sg", progress=False)
    result = classify(arrays, model="margnet-photometry-sg", progress=False)
    np.testing.assert_allclose(result["prob_star"], expected["prob_star"], rtol=1e-6)
    assert result.colnames[:len(arrays.colnames)] == arrays.colnames
    assert "EXTINCTION_r" not in result.colnames
    # Streamed in chunks from a FITS file, as the command line reads photoObj files.
    arrays.write(tmp_path / "photoobj.fits")
    classify_file(tmp_path / "photoobj.fits", tmp_path / "out.fits", chunk_size=128,
                  model="margnet-photometry-sg", progress=False)
    streamed = Table.read(tmp_path / "out.fits")
    np.testing.assert_allclose(streamed["prob_star"], expected["prob_star"], rtol=1e-6)
    assert streamed["EXTINCTION"].shape == (300, 5)


def test_two_array_columns_that_disagree_in_every_band_warn_once():
    """A photoObj file gives MODELMAG and MODELFLUX, which differ (asinh against Pogson
    magnitudes) in all five bands: one warning names them all, not one per band."""
    mags = np.array([[19.0, 18.0, 17.5, 17.2, 17.0], [20.0, 19.0, 18.5, 18.2, 18.0]])
    t = Table({"MODELMAG": mags, "MODELFLUX": 10 ** (-0.4 * (mags + 0.3 - 22.5))})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        map_columns(t)
    messages = [str(w.message) for w in caught if issubclass(w.category, SourceclfWarning)]
    assert len(messages) == 1, messages
    assert messages[0].startswith("5 inputs are each given by two columns whose values differ")
    assert "'MODELMAG_u' over 'MODELFLUX_u'" in messages[0]
    assert "'MODELMAG_z' over 'MODELFLUX_z'" in messages[0]
    assert "pass columns={'u': 'MODELFLUX_u'}" in messages[0]


def test_numbers_read_as_text_with_null_markers_are_numbers():
    """A CSV writing 'null' for one missing magnitude is read as text by astropy."""
    column = Column(["18.5", "null", " N/A ", "19.25", "--", "nan"])
    values = clean_column(column, name="u")
    np.testing.assert_array_equal(values[[0, 3]], [18.5, 19.25])
    assert np.isnan(values[[1, 2, 4, 5]]).all()


def test_text_that_is_no_number_is_named_with_its_row():
    with pytest.raises(InvalidInputError) as excinfo:
        clean_column(Column(["18.5", "null", "bright"]), name="u")
    message = str(excinfo.value)
    assert "\n" not in message
    assert "column 'u' must be numeric: row 2 holds 'bright'" in message


def test_columns_that_differ_only_in_case_and_value_are_named():
    from sourceclf.columns import map_columns

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        map_columns(Table({"u": [19.0], "U": [18.0], "g": [17.0]}))
        map_columns(Table({"u": [19.0], "U": [19.0], "g": [17.0]}))  # the same values: silent
    texts = [str(w.message) for w in record]
    assert texts == ["columns 'u' and 'U' both give input 'u' and their values differ; 'u' is "
                     "used (pass columns={'u': 'U'} to use the other)"]


def test_a_column_of_arrays_is_named_with_its_values_per_row():
    with pytest.raises(InvalidInputError) as excinfo:
        clean_column(Column(np.zeros((20, 3))), name="u")
    assert str(excinfo.value) == "column 'u' must be one value per row, got 3 values in each row"
