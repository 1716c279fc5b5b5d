import pickle
import warnings

import numpy as np
import pytest
import torch
from astropy import units as u
from astropy.table import MaskedColumn, QTable, Table

from sourceclf import classify
from sourceclf.classification import choose_model
from sourceclf.exceptions import (InvalidInputError, MissingColumnsError, SourceclfWarning,
                                  UnknownModelError)
from sourceclf.models import load_model


def test_auto_picks_the_most_accurate_model_whose_domain_holds_the_rows(demo):
    from sourceclf.model_choice import explain_model_choice

    # Faint compact rows with MargNet's columns: every star/galaxy model's domain
    # holds them; the most accurate on held-out data is the blend.
    choice = explain_model_choice(demo)
    assert choice.name == "blend-photometry-sg" == choose_model(demo)
    assert "cannot return QSO" in choice.reason
    # Only ugriz magnitudes: the three-class model.
    plain = demo["u", "g", "r", "i", "z"]
    assert choose_model(plain) == "ugriz-sgq"
    # Four magnitudes brighter: outside the faint star/galaxy models' domain.
    bright = demo.copy()
    for b in "ugriz":
        bright[f"dered_{b}"] = bright[f"dered_{b}"] - 4 * u.mag
        bright[b] = bright[b] - 4 * u.mag
    choice = explain_model_choice(bright)
    assert choice.name == "ugriz-sgq" and "GALAXY/QSO/STAR" in choice.reason
    # bf16 asks for a torch model.
    assert choose_model(demo, precision="bf16") in ("margnet-photometry-sg",
                                                    "bayesian-margnet-photometry-sg")


def test_auto_counts_held_out_accuracies_within_their_noise_as_tied(demo, monkeypatch):
    """Twins trained on the same split (a Bayesian head on margnet-sgq's members) differ
    by a few test rows: the card's priority decides between them, not the noise."""
    from sourceclf import model_choice
    from sourceclf.models.registry import model_card

    choice = model_choice.explain_model_choice(demo, with_images=True)
    assert choice.name == "margnet-sgq"
    assert "tied within the noise" in choice.reason
    # Without the tie, the highest held-out accuracy wins, however small the lead.
    monkeypatch.setattr(model_choice, "ACCURACY_TIE", 0.0)
    best = max((model_card(name) for name, _, _ in choice.candidates),
               key=lambda card: (card.metrics["test"]["accuracy"], card.auto_priority))
    assert model_choice.explain_model_choice(demo, with_images=True).name == best.name


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
    assert out.meta["CLFMODEL"] == "blend-photometry-sg"
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


def test_reclassifying_leaves_nothing_of_the_earlier_run(demo):
    """A 3-class run with sets, then a 2-class run without: no stale prob_qso, sets or
    meta keys, and one warning naming what went."""
    three = classify(demo, model="ugriz-sgq", confidence=0.9)
    assert {"prob_qso", "pred_set", "pred_set_size"} <= set(three.colnames)
    with pytest.warns(SourceclfWarning, match="earlier classification") as record:
        two = classify(three, model="margnet-photometry-sg", confidence=None)
    assert [str(w.message) for w in record if "earlier" in str(w.message)] == [
        "the table held an earlier classification; its columns prob_qso, pred_set, "
        "pred_set_size are not written by this one and were removed"]
    assert not {"prob_qso", "pred_set", "pred_set_size"} & set(two.colnames)
    assert "CLFCONF" not in two.meta and "CLFAUTO" not in two.meta
    assert two.meta["CLFMODEL"] == "margnet-photometry-sg"
    assert two.colnames[:len(demo.colnames)] == demo.colnames  # the catalog's own stay
    with warnings.catch_warnings():
        warnings.simplefilter("error", SourceclfWarning)  # same columns again: no warning
        classify(two, model="margnet-photometry-sg", confidence=None)
        # sets at other levels replace the earlier sets, as asked: no warning either
        again = classify(three, model="ugriz-sgq", confidence=[0.8, 0.95])
    assert "pred_set" not in again.colnames and "pred_set_80" in again.colnames


def test_psf_without_images_is_said_to_be_ignored(demo):
    with pytest.warns(SourceclfWarning, match="psf= applies to images, and none were given"):
        out = classify(demo, psf=1.2, confidence=None)
    assert np.array_equal(_probs(out), _probs(classify(demo, confidence=None)))


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
    with pytest.raises(InvalidInputError, match="batch_size must be a positive integer"):
        classify(demo, batch_size=-1, confidence=None)


class _NaNOnBrightRows(torch.nn.Module):
    """Class logits from two colours; NaN where u - g (feature 1 of 'ugriz') exceeds 1.5."""

    def forward(self, features, images=None):
        logits = features[:, 1:3].clone()
        logits[features[:, 1] > 1.5] = float("nan")
        return logits


