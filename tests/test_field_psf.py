"""The PSF of a field's bands: on each frame's own stars, or on the other bands' stars
(sourceclf.field_psf), the point-source locus among compact galaxies
(sourceclf.psf.point_source_locus), and the rows seen through an elongated PSF
(sourceclf.elongation)."""

import re
import warnings

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS

from sourceclf.bands import BANDS
from sourceclf.exceptions import InvalidInputError
from sourceclf.psf import moffat_profile, point_source_locus

pytest.importorskip("photutils")

from sourceclf import field_psf  # noqa: E402
from sourceclf.field_psf import (borrowed_band_psf, field_band_psf,  # noqa: E402
                                 measure_psf_at, psf_memo)

SIZE, SCALE = 400, 0.396
#: Each band's FWHM (pixels) and Moffat index.
SHAPE = {"u": (3.6, 3.0), "g": (3.2, 3.5), "r": (3.0, 4.0), "i": (2.9, 4.0), "z": (3.1, 4.5)}


def _wcs(shift):
    """A TAN WCS at SDSS's scale; each band's frame offset by ``shift`` pixels, as SDSS's
    bands are not aligned."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [200.0 + shift, 200.0 - shift]
    wcs.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
    return wcs


def _field(faint=(), noise=1.0, seed=0):
    """Five frames of the same 14 isolated stars (at S/N of a few hundred), each band
    with its own PSF and offset; in the ``faint`` bands the stars are at S/N 22-45,
    below `sourceclf.psf.measure_psf`'s floor of 50 but above the borrowed one."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(40, SIZE - 40, 4)
    sky = [(x + rng.uniform(-5, 5), y + rng.uniform(-5, 5)) for x in grid for y in grid][:14]
    ra, dec = _wcs(0).pixel_to_world_values(*np.transpose(sky))
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float)
    frames = {}
    for k, band in enumerate(BANDS):
        wcs = _wcs(3.0 * k)
        x, y = wcs.world_to_pixel_values(ra, dec)
        fwhm, beta = SHAPE[band]
        # Roughly the aperture S/N of sourceclf.psf.aperture_snr (which gives 1.4 times
        # more): the faint bands' stars at 22-45, the others' at several hundred.
        snr = rng.uniform(16, 32, len(x)) if band in faint else rng.uniform(200, 400, len(x))
        flux = snr * noise * np.sqrt(np.pi) * 1.5 * fwhm / 0.8
        data = sum(f * moffat_profile(xx - a, yy - b, fwhm, beta) for a, b, f in zip(x, y, flux))
        frames[band] = ((data + rng.normal(0.0, noise, data.shape)).astype(np.float32), wcs)
    return frames


def test_a_band_too_faint_for_its_own_stars_is_measured_on_the_others():
    frames = _field(faint=("u",))
    with pytest.raises(InvalidInputError, match="S/N > 50 found, 5 needed"):
        field_psf.band_psf(frames["u"], "u")
    psf = field_band_psf(frames, "u")
    assert psf.stars_from == ("g", "r", "i", "z")
    assert psf.fwhm == pytest.approx(SHAPE["u"][0] * SCALE, rel=0.03)
    assert psf.beta == pytest.approx(SHAPE["u"][1], rel=0.15)
    assert psf.n_stars >= 10
    # A band that holds its own stars is measured on them, as before.
    own = field_band_psf(frames, "r")
    assert own.stars_from == () and own.fwhm == field_psf.band_psf(frames["r"], "r").fwhm
    # Borrowed on a band that holds its own: the same PSF within the fits' scatter.
    assert borrowed_band_psf(frames, "r").fwhm == pytest.approx(own.fwhm, rel=0.02)


def test_when_no_band_can_lend_its_stars_one_line_says_why():
    frames = _field(faint=BANDS)
    with pytest.raises(InvalidInputError) as said:
        field_band_psf(frames, "g")
    message = str(said.value)
    assert "\n" not in message
    assert "band 'g'" in message and "S/N > 50 found" in message
    assert "no other band's PSF stars" in message
    # Stars the other bands found, but too faint here: both failures named.
    frames = _field(faint=("u",))
    noisier = frames["u"][0] + np.random.default_rng(9).normal(0.0, 5.0, (SIZE, SIZE))
    frames["u"] = (noisier.astype(np.float32), frames["u"][1])
    with pytest.raises(InvalidInputError, match=r"S/N > 50 found.*; on the PSF stars of band\(s\) "
                                                r"g, r, i, z, 0 of the \d+ given point sources"):
        field_band_psf(frames, "u")


