"""Chunked classification of catalog files (sourceclf.classify_file)."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from sourceclf import classify, classify_file
from sourceclf.cli import main, table_format
from sourceclf.exceptions import InvalidInputError
from sourceclf.streaming import PRED_FLAG_MAX_WIDTH, StreamSummary, read_table

CHUNK = 7


def make_model(directory, seed=0):
    """A small, quickly built MLP on MargNet's features, with calibration data."""
    import torch

    from sourceclf.demo import demo_catalog
    from sourceclf.features import get_feature_set
    from sourceclf.models.base import TorchClassifier
    from sourceclf.models.card import ModelCard
    from sourceclf.models.margnet import PhotometricMLP
    from sourceclf.training import calibration_table

    torch.manual_seed(seed)
    cat = demo_catalog(400, random_state=seed + 100)
    x = get_feature_set("margnet24").compute(cat).values
    classes = ["GALAXY", "STAR"]
    y = (np.asarray(cat["class"]) == "STAR").astype(int)
    config = {"n_features": 24, "n_classes": 2, "hidden": [16], "act": "relu",
              "dropout": 0.0, "standardize": True}
    module = PhotometricMLP(**config)
    module.standardize.fit(x)
    # A few steps of training, so that probabilities and sets vary from row to row.
    opt = torch.optim.Adam(module.parameters(), lr=0.05)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(xt), yt).backward()
        opt.step()
    module.eval()
    card = ModelCard(name="tiny-test-mlp", description="test model", architecture="mlp",
                     config=config, feature_set="margnet24", classes=classes)
    clf = TorchClassifier(module, card)
    clf.calibration = calibration_table(clf, cat[200:], x[200:], y[200:])
    return clf.save(directory / "tiny-test-mlp")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def catalog():
    """40 rows; unclassifiable rows on both sides of the 7-row chunk borders."""
    from sourceclf.demo import demo_catalog

    cat = demo_catalog(40, random_state=5)
    cat["dered_r"][[6, 7]] = np.nan           # last row of chunk 0, first of chunk 1
    cat["psffwhm_g"][13] = -9999.0            # last row of chunk 1
    cat["u_g"] = MaskedColumn(cat["u_g"], mask=np.arange(40) == 14)
    cat["extinction_i"][39] = np.nan          # the very last row
    for name in ("dered_u", "deVRad_u", "psffwhm_u", "extinction_u", "dered_g",
                 "deVRad_g", "extinction_g"):  # a long pred_flag
        cat[name][20] = np.nan
    cat["note"] = np.where(np.arange(40) % 3 == 0, "x", "")   # empty strings get masked
    cat["ival"] = MaskedColumn(np.arange(40, dtype=np.int32), mask=np.arange(40) % 11 == 0)
    cat["dered_r"].description = "dereddened r"
    cat.meta["SURVEY"] = "demo"
    cat.meta["comments"] = ["a comment"]
    return cat


def assert_same_tables(a, b, *, flag_width=None):
    """Same columns, values, masks, units, descriptions and meta."""
    assert a.colnames == b.colnames
    assert a.meta == b.meta
    for name in a.colnames:
        x, y = a[name], b[name]
        assert type(x) is type(y), name
        assert x.unit == y.unit and x.description == y.description, name
        np.testing.assert_array_equal(np.ma.getmaskarray(x), np.ma.getmaskarray(y),
                                      err_msg=name)
        if name == "pred_flag" and flag_width is not None:
            assert y.dtype.itemsize // (4 if y.dtype.kind == "U" else 1) == flag_width
            xs, ys = np.asarray(x).astype(str), np.asarray(y).astype(str)
            short = np.char.str_len(xs) <= flag_width
            np.testing.assert_array_equal(xs[short], ys[short])
            assert all(v.endswith("...") and len(v) == flag_width for v in ys[~short])
            continue
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(np.ma.getdata(x), np.ma.getdata(y), err_msg=name)


