import os
import re
import subprocess
import signal
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


def test_model_that_is_neither_shipped_nor_a_directory(catalog, tmp_path, capsys):
    code, _, err = run([catalog, "--model", tmp_path / "nonexistent-dir"], capsys)
    assert code == 2 and "unknown model" in err and "known models: " in err
    assert f"and there is no model directory '{tmp_path / 'nonexistent-dir'}' either" in err
    expect_error([catalog, "--model", tmp_path], capsys,
                 f"directory '{tmp_path}' holds no card.json (it is not a model directory)")
    expect_error([catalog, "--model", catalog], capsys, "is a file, not a model directory")


def test_unknown_input_extension_names_the_input(tmp_path, capsys):
    log = tmp_path / "s2d.log"
    log.write_text("not a catalog")
    code, _, err = run([log], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'" + str(log) + "'" in err and "_classified" not in err
    assert ".fits" in err and ".parquet" in err and ".ecsv" in err


def test_usage_errors_are_one_line(catalog, capsys):
    for argv in ([catalog, "--mc-samples", "abc"], [catalog, "--no-such-option"]):
        with pytest.raises(SystemExit) as info:
            main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert info.value.code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("sourceclf-classify: error: ")


@pytest.mark.parametrize("value, fragment", [
    ("100000000", "mc_samples must be at most 1000, got 100000000"),
    ("0", "mc_samples must be a positive integer, got 0"),
    ("-5", "mc_samples must be a positive integer, got -5"),
])
def test_mc_samples_bounds(catalog, capsys, value, fragment):
    # 100,000,000 passes ran out of memory with a traceback.
    out = catalog.with_name("o.fits")
    expect_error([catalog, "-o", out, "--model", "bayesian-margnet-photometry-sg",
                  "--mc-samples", value], capsys, fragment)
    assert not out.exists()


def test_truth_column_accuracy_and_coverage(tmp_path, demo, capsys):
    # Labels in any case, bytes from FITS decoded; accuracy per class and set coverage.
    demo["Label"] = np.char.lower(np.asarray(demo["class"], dtype=str)).astype("S")
    demo.remove_column("class")
    path = tmp_path / "labelled.fits"
    demo.write(path)
    code, out, err = run([path, "--truth", "label", "--confidence", "0.9", "--confidence",
                          "0.8", "--model", "margnet-photometry-sg", "--no-progress"], capsys)
    assert code == 0, err
    result = Table.read(tmp_path / "labelled_classified.fits")
    truth = np.char.upper(np.char.decode(np.asarray(result["Label"])))
    pred = np.char.strip(np.asarray(result["pred_class"], dtype=str))
    accuracy = np.mean(pred == truth)
    assert f"accuracy against 'label': {accuracy:.3f} on {len(demo)} classified rows" in out
    for label in ("GALAXY", "STAR"):
        part = truth == label
        assert f"{label} {np.mean(pred[part] == truth[part]):.3f} ({part.sum()})" in out
    for level, suffix in (("0.9", "90"), ("0.8", "80")):
        sets = np.char.strip(np.asarray(result[f"pred_set_{suffix}"], dtype=str))
        covered = np.mean([t in s.split("|") for t, s in zip(truth, sets)])
        assert f"coverage of the prediction sets at {level}: {covered:.3f}" in out


def test_missing_truth_column(catalog, capsys):
    out = catalog.with_name("o.fits")
    expect_error([catalog, "-o", out, "--truth", "true_class", "--model", "ugriz-sgq"], capsys,
                 "truth column 'true_class' is not a column of the catalog")
    assert not out.exists()


def test_numeric_truth_column(catalog, capsys):
    out = catalog.with_name("o.fits")
    expect_error([catalog, "-o", out, "--truth", "dered_r", "--model", "ugriz-sgq"], capsys,
                 "truth column 'dered_r' holds numbers (float64), not class names")
    assert not out.exists()


@pytest.fixture
def model_dir(tmp_path):
    """A tiny photometric model directory with its calibration."""
    import torch

    from sourceclf.models import ModelCard, PhotometricMLP, TorchClassifier

    torch.manual_seed(0)
    classes = ["GALAXY", "QSO", "STAR"]
    cfg = {"n_features": 5, "n_classes": 3, "hidden": [8], "act": "relu", "dropout": 0.0}
    card = ModelCard(name="tiny", architecture="mlp", config=cfg, feature_set="ugriz",
                     classes=classes)
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=30)
    calibration = Table({f"prob_{c.lower()}": proba[:, k] for k, c in enumerate(classes)})
    calibration["label"] = rng.choice(classes, 30)
    return TorchClassifier(PhotometricMLP(**cfg), card, calibration).save(tmp_path / "m")