@pytest.mark.parametrize("confidence", [None, 0.9])
def test_rows_with_non_finite_model_output_are_flagged_not_classified(demo, confidence):
    # A row whose probabilities came out NaN was silently GALAXY (argmax of NaN), and
    # with prediction sets the whole call failed.
    from sourceclf.features import get_feature_set
    from sourceclf.models import ModelCard, TorchClassifier

    rng = np.random.default_rng(0)
    p_star = rng.uniform(size=50)
    calibration = Table({"prob_galaxy": 1 - p_star, "prob_star": p_star,
                         "label": np.where(p_star > 0.5, "STAR", "GALAXY")})
    card = ModelCard(name="nan-model", architecture="none", config={}, feature_set="ugriz",
                     classes=["GALAXY", "STAR"])
    clf = TorchClassifier(_NaNOnBrightRows(), card, calibration)
    broken = get_feature_set("ugriz").compute(demo).values[:, 1] > 1.5
    assert 0 < broken.sum() < len(demo)
    out = classify(demo, model=clf, confidence=confidence, device="cpu")
    assert np.array_equal(out["pred_class"].mask, broken)
    assert np.array_equal(out["prob_star"].mask, broken)
    assert set(out["pred_flag"][broken]) == {"nonfinite_output"}
    assert np.isfinite(out["prob_galaxy"].compressed()).all()
    assert set(out["pred_class"].compressed()) <= {"GALAXY", "STAR"}
    if confidence:
        assert np.array_equal(out["pred_set_size"].mask, broken)


@pytest.mark.parametrize("model", ["margnet-photometry-sg", "ugriz-sgq"])
def test_absurd_finite_magnitudes_never_give_nan(demo, model):
    # Absurd but finite photometry is refused as missing or saturates the network:
    # every row is either classified with finite probabilities or masked with a reason.
    table = demo[:6]
    for name in table.colnames:
        if table[name].dtype.kind == "f" and name not in ("ra", "dec"):
            table[name] = table[name].astype(np.float64)
            table[name][1], table[name][2] = 1e30, -1e30
            table[name][3] = 3e38 if name.lower().startswith("devrad") else table[name][3]
    out = classify(table, model=model, confidence=0.9, device="cpu")
    masked = np.ma.getmaskarray(out["pred_class"])
    assert masked[[1, 2]].all() and not masked[[0, 3, 4, 5]].any()
    assert all(str(f).startswith("missing:") for f in out["pred_flag"][[1, 2]])
    for c in ("galaxy", "star"):
        assert np.isfinite(out[f"prob_{c}"].compressed()).all()


@pytest.mark.parametrize("value, message", [
    (0, "must be a positive integer, got 0"),
    (-3, "must be a positive integer, got -3"),
    (2.5, "must be a positive integer, got 2.5"),
    ("10", "must be a positive integer, got '10'"),
    (True, "must be a positive integer, got True"),
    (100_000_000, "must be at most 1000, got 100000000"),
])
def test_mc_samples_is_checked_before_any_work(demo, value, message):
    # 100,000,000 passes ran out of memory with a traceback.
    with pytest.raises(InvalidInputError, match=message) as info:
        classify(demo, model="bayesian-margnet-photometry-sg", mc_samples=value)
    assert "\n" not in str(info.value)


# Precision and torch.compile -------------------------------------------------

#: torch.compile's own machinery issues this DeprecationWarning (torch 2.1x), which the
#: suite's "error" filter would turn into a compilation failure.
IGNORE_TORCH_JIT = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def demo_large():
    from sourceclf.demo import demo_catalog

    return demo_catalog(2000, random_state=0)


def _probs(table, classes=("galaxy", "star")):
    return np.column_stack([np.ma.getdata(table[f"prob_{c}"]) for c in classes])


def test_bf16_on_cpu_close_to_fp32(demo_large):
    fp32 = classify(demo_large, model="margnet-photometry-sg", confidence=None, device="cpu")
    bf16 = classify(demo_large, model="margnet-photometry-sg", confidence=None, device="cpu",
                    precision="bf16")
    assert fp32.meta["CLFPREC"] == "fp32" and bf16.meta["CLFPREC"] == "bf16"
    assert "CLFCOMP" not in bf16.meta
    ok = ~np.ma.getmaskarray(fp32["pred_class"])
    assert (ok == ~np.ma.getmaskarray(bf16["pred_class"])).all()
    # bfloat16 keeps 8 significant bits (about 3 decimal digits): logits of order 10
    # move by a few 1e-2, so probabilities by up to about 1e-2 (1.6e-2 measured on
    # this catalog, mean 4e-4).  Tolerance: 0.05 on any probability, 2e-3 on average.
    diff = np.abs(_probs(fp32)[ok] - _probs(bf16)[ok])
    assert diff.max() < 0.05
    assert diff.mean() < 2e-3
    np.testing.assert_allclose(_probs(bf16)[ok].sum(axis=1), 1, rtol=1e-5)
    # Only rows at the decision boundary may change class.
    same = np.asarray(fp32["pred_class"])[ok] == np.asarray(bf16["pred_class"])[ok]
    assert same.mean() >= 0.99


