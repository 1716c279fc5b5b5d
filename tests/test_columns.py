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


def test_decode_strings():
    assert decode_strings(np.array([b"STAR  ", b"QSO"])).tolist() == ["STAR", "QSO"]
    assert decode_strings(np.array(["GALAXY "], dtype=object)).tolist() == ["GALAXY"]
