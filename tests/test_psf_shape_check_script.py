"""docs/scripts/psf_shape_check.py: the checks' scores per blurring kernel, and simulated
stamps through PSFs of different shapes."""

import re

import pytest


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("psf_shape_check")


def _row(field, seeing, balanced, point, crowded=0.0):
    return {"field": field, "target_r_fwhm": seeing, "balanced": balanced,
            "point_as_star_or_qso": point, "extended_as_galaxy": 2 * balanced - point,
            "crowded": crowded}


def test_the_table_gives_the_lowest_field_per_kernel_and_group(script, monkeypatch):
    """Each kernel's records are read apart; crowded fields (from the shipped models'
    native rows, which sdss-cut lacks) form their own group."""
    records = {
        "gaussian": [_row("A-1", None, 0.99, 0.99), _row("A-1", 1.9, 0.98, 0.97),
                     _row("B-1", None, 0.95, 0.96), _row("B-1", 1.9, 0.94, 0.96),
                     _row("C-1", None, 0.70, 0.95, crowded=1.0), _row("C-1", 1.9, 0.60, 0.98,
                                                                      crowded=1.0)],
        "kolmogorov": [_row("A-1", 1.9, 0.90, 0.85), _row("B-1", 1.9, 0.93, 0.90),
                       _row("C-1", 1.9, 0.55, 0.90, crowded=1.0)],
        "moffat": [_row("A-1", 1.9, 0.80, 0.70)],
    }

    def recorded(models, injected=False, kernel="gaussian"):
        return [(r["field"], r["target_r_fwhm"], m, r["balanced"], r)
                for m in models for r in records[kernel]]

    monkeypatch.setattr(script, "recorded", recorded)
    lines = script.kernel_table(["m"]).splitlines()
    assert lines[1].split() == ["model", "seeing", "kernel", "fields", "balanced", "point",
                                "extended"]
    body = [line.split() for line in lines[3:-1]]
    assert body == [
        ["m", '1.9"', "gaussian", "uncrowded", "0.94", "(B-1)", "0.96", "(B-1)", "0.92", "(B-1)"],
        ["m", '1.9"', "kolmogorov", "uncrowded", "0.90", "(A-1)", "0.85", "(A-1)", "0.95",
         "(A-1)"],
        ["m", '1.9"', "moffat", "uncrowded", "0.80", "(A-1)", "0.70", "(A-1)", "0.90", "(A-1)"],
        ["m", '1.9"', "gaussian", "crowded", "0.60", "(C-1)", "0.98", "(C-1)", "0.22", "(C-1)"],
        ["m", '1.9"', "kolmogorov", "crowded", "0.55", "(C-1)", "0.90", "(C-1)", "0.20",
         "(C-1)"]]
    only = script.kernel_table(["m"], groups=(True,)).splitlines()[3:-1]
    assert [line.split()[3] for line in only] == ["crowded", "crowded"]


def test_simulated_stamps_are_classified_through_each_shape(script, shared_data, capsys):
    script.simulate(["margnet-cnn-sgq"], [1.9], 16, 5, shared_data)
    lines = capsys.readouterr().out.splitlines()
    assert "stars" in lines[0] and "galaxies" in lines[0]
    assert len(lines) == 1 + len(script.SHAPES)
    for line, (label, *_) in zip(lines[1:], script.SHAPES):
        assert f'r FWHM 1.9"  {label}' in line and "margnet-cnn-sgq" in line
        shares = [float(share) for share in re.findall(r"(?<![\d.])\d\.\d\d(?![\d\"])", line)]
        assert len(shares) == 3 and all(0.0 <= s <= 1.0 for s in shares)


def test_simulate_refuses_sdss_cut_and_bad_numbers(script, capsys):
    with pytest.raises(SystemExit):
        script.main(["--simulate", "--models", "sdss-cut"])
    assert "sdss-cut measures frames" in capsys.readouterr().err
    for option, value, says in (("--fwhm", "0,1.9", "--fwhm takes positive FWHMs"),
                                ("--fwhm", "wide", "--fwhm takes positive FWHMs"),
                                ("--n", "0", "at least 1"), ("--fields", "crowded",
                                                             "--fields reads the cards")):
        with pytest.raises(SystemExit):
            script.main(["--simulate", option, value])
        assert says in capsys.readouterr().err


def test_options_of_the_other_mode_are_refused(script, capsys):
    with pytest.raises(SystemExit):
        script.main(["--fwhm", "1.2"])
    assert "--fwhm goes with --simulate" in capsys.readouterr().err