def in_memory(path, out_path, **kwargs):
    """What classify on the whole table, written with Table.write, reads back as."""
    fmt = table_format(path)
    result = classify(Table.read(path, format=fmt), **kwargs)
    result.write(out_path, format=table_format(out_path))
    return Table.read(out_path, format=table_format(out_path))


@pytest.mark.parametrize("ext", [".fits", ".parquet", ".ecsv"])
def test_chunked_equals_in_memory(tmp_path, catalog, model, ext):
    src = tmp_path / f"cat{ext}"
    catalog.write(src)
    out = tmp_path / f"out{ext}"
    summary = classify_file(src, out, chunk_size=CHUNK, model=model, progress=False)
    expected = in_memory(src, tmp_path / f"ref{ext}", model=model)
    result = Table.read(out)
    assert len(result) == 40
    mask = np.ma.getmaskarray(result["pred_class"])
    assert np.flatnonzero(mask).tolist() == [6, 7, 13, 14, 20, 39]
    assert np.ma.getmaskarray(result["pred_set"])[[6, 7, 13, 14, 20, 39]].all()
    assert len(set(np.asarray(result["pred_set_size"])[~mask].tolist())) > 1
    width = min(PRED_FLAG_MAX_WIDTH, 300) if ext == ".fits" else None
    if ext == ".fits":
        assert len(str(expected["pred_flag"][20])) > PRED_FLAG_MAX_WIDTH  # gets cut
    assert_same_tables(expected, result, flag_width=width)
    assert summary.n_rows == 40 and summary.n_masked == 6
    assert summary.lines() == StreamSummary.from_table(expected).lines()


@pytest.mark.parametrize("pair", [(".fits", ".parquet"), (".parquet", ".fits"),
                                  (".ecsv", ".parquet"), (".fits", ".csv")])
def test_chunked_across_formats(tmp_path, catalog, model, pair):
    src = tmp_path / f"cat{pair[0]}"
    catalog.write(src)
    out = tmp_path / f"out{pair[1]}"
    classify_file(src, out, chunk_size=CHUNK, model=model, progress=False,
                  confidence=[0.8, 0.95])
    expected = in_memory(src, tmp_path / f"ref{pair[1]}", model=model, confidence=[0.8, 0.95])
    result = Table.read(out, format=table_format(out))
    assert "pred_set_80" in result.colnames and "pred_set_size_95" in result.colnames
    assert_same_tables(expected, result,
                       flag_width=PRED_FLAG_MAX_WIDTH if pair[1] == ".fits" else None)


def test_fits_bytes_do_not_depend_on_chunk_size(tmp_path, catalog, model):
    src = tmp_path / "cat.fits"
    catalog.write(src)
    outputs = []
    for k, size in enumerate([3, CHUNK, None]):
        out = tmp_path / f"out{k}.fits"
        classify_file(src, out, chunk_size=size, model=model, progress=False)
        outputs.append(out.read_bytes())
    assert all(o == outputs[0] for o in outputs[1:])
    assert len(outputs[0]) % 2880 == 0


@pytest.mark.parametrize("ext", [".fits", ".parquet"])
def test_empty_catalog(tmp_path, catalog, model, ext):
    src = tmp_path / f"cat{ext}"
    catalog[:0].write(src)
    out = tmp_path / f"out{ext}"
    summary = classify_file(src, out, model=model, progress=False)
    result = Table.read(out)
    assert len(result) == 0 and "pred_class" in result.colnames
    assert summary.n_rows == 0


def test_auto_model_is_chosen_once(tmp_path, catalog):
    src = tmp_path / "cat.fits"
    catalog.write(src)
    summary = classify_file(src, tmp_path / "out.fits", chunk_size=CHUNK, progress=False,
                            confidence=None)
    out = Table.read(tmp_path / "out.fits")
    assert out.meta["CLFMODEL"] == summary.meta["CLFMODEL"]
    assert "pred_set" not in out.colnames


class Boom(Exception):
    pass


@pytest.mark.parametrize(("ext", "error"), [(".fits", KeyboardInterrupt), (".parquet", Boom),
                                            (".ecsv", KeyboardInterrupt)])
