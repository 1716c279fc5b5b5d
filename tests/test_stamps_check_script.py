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


def test_together_classifies_every_run_in_one_catalog(script, monkeypatch):
    """--together: one catalog of all runs, each row with its run's psffwhm_<b> (and then
    the median FWHM as psf=), scored back per run."""
    from sourceclf.bands import BANDS
    from sourceclf.psf import CATALOG_PSF_SCALE, PSFMeasurement

    calls = []

    def classify(catalog, cutouts, psf=None, **kwargs):
        calls.append((catalog.copy(), cutouts, psf))
        out = Table({"pred_class": MaskedColumn(
            np.where(np.asarray(catalog["ra"]) < 10, "STAR", "GALAXY")),
            "pred_flag": np.full(len(catalog), "")})
        out.meta.update(CLFMODEL="margnet-sgq", CLFPSF="each row's psffwhm_<b>")
        return out

    monkeypatch.setattr(script.sourceclf, "classify", classify)

    def run(name, fwhm, ra, labels):
        psf = {b: PSFMeasurement(fwhm, 0.0, 3.5, 0.0, 9, 1.0, None) for b in BANDS}
        return (name, "native", Table({"ra": ra, "dec": np.zeros(len(ra))}),
                np.zeros((len(ra), 5, 4, 4)), psf, np.asarray(labels))

    lines = script.together([run("a", 1.0, [1.0, 20.0], ["point", "extended"]),
                             run("b", 2.0, [1.0, 2.0, 30.0], ["point", "extended", "extended"])])
    (own, stamps, psf), (one, _, median) = calls
    assert psf is None and len(own) == 5 and stamps.shape == (5, 5, 4, 4)
    np.testing.assert_allclose(own["psffwhm_r"] * CATALOG_PSF_SCALE["r"], [1, 1, 2, 2, 2])
    assert median["r"] == pytest.approx(2.0) and "psffwhm_r" not in one.colnames
    assert lines[0].startswith("together: 5 rows of 2 fields and seeings")
    assert lines[2].split()[-1] == "1.00" and lines[4].split()[-1] == "0.75"