def test_auto_precision_on_cpu_is_exactly_fp32(demo):
    fp32 = classify(demo, confidence=None, device="cpu")
    auto = classify(demo, confidence=None, device="cpu", precision="auto")
    assert auto.meta["CLFPREC"] == "fp32"
    assert np.array_equal(_probs(fp32), _probs(auto))


def test_invalid_precision_and_compile_values(demo):
    for bad in ("fp16", "float32", None, 16):
        with pytest.raises(InvalidInputError, match="invalid precision") as info:
            classify(demo, confidence=None, precision=bad)
        assert "\n" not in str(info.value)
    with pytest.raises(InvalidInputError, match="compile must be True or False"):
        classify(demo, confidence=None, compile="yes")
    assert classify(demo[:3], confidence=None, precision="BF16").meta["CLFPREC"] == "bf16"


def test_sklearn_model_refuses_bf16_and_compile(demo):
    name = "gbdt-photometry-sg"
    for options, fragment in (({"precision": "bf16"}, "precision 'bf16' applies to torch"),
                              ({"compile": True}, "compile=True applies to torch")):
        with pytest.raises(InvalidInputError, match=fragment) as info:
            classify(demo, model=name, confidence=None, **options)
        assert "\n" not in str(info.value)
    plain = classify(demo, model=name, confidence=None)
    auto = classify(demo, model=name, confidence=None, precision="auto")
    assert np.array_equal(_probs(plain), _probs(auto))
    assert "CLFPREC" not in auto.meta


@IGNORE_TORCH_JIT
def test_compile_on_cpu(demo):
    # torch.compile works on the development CPU (6-25 s for the first compilation,
    # with gcc); without a C compiler this test checks the fallback instead.
    from sourceclf.classification import SourceclfWarning
    from sourceclf.models import load_model

    clf = load_model("margnet-photometry-sg")
    eager = classify(demo, model=clf, confidence=None, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SourceclfWarning)
        out = classify(demo, model=clf, confidence=None, device="cpu", compile=True)
        again = classify(demo[:17], model=clf, confidence=None, device="cpu", compile=True)
    failed = [w for w in caught if issubclass(w.category, SourceclfWarning)]
    assert out.meta["CLFCOMP"] is (not failed) and clf.is_compiled("cpu") is (not failed)
    assert len(failed) <= 1
    np.testing.assert_allclose(_probs(out), _probs(eager), atol=1e-5)
    np.testing.assert_allclose(_probs(again), _probs(eager)[:17], atol=1e-5)
    # The cache of compiled modules is not pickled (dask ships classifiers to workers).
    assert pickle.loads(pickle.dumps(clf))._compiled == {}


