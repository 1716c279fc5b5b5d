"""docs/_modelpages.py: the generated model pages show the real-field checks of the card."""

import importlib.util
from pathlib import Path

import pytest

PAGES = Path(__file__).resolve().parents[1] / "docs" / "_modelpages.py"


@pytest.fixture(scope="module")
def pages():
    spec = importlib.util.spec_from_file_location("_modelpages", PAGES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(field, seeing, balanced, crowded=0.0):
    return {"field": field, "target_r_fwhm": seeing, "balanced": balanced,
            "point_as_star_or_qso": 0.9, "extended_as_galaxy": 2 * balanced - 0.9,
            "crowded": crowded}


def test_each_record_is_a_table_of_fields_by_seeing(pages):
    metrics = {"real_fields": {"rows": [_row("B-1", 1.6, 0.9), _row("B-1", None, 0.95),
                                        _row("A-1", None, 0.7, crowded=1.0)]},
               "real_fields_kolmogorov": {"rows": [_row("B-1", 1.9, 0.85)]},
               "test": {"n": 10, "accuracy": 0.9}}
    lines = pages._real_fields(metrics)
    assert lines[0] == "Checks on real fields"
    tables = [k for k, line in enumerate(lines) if line.startswith(".. list-table::")]
    names = [lines[k].split("``")[1] for k in tables]
    assert names == ["real_fields", "real_fields_kolmogorov"]
    first = lines[tables[0]:tables[1]]
    assert first[3:6] == ["   * - field", "     - native", '     - 1.6"']
    # fields in order; a seeing a field lacks is '--'; a crowded field is marked
    assert first[6:9] == ["   * - A-1 (crowded)", "     - 0.70 (0.90 / 0.50)", "     - --"]
    assert first[9:12] == ["   * - B-1", "     - 0.95 (0.90 / 1.00)", "     - 0.90 (0.90 / 0.90)"]
    assert pages._real_fields({"test": {"n": 1}}) == []