def test_interrupted_run_leaves_old_state(tmp_path, catalog, model, monkeypatch, ext, error):
    import sourceclf.classification as classification

    src = tmp_path / f"cat{ext}"
    catalog.write(src)
    out = tmp_path / f"out{ext}"
    real = classification.classify
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise error("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(classification, "classify", flaky)
    with pytest.raises(error):
        classify_file(src, out, chunk_size=CHUNK, model=model, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]
    # An existing output is left exactly as it was.
    out.write_bytes(b"precious")
    calls.clear()
    with pytest.raises(error):
        classify_file(src, out, chunk_size=CHUNK, model=model, progress=False,
                      overwrite=True)
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, out.name])


def test_failing_write_leaves_no_file(tmp_path, catalog, model, monkeypatch):
    from sourceclf.streaming.fits_writer import FitsSink

    src = tmp_path / "cat.fits"
    catalog.write(src)
    real = FitsSink.write
    calls = []

    def failing(self, table):
        calls.append(1)
        if len(calls) == 2:
            self.fh.write(b"partial rows")
            raise OSError("disk full")
        return real(self, table)

    monkeypatch.setattr(FitsSink, "write", failing)
    with pytest.raises(OSError, match="disk full"):
        main([str(src), "--no-progress", "--model", str(model), "--chunk-size", "7"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits"]


def test_cli_chunk_size(tmp_path, catalog, model, capsys):
    src = tmp_path / "cat.parquet"
    catalog.write(src)
    code = main([str(src), "--no-progress", "--model", str(model), "--chunk-size", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "rows: 40" in out and "not classified (see pred_flag): 6" in out
    result = Table.read(tmp_path / "cat_classified.parquet")
    expected = in_memory(src, tmp_path / "ref.parquet", model=model)
    assert_same_tables(expected, result)
    code = main([str(src), "--no-progress", "--chunk-size", "0", "-o",
                 str(tmp_path / "x.fits")])
    out, err = capsys.readouterr()
    assert code == 2 and "chunk-size" in err and len(err.strip().splitlines()) == 1


def test_contract_errors(tmp_path, catalog, model):
    src = tmp_path / "cat.fits"
    catalog.write(src)
    with pytest.raises(InvalidInputError, match="equals the input"):
        classify_file(src, src, model=model, overwrite=True)
    (tmp_path / "o.fits").write_bytes(b"keep")
    with pytest.raises(InvalidInputError, match="overwrite"):
        classify_file(src, tmp_path / "o.fits", model=model)
    assert (tmp_path / "o.fits").read_bytes() == b"keep"
    with pytest.raises(InvalidInputError, match="does not exist"):
        classify_file(tmp_path / "nope.fits", tmp_path / "p.fits", model=model)
    with pytest.raises(InvalidInputError, match="table format"):
        classify_file(src, tmp_path / "p.xyz", model=model)
    with pytest.raises(InvalidInputError, match="chunk_size"):
        classify_file(src, tmp_path / "p.fits", model=model, chunk_size=0)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet" * 10)
    with pytest.raises(InvalidInputError, match="cannot read"):
        classify_file(bad, tmp_path / "p.fits", model=model)
    with pytest.raises(InvalidInputError, match="cannot read"):
        read_table(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "cat.fits", "o.fits"]


def test_whole_table_formats(tmp_path, catalog, model):
    # VOTable output is not streamed: classified in memory, same result.
    src = tmp_path / "cat.fits"
    catalog.write(src)
    out = tmp_path / "out.vot"
    classify_file(src, out, chunk_size=CHUNK, model=model, progress=False)
    expected = in_memory(src, tmp_path / "ref.vot", model=model)
    assert_same_tables(expected, Table.read(out, format="votable"))


def test_cutouts_array_is_sliced_with_chunks(tmp_path, catalog, model, monkeypatch):
    import sourceclf.classification as classification

    src = tmp_path / "cat.fits"
    catalog.write(src)
    seen = []
    real = classification.classify

    def spy(table, cutouts=None, **kwargs):
        seen.append(np.asarray(cutouts)[:, 0, 0, 0].tolist())
        with pytest.warns(classification.SourceclfWarning, match="does not use images"):
            return real(table, cutouts, **kwargs)

    monkeypatch.setattr(classification, "classify", spy)
    stamps = np.arange(40, dtype=np.float32)[:, None, None, None] * np.ones((1, 5, 4, 4))
    classify_file(src, tmp_path / "out.fits", chunk_size=16, model=model, progress=False,
                  cutouts=stamps)
    assert seen == [list(range(0, 16)), list(range(16, 32)), list(range(32, 40))]


def test_threads(tmp_path, catalog, model):
    import torch

    src = tmp_path / "cat.fits"
    catalog.write(src)
    before = torch.get_num_threads()
    classify_file(src, tmp_path / "one.fits", chunk_size=CHUNK, model=model, progress=False,
                  threads=1)
    assert torch.get_num_threads() == before
    classify_file(src, tmp_path / "auto.fits", chunk_size=CHUNK, model=model, progress=False)
    assert torch.get_num_threads() == before
    assert (tmp_path / "one.fits").read_bytes() == (tmp_path / "auto.fits").read_bytes()
    with pytest.raises(InvalidInputError, match="threads"):
        classify_file(src, tmp_path / "x.fits", model=model, threads=0)
    assert not (tmp_path / "x.fits").exists()


def test_parquet_written_by_pandas(tmp_path, catalog, model):
    # No astropy metadata: string widths from the longest value, nulls in an integer
    # column in some chunks only (the whole column reads as float with NaN).
    from astropy.utils.exceptions import AstropyUserWarning

    src = tmp_path / "cat.parquet"
    catalog.to_pandas().to_parquet(src)
    out = tmp_path / "out.parquet"
    with pytest.warns(AstropyUserWarning, match="table::len::"):
        classify_file(src, out, chunk_size=CHUNK, model=model, progress=False)
    with pytest.warns(AstropyUserWarning, match="table::len::"):
        expected = in_memory(src, tmp_path / "ref.parquet", model=model)
    assert expected["ival"].dtype.kind == "f"
    assert_same_tables(expected, Table.read(out))


def test_precision_reaches_every_chunk_and_the_thread_probe(tmp_path, catalog, model):
    from sourceclf.streaming.threads import ThreadChooser

    src = tmp_path / "cat.fits"
    catalog.write(src)
    out = tmp_path / "bf16.fits"
    summary = classify_file(src, out, chunk_size=CHUNK, model=model, progress=False,
                            precision="bf16")
    result = Table.read(out)
    assert result.meta["CLFPREC"] == "bf16" and summary.meta["CLFPREC"] == "bf16"
    assert "(bf16)" in summary.lines()[0]
    expected = in_memory(src, tmp_path / "ref.fits", model=model, precision="bf16")
    ok = ~np.ma.getmaskarray(expected["pred_class"])
    # bf16 rounding may depend on the batch shape; the chunks agree to bf16 accuracy.
    np.testing.assert_allclose(np.ma.getdata(result["prob_star"])[ok],
                               np.ma.getdata(expected["prob_star"])[ok], atol=0.02)
    with pytest.raises(InvalidInputError, match="invalid precision"):
        classify_file(src, tmp_path / "x.fits", model=model, precision="fp8")
    with pytest.raises(InvalidInputError, match="compile must be True or False"):
        classify_file(src, tmp_path / "x.fits", model=model, compile=1)
    assert not (tmp_path / "x.fits").exists()

    seen = []

    class Recorder:  # a torch model, as far as the chooser can tell
        def resolve_precision(self, precision, device):
            return precision

        def logits(self, features, **kwargs):
            seen.append(kwargs)

    chooser = ThreadChooser("auto", "cpu", "bf16", True)
    chooser._start(Recorder())
    chooser.sample = np.zeros((4, 24), dtype=np.float32)
    try:
        chooser._time(Recorder(), 1)
    finally:
        chooser.restore()
    assert seen and all(k["precision"] == "bf16" and k["compile"] is True for k in seen)
