"""The PSF of frames (sourceclf.psf), its use in the image path, and worse seeing."""

import warnings

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS

from sourceclf import classify
from sourceclf.bands import BANDS
from sourceclf.exceptions import InvalidInputError, SourceclfWarning
from sourceclf.psf import (CATALOG_PSF_SCALE, FLAG_PSF_UNKNOWN, FLAG_SEEING_OUT_OF_RANGE,
                           SEEING_TOLERANCE, measure_psf, moffat_gamma, seeing_flags)
from sourceclf.simulate import SDSS_BAND_DEFAULTS, degrade_frames, degrade_seeing
from sourceclf.simulate.degrade import KERNELS, kolmogorov_kernel, moffat_kernel

PIXEL = 0.396


def _moffat(shape, positions, fwhm_pix, beta, flux):
    gamma = moffat_gamma(fwhm_pix, beta)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = np.zeros(shape)
    for (x, y), f in zip(positions, flux):
        image += f * (beta - 1) / (np.pi * gamma ** 2) \
            * (1 + ((xx - x) ** 2 + (yy - y) ** 2) / gamma ** 2) ** -beta
    return image


def _star_frame(fwhm_arcsec, *, size=320, beta=3.5, sigma=0.02, seed=0, n_side=5):
    """A sky-noise frame with a grid of Moffat stars of known FWHM, plus its positions."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(35, size - 35, n_side)
    positions = [(x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5))
                 for x in grid for y in grid]
    flux = rng.uniform(50, 300, len(positions))  # nanomaggies: r 16.3-18.3
    image = _moffat((size, size), positions, fwhm_arcsec / PIXEL, beta, flux)
    return (image + rng.normal(0, sigma, image.shape)).astype(np.float32), positions


def _frames(fwhm_arcsec, seed=0):
    """Five frames of the same stars with a TAN WCS, and the table of their positions."""
    frames, table = {}, None
    for k, b in enumerate(BANDS):
        data, positions = _star_frame(fwhm_arcsec, seed=seed + k)
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [150.0, 2.0]
        wcs.wcs.crpix = [160.0, 160.0]
        wcs.wcs.cdelt = [-PIXEL / 3600, PIXEL / 3600]
        frames[b] = (data, wcs)
        if table is None:
            ra, dec = wcs.pixel_to_world_values(*np.array(positions).T)
            table = Table({"ra": ra, "dec": dec})
    return frames, table


def test_measure_psf_on_a_synthetic_frame():
    data, _ = _star_frame(1.3)
    psf = measure_psf(data)
    assert psf.fwhm == pytest.approx(1.3, rel=0.03)
    assert psf.beta == pytest.approx(3.5, rel=0.2)
    assert psf.n_stars >= 15 and psf.ellipticity < 0.05
    assert psf.sky_sigma == pytest.approx(0.02, rel=0.05)
    assert set(psf.stars.colnames) >= {"x", "y", "fwhm", "beta", "snr"}


def test_measure_psf_finds_a_wide_psf_from_a_narrow_guess():
    data, _ = _star_frame(2.2)
    assert measure_psf(data, fwhm_guess=1.0).fwhm == pytest.approx(2.2, rel=0.05)


def test_measure_psf_on_a_real_frame(shared_data):
    from sourceclf.frames import read_frame

    data, _ = read_frame(shared_data / "sdss_frame_004510-4-0030"
                         / "frame-r-004510-4-0030.fits.bz2")
    psf = measure_psf(data[:, :1024])
    # Moffat fits and the ePSF of the whole frame give 0.98" and 0.97"
    assert psf.fwhm == pytest.approx(0.98, rel=0.05)
    assert 2.5 < psf.beta < 4.5 and psf.n_stars >= 5


@pytest.mark.parametrize("image, match", [
    (np.zeros((200, 200)), "no sky noise"),
    (np.random.default_rng(0).normal(size=(200, 200)), "isolated point sources"),
    (np.ones(5), "2-D image"),
])
def test_measure_psf_errors(image, match):
    with pytest.raises(InvalidInputError, match=match):
        measure_psf(image)


def test_catalog_scale_is_the_simulators():
    assert CATALOG_PSF_SCALE == {b: SDSS_BAND_DEFAULTS[b]["psf_scale"] for b in BANDS}


def test_seeing_flags_tolerance_and_unknown():
    fwhm = {b: np.array([1.0, 1.0, 1.0, np.nan]) for b in BANDS}
    fwhm["r"] = np.array([1.0, 1.3 * (1 + SEEING_TOLERANCE) + 0.01, 1.3 * 1.04, 1.0])
    out, unknown = seeing_flags(fwhm, {b: (0.8, 1.3) for b in BANDS})
    assert out.tolist() == [False, True, False, False]
    assert unknown.tolist() == [False, False, False, True]


def test_classify_frames_carries_the_measured_psf():
    frames, table = _frames(1.1)
    out = classify(table, images=frames, model="margnet-cnn-sgq", confidence=None,
                   device="cpu", progress=False)
    for b in BANDS:
        assert out[f"psf_fwhm_{b}"].unit == "arcsec"
        assert np.allclose(out[f"psf_fwhm_{b}"], 1.1, rtol=0.05)
    assert not any(FLAG_SEEING_OUT_OF_RANGE in f for f in out["pred_flag"])


# The synthetic frame's stars, 3" wide, cover 14% of it: crowded by the frame's coverage.
@pytest.mark.filterwarnings("ignore::sourceclf.exceptions.CrowdedFrameWarning")
def test_classify_flags_frames_of_bad_seeing():
    frames, table = _frames(3.0, seed=10)  # beyond the trained 0.75-2.5"
    out = classify(table, images=frames, model="margnet-cnn-sgq", confidence=None,
                   device="cpu", progress=False)
    assert np.allclose(out["psf_fwhm_r"], 3.0, rtol=0.05)
    assert all(FLAG_SEEING_OUT_OF_RANGE in f for f in out["pred_flag"])
    assert not out["pred_class"].mask.any()  # flagged rows are still classified


def _stamps(n=4):
    return np.random.default_rng(0).normal(0, 0.02, (n, 5, 32, 32)).astype(np.float32)


def test_stamps_flagged_with_a_wide_psf_argument():
    table = Table({"id": np.arange(4)})
    # Four stamps hold too few stars for the PSF's Moffat index: one warning says so.
    with pytest.warns(SourceclfWarning, match="Moffat index"):
        out = classify(table, _stamps(), psf=3.5, model="margnet-cnn-sgq", confidence=None,
                       device="cpu", progress=False)
    assert np.allclose(out["psf_fwhm_g"], 3.5)
    assert all(f == FLAG_SEEING_OUT_OF_RANGE for f in out["pred_flag"])
    with pytest.warns(SourceclfWarning, match="Moffat index"):
        ok = classify(table, _stamps(), psf={b.upper(): 1.0 for b in BANDS},
                      model="margnet-cnn-sgq", confidence=None, device="cpu", progress=False)
    assert all(f == "" for f in ok["pred_flag"])


def test_stamps_without_psf_warn_once_and_flag():
    table = Table({"id": np.arange(4)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = classify(table, _stamps(), model="margnet-cnn-sgq", confidence=None,
                       device="cpu", progress=False)
    ours = [w for w in caught if issubclass(w.category, SourceclfWarning)]
    assert len(ours) == 1 and "psf=" in str(ours[0].message)
    assert all(f == FLAG_PSF_UNKNOWN for f in out["pred_flag"])
    assert out["psf_fwhm_r"].mask.all() and not out["pred_class"].mask.any()


def test_stamps_psf_from_the_catalog_width():
    table = Table({f"PSFFWHM_{b}": [1.1, 3.9] for b in BANDS})
    with pytest.warns(SourceclfWarning, match="Moffat index"):
        out = classify(table, _stamps(2), model="margnet-cnn-sgq", confidence=None,
                       device="cpu", progress=False)
    assert out["psf_fwhm_r"][0] == pytest.approx(1.1 * CATALOG_PSF_SCALE["r"], rel=1e-5)
    assert out["pred_flag"].tolist() == ["", FLAG_SEEING_OUT_OF_RANGE]


@pytest.mark.parametrize("psf, match", [
    (-1.0, "positive"), ({"r": 1.0}, r"psf lacks band\(s\) u, g, i, z"),
    ("wide", "FWHM in arcsec"), ({**dict.fromkeys("ugriz", 1.2), "R": 1.3}, "band 'r' twice"),
    ({**dict.fromkeys("ugriz", 1.2), "y": 1.3}, "psf has an unknown band 'y'")])
def test_bad_psf_argument(psf, match):
    with pytest.raises(InvalidInputError, match=match):
        classify(Table({"id": [0]}), _stamps(1), psf=psf, model="margnet-cnn-sgq",
                 confidence=None, device="cpu", progress=False)


@pytest.fixture(scope="module")
def moffat_frame():
    """A frame of Moffat stars (index 3) at 1.0", and its measured PSF."""
    data, _ = _star_frame(1.0, size=400, n_side=6, sigma=0.03, beta=3.0)
    return data, measure_psf(data)


