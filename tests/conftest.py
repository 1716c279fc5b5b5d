"""Shared fixtures of the sourceclf test suite."""

import os
from pathlib import Path

import pytest

try:
    from pytest_astropy_header.display import PYTEST_HEADER_MODULES
    PYTEST_HEADER_MODULES.clear()
    PYTEST_HEADER_MODULES.update({"Numpy": "numpy", "Astropy": "astropy", "torch": "torch",
                                  "scikit-learn": "sklearn", "MAPIE": "mapie"})
except ImportError:  # pragma: no cover
    pass

# Hypothesis profiles of the property tests (tests/test_properties_*.py): "ci" by
# default (fixed seed, sized for a few minutes on 2 cores), "nightly" with ten times
# the examples; choose with HYPOTHESIS_PROFILE=nightly (tox -e nightly).
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis comes with the 'test' extra
    pass
else:
    # No example database: it would write .hypothesis/ into the tree; a failure
    # prints the @reproduce_failure blob instead.
    _PROPERTY_SETTINGS = dict(deadline=None, database=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large,
                                                     HealthCheck.filter_too_much])
    settings.register_profile("ci", derandomize=True, max_examples=100, **_PROPERTY_SETTINGS)
    settings.register_profile("nightly", max_examples=1000, **_PROPERTY_SETTINGS)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def shared_data_dir():
    """The directory of the real SDSS data the tests may read.

    ``$SOURCECLF_DATA`` when set (as `sourceclf.recipes.data.default_data_dir`
    reads it), else ``../shared/data`` beside the repository (never copied
    into it).
    """
    env = os.environ.get("SOURCECLF_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


#: Real SDSS data: ``$SOURCECLF_DATA``, else ../shared/data (see `shared_data_dir`).
SHARED_DATA = shared_data_dir()


@pytest.fixture(scope="session")
def shared_data():
    """Path of the shared data (`SHARED_DATA`); tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        where = "$SOURCECLF_DATA" if os.environ.get("SOURCECLF_DATA") else "../shared/data"
        pytest.skip(f"{where} ({SHARED_DATA}) is absent")
    return SHARED_DATA


#: The scripts behind the docs' figures (``docs/scripts``).
DOC_SCRIPTS = Path(__file__).resolve().parents[1] / "docs" / "scripts"


@pytest.fixture(scope="session")
def doc_script():
    """``doc_script(name)`` loads ``docs/scripts/<name>.py`` as a module (with its folder on
    ``sys.path`` while it loads: the scripts import ``check_fields``, beside them)."""
    import importlib.util
    import sys

    def load(name):
        sys.path.insert(0, str(DOC_SCRIPTS))
        try:
            spec = importlib.util.spec_from_file_location(name, DOC_SCRIPTS / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(DOC_SCRIPTS))
        return module

    return load


@pytest.fixture
def demo():
    """A small synthetic SDSS-like catalog with MargNet's columns and true classes."""
    from sourceclf.demo import demo_catalog

    return demo_catalog(60, random_state=3)


@pytest.fixture
def ctrl_c():
    """Ctrl-C raises KeyboardInterrupt in this process, as in a terminal, for the test.

    A process started in the background by a shell without job control (``cmd &``)
    inherits SIGINT as ignored, and Python then installs no KeyboardInterrupt
    handler; tests of what Ctrl-C does need the terminal's behaviour.
    """
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
