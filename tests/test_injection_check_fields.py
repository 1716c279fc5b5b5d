"""docs/scripts/injection_check_fields.py, which makes the injection check's table of the docs."""

from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "images.rst"


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("injection_check_fields")


def _row(field, seeing, balanced, warns, model="m"):
    return {"field": field, "target_r_fwhm": seeing, "model": model, "balanced": balanced,
            "set_coverage": balanced, "warns": warns}


def test_agreement_counts_warnings_against_the_cards(script, monkeypatch):
    cards = {("m", "a", None): (0.80, 0.95), ("m", "a", 1.6): (0.95, 0.85),
             ("m", "b", None): (0.97, None)}
    monkeypatch.setattr(script, "_recorded_balanced", lambda models: cards)
    rows = [_row("a", None, 0.85, True), _row("a", 1.6, 0.93, False),
            _row("b", None, 0.97, False),
            {"field": "b", "target_r_fwhm": 2.2, "model": "m", "error": "no PSF"}]
    own, injected = script.agreement(rows, ["m"])
    assert own == "own sources below 0.9: check warned on 1 of 1 runs; at or above: " \
                  "warned on 0 of 2"
    assert injected == "injected sources below 0.9: check warned on 0 of 1 runs; at or " \
                       "above: warned on 1 of 1"
    lines = script.table(rows, ["m"]).splitlines()
    assert lines[3].split() == ["a", "native", "m", "0.85", "0.85", "yes", "0.80", "0.95"]
    assert lines[-2].split() == ["b", "2.2", "m", "-", "-", "error", "-", "-"]


def test_the_docs_table_is_the_record(script, capsys):
    """images.rst shows what --from-record prints from the committed record."""
    script.main(["--from-record"])
    out = capsys.readouterr().out.splitlines()
    docs = DOCS.read_text()
    table = [line for line in out if line and not line.startswith(("own ", "injected "))]
    assert len(table) > 60 and "\n".join(table) in docs
    for line in out[-2:]:
        assert f"    {line}\n" in docs
    script.main(["--from-record", "--models", "bayesian-margnet-sgq,bayesian-margformer-sgq"])
    for line in capsys.readouterr().out.splitlines()[-2:]:
        assert f"    {line}\n" in docs


def test_seeds_give_the_scatter_and_the_checks_own_error(script, monkeypatch, tmp_path):
    """--seeds: one line per seeing and model with the scatter and the standard errors."""
    class Check:
        def __init__(self, seed):
            self.balanced, self.balanced_se = 0.90 + 0.01 * seed, 0.02 + 0.001 * seed

    monkeypatch.setattr(script, "read_field",
                        lambda folder: (folder.name.replace("sdss_frame_", ""), {}, {}))
    monkeypatch.setattr(script, "blurred", lambda frames, psf, seeing: frames)
    monkeypatch.setattr(script, "injection_check",
                        lambda frames, *, random_state, **kw: Check(random_state))
    log = []
    script.spread(tmp_path / "sdss_frame_000001-1-0001", 1.6, ["m"], 3, 150, log.append)
    assert log == [
        f"000001-1-0001 {seeing} m, 150 sources, seeds 0-2: balanced 0.900-0.920, mean "
        "0.910, scatter 0.010; the check's own standard error 0.020-0.022"
        for seeing in ("native", 1.6)]


def test_a_field_that_cannot_be_read_is_skipped_and_nothing_recorded(script, tmp_path,
                                                                     monkeypatch, capsys):
    """One corrupt frame stopped the check of many fields; with --record the record would
    have lost that field's rows."""
    folder = tmp_path / "bad"
    folder.mkdir()
    for b in "ugiz":
        (folder / f"frame-{b}-009999-1-0001.fits").write_bytes(b"")
    (folder / "frame-r-009999-1-0001.fits.bz2").write_bytes(b"BZh91AY&SY" + bytes(100))
    monkeypatch.setattr(script, "RECORD", tmp_path / "record.json")
    with pytest.raises(SystemExit) as exit_:
        script.main(["--data", str(tmp_path), "--record"])
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert "009999-1-0001: skipped, cannot read frame " in out
    assert "nothing recorded: 1 field(s) skipped (009999-1-0001)" in err
    assert not (tmp_path / "record.json").exists()
    with pytest.raises(SystemExit) as exit_:
        script.main(["--data", str(tmp_path / "nowhere")])
    assert exit_.value.code == 2


def test_a_check_of_some_fields_keeps_the_others_recorded(script, tmp_path, monkeypatch):
    """--record with named fields replaced every row of the models checked."""
    import json

    record = tmp_path / "record.json"
    old = [_row("A", None, 0.9, False), _row("B", None, 0.8, False),
           _row("A", None, 0.7, False, model="other")]
    record.write_text(json.dumps({"rows": old}))
    monkeypatch.setattr(script, "RECORD", record)
    monkeypatch.setattr(script, "find_fields", lambda data, names, log: {"B": {}})
    monkeypatch.setattr(script, "check_field",
                        lambda field, models, log: [_row("B", None, 0.6, True)])
    monkeypatch.setattr(script, "table", lambda rows, models: "")
    monkeypatch.setattr(script, "agreement", lambda rows, models: [])
    script.main(["--models", "m", "--record", "B"])
    rows = json.loads(record.read_text())["rows"]
    assert sorted((r["field"], r["model"], r["balanced"]) for r in rows) == [
        ("A", "m", 0.9), ("A", "other", 0.7), ("B", "m", 0.6)]


def test_the_checks_docstring_counts_are_the_records(script, capsys):
    """sourceclf.injection_check's docstring quotes the record's ranges and warning counts
    (they went stale twice when the record was made again)."""
    import json
    import re

    import sourceclf.injection_check

    doc = " ".join(sourceclf.injection_check.__doc__.split())
    rows = [r for r in json.loads(script.RECORD.read_text())["rows"] if "error" not in r]
    for fields, word in ((("001992", "003184", "004510"), "uncrowded"),
                         (("002583", "005405"), "crowded")):
        values = [r["balanced"] for r in rows
                  if r["model"] in script.MODELS and r["field"][:6] in fields]
        assert f"{min(values):.2f}-{max(values):.2f} on the " in doc, word
    counts = []
    for models in (",".join(script.MODELS), "bayesian-margnet-sgq,bayesian-margformer-sgq"):
        script.main(["--from-record", "--models", models])
        own = capsys.readouterr().out.splitlines()[-2]
        counts.append(re.findall(r"warned on (\d+) of (\d+)", own))
    (low, n_low), (high, n_high) = counts[0]
    assert f"warned on {low} of the {n_low} runs" in doc
    assert high == "0" and f"none of the {n_high} where" in doc
    (low, n_low), (high, n_high) = counts[1]
    assert f"Bayesian variants, {low} of {n_low} and none of {n_high}" in doc
