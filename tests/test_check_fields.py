"""The scoring of docs/scripts/check_fields.py, which makes the real-field table of the docs."""

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table


@pytest.fixture(scope="module")
def check_fields(doc_script):
    return doc_script("check_fields")


def test_fields_are_found_by_sdss_file_names_in_any_folder(check_fields, tmp_path):
    """The check ran only on the shared data's sdss_frame_* folders: fields the project
    does not hold, as SDSS's archive serves them, were silently not checked."""
    from sourceclf.exceptions import InvalidInputError

    archive, shared = tmp_path / "archive", tmp_path / "sdss_frame_004510-4-0030"
    archive.mkdir()
    shared.mkdir()
    for b in "ugriz":
        (archive / f"frame-{b}-001234-5-0067.fits.bz2").write_bytes(b"")
        (shared / f"frame-{b}-004510-4-0030.fits").write_bytes(b"")
    for b in "ugri":  # a field without its z frame
        (archive / f"frame-{b}-007777-1-0001.fits.bz2").write_bytes(b"")
    (archive / "frame-irg-001234-5-0067.jpg").write_bytes(b"")
    lines = []
    fields = check_fields.find_fields(tmp_path, log=lines.append)
    assert list(fields) == ["001234-5-0067", "004510-4-0030"]
    assert fields["001234-5-0067"]["z"] == archive / "frame-z-001234-5-0067.fits.bz2"
    assert lines == [f"007777-1-0001: skipped, no frame of band z under {tmp_path}"]
    lines.clear()
    named = check_fields.find_fields(tmp_path, ["004510-4-0030", "000001-1-0001"], lines.append)
    assert list(named) == ["004510-4-0030"]
    assert lines == [f"000001-1-0001: no frame of this field under {tmp_path}"]
    with pytest.raises(InvalidInputError, match="the five frames of 2 fields, expected one"):
        check_fields.read_field(tmp_path)


def _field_with_a_corrupt_frame(folder, name="009999-1-0001"):
    """Five frames of a field under SDSS's names, the r frame cut short (as a download
    that broke off leaves it)."""
    folder.mkdir(parents=True)
    for b in "ugiz":
        (folder / f"frame-{b}-{name}.fits").write_bytes(b"")
    (folder / f"frame-r-{name}.fits.bz2").write_bytes(b"BZh91AY&SY" + bytes(100))
    return name


def test_a_field_that_cannot_be_read_is_named_and_skipped(check_fields, tmp_path):
    """One corrupt frame stopped the whole check of many fields with a traceback."""
    bad = _field_with_a_corrupt_frame(tmp_path / "bad")
    for b in "ugriz":
        (tmp_path / "good" / f"frame-{b}-001234-5-0067.fits").parent.mkdir(exist_ok=True)
        (tmp_path / "good" / f"frame-{b}-001234-5-0067.fits").write_bytes(b"")
    ran, lines = [], []

    def run(field):
        if field[0] == bad:
            check_fields.read_field(field)
        ran.append(field[0])

    skipped = check_fields.each_field(check_fields.find_fields(tmp_path), run, lines.append)
    assert ran == ["001234-5-0067"]
    assert list(skipped) == [bad]
    assert lines[0].startswith(f"{bad}: skipped, cannot read frame ")
    assert lines[0].endswith("as FITS: Empty or corrupt FITS file")
    assert len(lines) == 1
    assert check_fields.skipped_note(skipped, [bad, "001234-5-0067"]) == \
        f"1 of 2 fields skipped ({bad}): why is above"
    assert check_fields.skipped_note({}, [bad]) == ""


def test_the_check_records_nothing_when_a_field_was_skipped(check_fields, tmp_path,
                                                            monkeypatch, capsys):
    """The cards would silently lose the skipped field's rows."""
    _field_with_a_corrupt_frame(tmp_path / "bad")
    monkeypatch.setattr(check_fields, "record", lambda *a, **k: pytest.fail("recorded"))
    with pytest.raises(SystemExit) as exit_:
        check_fields.main(["--data", str(tmp_path), "--models", "sdss-cut", "--record"])
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert out.rstrip().endswith("1 of 1 fields skipped (009999-1-0001): why is above")
    assert "nothing recorded: 1 field(s) skipped (009999-1-0001)" in err


