"""Shared fixtures of the sourceclf test suite."""

from pathlib import Path

import pytest

try:
    from pytest_astropy_header.display import PYTEST_HEADER_MODULES
    PYTEST_HEADER_MODULES.clear()
    PYTEST_HEADER_MODULES.update({"Numpy": "numpy", "Astropy": "astropy", "torch": "torch",
                                  "scikit-learn": "sklearn", "MAPIE": "mapie"})
except ImportError:  # pragma: no cover
    pass

#: Real SDSS data beside the repository (never copied into it).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture
def demo():
    """A small synthetic SDSS-like catalog with MargNet's columns and true classes."""
    from sourceclf.demo import demo_catalog

    return demo_catalog(60, random_state=3)
