"""docs/scripts/deblended_truth.py, which compares the two truths of the docs' field checks."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("deblended_truth")


def test_classes_cut_at_sdss_extent(script):
    from sourceclf.recipes.extent_truth import EXTENT_POINT

    extent = np.array([EXTENT_POINT - 0.01, EXTENT_POINT + 0.01, np.nan])
    assert list(script.classes(extent)) == ["point", "extended", "point"]


def test_an_uncrowded_field_keeps_its_truth(script, shared_data, capsys):
    """On 004510-4-0030 the two truths agree on all clean sources but one and on the
    injected sources: both find every injected star point-like, and every injected galaxy
    extended but the two whose light is extended outside r only (the noiseless truth sums
    the bands, these measure r)."""
    script.main(["--data", str(shared_data), "--models", "none", "004510-4-0030"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("004510-4-0030: 90 clean sources; segment truth 40 point-like, "
                               "50 extended; deblended 39 point-like, 51 extended;")
    assert lines[0].endswith("0 extended -> point-like, 1 point-like -> extended")
    assert lines[1].startswith("004510-4-0030 injected, all: segment truth calls 0.00 of 60 "
                               "point-like and 0.98 of 90 extended sources extended; deblended "
                               "truth calls 0.00 of 60 point-like and 0.98 of 90")
    assert lines[2].startswith("004510-4-0030 injected, not on a brighter source:")
