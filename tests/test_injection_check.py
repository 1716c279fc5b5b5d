"""A model scored on known sources drawn into the user's frames (sourceclf.injection_check)."""

import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from sourceclf.bands import BANDS
from sourceclf.exceptions import InvalidInputError

pytest.importorskip("galsim")
pytest.importorskip("photutils")

from sourceclf.injection_check import (RELIABLE_BALANCED, injection_check,  # noqa: E402
                                       injection_sources)

SCALE = 0.396
FWHM = 1.3
#: Sky noise per pixel (nanomaggies): a quarter of SDSS's in each band, deeper frames
#: than SDSS's but within what `sourceclf.sky` takes without a flag.
SKY_SIGMA = {"u": 0.011, "g": 0.005, "r": 0.007, "i": 0.012, "z": 0.05}
#: Each band's frame shifted by its own fraction of a pixel, as SDSS's are.
SHIFTS = {"u": (0.0, 0.0), "g": (3.3, -2.7), "r": (-1.6, 0.4), "i": (5.5, 5.5), "z": (-4.2, 1.9)}


def _frames(size=360, n_stars=12, seed=5):
    """Frames of one field: sky noise and isolated Moffat stars of r about 16."""
    import galsim

    rng = np.random.default_rng(seed)
    stars = rng.uniform(25, size - 25, (n_stars, 2))
    frames = {}
    for b in BANDS:
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [150.0, 2.0]
        wcs.wcs.crpix = [size / 2 + SHIFTS[b][0], size / 2 + SHIFTS[b][1]]
        wcs.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
        data = rng.normal(0.0, SKY_SIGMA[b], (size + 40, size + 40))
        for x, y in stars:
            star = galsim.Image(41, 41, scale=SCALE)
            galsim.Moffat(beta=3.5, fwhm=FWHM).withFlux(400.0).drawImage(
                star, method="no_pixel", offset=(x % 1 - 0.5, y % 1 - 0.5))
            data[int(y):int(y) + 41, int(x):int(x) + 41] += star.array
        frames[b] = (data[20:-20, 20:-20].astype(np.float32), wcs)
    return frames


@pytest.fixture(scope="module")
def frames():
    return _frames()


@pytest.fixture(scope="module")
def check(frames):
    return injection_check(frames, model="margnet-cnn-sgq", n=16, random_state=3,
                           device="cpu")


def test_the_scores_are_those_of_the_rows(check, frames):
    rows = check.sources
    assert len(rows) == 16
    assert set(rows["truth"]) == {"point", "extended"}
    point, extended = rows["truth"] == "point", rows["truth"] == "extended"
    pred = np.asarray(rows["pred_class"].filled("")).astype(str)
    right = np.where(point, np.isin(pred, ["STAR", "QSO"]), pred == "GALAXY")
    np.testing.assert_array_equal(rows["right"], right)
    assert check.point_as_star_or_qso == pytest.approx(right[point].mean())
    assert check.extended_as_galaxy == pytest.approx(right[extended].mean())
    assert check.balanced == pytest.approx((right[point].mean() + right[extended].mean()) / 2)
    assert rows.meta["CLFINJN"] == 16 and rows.meta["CLFINJBA"] == round(check.balanced, 3)
    assert check.model == "margnet-cnn-sgq"
    assert not check.measured_columns  # the CNN reads no catalog columns
    assert 0.0 <= check.set_coverage <= 1.0
    # Every source landed inside every band's frame.
    for b in BANDS:
        x, y = frames[b][1].world_to_pixel_values(rows["ra"], rows["dec"])
        assert (x > 0).all() and (x < 359).all() and (y > 0).all() and (y < 359).all()


def test_scores_per_r_magnitude_add_up(check):
    bins = check.by_r_mag()
    assert list(bins["r_min"]) == [16.0, 18.0, 19.0, 20.0]
    assert bins["n_point"].sum() + bins["n_extended"].sum() == 16  # every r in 16-20.5
    rows = check.sources
    hits = np.nansum(bins["point_as_star_or_qso"] * bins["n_point"])
    assert hits == pytest.approx(np.sum(rows["right"] & (rows["truth"] == "point")))
    assert check.lines()[1].startswith("balanced by r: 16-18 ")