def test_a_folder_without_fields_is_an_error(check_fields, tmp_path, capsys):
    """An empty or mistyped --data printed an empty table and exited 0."""
    with pytest.raises(SystemExit) as exit_:
        check_fields.main(["--data", str(tmp_path / "nowhere"), "--models", "sdss-cut"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f"no field with its five frames (frame-<band>-<run>-<camcol>-<field>"
                        f".fits[.bz2]) under {tmp_path / 'nowhere'}")


@pytest.mark.parametrize("cards", [False, True])
def test_an_unknown_model_is_named_in_one_line(check_fields, tmp_path, capsys, cards):
    """``--models`` with a name the registry does not know gave a traceback from it."""
    with pytest.raises(SystemExit) as exit_:
        check_fields.main(["--data", str(tmp_path), "--models", "margnet-sgq,nosuch"]
                          + (["--from-cards"] if cards else []))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "error: unknown model 'nosuch'; known models:" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_score_counts_each_class_and_the_decided_rows(check_fields):
    truth = np.array(["point"] * 4 + ["extended"] * 4)
    result = Table({"pred_class": MaskedColumn(["STAR", "QSO", "GALAXY", "STAR",
                                                "GALAXY", "GALAXY", "STAR", ""],
                                               mask=[False] * 7 + [True]),
                    "pred_flag": ["", "crowded", "", "", "", "crowded", "", "off_frame"]})
    decided = np.array([True, True, False, True, True, True, False, True])
    row = check_fields.score(truth, result, decided)
    assert row["point_as_star_or_qso"] == 0.75 and row["extended_as_galaxy"] == 0.5
    assert row["balanced"] == 0.625
    assert row["crowded"] == 0.25
    # Not crowded: points in rows 0, 2, 3 (two right), extended in 4, 6, 7 (one right).
    assert row["balanced_not_crowded"] == round((2 / 3 + 1 / 3) / 2, 3)
    # Decided: points 0, 1, 3 all right; extended 4, 5, 7: two right.
    assert row["balanced_decided"] == round((1.0 + 2 / 3) / 2, 3)
    assert (row["n_point_decided"], row["n_extended_decided"]) == (3, 3)


def test_a_field_without_extended_sources_is_scored_on_its_point_sources(check_fields):
    """A field whose bright clean sources are all point-like (the Galactic plane, say):
    the extended share is NaN, without a warning, and the lowest-score lines skip it."""
    result = Table({"pred_class": MaskedColumn(["STAR", "GALAXY", "QSO"]),
                    "pred_flag": [""] * 3, "pred_set_size": [1, 1, 2],
                    "pred_set": ["STAR", "GALAXY", "QSO;STAR"]})
    row = dict(check_fields.score(np.array(["point"] * 3), result), galactic_latitude=-1.0,
               r_fwhm=1.2, n_point=3, n_extended=0)
    assert row["point_as_star_or_qso"] == pytest.approx(0.667)
    assert np.isnan(row["extended_as_galaxy"]) and np.isnan(row["balanced"])
    assert np.isnan(row["set_coverage_extended"])
    other = dict(row, balanced=0.9)
    results = [("A", None, "m", row["balanced"], row), ("B", None, "m", 0.9, other)]
    assert list(check_fields.lowest(results, "m", "balanced")) == [("native", other)]
    assert "nan" in check_fields.rst_table(results).splitlines()[3]


def test_score_splits_the_blended_rows(check_fields):
    truth = np.array(["point"] * 4 + ["extended"] * 4)
    result = Table({"pred_class": MaskedColumn(["STAR", "GALAXY", "GALAXY", "STAR",
                                                "GALAXY", "STAR", "GALAXY", "GALAXY"]),
                    "pred_flag": ["", "crowded;blended", "blended", "", "", "blended", "",
                                  "crowded"]})
    row = check_fields.score(truth, result)
    assert row["blended"] == 0.375
    # Not blended: points 0, 3 (both right), extended 4, 6, 7 (all right).
    assert row["balanced_not_blended"] == 1.0
    assert (row["n_point_not_blended"], row["n_extended_not_blended"]) == (2, 3)
    # Blended: points 1, 2 (none right), extended 5 (wrong).
    assert row["balanced_blended"] == 0.0


def test_only_the_default_placement_is_recorded(check_fields):
    with pytest.raises(SystemExit):
        check_fields.main(["--inject", "--seed", "3", "--record"])
    with pytest.raises(SystemExit):
        check_fields.main(["--seed", "3"])  # places nothing without --inject
    with pytest.raises(SystemExit):
        check_fields.main(["--inject", "--without-flag-calibration", "--record"])


def test_neighbours_other_than_the_shipped_rule_are_never_recorded(check_fields, capsys):
    """``--neighbours subtract|keep`` (classify's ``subtract_neighbours`` True or False for
    every image model) is a diagnosis: the cards record the shipped rule, 'auto'."""
    assert check_fields.NEIGHBOURS == {"auto": "auto", "subtract": True, "keep": False}
    for choice in ("subtract", "keep"):
        with pytest.raises(SystemExit):
            check_fields.main(["--inject", "--neighbours", choice, "--record"])
        assert "--neighbours subtract|keep is a diagnosis" in capsys.readouterr().err


def test_set_scores_split_the_confused_rows(check_fields):
    """The coverage and size of the sets of the rows flagged confused, and of the rest, as
    the --from-cards set table shows them (``--`` where no run had such rows)."""
    truth = np.array(["point"] * 4 + ["extended"] * 4)
    result = Table({"pred_class": MaskedColumn(["STAR"] * 4 + ["GALAXY"] * 4),
                    "prob_galaxy": np.zeros(8), "prob_qso": np.zeros(8),
                    "prob_star": np.zeros(8),
                    "pred_flag": ["confused", "", "confused", "", "blended;confused", "",
                                  "confused", ""],
                    "pred_set": ["GALAXY|STAR", "STAR", "GALAXY", "QSO", "GALAXY|STAR",
                                 "GALAXY", "STAR", "STAR"],
                    "pred_set_size": [2, 1, 1, 1, 2, 1, 1, 1]})
    row = check_fields.score(truth, result)
    # Confused: points 0 (covered), 2 (not); extended 4 (covered), 6 (not).
    assert row["set_coverage_confused"] == 0.5
    assert row["set_mean_size_confused"] == 1.5
    # The rest: points 1, 3 covered; extended 5 covered, 7 not.
    assert row["set_coverage_not_confused"] == 0.75
    plain = check_fields.score(truth[[1, 3, 5, 7]], Table(result, copy=True)[[1, 3, 5, 7]])
    assert plain["set_coverage_confused"] is None and plain["set_mean_size_confused"] is None
    results = [(field, None, "m", 0.5, dict(r, field=field, galactic_latitude=b,
                                            target_r_fwhm=None))
               for field, b, r in (("A", 50.0, row), ("B", 60.0, plain))]
    table = check_fields.set_table(results, ["m"])
    line = next(text for text in table.splitlines() if text.startswith("m "))
    assert "0.50-0.50" in line and "1.50-1.50" in line


def test_alarm_rows_read_the_alarm_message(check_fields):
    from sourceclf.conformal.shift import shift_message

    departures = [("mean_size", 1.5, 1.1)]
    assert check_fields.alarm_rows(None) is None
    assert check_fields.alarm_rows(shift_message(departures, 0.9, "m")) == "other"
    assert check_fields.alarm_rows(shift_message(departures, 0.9, "m",
                                                 apart=["confused"])) == "other"
    assert check_fields.alarm_rows(shift_message(departures, 0.9, "m",
                                                 flag="confused")) == "confused"


def test_set_coverage_by_magnitude_of_all_and_confused_rows(check_fields):
    """The sets' balanced coverage per r bin, of all rows and of the confused ones, pooled
    over fields as the --from-cards table shows it."""
    truth = np.array(["point"] * 4 + ["extended"] * 4)
    result = Table({"pred_class": MaskedColumn(["STAR"] * 4 + ["GALAXY"] * 4),
                    "prob_galaxy": np.zeros(8), "prob_qso": np.zeros(8),
                    "prob_star": np.zeros(8),
                    "pred_flag": ["confused", "", "confused", "", "confused", "", "", ""],
                    "pred_set": ["GALAXY|STAR", "STAR", "GALAXY", "QSO", "GALAXY|STAR",
                                 "GALAXY", "STAR", "GALAXY"],
                    "pred_set_size": [2, 1, 1, 1, 2, 1, 1, 1]})
    r_mag = np.array([18.0, 18.5, 18.2, 19.5, 18.1, 18.9, 19.2, 20.2])
    row = check_fields.score(truth, result, r_mag=r_mag)
    first = row["by_r_mag"][0]  # rows 0-2 (point), 4-5 (extended)
    assert (first["point_covered"], first["extended_covered"]) == (2, 2)
    assert (first["n_point_confused"], first["point_confused_covered"]) == (2, 1)
    assert (first["n_extended_confused"], first["extended_confused_covered"]) == (1, 1)
    assert row["by_r_mag"][1]["extended_covered"] == 0  # row 6: STAR for a galaxy
    results = [(field, None, "m", 0.0, dict(row, crowded=0.0)) for field in "AB"]
    lines = check_fields.set_magnitude_table(results, ["m"]).splitlines()
    # r < 19, pooled: points covered 4 of 6, extended 4 of 4; confused 2 of 4, 2 of 2.
    # r 19-20: a point covered, a galaxy not, none confused; r 20-20.5: no point source.
    assert lines[3].split() == ["m", "native", "uncrowded", "0.83", "/", "0.75", "(4/2)",
                                "0.50", "/", "--", "(0/0)", "--", "/", "--", "(0/0)"]
    # A record made before the counts were kept shows nothing.
    kept = ("r_mag", "n_point", "point_hits", "n_extended", "extended_hits")
    old = dict(row, crowded=0.0, by_r_mag=[{k: b[k] for k in kept} for b in row["by_r_mag"]])
    assert check_fields.set_magnitude_table([("A", None, "m", 0.0, old)], ["m"]) == ""


def test_balanced_error_and_table(check_fields):
    row = {"field": "001992-1-0087", "galactic_latitude": 51.4, "target_r_fwhm": 1.9,
           "r_fwhm": 1.88, "point_as_star_or_qso": 0.96, "extended_as_galaxy": 0.84,
           "balanced": 0.9, "crowded": 0.0, "balanced_not_crowded": 0.9,
           "balanced_decided": None, "n_point": 75, "n_extended": 31}
    expected = 0.5 * np.sqrt(0.96 * 0.04 / 75 + 0.84 * 0.16 / 31)
    assert check_fields.balanced_error(row) == pytest.approx(expected)
    lines = check_fields.rst_table([(row["field"], 1.9, "margnet-cnn-sgq", 0.9, row)]).splitlines()
    assert lines[0] == lines[2] == lines[-1] and len(lines) == 5
    assert lines[3].split() == ["001992-1", "51", '1.9"', '1.88"', "margnet-cnn-sgq", "0.96",
                                "0.84", "0.90", f"{expected:.2f}", "0.00", "0.90", "--"]


def test_sdss_cut_calls_by_the_forced_extent(check_fields, monkeypatch):
    """The sdss-cut reference: GALAXY above 0.145, STAR below, no class where unmeasured."""
    truth = Table({"clean": [True, True, False, True, True]})
    extent = np.array([0.0, 0.3, 0.5, np.nan, 0.1])
    monkeypatch.setattr(check_fields, "forced_extent", lambda data, wcs, psf, t: extent)
    result = check_fields.sdss_cut(truth, truth["clean"], (None, None), None)
    assert result["pred_class"].filled("").tolist() == ["STAR", "GALAXY", "", "STAR"]
    assert result["pred_flag"].tolist() == [""] * 4
    row = check_fields.score(np.array(["point", "extended", "extended", "point"]), result)
    assert (row["point_as_star_or_qso"], row["extended_as_galaxy"]) == (1.0, 0.5)


def test_sdss_cut_rows_are_recorded_apart_and_shown_without_flags(check_fields, monkeypatch,
                                                                  tmp_path):
    row = {"field": "003184-2-0169", "galactic_latitude": 45.8, "target_r_fwhm": 1.6,
           "r_fwhm": 1.58, "point_as_star_or_qso": 0.95, "extended_as_galaxy": 0.75,
           "balanced": 0.85, "crowded": 0.0, "balanced_not_crowded": 0.85,
           "balanced_decided": 0.96, "n_point": 106, "n_extended": 48}
    monkeypatch.setattr(check_fields, "SDSS_CUT_RECORD", tmp_path / "cut.json")
    check_fields.record(check_fields.SDSS_CUT, [row])
    results = check_fields.recorded([check_fields.SDSS_CUT])
    assert results == [(row["field"], 1.6, "sdss-cut", 0.85, row)]
    line = check_fields.rst_table(results).splitlines()[3].split()
    assert line[4:] == ["sdss-cut", "0.95", "0.75", "0.85", "0.03", "--", "--", "0.96"]


def test_a_check_of_some_fields_records_theirs_and_keeps_the_others(check_fields, monkeypatch,
                                                                    tmp_path):
    """``check_fields.py FIELD --record`` replaced the whole record with that field's rows."""
    def row(field, seeing, balanced):
        return {"field": field, "target_r_fwhm": seeing, "balanced": balanced}

    monkeypatch.setattr(check_fields, "SDSS_CUT_RECORD", tmp_path / "cut.json")
    check_fields.record(check_fields.SDSS_CUT, [row("A", 1.6, 0.9), row("A", 1.9, 0.8),
                                                row("B", 1.6, 0.7), row("C", 1.6, 0.6)])
    check_fields.record(check_fields.SDSS_CUT, [row("B", 2.2, 0.5), row("B", 1.6, 0.4)])
    rows = [(f, s, b) for f, s, _, b, _ in check_fields.recorded([check_fields.SDSS_CUT])]
    assert rows == [("A", 1.6, 0.9), ("A", 1.9, 0.8), ("B", 1.6, 0.4), ("B", 2.2, 0.5),
                    ("C", 1.6, 0.6)]
    # In a model's card, the same.
    import shutil

    from sourceclf.models import MODEL_DIR, model_card

    model = tmp_path / "margnet-cnn-sgq"
    shutil.copytree(MODEL_DIR / "margnet-cnn-sgq", model)
    before = model_card("margnet-cnn-sgq").metrics["real_fields"]["rows"]
    check_fields.record(str(model), [row("003184-2-0169", 1.6, 0.5)])
    after = json.loads((model / "card.json").read_text())["metrics"]["real_fields"]
    assert after["data"].startswith("bright (r < 20.5) clean sources of real SDSS fields")
    assert len(after["rows"]) == len(before) - 3
    assert [r for r in after["rows"] if r["field"] == "003184-2-0169"] == \
        [row("003184-2-0169", 1.6, 0.5)]
    assert [r for r in after["rows"] if r["field"] == "004510-4-0030"] == \
        [r for r in before if r["field"] == "004510-4-0030"]
    replaced = check_fields.merged_rows([row("A", 1.6, 0.9)], [row("A", None, 0.1)])
    assert replaced == [row("A", None, 0.1)]
    assert check_fields.merged_rows([row("B", 1.6, 0.9)], [row("A", 2.2, 0.1),
                                                           row("A", None, 0.2)]) == \
        [row("A", None, 0.2), row("A", 2.2, 0.1), row("B", 1.6, 0.9)]


def test_scores_by_magnitude_pool_the_fields(check_fields):
    truth = np.array(["point", "point", "extended", "extended", "point", "extended"])
    result = Table({"pred_class": MaskedColumn(["STAR", "GALAXY", "GALAXY", "STAR", "QSO",
                                                "GALAXY"]),
                    "pred_flag": [""] * 6})
    r_mag = np.array([18.0, 18.5, 18.2, 19.5, 19.9, 20.3])
    row = check_fields.score(truth, result, r_mag=r_mag)
    assert [b["r_mag"] for b in row["by_r_mag"]] == [[None, 19.0], [19.0, 20.0], [20.0, 20.5]]
    assert row["by_r_mag"][0] == {"r_mag": [None, 19.0], "n_point": 2, "point_hits": 1,
                                  "n_extended": 1, "extended_hits": 1}
    assert row["by_r_mag"][1]["extended_hits"] == 0 and row["by_r_mag"][1]["point_hits"] == 1
    quiet = dict(row, crowded=0.0)
    busy = dict(row, crowded=1.0)
    results = [("A", None, "m", 0.0, quiet), ("B", None, "m", 0.0, quiet),
               ("C", None, "m", 0.0, busy)]
    lines = check_fields.magnitude_table(results, ["m"]).splitlines()
    assert lines[1].split()[:3] == ["model", "seeing", "fields"]
    # Pooled over A and B: r < 19 holds 4 point rows (2 right) and 2 extended (2 right).
    assert lines[3].split() == ["m", "native", "uncrowded", "0.75", "(4/2)", "0.50", "(2/2)",
                                "--"]
    assert lines[4].split()[2:5] == ["crowded", "0.75", "(2/1)"]


def test_injected_rows_are_recorded_and_shown_apart(check_fields, monkeypatch, tmp_path):
    """--inject keeps its sdss-cut rows in their own file and calls the last column unblended."""
    row = {"field": "005405-6-0099", "galactic_latitude": -1.2, "target_r_fwhm": None,
           "r_fwhm": 1.14, "point_as_star_or_qso": 0.70, "extended_as_galaxy": 0.98,
           "balanced": 0.84, "crowded": 0.0, "balanced_not_crowded": 0.84,
           "balanced_decided": 0.90, "n_point": 62, "n_extended": 88}
    monkeypatch.setattr(check_fields, "SDSS_CUT_RECORD", tmp_path / "cut.json")
    monkeypatch.setattr(check_fields, "INJECTED_SDSS_CUT_RECORD", tmp_path / "injected.json")
    check_fields.record(check_fields.SDSS_CUT, [row], injected=True)
    assert not (tmp_path / "cut.json").exists()
    assert check_fields.recorded([check_fields.SDSS_CUT]) == []
    results = check_fields.recorded([check_fields.SDSS_CUT], injected=True)
    assert results == [(row["field"], None, "sdss-cut", 0.84, row)]
    lines = check_fields.rst_table(results, injected=True).splitlines()
    assert lines[1].split()[-1] == "unblended"
    assert lines[3].split()[2] == "native" and lines[3].split()[-1] == "0.90"


@pytest.fixture(scope="module")
def injected_runs(check_fields, shared_data):
    """``check_field --inject`` at the native seeing: 40 sources drawn into 005405-6-0099
    (crowded), scored by margnet-sgq and the SDSS cut, with the columns measured on the
    field and on the injected sources alone.

    Returns the log lines and ``{(field, model, columns alone): row}``.  The field is
    read, and its truth and injected frames made, once (the slow part: some 35 s on two
    cores), as ``check_fields.py`` does for each field it checks.  (An uncrowded field
    takes as long and shows the same scoring; the end-to-end check of the sources drawn
    into 004510-4-0030 is ``tests/test_injection_check.py``'s.)
    """
    from functools import lru_cache

    from sourceclf.models import load_model
    from sourceclf.recipes.injection import injection_catalog

    injection = injection_catalog(40, data_dir=shared_data)
    models = {"margnet-sgq": load_model("margnet-sgq"), check_fields.SDSS_CUT: None}
    truths, injected = {}, {}

    def frame_truth(data, wcs, psf):
        if id(data) not in truths:  # (setdefault would make the truth at every call)
            truths[id(data)] = original_truth(data, wcs, psf)
        return truths[id(data)]

    def injected_sources(native, psf, truth, injection, name, log, seed):
        if name not in injected:
            injected[name] = original_injected(native, psf, truth, injection, name, log, seed)
        return injected[name]

    original_truth, original_injected = check_fields.frame_truth, check_fields.injected_sources
    lines, rows = [], {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(check_fields, "SEEINGS", (None,))
        patch.setattr(check_fields, "read_field", lru_cache(check_fields.read_field))
        patch.setattr(check_fields, "frame_truth", frame_truth)
        patch.setattr(check_fields, "injected_sources", injected_sources)
        for name, alone in (("005405-6-0099", False), ("005405-6-0099", True)):
            results = []
            check_fields.check_field(shared_data / f"sdss_frame_{name}", lines.append,
                                     models if not alone else {"margnet-sgq": models[
                                         "margnet-sgq"]}, results, injection,
                                     columns_alone=alone)
            rows.update({(field, model, alone): row for field, _, model, _, row in results})
    return lines, rows


def test_injected_sources_are_scored_on_a_real_field(check_fields, injected_runs):
    """--inject end to end on a real field at its own seeing: on 005405-6-0099 (Galactic
    plane) every row is flagged crowded, and the neighbours make most injected stars look
    extended to the truth's measurement (the SDSS cut), though their noiseless truth is
    known.
    """
    lines, rows = injected_runs
    assert "injected 40 sources" in lines[0] and "PSF stars" in lines[0]
    cut = rows["005405-6-0099", check_fields.SDSS_CUT, False]
    assert cut["n_point"] + cut["n_extended"] == 40
    assert cut["point_as_star_or_qso"] < 0.6
    model = rows["005405-6-0099", "margnet-sgq", False]
    assert model["crowded"] == 1.0
    # 12 of 16 stars against 5 of 16 when written
    assert model["point_as_star_or_qso"] > cut["point_as_star_or_qso"] + 0.2, (model, cut)


def test_columns_measured_alone_diagnose_the_crowded_field(injected_runs):
    """On 005405-6-0099 the neighbours left in margnet-sgq's measured columns make it call
    injected stars galaxies; measured on the injected sources alone, it calls them stars."""
    rows = injected_runs[1]
    on_field = rows["005405-6-0099", "margnet-sgq", False]
    by_itself = rows["005405-6-0099", "margnet-sgq", True]
    # 11 of the 16 stars on the field with each source's neighbours fitted (12 while the
    # stamps were Fourier-shifted onto the templates; one star is 0.06 here, and the
    # full check, 150 sources per field, is the measure), 15 alone.
    assert 0.65 <= on_field["point_as_star_or_qso"] < by_itself["point_as_star_or_qso"] - 0.1
    assert by_itself["point_as_star_or_qso"] >= 0.9
    assert by_itself["balanced"] > on_field["balanced"] + 0.05


def test_rows_of_frames_blurred_with_another_kernel_are_recorded_apart(check_fields, monkeypatch,
                                                                       tmp_path):
    """--kernel moffat keeps its rows under their own key and file, the Gaussian ones untouched."""
    import shutil

    from sourceclf.models import MODEL_DIR

    row = {"field": "004510-4-0030", "target_r_fwhm": 1.9, "balanced": 0.9}
    monkeypatch.setattr(check_fields, "SDSS_CUT_RECORD", tmp_path / "cut.json")
    check_fields.record(check_fields.SDSS_CUT, [row], kernel="moffat")
    assert not (tmp_path / "cut.json").exists()
    assert json.loads((tmp_path / "cut_moffat.json").read_text())["rows"] == [row]
    assert "'moffat' kernel" in json.loads((tmp_path / "cut_moffat.json").read_text())["data"]
    model = tmp_path / "margnet-cnn-sgq"
    shutil.copytree(MODEL_DIR / "margnet-cnn-sgq", model)
    before = json.loads((model / "card.json").read_text())["metrics"]
    check_fields.record(str(model), [row], kernel="kolmogorov")
    after = json.loads((model / "card.json").read_text())["metrics"]
    assert after["real_fields"] == before["real_fields"]
    assert row in after["real_fields_kolmogorov"]["rows"]
    assert "'kolmogorov' kernel" in after["real_fields_kolmogorov"]["data"]
    assert check_fields.record_key(True, "moffat") == "injected_fields_moffat"
    assert check_fields.record_key() == "real_fields"
    with pytest.raises(SystemExit):
        check_fields.main(["--kernel", "box", "--from-cards"])


def test_the_check_lets_classify_measure_the_psf_as_a_users_run_does(check_fields,
                                                                     shared_data, monkeypatch):
    """On a field's own sources, at its seeing and blurred, `classify` is given no ``psf=``:
    it measures the frames' PSF itself, as in a user's run, and the check's columns and
    log use that same measurement (`seen_psf`: `field_band_psf`, not a search started at
    the target seeing, which had hidden a PSF 8-12% too wide at 2.2")."""
    import sourceclf
    from sourceclf.models import load_model

    original_truth, original_classify = check_fields.frame_truth, sourceclf.classify
    given, said = [], []

    def few(data, wcs, psf):  # six clean sources are enough to follow the PSF
        truth = original_truth(data, wcs, psf)
        truth["clean"] &= np.cumsum(truth["clean"]) <= 6
        return truth

    def classify(*args, **kwargs):
        given.append(kwargs.get("psf"))
        out = original_classify(*args, **kwargs)
        said.append(out.meta["CLFFPSF"])
        return out

    monkeypatch.setattr(check_fields, "SEEINGS", (None, 1.6))
    monkeypatch.setattr(check_fields, "frame_truth", few)
    monkeypatch.setattr(sourceclf, "classify", classify)
    lines = []
    check_fields.check_field(shared_data / "sdss_frame_004510-4-0030", lines.append,
                             {"margnet-cnn-sgq": load_model("margnet-cnn-sgq")})
    assert given == [None, None]
    rows = [line for line in lines if line.startswith("| 004510-4-0030 |")]
    for row, line in zip(rows, said):
        r_fwhm = row.split("|")[2].strip()
        assert f'r {r_fwhm}"' in line, (row, line)
    assert float(rows[1].split("|")[2]) == pytest.approx(1.6, rel=0.03)


@pytest.mark.parametrize("inject", [False, True])
def test_the_docs_tables_are_the_cards(check_fields, capsys, inject):
    """images.rst shows what --from-cards [--inject] prints from the committed cards: every
    line of its tables and its lowest score per model and seeing (a record made again and
    the docs not spliced, or a block left from an earlier record, fails here)."""
    check_fields.main(["--from-cards"] + (["--inject"] if inject else []))
    out = capsys.readouterr().out.splitlines()
    docs = {line.strip() for line in
            (Path(__file__).resolve().parents[1] / "docs" / "images.rst").read_text().splitlines()}
    start = next(k for k, line in enumerate(out)
                 if line.startswith("Lowest balanced accuracy over the fields"))
    end = out.index("", start)
    lowest = out[start + 1:end]
    rows = [line for line in out if line[:6].isdigit() or line.startswith(("=", "field "))]
    assert len(rows) > 100 and len(lowest) == 6
    missing = [line for line in rows + lowest if line.strip() not in docs]
    assert not missing, missing[:3]


def test_the_blurred_frames_measure_the_seeing_they_were_blurred_to():
    """images.rst says the r FWHM measured on the blurred frames is within 0.03" of the
    target with every kernel on every field: the cards' records say so."""
    records = 0
    for card in (Path(__file__).resolve().parents[1] / "sourceclf/models/data").glob("*/card.json"):
        metrics = json.loads(card.read_text()).get("metrics", {})
        for key in ("real_fields", "injected_fields"):
            for kernel in ("", "_kolmogorov", "_moffat"):
                for row in metrics.get(key + kernel, {}).get("rows", []):
                    if row["target_r_fwhm"] is not None:
                        records += 1
                        assert abs(row["r_fwhm"] - row["target_r_fwhm"]) <= 0.03 + 1e-9, (
                            card.parent.name, key + kernel, row["field"], row["target_r_fwhm"])
    assert records >= 5 * 6 * 5 * 3