def _edit_card(directory, **changes):
    import json

    card = json.loads((directory / "card.json").read_text())
    card.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del card[key]
    (directory / "card.json").write_text(json.dumps(card))


#: Damage done to a model directory -> what the one-line error says.
BROKEN_MODELS = {
    "card_not_an_object": (lambda d: (d / "card.json").write_text("[1, 2, 3]"),
                           "is not a JSON object"),
    "card_not_json": (lambda d: (d / "card.json").write_text("{not json"),
                      "is not readable JSON"),
    "card_lacks_classes": (lambda d: _edit_card(d, classes=None), "lacks the keys classes"),
    "card_lacks_digest": (lambda d: _edit_card(d, weights_sha256=None), "records no sha256"),
    "weights_outside": (lambda d: _edit_card(d, weights_file="../w.bin"),
                        "must name a file inside the model directory"),
    "weights_tampered": (lambda d: (d / "weights.safetensors").write_bytes(
        (d / "weights.safetensors").read_bytes()[:-1] + b"!"), "has sha256"),
    "calibration_missing": (lambda d: (d / "calibration.ecsv").unlink(),
                            "calibration file"),
    "calibration_corrupt": (lambda d: (d / "calibration.ecsv").write_text("garbage\x00"),
                            "calibration file"),
    "classes_unlike_weights": (lambda d: _edit_card(d, classes=["GALAXY", "STAR"]),
                               "returns 3 class scores per row, the card lists 2"),
    "feature_set_unlike_weights": (lambda d: _edit_card(d, feature_set="margnet24"),
                                   "does not take the card's inputs"),
}


@pytest.mark.parametrize("damage", sorted(BROKEN_MODELS))
def test_broken_model_directory_is_one_line(model_dir, catalog, capsys, damage):
    from sourceclf.models import load_model

    assert load_model(model_dir).name == "tiny"
    spoil, fragment = BROKEN_MODELS[damage]
    spoil(model_dir)
    out = catalog.with_name("o.fits")
    expect_error([catalog, "-o", out, "--model", model_dir], capsys, fragment)
    assert not out.exists()


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
    assert "accuracy against 'class': " in out and "by true class: GALAXY" in out


def test_precision_flag_round_trip(catalog, capsys):
    out_path = catalog.with_name("bf16.fits")
    code, out, err = run([catalog, "-o", out_path, "--precision", "bf16", "--no-progress"],
                         capsys)
    assert code == 0, err
    assert "margnet-photometry-sg v1.1 (bf16)" in out
    t = Table.read(out_path)
    assert t.meta["CLFPREC"] == "bf16" and "CLFCOMP" not in t.meta
    code, out, err = run([catalog, "-o", catalog.with_name("auto.fits"), "--precision",
                          "auto", "--device", "cpu", "--no-progress"], capsys)
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


HEAVY = ("torch", "sklearn", "mapie", "scipy")

