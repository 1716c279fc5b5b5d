"""Chunked classification of catalog files (sourceclf.classify_file)."""

import contextlib

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from sourceclf import classify, classify_file
from sourceclf.cli import main, table_format
from sourceclf.exceptions import InvalidInputError, SourceclfWarning
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


@pytest.fixture(autouse=True)
def on_the_cpu(monkeypatch):
    """Device 'auto' is the CPU here, GPU or not: the bit-for-bit claims of chunked
    runs hold on the CPU (`sourceclf.models.base.pad_rows`); the GPU's chunked
    runs agree to a few 1e-7 (tests/test_cuda.py)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


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
                 "deVRad_g", "extinction_g", "dered_i", "deVRad_i", "psffwhm_i",
                 "extinction_i"):  # a pred_flag longer than PRED_FLAG_MAX_WIDTH
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
    with contextlib.ExitStack() as stack:
        if pair[1] == ".csv":  # meta is lost, and said once
            stack.enter_context(pytest.warns(SourceclfWarning, match="CSV cannot hold"))
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


def test_failing_write_leaves_no_file(tmp_path, catalog, model, monkeypatch, capsys):
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
    code = main([str(src), "--no-progress", "--model", str(model), "--chunk-size", "7"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write" in err and "disk full" in err
    assert len(err.strip().splitlines()) == 1
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
        first = cutouts["u"] if isinstance(cutouts, dict) else np.asarray(cutouts)[:, 0]
        seen.append(np.asarray(first)[:, 0, 0].tolist())
        with pytest.warns(classification.SourceclfWarning, match="does not use images"):
            return real(table, cutouts, **kwargs)

    monkeypatch.setattr(classification, "classify", spy)
    stamps = np.arange(40, dtype=np.float32)[:, None, None, None] * np.ones((1, 5, 4, 4))
    by_band = {b: stamps[:, k] for k, b in enumerate("ugriz")}  # one array per band
    for given in (stamps, by_band):
        seen.clear()
        classify_file(src, tmp_path / "out.fits", chunk_size=16, model=model, progress=False,
                      cutouts=given, overwrite=True)
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


@pytest.fixture(scope="module")
def partly_out_of_domain(tmp_path_factory):
    """A demo catalog whose first rows (only) lie outside the shipped model's domain."""
    from sourceclf.demo import demo_catalog

    cat = demo_catalog(120, random_state=4)
    for b in "ugriz":
        cat[f"dered_{b}"][:30] -= 8.0  # far brighter than anything it was trained on
    path = tmp_path_factory.mktemp("ood") / "cat.fits"
    cat.write(path)
    return path


@pytest.mark.parametrize("ext", [".ecsv", ".fits", ".parquet"])
def test_counts_in_meta_cover_every_chunk(tmp_path, partly_out_of_domain, ext):
    # Streamed ECSV failed ("a later chunk could not be streamed") when a count in meta
    # (CLFNOOD) differed between chunks; FITS and Parquet kept the first chunk's count.
    out = tmp_path / f"out{ext}"
    summary = classify_file(partly_out_of_domain, out, chunk_size=16, progress=False,
                            model="margnet-photometry-sg", threads=1)
    expected = classify(Table.read(partly_out_of_domain), model="margnet-photometry-sg")
    assert expected.meta["CLFNOOD"] > 0
    result = read_table(out)
    assert result.meta["CLFNOOD"] == summary.meta["CLFNOOD"] == expected.meta["CLFNOOD"]
    assert summary.n_out_of_domain == expected.meta["CLFNOOD"]
    assert len(result) == 120


def test_streamed_fits_gz_is_compressed(tmp_path, catalog, model):
    import gzip
    import shutil
    import subprocess

    src = tmp_path / "cat.fits"
    catalog.write(src)
    classify_file(src, tmp_path / "out.fits", chunk_size=CHUNK, model=model, progress=False)
    classify_file(src, tmp_path / "out.fits.gz", chunk_size=CHUNK, model=model, progress=False)
    packed = (tmp_path / "out.fits.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed) == (tmp_path / "out.fits").read_bytes()
    if shutil.which("gzip"):
        subprocess.run(["gzip", "-t", str(tmp_path / "out.fits.gz")], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.fits", "out.fits", "out.fits.gz"]


def test_one_labelled_bar_and_no_inner_bars(tmp_path, catalog, model, monkeypatch, capsys):
    import sourceclf.classification as classification
    from sourceclf.progress import progress_bar

    src = tmp_path / "cat.fits"
    catalog.write(src)
    inner = []
    real = classification.classify

    def with_a_bar(*args, **kwargs):
        with progress_bar(total=1, enabled=True) as bar:  # as a forward pass would
            inner.append(type(bar).__name__)
        return real(*args, **kwargs)

    monkeypatch.setattr(classification, "classify", with_a_bar)
    classify_file(src, tmp_path / "out.fits", chunk_size=CHUNK, model=model, progress=True)
    err = capsys.readouterr().err
    assert inner and set(inner) == {"_NoBar"}
    assert "classify cat.fits" in err and "row/s" in err and "40.0/40.0" in err


def test_thread_probe_shows_no_bar(monkeypatch):
    from sourceclf.streaming.threads import ThreadChooser

    seen = []

    class Model:
        def logits(self, features, **kwargs):
            seen.append(kwargs.get("progress"))

    import torch

    chooser = ThreadChooser("auto", "cpu")
    chooser.torch, chooser.initial = torch, torch.get_num_threads()
    chooser.sample = np.zeros((4, 24), dtype=np.float32)
    try:
        chooser._time(Model(), 1)
    finally:
        chooser.restore()
    assert seen and all(p is False for p in seen)


def test_fits_source_reads_chunks_as_table_read(tmp_path):
    from sourceclf.streaming.sources import FitsSource

    t = Table({"u16": np.arange(30, dtype=np.uint16), "flag": np.arange(30) % 2 == 0,
               "vec": np.ones((30, 3)), "s": np.where(np.arange(30) % 4, "ab", "")})
    t["f"] = np.where(np.arange(30) == 25, np.nan, 1.0)
    t["f"].unit = "mag"
    t["i"] = MaskedColumn(np.arange(30, dtype=np.int32), mask=np.arange(30) == 3)
    path = tmp_path / "t.fits"
    t.write(path)
    whole = Table.read(path)
    source = FitsSource(path)
    try:
        assert source.streamable and source.n_rows == 30
        chunks = list(source.chunks(8))
        assert source.masked_columns(8) == {"s", "f", "i"}
        assert source.string_widths() == {"s": 2}
    finally:
        source.close()
    assert [len(c) for c in chunks] == [8, 8, 8, 6]
    for k, chunk in enumerate(chunks):
        for name in whole.colnames:
            a, b = whole[name][8 * k:8 * k + 8], chunk[name]
            assert a.dtype == b.dtype and a.unit == b.unit, name
            np.testing.assert_array_equal(np.ma.getdata(a), np.ma.getdata(b))
    big = Table({"x": np.arange(2000.0)})
    big.write(tmp_path / "big.fits")
    (tmp_path / "big_short.fits").write_bytes((tmp_path / "big.fits").read_bytes()[:-5000])
    with pytest.raises(InvalidInputError, match="big_short.fits' is truncated"):
        FitsSource(tmp_path / "big_short.fits")
