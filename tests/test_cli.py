import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.table import Table

from sourceclf.cli import default_output_path, main, table_format


@pytest.fixture
def catalog(tmp_path, demo):
    path = tmp_path / "cat.fits"
    demo.write(path)
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_default_output_path():
    assert default_output_path("/a/cat.fits").name == "cat_classified.fits"
    assert default_output_path("cat.fits.gz").name == "cat_classified.fits.gz"
    assert default_output_path("x.ecsv").name == "x_classified.ecsv"


@pytest.mark.parametrize("ext", [".fits", ".ecsv", ".vot", ".parquet"])
def test_round_trip_formats(tmp_path, demo, capsys, ext):
    src = tmp_path / f"cat{ext}"
    demo.write(src, format=table_format(src))
    code, out, err = run([src, "--no-progress"], capsys)
    assert code == 0, err
    result = Table.read(tmp_path / f"cat_classified{ext}", format=table_format(src))
    assert len(result) == len(demo)
    assert "pred_class" in result.colnames and "prob_star" in result.colnames
    assert "blend-photometry-sg" in out and "predicted:" in out
    assert "model 'auto' chose blend-photometry-sg" in out
    if ext in (".fits", ".ecsv"):   # VOTable and Parquet writers drop table meta
        assert result.meta["CLFMODEL"] == "blend-photometry-sg"


def test_fits_meta_and_strings_round_trip(catalog, capsys):
    code, _, err = run([catalog, "-o", catalog.with_name("o.fits")], capsys)
    assert code == 0, err
    t = Table.read(catalog.with_name("o.fits"))
    assert t.meta["CLFMODEL"] == "blend-photometry-sg"
    assert set(np.char.strip(np.asarray(t["pred_class"], dtype=str))) <= {"GALAXY", "STAR"}


def expect_error(argv, capsys, fragment):
    code, out, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0]


def test_missing_input(tmp_path, capsys):
    expect_error([tmp_path / "nope.fits"], capsys, "does not exist")


def test_truncated_fits(tmp_path, catalog, capsys):
    bad = tmp_path / "bad.fits"
    data = catalog.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    expect_error([bad], capsys, "bad.fits")
    assert not (tmp_path / "bad_classified.fits").exists()


def test_garbage_file(tmp_path, capsys):
    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a fits file at all" * 10)
    expect_error([bad], capsys, "cannot read")


def test_missing_columns(tmp_path, capsys):
    path = tmp_path / "few.ecsv"
    Table({"ra": [1.0], "u": [20.0]}).write(path)
    expect_error([path], capsys, "no shipped model can use")
    assert not (tmp_path / "few_classified.ecsv").exists()


def test_unknown_model(catalog, capsys):
    expect_error([catalog, "--model", "nope"], capsys, "known models: ")


def test_existing_output_needs_overwrite(catalog, capsys):
    out = catalog.with_name("o.fits")
    out.write_bytes(b"precious")
    expect_error([catalog, "-o", out], capsys, "--overwrite")
    assert out.read_bytes() == b"precious"
    code, _, err = run([catalog, "-o", out, "--overwrite"], capsys)
    assert code == 0, err
    assert len(Table.read(out)) == 60


def test_output_equal_to_input(catalog, capsys):
    expect_error([catalog, "-o", catalog, "--overwrite"], capsys, "equals the input")


def test_unknown_output_extension(catalog, capsys):
    expect_error([catalog, "-o", catalog.with_name("o.xyz")], capsys, "table format")


def test_bad_confidence(catalog, capsys):
    expect_error([catalog, "--confidence", "1.2"], capsys, "between 0 and 1")


def test_failure_mid_run_leaves_nothing(catalog, capsys, monkeypatch):
    # The second chunk fails after the first has been written: no partial output stays.
    import sourceclf.conformal as conformal

    original = conformal.add_prediction_sets
    calls = []

    def fail_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(conformal, "add_prediction_sets", fail_second_time)
    with pytest.raises(OSError, match="disk full"):
        main([str(catalog), "--no-progress", "--chunk-size", "20"])
    assert len(calls) == 2
    assert sorted(p.name for p in catalog.parent.iterdir()) == ["cat.fits"]


def test_list_models(capsys):
    code, out, _ = run(["--list-models"], capsys)
    assert code == 0 and "margnet-photometry-sg" in out and "ugriz-sgq" in out


def test_demo(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["--demo", "--no-progress"], capsys)
    assert code == 0, err
    assert (tmp_path / "sourceclf_demo.fits").exists()
    assert len(Table.read(tmp_path / "sourceclf_demo_classified.fits")) == 1000
    assert "accuracy against the demo catalog's true classes" in out


def test_precision_flag_round_trip(catalog, capsys):
    out_path = catalog.with_name("bf16.fits")
    code, out, err = run([catalog, "-o", out_path, "--precision", "bf16", "--no-progress"],
                         capsys)
    assert code == 0, err
    assert "margnet-photometry-sg v1.1 (bf16)" in out
    t = Table.read(out_path)
    assert t.meta["CLFPREC"] == "bf16" and "CLFCOMP" not in t.meta
    code, out, err = run([catalog, "-o", catalog.with_name("auto.fits"), "--precision",
                          "auto", "--no-progress"], capsys)
    assert code == 0, err
    assert Table.read(catalog.with_name("auto.fits")).meta["CLFPREC"] == "fp32"  # CPU