def test_field_band_psf_is_measured_once_per_field_and_band_while_a_memo_is_open(
        monkeypatch):
    frames = _field(faint=("u",))
    calls = []
    measure = field_psf.measure_psf_at

    def counted(*args, **kwargs):
        calls.append(kwargs.get("label"))
        return measure(*args, **kwargs)

    monkeypatch.setattr(field_psf, "measure_psf_at", counted)
    with psf_memo():
        first = field_band_psf(frames, "u")
        assert field_band_psf(frames, "u") is first
    assert calls == ["the frame of band 'u'"]
    field_band_psf(frames, "u")
    assert len(calls) == 2  # no memo open: measured again


def test_measure_psf_at_fits_the_given_positions():
    frames = _field(faint=("z",))
    data, wcs = frames["z"]
    ra, dec = frames["r"][1].pixel_to_world_values(
        *np.transpose([(x, y) for x, y in zip(*_star_table(frames["r"]))]))
    x, y = wcs.world_to_pixel_values(ra, dec)
    psf = measure_psf_at(data, x, y, fwhm_guess=1.0, label="z")
    assert psf.fwhm == pytest.approx(SHAPE["z"][0] * SCALE, rel=0.03)
    with pytest.raises(InvalidInputError, match="cannot measure the PSF of z: 0 of the 3 "):
        measure_psf_at(data, [5.0, 6.0, 7.0], [5.0, 6.0, 7.0], label="z")


def _star_table(frame):
    stars = field_psf.band_psf(frame, "r").stars
    return np.asarray(stars["x"]), np.asarray(stars["y"])


def test_classify_inputs_take_the_borrowed_psf_instead_of_flagging_the_rows():
    """A catalog on frames whose u band holds too few stars of its own: the rows get u's
    PSF from the other bands' stars, not ``psf_unknown``."""
    from sourceclf.inputs import model_inputs

    frames = _field(faint=("u",))
    ra, dec = frames["r"][1].pixel_to_world_values([100.0, 250.0], [120.0, 300.0])
    table = Table({"ra": ra, "dec": dec})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic frames' sky is not SDSS's
        inputs = model_inputs(table, feature_set="psf_fwhm", uses_images=True, images=frames,
                              psf_range={b: (0.5, 3.0) for b in BANDS})
    assert "psf_unknown" not in "".join(np.asarray(inputs.flags).astype(str))
    np.testing.assert_allclose(inputs.columns["psf_fwhm_u"], SHAPE["u"][0] * SCALE, rtol=0.03)


def test_the_locus_is_the_stars_not_the_compact_galaxies_beside_them():
    """At worse seeing more compact galaxies than stars can pass as point-like: the
    median of the fits then lies among the galaxies.  (The fitted FWHMs of field
    004510-4-0030's r frame blurred to 2.2": 15 stars at 2.17-2.22", 17 wider.)"""
    rng = np.random.default_rng(3)
    stars = rng.normal(2.20, 0.015, 15)
    galaxies = rng.uniform(2.35, 3.7, 17)
    centre, width = point_source_locus(np.r_[stars, galaxies])
    assert centre == pytest.approx(2.20, abs=0.02)
    assert 0.03 * centre <= width < 0.1
    # Where stars dominate, the median of the fits, as before.
    mostly = np.r_[rng.normal(1.2, 0.03, 30), rng.uniform(1.3, 2.0, 5)]
    assert point_source_locus(mostly)[0] == np.median(mostly)


def test_a_locus_is_never_wider_than_the_median_nor_a_handful():
    """Stars are the narrowest sources: a dense window above the median (fits of an
    elongated PSF scatter broadly) is not taken for the locus, nor a window of fewer
    fits than a PSF is measured from; the median of the fits stands."""
    rng = np.random.default_rng(4)
    broad = np.r_[rng.uniform(1.3, 1.75, 12), rng.normal(1.95, 0.01, 8), rng.uniform(2.0, 2.3, 6)]
    assert point_source_locus(broad)[0] == np.median(broad)
    handful = np.r_[rng.normal(1.0, 0.005, 4), rng.uniform(1.15, 2.0, 20)]
    assert point_source_locus(handful)[0] == np.median(handful)
    assert point_source_locus(handful, min_stars=4)[0] == pytest.approx(1.0, abs=0.02)