def test_isolated_sources_on_a_clean_field_are_classified(check):
    # Stars and galaxies of r 16-20.5 alone under 1.3" seeing: the model's home ground.
    assert check.balanced >= RELIABLE_BALANCED, check.lines()
    assert check.reliable and check.warning() == ""
    assert check.lines()[0].startswith("injection check: 16 known sources")


def test_the_frames_given_are_left_as_they_were(frames):
    again = _frames()
    for b in BANDS:
        np.testing.assert_array_equal(frames[b][0], again[b][0])


def test_more_sources_than_a_batch_go_into_further_copies(frames, monkeypatch):
    import sourceclf.injection_check as module

    monkeypatch.setattr(module, "BATCH", 10)
    two = injection_check(frames, model="margnet-cnn-sgq", n=16, random_state=4,
                          confidence=None, device="cpu")
    rows = two.sources
    assert len(rows) == 16 and "set_holds_truth" not in rows.colnames
    assert two.set_coverage is None and "CLFINJSC" not in two.meta
    # 16 sources at least 30 pixels apart fit one copy; split 10 + 6, the six
    # may land where the ten did (another copy of the frames).
    x, y = frames["r"][1].world_to_pixel_values(rows["ra"], rows["dec"])
    gaps = np.hypot(x[:10, None] - x[:10], y[:10, None] - y[:10]) + np.eye(10) * 1e9
    assert gaps.min() >= 30
    again = injection_check(frames, model="margnet-cnn-sgq", n=16, random_state=4,
                            confidence=None, device="cpu")
    np.testing.assert_array_equal(again.sources["ra"], rows["ra"])
    np.testing.assert_array_equal(again.sources["prob_star"], rows["prob_star"])


def test_each_frame_is_measured_once(monkeypatch):
    """On frames whose bands need no registration, the field's PSF and band offsets are
    measured once for the check and the drawing of the sources alike, and each copy with
    the sources drawn in once, by the classification."""
    import sourceclf.field_psf as field_psf
    import sourceclf.registration as registration

    monkeypatch.setattr(sys.modules[__name__], "SHIFTS", {b: (0.0, 0.0) for b in BANDS})
    frames = _frames()
    calls = {"offsets": 0, "psf": 0}
    offsets, measure = registration._band_offsets, field_psf.measure_psf

    def counted_offsets(*args, **kwargs):
        calls["offsets"] += 1
        return offsets(*args, **kwargs)

    def counted_psf(*args, **kwargs):
        calls["psf"] += 1
        return measure(*args, **kwargs)

    monkeypatch.setattr(registration, "_band_offsets", counted_offsets)
    monkeypatch.setattr(field_psf, "measure_psf", counted_psf)
    check = injection_check(frames, model="margnet-cnn-sgq", n=16, random_state=3,
                            device="cpu")
    assert len(check.sources) == 16
    assert calls == {"offsets": 2, "psf": len(BANDS)}


def _scored(check, wrong_point=0, wrong_extended=0, sources=None):
    """``check`` with its first ``wrong_point`` point-like and ``wrong_extended`` extended
    sources called wrong and the others right: its scores follow its rows."""
    import dataclasses

    rows = (check.sources if sources is None else sources).copy()
    truth = np.asarray(rows["truth"])
    right = np.ones(len(rows), bool)
    right[np.flatnonzero(truth == "point")[:wrong_point]] = False
    right[np.flatnonzero(truth == "extended")[:wrong_extended]] = False
    rows["right"] = right
    return dataclasses.replace(check, sources=rows)