#: What each start-up path may import of `HEAVY` (torch models need torch only: their
#: prediction sets apply stored thresholds in numpy; the shipped gradient-boosted trees
#: are walked in numpy for a small catalog, without scikit-learn; the default blend
#: needs torch for its network).
START_UP_PATHS = {
    "import": ("import sourceclf", []),
    "help": ("from sourceclf.cli import main; main(['--help'])", []),
    "list-models": ("from sourceclf.cli import main; main(['--list-models'])", []),
    "show-model": ("from sourceclf.cli import main; main(['--show-model', 'margnet-sgq'])", []),
    "classify-torch": ("from sourceclf.cli import main; main([CAT, '-o', OUT, '--no-progress', "
                       "'--model', 'margnet-photometry-sg'])", ["torch"]),
    "classify-sklearn": ("from sourceclf.cli import main; main([CAT, '-o', OUT, "
                         "'--no-progress', '--model', 'gbdt-photometry-sg'])", []),
    "classify-default": ("from sourceclf.cli import main; main([CAT, '-o', OUT, "
                         "'--no-progress'])", ["torch"]),
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


def test_help_does_not_load_astropy_table():
    # --help, a bad option: answered before any table is read (benchmarks/bench_startup.py
    # times it)
    code = ("import sys\nfrom sourceclf.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('astropy.table' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False"


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
    ("missing_bands", "lacks band(s) g, r, i, z"),
    ("same_file", "--image gives the same file"),
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
    elif case == "same_file":  # the demo frames carry FILTER: take it away
        from astropy.io import fits

        plain = tmp_path / "plain.fits"
        with fits.open(paths["r"]) as hdul:
            del hdul[0].header["FILTER"]
            hdul.writeto(plain)
        images["r"], images["i"] = f"r={plain}", f"i={tmp_path / '.' / 'plain.fits'}"
    argv = [cat, "-o", tmp_path / "out.ecsv"]
    for spec in images.values():
        argv += ["--image", spec]
    expect_error(argv, capsys, fragment)
    assert not (tmp_path / "out.ecsv").exists()


# demo_frames holds too few isolated stars to measure a PSF: the rows are flagged, and
# MargNet's columns cannot be measured on them (the image-only model is used).
@pytest.mark.filterwarnings("ignore:cannot measure the PSF")
@pytest.mark.filterwarnings("ignore:MargNet's catalog columns not measured")
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
    # The summary says why rows are flagged; frames' rows whose PSF is unknown point
    # to --inject-check.
    flagged = "classified but flagged: "
    line = next(x for x in out.splitlines() if x.startswith(flagged))
    assert " psf_unknown" in line and " edge" in line
    assert re.search(r"hint: rows flagged \d+ psf_unknown: ", out) and "--inject-check 150" in out
    assert "(docs: images, 'Seeing: the PSF of the frames and the trained range')" in out
    assert "not classified (see pred_flag): 1 (1 off_frame)" in out.splitlines()
    assert "none of the" not in err
    # The summary and the output say which bands' PSF could not be measured.
    said = next(x for x in out.splitlines() if x.startswith("PSF FWHM measured on the frames"))
    assert said.endswith("(their rows are flagged psf_unknown)")
    assert result.meta["CLFFPSF"] == said


@pytest.mark.parametrize("psf", [["1.2"], [f"{b}=1.2" for b in "ugriz"]])
def test_psf_option_gives_the_frames_psf(frame_files, tmp_path, capsys, psf):
    """The demo frames hold too few stars to measure their PSF: --psf gives it."""
    cat, paths = frame_files
    argv = [cat, "-o", tmp_path / "out.ecsv"]
    for band, path in paths.items():
        argv += ["--image", f"{band}={path}"]
    for spec in psf:
        argv += ["--psf", spec]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    result = Table.read(tmp_path / "out.ecsv")
    assert result.meta["CLFMODEL"] == "margnet-sgq"  # the columns are measured through it
    flags = np.ma.filled(np.ma.asarray(result["pred_flag"]), "").astype(str)
    assert not any("psf_unknown" in f for f in flags)
    on = flags != "off_frame"
    np.testing.assert_allclose(result["psf_fwhm_r"][on], 1.2, rtol=1e-6)
    # margnet-sgq reads the columns, measured with the neighbours fitted: stamps as cut
    assert result.meta["CLFNBSUB"] is False


@pytest.mark.filterwarnings("ignore:the Moffat index of the PSF")
def test_keep_neighbours_gives_the_image_model_the_stamps_as_cut(frame_files, tmp_path,
                                                                 capsys):
    cat, paths = frame_files
    argv = [cat, "--psf", "1.2", "--model", "margnet-cnn-sgq"]
    for band, path in paths.items():
        argv += ["--image", f"{band}={path}"]
    for option, subtracted in (([], True), (["--keep-neighbours"], False)):
        out = tmp_path / f"out{len(option)}.ecsv"
        code, _, err = run(argv + option + ["-o", out], capsys)
        assert code == 0, err
        assert Table.read(out).meta["CLFNBSUB"] is subtracted


@pytest.mark.filterwarnings("default::sourceclf.exceptions.SourceclfWarning")
def test_frames_in_other_units_are_said_once_for_all_chunks(frame_files, tmp_path, capsys):
    from astropy.io import fits

    cat, paths = frame_files
    argv = [cat, "-o", tmp_path / "out.fits", "--chunk-size", "2", "--psf", "1.2"]
    for band, path in paths.items():
        with fits.open(path) as hdul:
            counts = tmp_path / f"counts-{band}.fits"
            fits.PrimaryHDU(hdul[0].data * 200.0, header=hdul[0].header).writeto(counts)
        argv += ["--image", f"{band}={counts}"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert err.count("do not look like SDSS corrected frames") == 1
    assert "sky_out_of_range" in out  # the summary's flag counts


@pytest.mark.filterwarnings("default::sourceclf.exceptions.SourceclfWarning")
def test_cutouts_in_other_units_are_flagged_and_said_once(frame_files, tmp_path, capsys):
    """--cutouts stamps carry no frame: the sky of their borders is judged, once a run
    although each chunk measures its own."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from sourceclf.cutouts import make_cutouts

    cat, paths = frame_files
    positions = Table.read(cat)
    images = {}
    for band, path in paths.items():
        with fits.open(path) as hdul:
            images[band] = (hdul[0].data.astype(np.float32), WCS(hdul[0].header))
    cut = make_cutouts(table=positions, images=images)
    on = cut.flags != "off_frame"
    positions[on].write(tmp_path / "on.ecsv")
    stamps = tmp_path / "stamps.fits"
    fits.PrimaryHDU(cut.data[on] * 200.0).writeto(stamps)
    argv = [tmp_path / "on.ecsv", "-o", tmp_path / "out.ecsv", "--cutouts", stamps,
            "--chunk-size", "2", "--psf", "1.2"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert err.count("the stamps (their borders' sky) do not look like SDSS") == 1
    result = Table.read(tmp_path / "out.ecsv")
    # With --psf MargNet's columns are measured on the stamps, as on frames.
    assert result.meta["CLFMODEL"] == "margnet-sgq"
    assert all("sky_out_of_range" in f for f in result["pred_flag"])


@pytest.mark.parametrize("psf, fragment", [
    (["-1"], "--psf must be a positive FWHM in arcsec, got '-1'"),
    (["wide"], "--psf takes a FWHM in arcsec, got 'wide'"),
    (["r=1.2"], "--psf lacks band(s) u g i z"),
    (["r=1.2", "r=1.3"], "--psf gives band r twice"),
    (["y=1.2", "r=1.3"], "--psf takes one FWHM for every band, or BAND=FWHM"),
])
def test_psf_option_errors(catalog, tmp_path, capsys, psf, fragment):
    argv = [catalog, "-o", tmp_path / "o.fits"]
    for spec in psf:
        argv += ["--psf", spec]
    expect_error(argv, capsys, fragment)
    assert not (tmp_path / "o.fits").exists()


@pytest.mark.filterwarnings("default::sourceclf.exceptions.SourceclfWarning")
def test_frames_of_another_field_are_named(frame_files, tmp_path, capsys):
    """A catalog none of whose sources lies on the frames: each row is flagged off_frame
    and one warning asks whether the frames are of the catalog's field."""
    cat, paths = frame_files
    elsewhere = Table.read(cat)
    elsewhere["dec"] += 1.0  # a degree away: off frames a few arcmin wide
    elsewhere.write(tmp_path / "elsewhere.ecsv")
    argv = [tmp_path / "elsewhere.ecsv", "-o", tmp_path / "out.ecsv"]
    for band, path in paths.items():
        argv += ["--image", f"{band}={path}"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert set(Table.read(tmp_path / "out.ecsv")["pred_flag"]) == {"off_frame"}
    assert "not classified (see pred_flag): 6 (6 off_frame)" in out.splitlines()
    assert f"warning: none of the 6 sources of {tmp_path / 'elsewhere.ecsv'} lies on the " \
        "frames of all five bands given: are they all frames of the catalog's field?" in err
    assert err.count("none of the") == 1


def test_summary_counts_each_flag_reason(capsys):
    from sourceclf.cli import _suggest_injection_check
    from sourceclf.streaming import StreamSummary

    table = Table({"pred_class": np.ma.masked_array(["STAR", "GALAXY", "STAR", "QSO", ""],
                                                    mask=[0, 0, 0, 0, 1]),
                   "pred_flag": ["crowded;blended", "crowded", "", "empty_set:0.9",
                                 "off_frame"]})
    table.meta["CLFMODEL"] = "margnet-sgq"
    summary = StreamSummary.from_table(table)
    assert summary.flag_counts == {"crowded": 2, "blended": 1, "empty_set:0.9": 1}
    assert summary.unclassified_counts == {"off_frame": 1}
    assert "not classified (see pred_flag): 1 (1 off_frame)" in summary.lines()
    assert "classified but flagged: 3 (2 crowded, 1 blended, 1 empty_set:0.9)" in \
        summary.lines()
    _suggest_injection_check(summary)
    hint = capsys.readouterr().out
    assert hint.startswith("hint: rows flagged 2 crowded, 1 blended: ")
    assert "(docs: images, 'Crowded frames: each source fitted with its neighbours')" in hint
    # After the crowded frame's warning, which points to the docs, the hint does not again.
    from sourceclf import cli

    from sourceclf.exceptions import CrowdedFrameWarning, SourceclfWarning

    cli._SHOWN.clear()
    cli._show_warning("another warning", SourceclfWarning, "x.py", 1)
    _suggest_injection_check(summary)  # not the crowded frame's: the pointer stays
    assert "(docs: images, 'Crowded frames" in capsys.readouterr().out
    cli._show_warning("the r frame is crowded: 42% ...", CrowdedFrameWarning, "x.py", 1)
    try:
        _suggest_injection_check(summary)
    finally:
        cli._SHOWN.clear()
    assert capsys.readouterr().out.startswith(
        "hint: rows flagged 2 crowded, 1 blended: --inject-check 150 measures how margnet-sgq")
    summary.flag_counts = {"empty_set:0.9": 1}
    _suggest_injection_check(summary)
    assert capsys.readouterr().out == ""


def test_a_warning_repeated_by_every_chunk_is_printed_once(capsys):
    """Each chunk of a catalog classified on the same frames warns the same: the command
    prints each text once a run (main empties the record)."""
    from sourceclf import cli
    from sourceclf.exceptions import SourceclfWarning

    cli._SHOWN.clear()
    for _ in range(3):
        cli._show_warning("the r frame is crowded: 42% ...", SourceclfWarning, "x.py", 1)
    cli._show_warning("another warning", SourceclfWarning, "x.py", 2)
    err = capsys.readouterr().err.splitlines()
    assert err == ["sourceclf-classify: warning: the r frame is crowded: 42% ...",
                   "sourceclf-classify: warning: another warning"]
    main(["--list-models"])
    assert not cli._SHOWN


@pytest.mark.parametrize("unbuffered", [True, False])
def test_a_reader_that_leaves_early_is_no_traceback(catalog, tmp_path, unbuffered):
    """``sourceclf-classify cat.fits | head -1``: the output is written, no traceback."""
    out = tmp_path / "out.fits"
    code = ("import os, sys\nr, w = os.pipe()\nos.close(r)\nos.dup2(w, 1)\n"
            "from sourceclf.cli import main\n"
            f"status = main([{str(catalog)!r}, '-o', {str(out)!r}, '--no-progress', "
            "'--model', 'gbdt-photometry-sg'])\nsys.stderr.write(f'status {status}\\n')\n")
    res = subprocess.run([sys.executable] + (["-u"] if unbuffered else []) + ["-c", code],
                         capture_output=True, text=True)
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
    assert f"status {128 + signal.SIGPIPE}" in res.stderr
    assert res.returncode == 0
    assert len(Table.read(out)) > 0


def test_truth_labels_the_model_does_not_predict_are_left_out_and_named(tmp_path, demo, capsys):
    """A typo (QSO_BA) or a class of another model (QSO for a star/galaxy model) counted as
    wrong before, without a word."""
    labels = np.asarray(demo["class"], dtype=str).astype("<U8")
    labels[:3], labels[3:5] = "QSO_BA", "QSO"
    demo["truth"] = labels
    path = tmp_path / "labelled.ecsv"
    demo.write(path)
    code, out, err = run([path, "--truth", "truth", "--model", "margnet-photometry-sg",
                          "--no-progress"], capsys)
    assert code == 0, err
    result = Table.read(tmp_path / "labelled_classified.ecsv")
    keep = np.isin(labels, ["GALAXY", "STAR"])
    pred = np.asarray(result["pred_class"], dtype=str)
    accuracy = np.mean(pred[keep] == labels[keep])
    assert (f"accuracy against 'truth': {accuracy:.3f} on {keep.sum()} classified rows"
            in out)
    assert ("left out of the accuracy: rows whose true class the model does not predict "
            "(it predicts GALAXY, STAR): QSO 2, QSO_BA 3") in out
    assert "QSO_BA 0.000" not in out


def test_output_over_a_cutouts_or_frame_file_is_refused(frame_files, tmp_path, capsys):
    cat, paths = frame_files
    argv = [cat, "--overwrite"]
    for band, path in paths.items():
        argv += ["--image", f"{band}={path}"]
    before = paths["g"].read_bytes()
    expect_error(argv + ["-o", paths["g"]], capsys, "output path equals the --image g file")
    assert paths["g"].read_bytes() == before


def test_by_a_text_column_is_one_line(tmp_path, demo, capsys):
    demo["field"] = ["north" if i % 2 else "south" for i in range(len(demo))]
    path = tmp_path / "cat.ecsv"
    demo.write(path)
    expect_error([path, "--by", "field", "--confidence", "0.9"], capsys,
                 "column 'field' holds str")


def test_rows_flagged_for_an_elongated_psf_point_to_the_psf_shape_docs(capsys):
    from sourceclf import cli
    from sourceclf.cli import _suggest_injection_check
    from sourceclf.streaming import StreamSummary

    table = Table({"pred_class": ["STAR", "GALAXY"], "pred_flag": ["psf_elongated", ""]})
    table.meta["CLFMODEL"] = "margnet-sgq"
    table.meta["CLFFPSF"] = 'PSF FWHM measured on the frames: u 1.50" g 1.40"'
    summary = StreamSummary.from_table(table)
    assert "classified but flagged: 1 (1 psf_elongated)" in summary.lines()
    assert 'PSF FWHM measured on the frames: u 1.50" g 1.40"' in summary.lines()
    cli._SHOWN.clear()
    _suggest_injection_check(summary)
    hint = capsys.readouterr().out
    assert hint.startswith("hint: rows flagged 1 psf_elongated: ")
    assert "(docs: images, 'PSF shape: more elongated than the shared fields')" in hint