@pytest.mark.parametrize("kernel", KERNELS)
def test_degrade_seeing_reaches_the_target_and_keeps_the_noise(moffat_frame, kernel):
    data, native = moffat_frame
    blurred = degrade_seeing(data, native.fwhm, 1.9, beta=native.beta, kernel=kernel,
                             random_state=1)
    again = measure_psf(blurred, fwhm_guess=1.9)
    assert again.fwhm == pytest.approx(1.9, rel=0.05)
    assert again.sky_sigma == pytest.approx(native.sky_sigma, rel=0.05)
    # the shape each kernel leaves: the native index (moffat), a Kolmogorov core
    # (about 4-5), nearly Gaussian (large)
    low, high = {"moffat": (2.6, 3.4), "kolmogorov": (3.6, 5.5), "gaussian": (5.5, 99)}[kernel]
    assert low < again.beta < high
    with pytest.raises(InvalidInputError, match="cannot sharpen"):
        degrade_seeing(data, 1.0, 0.8, kernel=kernel)


@pytest.mark.parametrize("make", [moffat_kernel, kolmogorov_kernel])
def test_shape_kernels_are_centred_and_of_unit_sum(make):
    kernel = make(2.5, 3.0, 4.8)
    assert kernel.shape[0] == kernel.shape[1] and kernel.shape[0] % 2 == 1
    assert kernel.sum() == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(kernel), kernel.shape) == (kernel.shape[0] // 2,) * 2
    assert np.allclose(kernel, kernel.T, atol=1e-6 * kernel.max())
    assert make(2.5, 3.0, 2.5).shape == (1, 1)
    with pytest.raises(InvalidInputError, match="above 1.1"):
        make(2.5, 1.05, 4.8)
    # drawn (and solved) once: the same PSFs again are a cache hit, and the caller gets a
    # copy it may write to
    from sourceclf.simulate.degrade import _drawn_kernel

    hits = _drawn_kernel.cache_info()[0]
    again = make(2.5, 3.0, 4.8)
    assert _drawn_kernel.cache_info()[0] == hits + 1
    assert np.array_equal(again, kernel) and again.flags.writeable
    again[0, 0] = 7.0
    assert make(2.5, 3.0, 4.8)[0, 0] != 7.0


def test_degrade_seeing_names_an_unknown_kernel():
    with pytest.raises(InvalidInputError, match="kernel must be one of 'gaussian', "
                                                "'kolmogorov', 'moffat', got 'box'"):
        degrade_seeing(np.zeros((20, 20)), 1.0, 1.5, kernel="box")
    frames, _ = _frames(1.0)
    with pytest.raises(InvalidInputError, match="kernel must be one of"):
        degrade_frames(frames, 1.6, kernel="box")


def test_degrade_stamps_and_frames():
    stamps = np.random.default_rng(2).normal(0, 0.05, (20, 32, 32))
    blurred = degrade_seeing(stamps, 1.0, 2.0, random_state=0)
    assert blurred.shape == stamps.shape
    assert np.std(blurred) == pytest.approx(0.05, rel=0.05)
    moffat = degrade_seeing(stamps, 1.0, 2.0, kernel="moffat", random_state=0)
    assert moffat.shape == stamps.shape and moffat.dtype == np.float32
    assert np.std(moffat) == pytest.approx(0.05, rel=0.05)
    frames, _ = _frames(1.0)
    for kernel in ("gaussian", "moffat"):
        out, targets = degrade_frames(frames, 1.6, kernel=kernel)
        assert targets["r"] == pytest.approx(1.6)
        assert (measure_psf(out["g"][0], fwhm_guess=1.6).fwhm
                == pytest.approx(targets["g"], rel=0.05))


def test_saturation_flags_bright_point_sources():
    from sourceclf.saturation import SATURATION_LEVEL, saturation_flags

    fwhm = 1.0
    gamma = fwhm / PIXEL / (2 * np.sqrt(2 ** (1 / 3.5) - 1))
    peak_per_flux = 2.5 / (np.pi * gamma ** 2)
    limit = SATURATION_LEVEL["r"] / peak_per_flux  # flux whose r peak reaches the level
    stamps = np.zeros((3, 5, 32, 32))
    for i, flux in enumerate([0.5 * limit, 2.0 * limit, 2.0 * limit]):
        stamps[i, 2] = _moffat((32, 32), [(15.5, 15.5)], fwhm / PIXEL, 3.5, [flux])
    widths = {b: np.array([fwhm, fwhm, np.nan]) for b in BANDS}
    # Row 3 is as bright, but its PSF is unknown: not judged.
    assert saturation_flags(stamps, widths).tolist() == [False, True, False]
    # The same flux through a 2.5x wider PSF peaks 6x lower: no longer saturated.
    assert not saturation_flags(stamps[1:2], {b: np.array([2.5]) for b in BANDS}).any()


def test_saturated_flag_on_the_brightest_real_stars(calibobj_field):
    cat, frames = calibobj_field
    r = np.asarray(cat["dered_r"])
    keep = np.argsort(r)[:12]  # the brightest calibObj stars, r 11.9-17.7
    out = classify(cat[keep], images=frames, model="margnet-cnn-sgq", confidence=None,
                   device="cpu", progress=False)
    flagged = np.char.find(np.asarray(out["pred_flag"]).astype(str), "saturated") >= 0
    # SDSS saturates near r = 14 at 1" seeing.  Interpolated cores lose flux, so not
    # every saturated star is caught (the r = 13.5 one keeps a third of its flux).
    assert flagged[r[keep] < 12.5].all() and flagged[r[keep] < 14.7].sum() >= 3
    assert not flagged[r[keep] > 16.0].any()
    assert not out["pred_class"].mask.any()  # flagged rows are still classified


def test_sky_level_leaves_out_a_zero_filled_no_data_area():
    """A coadd's zero-filled corner read as sky gave 'no sky noise (a constant image?)'."""
    from sourceclf.psf import sky_level

    frame = np.random.default_rng(2).normal(0.01, 0.03, (200, 200)).astype(np.float32)
    frame[:80] = 0.0
    median, sigma = sky_level(frame)
    assert median == pytest.approx(0.01, abs=0.003) and sigma == pytest.approx(0.03, rel=0.1)


def test_frame_psf_measures_each_frame_once_while_a_memo_is_open(monkeypatch):
    from sourceclf import field_psf as psf_module
    from sourceclf.field_psf import frame_psf, psf_memo

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:300, :300]
    frame = rng.normal(0.0, 1.0, (300, 300))
    for x, y in rng.uniform(25, 275, (12, 2)):
        frame += 3000 * (1 + ((xx - x) ** 2 + (yy - y) ** 2) / 3.205 ** 2) ** -3.5
    calls = []
    measure = psf_module.measure_psf

    def counted(data, **options):
        calls.append(id(data))
        return measure(data, min_stars=3, **options)

    monkeypatch.setattr(psf_module, "measure_psf", counted)
    frame_psf(frame, pixel_scale=1.0)
    frame_psf(frame, pixel_scale=1.0)
    assert len(calls) == 2  # no memo open: measured each time
    with psf_memo():
        first = frame_psf(frame, pixel_scale=1.0)
        assert frame_psf(frame, pixel_scale=1.0) is first and len(calls) == 3
        copy = frame.copy()  # another array: measured for itself
        assert frame_psf(copy, pixel_scale=1.0).fwhm == pytest.approx(first.fwhm)
        assert frame_psf(frame, pixel_scale=0.5).fwhm == pytest.approx(first.fwhm / 2)
        assert len(calls) == 5
        blank = np.random.default_rng(2).normal(0.0, 1.0, (300, 300))
        for _ in range(2):  # a failure is not kept: tried again, and said again
            with pytest.raises(InvalidInputError, match="cannot measure the PSF of sky"):
                frame_psf(blank, pixel_scale=1.0, label="sky")
        assert len(calls) == 7
        with psf_memo():  # a memo inside another shares the outer's measurements
            assert frame_psf(frame, pixel_scale=1.0) is first and len(calls) == 7
            third = frame_psf(frame, pixel_scale=2.0)
            assert len(calls) == 8
        # what the inner one measured is kept until the outer one closes
        assert frame_psf(frame, pixel_scale=2.0) is third and len(calls) == 8
    frame_psf(frame, pixel_scale=1.0)
    assert len(calls) == 9  # forgotten when it closed
    with psf_memo():
        frame_psf(frame, pixel_scale=1.0)
        with pytest.raises(RuntimeError, match="inner"):
            with psf_memo():
                raise RuntimeError("inner")
        frame_psf(frame, pixel_scale=1.0)  # an error in the inner one keeps the outer's
        assert len(calls) == 10
