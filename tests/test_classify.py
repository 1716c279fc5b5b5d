import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, QTable, Table

from sourceclf import classify
from sourceclf.classification import choose_model
from sourceclf.exceptions import InvalidInputError, MissingColumnsError, UnknownModelError


def test_auto_picks_margnet_for_margnet_columns(demo):
    assert choose_model(demo) == "margnet-photometry-sg"
    plain = demo["u", "g", "r", "i", "z"]
    assert choose_model(plain) == "ugriz-sgq"


def test_auto_without_usable_columns_lists_needs():
    with pytest.raises(MissingColumnsError, match="no shipped model can use"):
        classify(Table({"x": [1.0]}))


def test_column_contract_and_preservation(demo):
    demo["dered_r"].description = "dereddened r"
    demo.meta["SURVEY"] = "demo"
    out = classify(demo, confidence=None)
    assert out is not demo
    assert out.colnames[: len(demo.colnames)] == demo.colnames
    for name in ("pred_class", "prob_galaxy", "prob_star", "pred_flag"):
        assert name in out.colnames
    assert out["dered_r"].unit == u.mag
    assert out["dered_r"].description == "dereddened r"
    assert out.meta["SURVEY"] == "demo"
    assert out.meta["CLFMODEL"] == "margnet-photometry-sg"
    assert "pred_class" not in demo.colnames
    p = np.column_stack([np.asarray(out["prob_galaxy"]), np.asarray(out["prob_star"])])
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    expected = np.where(out["prob_galaxy"] > out["prob_star"], "GALAXY", "STAR")
    assert (np.asarray(out["pred_class"]) == expected).all()


def test_unclassifiable_rows_masked_with_reason(demo):
    demo["dered_u"][2] = -9999
    demo["psffwhm_g"][5] = np.nan
    demo["r_i"] = MaskedColumn(demo["r_i"], mask=np.arange(len(demo)) == 7)
    out = classify(demo, confidence=None)
    assert len(out) == len(demo)
    mask = np.ma.getmaskarray(out["pred_class"])
    assert np.flatnonzero(mask).tolist() == [2, 5, 7]
    assert out["pred_flag"][2] == "missing:dered_u"
    assert out["pred_flag"][5] == "missing:psffwhm_g"
    assert out["pred_flag"][7] == "missing:r_i"
    assert np.ma.getmaskarray(out["prob_star"])[[2, 5, 7]].all()
    assert (np.asarray(out["pred_flag"])[~mask] == "").all()
    assert out["r_i"].mask[7]


def test_results_do_not_depend_on_batch_size(demo):
    a = classify(demo, confidence=None, batch_size=7)
    b = classify(demo, confidence=None, batch_size=4096)
    assert (a["pred_class"] == b["pred_class"]).all()
    np.testing.assert_allclose(a["prob_star"], b["prob_star"], atol=1e-6)


def test_named_model_and_qtable_input(demo):
    qt = QTable(demo)
    out = classify(qt, model="ugriz-sgq", confidence=None)
    assert isinstance(out, QTable)
    assert {"prob_galaxy", "prob_qso", "prob_star"} <= set(out.colnames)
    assert set(out["pred_class"]) <= {"GALAXY", "QSO", "STAR"}


def test_reclassifying_replaces_columns(demo):
    once = classify(demo, confidence=None)
    twice = classify(once, model="ugriz-sgq", confidence=None)
    assert twice.colnames.count("pred_class") == 1
    assert "prob_qso" in twice.colnames


def test_empty_table(demo):
    out = classify(demo[:0], confidence=None)
    assert len(out) == 0 and "pred_class" in out.colnames


def test_bad_arguments(demo):
    with pytest.raises(InvalidInputError, match="astropy Table"):
        classify({"r": [1]})
    with pytest.raises(UnknownModelError):
        classify(demo, model="nope")
    with pytest.raises(InvalidInputError, match="strictly between 0 and 1"):
        classify(demo, confidence=1.5)
    with pytest.raises(InvalidInputError, match="invalid device"):
        classify(demo, device="warp-drive", confidence=None)
    with pytest.raises(InvalidInputError, match="batch_size must be positive"):
        classify(demo, batch_size=-1, confidence=None)