def test_the_scores_follow_the_rows(check):
    """The scores are the rows' shares, not numbers stored beside them."""
    truth = np.asarray(check.sources["truth"])
    n_point, n_extended = int(np.sum(truth == "point")), int(np.sum(truth == "extended"))
    scored = _scored(check, wrong_point=1, wrong_extended=2)
    assert scored.point_as_star_or_qso == pytest.approx(1 - 1 / n_point)
    assert scored.extended_as_galaxy == pytest.approx(1 - 2 / n_extended)
    assert scored.balanced == pytest.approx((2 - 1 / n_point - 2 / n_extended) / 2)
    near = np.asarray(check.sources["on_brighter_source"], bool)
    expected = (np.mean(np.asarray(scored.sources["right"])[~near & (truth == "point")])
                + np.mean(np.asarray(scored.sources["right"])[~near & (truth == "extended")])) / 2
    assert scored.balanced_not_on_brighter == pytest.approx(expected)
    held = np.asarray(check.sources["set_holds_truth"], bool)
    assert scored.set_coverage == pytest.approx(
        (held[truth == "point"].mean() + held[truth == "extended"].mean()) / 2)


def test_the_rows_flagged_confused_are_scored_apart(check):
    """A check whose rows are flagged ``confused`` says how many, and how the rest
    score, in its lines and its meta; one without says nothing of it."""
    import dataclasses

    from sourceclf.crowding import FLAG_CONFUSED

    assert not check.confused.any()  # the test frames' isolated sources
    assert "CLFINJCF" not in check.meta and not any("confused" in x for x in check.lines())
    scored = _scored(check, wrong_point=1, wrong_extended=1)
    rows = scored.sources.copy()
    truth = np.asarray(rows["truth"])
    wrong = ~np.asarray(rows["right"], bool)
    flags = np.asarray(rows["pred_flag"]).astype(object)
    flags[wrong] = [";".join(x for x in (str(f), FLAG_CONFUSED) if x) for f in flags[wrong]]
    rows["pred_flag"] = flags.astype(str)
    confused = dataclasses.replace(scored, sources=rows)
    np.testing.assert_array_equal(confused.confused, wrong)
    assert confused.balanced_not_confused == 1.0  # the two wrong rows are the flagged ones
    assert confused.meta["CLFINJCF"] == round(2 / len(truth), 3)
    assert confused.meta["CLFINJBC"] == 1.0
    said = [x for x in confused.lines() if "flagged confused" in x]
    held = np.asarray(rows["set_holds_truth"], bool)[wrong]
    size = np.asarray(rows["pred_set_size"], float)[wrong].mean()
    coverage = confused.set_coverage_confused
    assert coverage == pytest.approx((held[truth[wrong] == "point"].mean()
                                      + held[truth[wrong] == "extended"].mean()) / 2)
    assert confused.set_size_confused == pytest.approx(size)
    assert confused.meta["CLFINJCS"] == round(coverage, 3)
    assert said == [f"{2 / len(truth):.0%} of them flagged confused (the fits left light "
                    "around them as bright as their own); the rest balanced 100.0%; the "
                    f"flagged ones' 90% sets hold the truth for {coverage:.1%} with "
                    f"{size:.1f} classes on average"]
    assert check.set_coverage_confused is None and check.set_size_confused is None
    from sourceclf.injection_check import META_COMMENTS

    assert {"CLFINJCF", "CLFINJBC", "CLFINJCS"} <= set(META_COMMENTS)


def test_every_meta_comment_fits_a_fits_card():
    """A comment too long for an 80-character card was truncated with a VerifyWarning."""
    from astropy.io import fits

    from sourceclf.injection_check import META_COMMENTS

    for key, comment in META_COMMENTS.items():
        header = fits.Header()
        header[key] = (0.123, comment)
        assert len(header.tostring(sep="\n").splitlines()[0]) == 80
        assert header.comments[key] == comment, key