def test_bad_precision(catalog, capsys):
    expect_error([catalog, "-o", catalog.with_name("x.fits"), "--precision", "fp16"], capsys,
                 "invalid precision 'fp16'; use 'fp32', 'bf16' or 'auto'")
    assert not catalog.with_name("x.fits").exists()


@pytest.mark.filterwarnings("default::sourceclf.exceptions.SourceclfWarning")
def test_compile_flag_falls_back_without_compiler(catalog, capsys, monkeypatch):
    import torch

    def broken(module, *args, **kwargs):
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(torch, "compile", broken)
    out_path = catalog.with_name("compiled.fits")
    code, out, err = run([catalog, "-o", out_path, "--model", "margnet-photometry-sg",
                          "--compile", "--no-progress"], capsys)
    assert code == 0, err
    # The CLI prints sourceclf's warnings as one line each.
    assert "sourceclf-classify: warning:" in err and "torch.compile failed" in err
    assert "(torch.compile failed: eager)" in out
    assert Table.read(out_path).meta["CLFCOMP"] is False


HEAVY = ("torch", "sklearn", "mapie")

#: What each start-up path may import of `HEAVY` (torch models need torch only: their
#: prediction sets apply stored thresholds in numpy; scikit-learn models need
#: scikit-learn, whose skops loader imports torch as well when it is installed).
START_UP_PATHS = {
    "import": ("import sourceclf", []),
    "help": ("from sourceclf.cli import main; main(['--help'])", []),
    "list-models": ("from sourceclf.cli import main; main(['--list-models'])", []),
    "show-model": ("from sourceclf.cli import main; main(['--show-model', 'margnet-sgq'])", []),
    "classify-torch": ("from sourceclf.cli import main; main([CAT, '-o', OUT, '--no-progress', "
                       "'--model', 'margnet-photometry-sg'])", ["torch"]),
    "classify-sklearn": ("from sourceclf.cli import main; main([CAT, '-o', OUT, "
                         "'--no-progress', '--model', 'gbdt-photometry-sg'])",
                         ["sklearn", "torch"]),
}


@pytest.mark.parametrize("path", sorted(START_UP_PATHS))
def test_start_up_paths_import_only_what_they_need(path, catalog, tmp_path):
    # Timings are measured in benchmarks/bench_startup.py, not here.
    statement, expected = START_UP_PATHS[path]
    code = (f"import sys\nCAT, OUT = {str(catalog)!r}, {str(tmp_path / 'out.fits')!r}\n"
            f"try:\n    {statement}\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(sorted(expected))


def test_show_model_prints_describe_model(capsys, monkeypatch):
    from sourceclf.models import registry

    def describe(name):
        if name != "some-model":
            raise registry.UnknownModelError(f"unknown model '{name}'; known models: x")
        return "some-model 1.0: a model\n  inputs: ugriz"

    monkeypatch.setattr(registry, "describe_model", describe)
    code, out, err = run(["--show-model", "some-model"], capsys)
    assert code == 0 and out == "some-model 1.0: a model\n  inputs: ugriz\n" and not err
    expect_error(["--show-model", "nope"], capsys, "unknown model 'nope'")


def test_console_script_help():
    exe = os.path.join(os.path.dirname(sys.executable), "sourceclf-classify")
    if not os.path.exists(exe):
        pytest.skip("console script not installed")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--confidence" in res.stdout


@pytest.fixture
def frame_files(tmp_path):
    """A positions catalog and five small synthetic frames written to FITS."""
    pytest.importorskip("galsim")
    from sourceclf.demo import demo_frames

    catalog, frames = demo_frames(n=6, random_state=0)
    cat = tmp_path / "positions.ecsv"
    catalog["ra", "dec"].write(cat)
    paths = {}
    for band, hdu in frames.items():
        paths[band] = tmp_path / f"frame-{band}.fits"
        hdu.writeto(paths[band])
    return cat, paths


@pytest.mark.parametrize("case, fragment", [
    ("bad_band", "--image takes BAND=FILE"),
    ("no_equals", "--image takes BAND=FILE"),
    ("missing_file", "does not exist"),
    ("twice", "gives band z twice"),
    ("missing_bands", "lack band(s) g, r, i, z"),
])
def test_image_option_errors(frame_files, tmp_path, capsys, case, fragment):
    cat, paths = frame_files
    images = {b: f"{b}={p}" for b, p in paths.items()}
    if case == "bad_band":
        images["u"] = f"y={paths['u']}"
    elif case == "no_equals":
        images["u"] = str(paths["u"])
    elif case == "missing_file":
        images["u"] = f"u={tmp_path / 'nope.fits'}"
    elif case == "twice":
        images["z2"] = f"z={paths['r']}"
    elif case == "missing_bands":
        images = {"u": images["u"]}
    argv = [cat, "-o", tmp_path / "out.ecsv"]
    for spec in images.values():
        argv += ["--image", spec]
    expect_error(argv, capsys, fragment)
    assert not (tmp_path / "out.ecsv").exists()


# demo_frames holds too few isolated stars to measure a PSF: the rows are flagged.
@pytest.mark.filterwarnings("ignore:cannot measure the PSF")
def test_image_option_classifies(frame_files, tmp_path, capsys):
    cat, paths = frame_files
    argv = [cat, "-o", tmp_path / "out.ecsv"]
    for band, path in paths.items():
        argv += ["--image", f"{band}={path}"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    result = Table.read(tmp_path / "out.ecsv")
    assert result.meta["CLFMODEL"] == "margnet-cnn-sgq"
    assert list(result["pred_flag"][-2:]) == ["edge;psf_unknown", "off_frame"]