def test_compile_failure_falls_back_with_one_warning(demo, monkeypatch):
    from sourceclf.classification import SourceclfWarning
    from sourceclf.models import load_model

    def broken(module, *args, **kwargs):
        raise RuntimeError("no C compiler\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    clf = load_model("margnet-photometry-sg")
    eager = classify(demo, model=clf, confidence=None, device="cpu")
    with pytest.warns(SourceclfWarning, match="torch.compile failed on cpu .*no C compiler"
                      ) as record:
        out = classify(demo, model=clf, confidence=None, device="cpu", compile=True,
                       batch_size=16)
    assert len([w for w in record if issubclass(w.category, SourceclfWarning)]) == 1
    assert out.meta["CLFCOMP"] is False and not clf.is_compiled("cpu")
    assert np.array_equal(_probs(out), _probs(eager))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning for this classifier and device
        classify(demo, model=clf, confidence=None, device="cpu", compile=True)


def test_compiled_call_failure_falls_back(demo, monkeypatch):
    from sourceclf.classification import SourceclfWarning
    from sourceclf.models import load_model

    def lazy(module, *args, **kwargs):  # compilation errors surface on the first call
        def call(*inputs):
            raise RuntimeError("InductorError: compilation failed")
        return call

    monkeypatch.setattr(torch, "compile", lazy)
    clf = load_model("margnet-photometry-sg")
    with pytest.warns(SourceclfWarning, match="InductorError"):
        out = classify(demo, model=clf, confidence=None, device="cpu", compile=True)
    assert out.meta["CLFCOMP"] is False
    eager = classify(demo, model=clf, confidence=None, device="cpu")
    assert np.array_equal(_probs(out), _probs(eager))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@IGNORE_TORCH_JIT
def test_bf16_and_compile_on_cuda(demo_large):
    gpu = classify(demo_large, confidence=None, device="cuda", precision="bf16", compile=True)
    assert gpu.meta["CLFPREC"] == "bf16" and gpu.meta["CLFCOMP"] is True
    # bf16 keeps torch models only, so 'auto' may choose another model than in fp32
    # (the default blend holds trees): compare with the same model on the CPU.
    assert load_model(gpu.meta["CLFMODEL"]).kind == "torch"
    cpu = classify(demo_large, model=gpu.meta["CLFMODEL"], confidence=None, device="cpu")
    ok = ~np.ma.getmaskarray(cpu["pred_class"])
    diff = np.abs(_probs(cpu)[ok] - _probs(gpu)[ok])
    assert diff.max() < 0.05 and diff.mean() < 2e-3
    same = np.asarray(cpu["pred_class"])[ok] == np.asarray(gpu["pred_class"])[ok]
    assert same.mean() >= 0.99
    auto = classify(demo_large[:10], confidence=None, device="cuda", precision="auto")
    native = torch.cuda.get_device_capability() >= (8, 0)
    assert auto.meta["CLFPREC"] == ("bf16" if native else "fp32")


def test_pandas_dataframe_in_dataframe_out(demo):
    pd = pytest.importorskip("pandas")
    frame = demo.to_pandas()
    frame.index = pd.RangeIndex(100, 100 + len(frame))
    out = classify(frame, model="margnet-photometry-sg")
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(frame.index)
    expected = classify(demo, model="margnet-photometry-sg")
    assert list(out["pred_class"]) == list(expected["pred_class"])
    assert out.attrs["CLFMODEL"] == expected.meta["CLFMODEL"]
    assert list(frame.columns) == list(demo.colnames)  # input untouched


def test_pandas_columns_come_back_as_given(demo):
    pd = pytest.importorskip("pandas")
    frame = demo[:3].to_pandas()
    frame["objid"] = pd.Series([7.0, None, 9.0], dtype=object)  # None, not NaN
    frame["pred_class"] = ["old", "old", "old"]  # a re-classified frame
    out = classify(frame, model="margnet-photometry-sg", confidence=None)
    assert out["objid"].tolist() == [7.0, None, 9.0]
    assert out["objid"].dtype == object
    assert "old" not in set(out["pred_class"])  # replaced, not kept


@pytest.mark.parametrize("options, named", [({"precision": "bf16"}, "--precision bf16"),
                                            ({"compile": True}, "--compile")])
def test_options_no_reader_runs_with_are_named(options, named):
    """Plain ugriz: only the trees of ugriz-sgq read it, and they run neither in bf16 nor
    compiled; the error said the columns were missing."""
    table = Table({"u": [19.5], "g": [18.2], "r": [17.6], "i": [17.4], "z": [17.3]})
    with pytest.raises(InvalidInputError) as excinfo:
        choose_model(table, **options)
    message = str(excinfo.value)
    assert not isinstance(excinfo.value, MissingColumnsError)
    assert f"only torch models run with {named}" in message and "ugriz-sgq" in message


@pytest.mark.parametrize("batch_size", [0, True, 1.5, -3])
def test_a_batch_size_that_is_no_positive_integer_is_refused(batch_size):
    table = Table({"u": [19.5], "g": [18.2], "r": [17.6], "i": [17.4], "z": [17.3]})
    with pytest.raises(InvalidInputError, match="batch_size must be a positive integer"):
        classify(table, model="ugriz-sgq", batch_size=batch_size)


def test_one_psf_for_every_band_is_named_plainly():
    from sourceclf.inputs import psf_by_band

    with pytest.raises(InvalidInputError) as excinfo:
        psf_by_band(-1.0)
    assert str(excinfo.value).startswith("psf must be a positive FWHM")


def test_a_confidence_level_given_twice_is_one_level():
    table = Table({"u": [19.5, 20.1], "g": [18.2, 19.0], "r": [17.6, 18.6], "i": [17.4, 18.4],
                   "z": [17.3, 18.3]})
    out = classify(table, model="ugriz-sgq", confidence=[0.9, 0.8, 0.9])
    assert out.meta["CLFCONF"] == "0.9,0.8"
    assert [c for c in out.colnames if c.startswith("pred_set_size")] == \
        ["pred_set_size_90", "pred_set_size_80"]