def test_an_unreliable_check_says_so(check):
    truth = np.asarray(check.sources["truth"])
    poor = _scored(check, wrong_point=int(np.sum(truth == "point")) // 2,
                   wrong_extended=int(np.sum(truth == "extended")) // 2)
    assert not poor.reliable
    assert f"classified only {poor.balanced:.0%} (balanced) of 16 known sources" in \
        poor.warning()
    assert poor.lines()[-1] == poor.warning()


def test_the_check_gives_its_own_uncertainty(check):
    truth = np.asarray(check.sources["truth"])
    n_point, n_extended = int(np.sum(truth == "point")), int(np.sum(truth == "extended"))
    near = _scored(check, wrong_point=1, wrong_extended=1)
    p, e = 1 - 1 / n_point, 1 - 1 / n_extended
    se = 0.5 * np.sqrt(p * (1 - p) / n_point + e * (1 - e) / n_extended)
    assert near.balanced_se == pytest.approx(se)
    assert near.meta["CLFINJBE"] == round(se, 3)
    assert f"balanced {near.balanced:.1%} (+-{se:.1%})" in near.lines()[0]
    assert near.near_threshold  # within two standard errors of 0.90 with 16 sources
    assert "within two standard errors of 90%: a check of more sources (say" in near.lines()[2]
    far = _scored(check)
    assert far.balanced == 1.0
    # All right is not certain: each share counts as half a source from 1, and 16
    # sources all right do not tell 1.0 from 0.9.
    p, e = 1 - 0.5 / n_point, 1 - 0.5 / n_extended
    assert far.balanced_se == pytest.approx(
        0.5 * np.sqrt(p * (1 - p) / n_point + e * (1 - e) / n_extended))
    assert far.near_threshold and len(far.lines()) == 3
    from astropy.table import vstack

    many = _scored(check, sources=vstack([check.sources] * 10))  # 160 all right
    assert 0 < many.balanced_se < 0.01 and not many.near_threshold and len(many.lines()) == 2
    # No extended source: NaN scores are left out of the keywords (FITS cannot hold NaN).
    rows = check.sources.copy()
    rows["truth"] = "point"
    points = _scored(check, wrong_point=2, sources=rows)
    assert np.isnan(points.extended_as_galaxy) and np.isnan(points.balanced)
    assert np.isnan(points.balanced_se)
    assert {"CLFINJEX", "CLFINJBA", "CLFINJBE"}.isdisjoint(points.meta)
    assert points.meta["CLFINJPT"] == round(1 - 2 / 16, 3)


def test_bad_input_is_one_clear_error(frames):
    rng = np.random.default_rng(0)
    starless = {b: (rng.normal(0.0, SKY_SIGMA[b], frames[b][0].shape).astype(np.float32),
                    frames[b][1]) for b in BANDS}
    with pytest.raises(InvalidInputError, match="injection_check: .*band 'u'.*no other band's "
                                                "PSF stars.*the PSF of the frame's stars"):
        injection_check(starless, model="margnet-cnn-sgq", n=16)
    empty = {b: (np.zeros_like(frames[b][0]), frames[b][1]) for b in BANDS}
    with pytest.raises(InvalidInputError, match="frame of band 'u' holds no data"):
        injection_check(empty, model="margnet-cnn-sgq", n=16)
    with pytest.raises(InvalidInputError, match="reads no images"):
        injection_check(frames, model="margnet-photometry-sg", n=16)
    with pytest.raises(InvalidInputError, match="confidence must be one level"):
        injection_check(frames, confidence=[0.9, 0.95])
    with pytest.raises(InvalidInputError, match="n >= 10"):
        injection_check(frames, n=3)
    with pytest.raises(InvalidInputError, match="mc_samples"):
        injection_check(frames, mc_samples=0)
    with pytest.raises(InvalidInputError, match="precision"):
        injection_check(frames, precision="fp8")
    with pytest.raises(InvalidInputError, match=r"lacks band\(s\) z"):
        injection_check({b: frames[b] for b in BANDS[:4]}, model="margnet-cnn-sgq")
    lacking = injection_sources()
    lacking.remove_column("deVRad_u")
    with pytest.raises(InvalidInputError, match=r"lack column\(s\) deVRad_u"):
        injection_check(frames, model="margnet-cnn-sgq", sources=lacking)
    with pytest.raises(InvalidInputError, match="needs 1200 GALAXY rows"):
        injection_check(frames, model="margnet-cnn-sgq", n=2000, galaxy_fraction=0.6,
                        sources=injection_sources()[:1500])


def test_the_sources_are_classified_as_the_frames_own(frames, monkeypatch):
    """The conformity score, Monte Carlo passes and precision reach `classify`."""
    import sourceclf.injection_check as module

    seen = []

    class Seen(Exception):
        pass

    def spy(*args, **kwargs):
        seen.append(kwargs)
        raise Seen  # the arguments are what is checked: no need to classify

    monkeypatch.setattr(module, "classify", spy)
    with pytest.raises(Seen):
        injection_check(frames, model="margnet-cnn-sgq", n=10, random_state=3, score="aps",
                        mc_samples=7, precision="bf16", batch_size=5, device="cpu")
    expected = {"score": "aps", "mc_samples": 7, "precision": "bf16", "batch_size": 5,
                "device": "cpu"}
    assert {k: seen[0][k] for k in expected} == expected


def test_the_bundled_sources():
    sources = injection_sources()
    assert len(sources) == 2000
    assert set(sources["class"]) == {"STAR", "GALAXY"}
    assert 16.0 <= sources["r_mag"].min() and sources["r_mag"].max() < 20.5


def _write_frames(frames, folder):
    paths = {}
    for b in BANDS:
        paths[b] = folder / f"frame-{b}.fits"
        fits.PrimaryHDU(frames[b][0], header=frames[b][1].to_header()).writeto(paths[b])
    return paths


@pytest.mark.filterwarnings("ignore:CSV cannot hold the table's meta")
def test_command_line(frames, tmp_path, capsys, monkeypatch):
    import sourceclf.field_psf as psf_module
    from sourceclf.cli import main

    paths = _write_frames(frames, tmp_path)
    ra, dec = frames["r"][1].pixel_to_world_values([100.0, 200.0], [150.0, 250.0])
    Table({"ra": ra, "dec": dec}).write(tmp_path / "cat.fits")
    argv = [str(tmp_path / "cat.fits"), "--model", "margnet-cnn-sgq", "--no-progress",
            "--device", "cpu", "--inject-check", "16"] + \
        [f"--image={b}={paths[b]}" for b in BANDS]
    measured, measure = [], psf_module.measure_psf

    def counted(data, **options):
        measured.append(options.get("label"))
        return measure(data, **options)

    monkeypatch.setattr(psf_module, "measure_psf", counted)
    assert main(argv) == 0
    # Each frame's PSF is measured once, for the classification and the check alike
    # (the check draws its sources through it and gives it to classify).
    assert sorted(measured) == sorted(f"the frame of band '{b}'" for b in BANDS)
    out = capsys.readouterr().out
    assert "injection check: 16 known sources" in out
    rows = Table.read(tmp_path / "cat_classified_injection_check.ecsv")
    assert len(rows) == 16 and 0 <= rows.meta["CLFINJBA"] <= 1
    classified = Table.read(tmp_path / "cat_classified.fits")
    assert len(classified) == 2
    # The scores travel with the classified table, as header keywords.
    assert {k: classified.meta[k] for k in rows.meta if k.startswith("CLFINJ")} == \
        {k: v for k, v in rows.meta.items() if k.startswith("CLFINJ")}
    assert classified.meta["CLFINJOK"] == (rows.meta["CLFINJBA"] >= RELIABLE_BALANCED)
    assert fits.getheader(tmp_path / "cat_classified.fits", 1).comments["CLFINJBA"] == \
        "injection check: balanced accuracy"
    # A CSV output holds no meta: the command says where the scores are.
    assert main(argv + ["-o", str(tmp_path / "out.csv")]) == 0
    out = capsys.readouterr().out
    assert "out.csv is CSV, which holds no meta: the check's scores are in " in out
    assert (tmp_path / "out_injection_check.ecsv").exists()
    # Again without --overwrite: refused before anything is done.
    (tmp_path / "cat_classified.fits").unlink()
    assert main(argv) == 2
    assert "injection_check.ecsv' exists; pass --overwrite" in capsys.readouterr().err
    assert not (tmp_path / "cat_classified.fits").exists()


def test_command_line_needs_frames(tmp_path, capsys):
    from sourceclf.cli import main
    from sourceclf.demo import write_demo_catalog

    write_demo_catalog(tmp_path / "cat.fits", 5)
    assert main([str(tmp_path / "cat.fits"), "--inject-check", "50"]) == 2
    assert "--inject-check draws sources into frames: give them with --image" in \
        capsys.readouterr().err


@pytest.mark.filterwarnings("default::sourceclf.exceptions.SourceclfWarning")
def test_command_line_when_the_check_cannot_be_made(frames, tmp_path, capsys, monkeypatch):
    """A check that fails on the input is a warning, the classification kept; a bug is not."""
    import sourceclf.injection_check as module
    from sourceclf.cli import INJECT_CHECK_MIN, main

    assert INJECT_CHECK_MIN == module.MIN_SOURCES
    paths = _write_frames(frames, tmp_path)
    ra, dec = frames["r"][1].pixel_to_world_values([100.0], [150.0])
    Table({"ra": ra, "dec": dec}).write(tmp_path / "cat.ecsv")
    argv = [str(tmp_path / "cat.ecsv"), "--model", "margnet-cnn-sgq", "--no-progress",
            "--device", "cpu", "--inject-check", "20"] + \
        [f"--image={b}={paths[b]}" for b in BANDS]

    def no_psf(*args, **kwargs):
        raise InvalidInputError("injection_check: u: no PSF stars")

    monkeypatch.setattr(module, "injection_check", no_psf)
    assert main(argv) == 0
    assert "warning: injection check not made: injection_check: u: no PSF stars" in \
        capsys.readouterr().err
    classified = Table.read(tmp_path / "cat_classified.ecsv")
    assert len(classified) == 1 and not any(k.startswith("CLFINJ") for k in classified.meta)
    assert not (tmp_path / "cat_classified_injection_check.ecsv").exists()

    # The check made but its rows not written (a full disk): a warning, the output kept.
    monkeypatch.undo()
    import sourceclf.cli as cli

    def full(table, path, **kwargs):
        raise InvalidInputError(f"cannot write '{path}': No space left on device")

    monkeypatch.setattr(cli, "write_table", full)
    assert main(argv + ["--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "warning: the injection check's rows are not written: cannot write" in err
    assert len(Table.read(tmp_path / "cat_classified.ecsv")) == 1

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(module, "injection_check", bug)
    with pytest.raises(ZeroDivisionError):
        main(argv + ["--overwrite"])
    assert len(Table.read(tmp_path / "cat_classified.ecsv")) == 1


@pytest.mark.filterwarnings("default::sourceclf.exceptions.SourceclfWarning")
def test_command_line_says_what_a_catalog_with_columns_is_not_scored_on(frames, tmp_path,
                                                                        capsys):
    """margnet-sgq on a catalog that gives MargNet's columns: the check scores measured ones."""
    from sourceclf.cli import main
    from sourceclf.photometry import measure_columns

    paths = _write_frames(frames, tmp_path)
    ra, dec = frames["r"][1].pixel_to_world_values([100.0, 200.0], [150.0, 250.0])
    catalog = measure_columns(Table({"ra": ra, "dec": dec}), frames)[0]
    catalog.write(tmp_path / "cat.fits")
    argv = [str(tmp_path / "cat.fits"), "--model", "margnet-sgq", "--no-progress",
            "--device", "cpu", "--inject-check", "12"] + \
        [f"--image={b}={paths[b]}" for b in BANDS]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # Its own columns: no line says MargNet's were measured (the PSF's line says the frames')
    assert "MargNet's columns measured" not in out.split("injection check:")[0]
    assert "PSF FWHM measured on the frames: u " in out.split("injection check:")[0]
    assert "note: the check scores MargNet's columns as measured on the frames; the " \
        "catalog's rows were classified from its own columns" in out
