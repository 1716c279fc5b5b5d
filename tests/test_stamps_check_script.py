"""docs/scripts/stamps_check.py: the image models on stamps given with their PSF."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("stamps_check")


def test_a_line_scores_the_point_like_and_extended_rows(script):
    result = Table({"pred_class": MaskedColumn(["STAR", "QSO", "GALAXY", "STAR"]),
                    "pred_flag": ["", "", "", ""]})
    result.meta["CLFMODEL"] = "margnet-sgq"
    labels = np.array(["point", "point", "extended", "extended"])
    assert script.line("stamps", result, labels).split() == [
        "stamps", "margnet-sgq", "point", "1.00", "extended", "0.50", "balanced", "0.75"]


def test_a_field_without_its_frames_is_a_one_line_error(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        script.main(["--data", str(tmp_path), "000001-1-0001"])
    assert exit_.value.code == 2
    assert "none of 000001-1-0001 has its five frames under" in capsys.readouterr().err