def _counting(monkeypatch):
    """Count `sourceclf.psf.measure_psf` runs made through `sourceclf.field_psf`."""
    calls = []
    measure = field_psf.measure_psf

    def counted(data, **kwargs):
        calls.append(kwargs.get("label"))
        return measure(data, **kwargs)

    monkeypatch.setattr(field_psf, "measure_psf", counted)
    return calls


def test_each_frame_is_searched_once_per_call_without_a_memo_open(monkeypatch):
    """A field whose u band borrows the others' stars: `field_psfs` and `model_inputs`
    (the FWHM and the Moffat index of each band) search each frame once, not once per
    band that needs it."""
    from sourceclf.inputs import model_inputs

    frames = _field(faint=("u",))
    calls = _counting(monkeypatch)
    psf = field_psf.field_psfs(frames)
    assert psf["u"].stars_from and sorted(calls) == sorted(f"the frame of band '{b}'"
                                                           for b in BANDS)
    calls.clear()
    ra, dec = frames["r"][1].pixel_to_world_values([100.0, 250.0], [120.0, 300.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic frames' sky is not SDSS's
        model_inputs(Table({"ra": ra, "dec": dec}), feature_set="psf_shape", uses_images=True,
                     images=frames)
    assert len(calls) == len(BANDS)


def test_both_ways_of_choosing_stars_search_again_at_the_locus_not_the_median():
    """`sourceclf.psf.fit_psf_stars`, shared by `measure_psf` and `measure_psf_at`:
    when the first fits lie far from the guess, the stars are chosen and fitted
    again at the width of the point-source locus, not at the median of the fits
    (here among the more numerous compact galaxies)."""
    from sourceclf.psf import fit_psf_stars

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float)
    spots = [(x, y) for x in np.linspace(30, SIZE - 30, 6) for y in np.linspace(30, SIZE - 30, 4)]
    widths = np.r_[np.full(9, 3.0), rng.uniform(3.6, 4.6, 15)]  # 9 stars, 15 wider
    data = sum(3000.0 * moffat_profile(xx - x, yy - y, w, 3.5) for (x, y), w in zip(spots, widths))
    data = (data + rng.normal(0.0, 1.0, data.shape)).astype(np.float32)
    x, y = np.transpose(spots)
    guesses = []

    def candidates(fwhm):
        guesses.append(fwhm)
        return x, y, np.full(len(x), 100.0)

    fits = fit_psf_stars(data, candidates, 1.5)
    assert len(guesses) == 2
    assert np.median(np.asarray(fits["fwhm"])[fits["ok"]]) > 3.4  # the median: galaxies
    assert guesses[1] == pytest.approx(3.0, rel=0.03)


def test_psf_errors_carry_their_reason_apart_from_the_frame():
    import pickle

    from sourceclf.exceptions import PSFMeasurementError

    frames = _field(faint=BANDS)
    with pytest.raises(PSFMeasurementError) as said:
        field_band_psf(frames, "g")
    error = said.value
    assert error.label == "the frame of band 'g'"
    assert str(error) == f"cannot measure the PSF of {error.label}: {error.reason}"
    assert error.reason.startswith("0 isolated point sources") or "S/N > 50 found" in error.reason
    assert "cannot measure" not in error.reason  # the frame is named once
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and isinstance(copy, InvalidInputError)
    # A frame that is not one to measure says so, without a borrowed attempt's words.
    flat = dict(_field(faint=("u",)), u=(np.zeros((SIZE, SIZE), np.float32),
                                         _field()["u"][1]))
    with pytest.raises(InvalidInputError, match="no sky noise") as said:
        field_band_psf(flat, "u")
    assert "PSF stars of band" not in str(said.value)


def test_the_output_says_whose_stars_each_band_s_psf_was_measured_on():
    """`describe_field_psf`, kept by `classify` as ``meta['CLFFPSF']`` when it measured
    the frames' PSF itself (not when ``psf=`` gave it)."""
    import sourceclf
    from sourceclf.field_psf import describe_field_psf

    frames = _field(faint=("u",))
    line = describe_field_psf(frames)
    assert line.startswith("PSF FWHM measured on the frames: u ")
    assert 'r 1.1' in line  # 3.0 px at 0.396"
    assert "u on the PSF stars of band(s) g, r, i, z (too few of its own)" in line
    assert "not measured" not in line
    gone = dict(frames, u=(frames["u"][0] + np.random.default_rng(9).normal(
        0.0, 5.0, (SIZE, SIZE)).astype(np.float32), frames["u"][1]))
    assert describe_field_psf(gone).endswith(
        "not measured: u (their rows are flagged psf_unknown)")
    ra, dec = frames["r"][1].pixel_to_world_values([100.0, 250.0], [120.0, 300.0])
    table = Table({"ra": ra, "dec": dec})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic frames' sky is not SDSS's
        out = sourceclf.classify(table, images=frames, model="margnet-cnn-sgq",
                                 confidence=None, progress=False)
        given = sourceclf.classify(table, images=frames, model="margnet-cnn-sgq",
                                   psf={b: 1.2 for b in BANDS}, confidence=None,
                                   progress=False)
    assert out.meta["CLFFPSF"] == line
    assert "CLFFPSF" not in given.meta


def _smeared(frames, sigma):
    """The frames smoothed along x by a Gaussian of ``sigma`` pixels (a shaken PSF)."""
    from scipy.ndimage import gaussian_filter1d

    return {b: (gaussian_filter1d(data, sigma, axis=1).astype(np.float32), wcs)
            for b, (data, wcs) in frames.items()}


def test_rows_seen_through_an_elongated_psf_are_flagged_and_say_how_elongated():
    """`sourceclf.elongation`: the PSF's ``1 - b/a`` per band goes out with the rows
    (``psf_ellipticity_<b>``), and beyond `ELONGATION_LIMIT` they are flagged
    ``psf_elongated``, with one warning naming the bands; a round PSF is not."""
    from sourceclf.elongation import ELONGATION_LIMIT
    from sourceclf.exceptions import SourceclfWarning
    from sourceclf.inputs import model_inputs

    frames = _field()
    ra, dec = frames["r"][1].pixel_to_world_values([100.0, 250.0, 600.0], [120.0, 300.0, 90.0])
    table = Table({"ra": ra, "dec": dec})  # the last row off the frames

    def inputs(images, **kwargs):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            made = model_inputs(table, feature_set="psf_fwhm", uses_images=True,
                                images=images, psf_range={b: (0.5, 3.0) for b in BANDS},
                                model_name="m", **kwargs)
        return made, [str(w.message) for w in said if issubclass(w.category, SourceclfWarning)
                      and "elongated" in str(w.message)]

    round_, said = inputs(frames)
    assert not said and "psf_elongated" not in "".join(round_.flags)
    shape = round_.columns["psf_ellipticity_r"]
    assert 0.0 <= shape[0] < 0.1 and shape.mask.tolist() == [False, False, True]

    shaken = _smeared(frames, 2.5)
    elongated, said = inputs(shaken)
    assert [("psf_elongated" in f) for f in elongated.flags] == [True, True, False]
    assert elongated.columns["psf_ellipticity_r"][0] > ELONGATION_LIMIT
    assert len(said) == 1 and "its rows are flagged 'psf_elongated'" in said[0]
    assert re.search(r"1 - b/a of (. 0\.\d\d, )*r 0\.[23]\d", said[0])
    # Given as measurements, their elongation is read from them; a FWHM alone says none.
    measured = field_psf.field_psfs(shaken)
    given, _ = inputs(frames, psf=measured)
    assert [("psf_elongated" in f) for f in given.flags] == [True, True, False]
    alone, _ = inputs(shaken, psf={b: m.fwhm for b, m in measured.items()})
    assert "psf_ellipticity_r" not in alone.columns
    assert "psf_elongated" not in "".join(alone.flags)


def test_one_psf_measurement_given_for_every_band_gives_its_index_and_elongation():
    """``psf=`` one `PSFMeasurement` counts for every band, as its FWHM does: the CNN's
    Moffat index and the elongation flag read it too, not only the FWHM."""
    from sourceclf.inputs import model_inputs

    frames = _field()
    ra, dec = frames["r"][1].pixel_to_world_values([100.0, 250.0], [120.0, 300.0])
    table = Table({"ra": ra, "dec": dec})
    one = field_psf.field_psfs(frames)["r"]._replace(beta=4.4, ellipticity=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic frames' sky is not SDSS's
        inputs = model_inputs(table, feature_set="psf_shape", uses_images=True, images=frames,
                              psf=one, psf_range={b: (0.5, 3.0) for b in BANDS},
                              psf_beta_range={b: (2.0, 8.0) for b in BANDS})
    for b in BANDS:
        np.testing.assert_allclose(inputs.columns[f"psf_beta_{b}"], 4.4, rtol=1e-6)
        np.testing.assert_allclose(inputs.columns[f"psf_ellipticity_{b}"], 0.3, rtol=1e-6)
    assert all("psf_elongated" in f for f in inputs.flags)
