"""docs/scripts/confusion_sim_check.py: the ``confused`` flag on simulated crowded fields."""

import numpy as np
import pytest
from astropy.table import Table


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("confusion_sim_check")


def test_flag_scores_split_the_rows_by_the_flag(script):
    point = [True, True, False, False, True, False]
    called = [True, False, False, True, True, False]
    flagged = [True, True, True, True, False, False]
    row = script.flag_scores(point, called, flagged)
    assert row["n"] == 6 and row["flagged"] == pytest.approx(4 / 6, abs=1e-3)
    assert row["flagged_balanced"] == 0.5  # point 1 of 2, galaxies 1 of 2
    assert row["rest_balanced"] == 1.0
    assert row["all_balanced"] == pytest.approx((2 / 3 + 2 / 3) / 2, abs=1e-3)
    # a class without rows on one side: no balanced accuracy there
    assert script.flag_scores([True, False], [True, False], [True, False])[
        "flagged_balanced"] is None
    assert "--" in script.score_text(script.flag_scores([True], [True], [False]))


def test_the_report_splits_crowded_fields_and_seeing_bins(script):
    from sourceclf.crowding import CONFUSED_LIMIT

    table = Table({"class": ["STAR", "GALAXY", "QSO", "GALAXY", "STAR", "GALAXY"],
                   "unmodelled_r": [2 * CONFUSED_LIMIT, 0.0, 0.1, 3.0, np.nan, 0.0],
                   "psf_fwhm_r": [0.9, 0.9, 1.7, 1.7, 1.1, 2.0],
                   "crowded_field": [True, True, True, True, False, False],
                   "rendered_dered_r": [19.0, 19.0, 19.0, 19.0, 19.0, 22.0]})
    lines = []
    script.report(table, np.array([False, False, True, True, True, False]), lines.append)
    assert lines[0].startswith("crowded fields, all r, all seeings:     4 rows, confused 0.500")
    assert any(line.startswith('crowded fields, all r, r FWHM 0.75-1": ') for line in lines)
    assert any(line.startswith('other fields, all r, r FWHM 1.9-2.2": ') for line in lines)
    # the faint galaxy of the other fields is left out of the bright rows
    assert not any(line.startswith('other fields, r < 20.5, r FWHM 1.9-2.2"') for line in lines)
    assert any(line.startswith("other fields, r < 20.5, all seeings:     1 rows")
               for line in lines)
    assert not any("1.3-1.6" in line for line in lines)  # an empty bin is not printed
    # the star flagged and missed, the galaxy not flagged and called right
    assert "flagged --, rest --, all 0.500" in lines[1]


@pytest.mark.parametrize("model, said", [("nosuch", "unknown model 'nosuch'"),
                                         ("ugriz-sgq", "does not read MargNet's columns")])
def test_a_model_it_cannot_check_is_one_line(script, capsys, model, said):
    with pytest.raises(SystemExit) as exit_:
        script.main(["--model", model])
    assert exit_.value.code == 2
    assert said in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_set_report_compares_the_two_calibrations_on_the_flagged_rows(script):
    from sourceclf.conformal import ConformalPredictor
    from sourceclf.crowding import CONFUSED_LIMIT
    from sourceclf.models import load_model

    clf = load_model("margnet-sgq")
    rng = np.random.default_rng(0)
    n = 40
    proba = rng.dirichlet(np.ones(3), n)
    table = Table({"class": rng.choice(["STAR", "GALAXY", "QSO"], n),
                   "unmodelled_r": np.where(np.arange(n) < 30, 2 * CONFUSED_LIMIT, 0.0),
                   "psf_fwhm_r": np.where(np.arange(n) % 2 == 0, 0.9, 2.0),
                   "rendered_dered_r": np.where(np.arange(n) % 3 == 0, 16.0, 21.0)})
    lines = []
    script.set_report(table, proba, clf, lines.append)
    assert lines[0].startswith("90% sets of the confused rows, all:    30 rows, model's sets")
    assert any('r FWHM 0.75-1":    15 rows' in line for line in lines)
    assert any("r < 17:    10 rows" in line for line in lines)
    assert not any("1.3-1.6" in line for line in lines)  # empty bins left out
    # the flagged rows' sets as the confused rows' table gives them
    flagged = np.arange(n) < 30
    index = np.array([clf.classes.index(c) for c in table["class"]])
    sets = ConformalPredictor.from_table(clf.flag_calibrations["confused"], clf.classes,
                                         0.9).predict_sets(proba)[0][:, :, 0]
    held = sets[flagged, index[flagged]].mean()
    assert f"confused rows' sets hold it {held:.3f}" in lines[0]
    none = []
    script.set_report(table, proba, load_model("ugriz-sgq"), none.append)
    assert none == ["model 'ugriz-sgq' has no calibration table of confused rows"]
