"""Shared fixtures of the sourceclf test suite."""

import os
from pathlib import Path

import numpy as np
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


#: The stamps of `star_among_faint_sources`: side (pixels), the Moffat PSF's FWHM
#: (pixels) and index, the sky's noise, and the faint sources' flux (sky sigmas: too
#: faint for `sourceclf.neighbour_fits.NEIGHBOUR_THRESHOLD`, as
#: tests/test_confusion_check_script.py checks).
CROWD_SIZE, CROWD_FWHM, CROWD_BETA, CROWD_SKY, CROWD_FAINT = 32, 3.0, 3.5, 1.0, 25.0


def star_among_faint_sources(n, flux=400.0, faint=0, seed=0):
    """``n`` stamps of a star of ``flux`` (sky sigmas) at the centre in the sky's noise,
    each with ``faint`` sources of `CROWD_FAINT` 1.2-3 FWHM from it (the light the
    neighbour fits leave: tests of sourceclf.unmodelled_light and confusion_check.py)."""
    from sourceclf.psf import moffat_profile

    size, fwhm, beta = CROWD_SIZE, CROWD_FWHM, CROWD_BETA
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(float) - (size - 1) / 2.0
    star = flux * moffat_profile(xx, yy, fwhm, beta)
    stamps = rng.normal(0.0, CROWD_SKY, (n, size, size)) + star
    for stamp in stamps:
        reach = rng.uniform(1.2, 3.0, faint) * fwhm
        angle = rng.uniform(0.0, 2.0 * np.pi, faint)
        for r, a in zip(reach, angle):
            stamp += CROWD_FAINT * moffat_profile(xx - r * np.cos(a), yy - r * np.sin(a), fwhm,
                                                  beta)
    return stamps


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


@pytest.fixture(scope="session")
def calibobj_field(shared_data):
    """Field 4510-4-0030's calibObj stars with features and its five frames, read once.

    ``(catalog, frames)`` of `sourceclf.image_recipes.real_frame_catalog`; the
    frames are shared by every test: read them, never write into them.
    """
    from sourceclf.image_recipes import real_frame_catalog

    cat, frames = real_frame_catalog(shared_data)
    if cat is None:
        pytest.skip("field 4510-4-0030 is absent")
    for data, _ in frames.values():
        data.flags.writeable = False  # a test writing into them would change the others'
    return cat, frames


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


def blob_stamps(n, random_state=0, size=32, *, sigmas=(3.5, 1.2), log_flux=(0.5, 2.0),
                noise=0.05, jitter=1.0):
    """Noisy 5-band stamps of two classes, for image-model tests.

    Label 1 is a point source (a Gaussian of ``sigmas[1]`` pixels), label 0
    an extended one (``sigmas[0]``); fluxes ``10 ** U(log_flux)``, centres
    moved by up to ``jitter`` pixels, Gaussian noise of ``noise``.

    Returns
    -------
    images : `numpy.ndarray` of float32, shape (n, 5, size, size)
    labels : `numpy.ndarray` of int, shape (n,)
    """
    rng = np.random.default_rng(random_state)
    y = rng.integers(0, 2, n)
    sigma = np.where(y == 1, sigmas[1], sigmas[0])
    flux = 10 ** rng.uniform(*log_flux, n)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    cx, cy = rng.uniform(-jitter, jitter, (2, n))
    r2 = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
    s2 = sigma[:, None, None] ** 2
    profile = np.exp(-0.5 * r2 / s2) / (2 * np.pi * s2)
    colours = np.array([0.3, 0.7, 1.0, 1.2, 1.3])
    images = flux[:, None, None, None] * colours[None, :, None, None] * profile[:, None]
    images += rng.normal(scale=noise, size=images.shape)
    return images.astype(np.float32), y


@pytest.fixture(scope="session")
def tan_wcs():
    """``tan_wcs(crpix=(200, 200), scale=0.396)``: a TAN WCS at RA 150, Dec 2 degrees,
    ``scale`` arcsec per pixel (SDSS's), north up and east left, its reference pixel at
    ``crpix`` (1-based, FITS's)."""
    from astropy.wcs import WCS

    def make(crpix=(200.0, 200.0), scale=0.396):
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [150.0, 2.0]
        wcs.wcs.crpix = list(crpix)
        wcs.wcs.cdelt = [-scale / 3600.0, scale / 3600.0]
        return wcs

    return make
