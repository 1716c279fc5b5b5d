"""MargNet's catalog columns measured on frames (sourceclf.photometry.measure_columns)."""

import warnings
from contextlib import nullcontext

import numpy as np
import pytest
from astropy.table import Table
from astropy.wcs import WCS

from sourceclf.bands import BANDS
from sourceclf.exceptions import InvalidInputError, SourceclfWarning
from sourceclf.psf import PSFMeasurement, moffat_profile

pytest.importorskip("galsim")
pytest.importorskip("photutils")

from sourceclf.photometry import (deblend_frame, frame_stamps, measure_columns,  # noqa: E402
                                  source_stamps)
from sourceclf.profile_fits import PROFILE_RADII, fit_band  # noqa: E402

FWHM_PIX, BETA = 3.0, 3.5


def _wcs(scale=0.396):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [100.0, 100.0]
    wcs.wcs.cdelt = [-scale / 3600, scale / 3600]
    return wcs


def _frames(positions, noise=0.02, seed=0, scale=0.396):
    """Frames of Moffat stars ``(x, y, flux)``, the same in every band, and their PSF
    (``scale``: arcsec per pixel)."""
    yy, xx = np.mgrid[:200, :200].astype(float)
    data = sum(flux * moffat_profile(xx - x, yy - y, FWHM_PIX, BETA) for x, y, flux in positions)
    data = data + np.random.default_rng(seed).normal(0.0, noise, data.shape)
    wcs = _wcs(scale)
    psf = {b: PSFMeasurement(FWHM_PIX * scale, 0.0, BETA, 0.0, 2, noise, None) for b in BANDS}
    return {b: (data.astype(np.float32), wcs) for b in BANDS}, psf


def _sources(pixels, scale=0.396):
    ra, dec = _wcs(scale).pixel_to_world_values(*np.transpose(pixels))
    return Table({"ra": ra, "dec": dec})


def test_a_star_keeps_its_own_light_next_to_a_brighter_neighbour():
    """Deblended: the star's columns do not take in its neighbour's light."""
    # Two isolated stars, then a star with a 4x brighter neighbour 9 pixels away (3.6").
    frames, psf = _frames([(50.0, 50.0, 100.0), (150.0, 150.0, 100.0), (100.0, 100.0, 100.0),
                           (109.0, 100.0, 400.0)])
    columns, used = measure_columns(_sources([(50.0, 50.0), (150.0, 150.0), (100.0, 100.0)]),
                                    frames, psf)
    assert used == psf
    # Same flux as the isolated stars, to 0.1 mag, and point-like: without the
    # deblending the neighbour would add over a magnitude and a large radius.
    assert abs(columns["dered_r"][2] - columns["dered_r"][0]) < 0.1
    assert columns["deVRad_r"][2] < 0.2
    np.testing.assert_allclose(columns["psffwhm_r"], FWHM_PIX * 0.396 / 0.908, rtol=1e-6)
    np.testing.assert_allclose(columns["u_g"], 0.0, atol=0.05)  # the same star in u and g
    # Without the split, the neighbour's light is in the stamp.
    x, y = np.array([100.0]), np.array([100.0])
    parts, labels = deblend_frame(frames["r"][0], FWHM_PIX, 0.02, x, y)
    own = source_stamps(frames["r"][0], x, y, parts, labels)
    whole = source_stamps(frames["r"][0], x, y)
    assert whole.sum() > 3 * own.sum() > 0


def test_a_star_with_a_merged_neighbour_stays_a_point_source():
    """1.4 FWHM from a fainter neighbour (no peak of its own in the smoothed frame): the
    neighbour is found in the residual and fitted, so the star's columns stay its own."""
    frames, psf = _frames([(50.0, 50.0, 100.0), (100.0, 100.0, 100.0), (104.2, 100.0, 60.0),
                           (150.0, 150.0, 100.0)])
    columns, _ = measure_columns(_sources([(50.0, 50.0), (100.0, 100.0)]), frames, psf)
    assert columns["deVRad_r"][1] < 0.2
    assert abs(columns["dered_r"][1] - columns["dered_r"][0]) < 0.1
    # The segment deblender's stamp keeps the neighbour's light: an extended source.
    x, y = np.array([100.0]), np.array([100.0])
    parts, labels = deblend_frame(frames["r"][0], FWHM_PIX, 0.02, x, y)
    _, best = fit_band(source_stamps(frames["r"][0], x, y, parts, labels), FWHM_PIX * 0.396, BETA)
    assert PROFILE_RADII[best[0]] >= 0.3


def test_rows_off_the_frames_and_the_tables_extinction():
    frames, psf = _frames([(50.0, 50.0, 100.0), (150.0, 150.0, 100.0)])
    table = _sources([(50.0, 50.0), (150.0, 150.0), (500.0, 500.0)])
    for k, b in enumerate(BANDS):
        table[f"extinction_{b}"] = [0.1 * (k + 1)] * 3
    columns, _ = measure_columns(table, frames, psf)
    assert np.isfinite(columns["dered_r"][:2]).all()
    for name in ("dered_r", "deVRad_r", "u_g"):
        assert np.isnan(columns[name][2]), name
    # dered = observed - extinction; the colours stay observed (MargNet's convention).
    plain, _ = measure_columns(table["ra", "dec"], frames, psf)
    np.testing.assert_allclose(plain["dered_r"][:2] - columns["dered_r"][:2], 0.3)
    np.testing.assert_allclose(plain["u_g"][:2], columns["u_g"][:2])
    np.testing.assert_array_equal(plain["extinction_r"], 0.0)
    assert table.colnames == ["ra", "dec"] + [f"extinction_{b}" for b in BANDS]  # a copy


def test_frame_stamps_cut_each_band_where_measure_columns_fits():
    """One band's stamps per band asked, in that order, of the positions on its frame alone
    (off it, or NaN, none), as `source_stamps` cuts them (NaN beyond an edge)."""
    frames, psf = _frames([(4.0, 100.0, 60.0), (100.0, 100.0, 60.0)])
    table = _sources([(4.0, 100.0), (100.0, 100.0), (500.0, 500.0)])
    ra = np.append(np.asarray(table["ra"]), np.nan)
    dec = np.append(np.asarray(table["dec"]), np.nan)
    cuts = list(frame_stamps(frames, psf, ra, dec, bands=("i", "r")))
    assert [cut.band for cut in cuts] == ["i", "r"]
    for cut in cuts:
        np.testing.assert_array_equal(cut.inside, [True, True, False, False])
        assert cut.stamps.shape == (2, 32, 32)
        assert cut.scale == pytest.approx(0.396)
        x, y = cut.wcs.world_to_pixel_values(ra[:2], dec[:2])
        np.testing.assert_array_equal(cut.stamps, source_stamps(cut.data, x, y, beyond=np.nan))
        assert np.isnan(cut.stamps[0]).any() and np.isfinite(cut.stamps[1]).all()
    assert len(list(frame_stamps(frames, psf, [np.nan], [np.nan]))) == len(BANDS)


def test_a_source_at_a_frames_edge_is_measured_on_the_frames_pixels_alone():
    """The part of an edge source's stamp beyond the frame holds no measurement
    (``source_stamps(beyond=nan)``): its columns do not move with a sky a little off zero,
    nor does the stamp's background, taken from the frame's pixels alone."""
    frames, psf = _frames([(4.0, 100.0, 60.0), (100.0, 100.0, 60.0)])
    table = _sources([(4.0, 100.0), (100.0, 100.0)])
    data = frames["r"][0].astype(float)
    stamps = source_stamps(data + 0.01, np.array([4.0]), np.array([100.0]), beyond=np.nan)
    assert np.isnan(stamps[0][:, :11]).all() and np.isfinite(stamps[0][:, 11:]).all()
    np.testing.assert_allclose(np.nanmedian(stamps[0]), 0.0, atol=1e-12)
    zero_filled = source_stamps(data + 0.01, np.array([4.0]), np.array([100.0]))
    assert (zero_filled[0][:, :11] < 0).all()  # the fill, less the stamp's median
    measured = {}
    for sky in (-0.01, 0.0, 0.01):  # half the frames' sky noise either way
        shifted = {b: (d + np.float32(sky), w) for b, (d, w) in frames.items()}
        measured[sky], _ = measure_columns(table, shifted, psf)
    for sky in (-0.01, 0.01):
        for name in ("dered_r", "deVRad_r", "u_g", "blendedness_r"):
            np.testing.assert_allclose(measured[sky][name], measured[0.0][name], atol=1e-6,
                                       err_msg=name)
    # the edge star is the same point source as the star in the middle of the frame
    assert measured[0.0]["deVRad_r"][0] < 0.2
    assert measured[0.0]["dered_r"][0] == pytest.approx(measured[0.0]["dered_r"][1], abs=0.02)


def test_stamps_filled_beyond_a_frames_edge_are_measured_on_their_own_pixels():
    """`measure_stamp_columns` reads the 0 that make_cutouts fills beyond a frame's edge
    (and non-finite pixels) as no measurement: a sky off zero moves no column of a stamp
    cut at the edge; a stamp whose centre holds none is left unmeasured."""
    from sourceclf.photometry import measure_stamp_columns

    yy, xx = np.mgrid[:32, :32] - 15.5
    star = 50.0 * moffat_profile(xx, yy, FWHM_PIX, BETA)
    stamps = star[None, None] + np.random.default_rng(2).normal(0.0, 0.02, (3, 5, 32, 32))
    table = Table({"id": [1, 2, 3]})
    fwhm, noise = {b: FWHM_PIX * 0.396 for b in BANDS}, {b: 0.02 for b in BANDS}
    measured = {}
    for sky in (-0.01, 0.0, 0.01):
        cut = stamps + sky
        cut[0, :, :, :8] = 0.0  # beyond a frame's left edge
        cut[1, :, :6] = np.nan  # non-finite rows
        cut[2, :, 14:18, 14:18] = 0.0  # the centre holds no measurement
        measured[sky] = measure_stamp_columns(table, cut, fwhm, noise)
    for sky in (-0.01, 0.01):
        for name in ("dered_r", "deVRad_r", "g_r"):
            np.testing.assert_allclose(measured[sky][name][:2], measured[0.0][name][:2],
                                       atol=1e-6, err_msg=name)
    assert (measured[0.0]["deVRad_r"][:2] < 0.2).all()
    assert np.isnan(measured[0.0]["dered_r"][2])


def test_bad_input_says_what_is_wrong():
    frames, psf = _frames([(50.0, 50.0, 100.0)])
    sources = _sources([(50.0, 50.0)])
    with pytest.raises(InvalidInputError, match="no frame of band.*z"):
        measure_columns(sources, {b: frames[b] for b in "ugri"}, psf)
    with pytest.raises(InvalidInputError, match="cannot measure the PSF"):
        measure_columns(sources, frames)  # one star: too few to measure a PSF from
    with pytest.raises(KeyError, match="ra"):
        measure_columns(Table({"x": [1.0]}), frames, psf)


def test_classify_without_a_measurable_psf_uses_the_images_alone():
    """Frames too sparse to measure a PSF: one warning, and the CNN classifies them."""
    from sourceclf import classify

    frames, _ = _frames([(50.0, 50.0, 100.0), (150.0, 150.0, 100.0)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = classify(_sources([(50.0, 50.0), (150.0, 150.0)]), images=frames,
                       confidence=None)
    assert out.meta["CLFMODEL"] == "margnet-cnn-sgq" and "CLFCOLS" not in out.meta
    said = [w for w in caught if issubclass(w.category, SourceclfWarning)
            and str(w.message).startswith("MargNet's catalog columns not measured on the frames")]
    assert said, [str(w.message) for w in caught]
    assert {w.filename for w in said} == {__file__}  # the user's line, not sourceclf's


def test_a_streamed_catalog_on_frames_without_a_measurable_psf_warns_at_the_users_line(
        tmp_path):
    """classify_file's choice of model goes through frame_columns one call deeper than
    classify: its warning still names the user's line, not one inside sourceclf."""
    from sourceclf.streaming import classify_file

    frames, _ = _frames([(50.0, 50.0, 100.0), (150.0, 150.0, 100.0)])
    _sources([(50.0, 50.0), (150.0, 150.0)]).write(tmp_path / "cat.fits")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classify_file(tmp_path / "cat.fits", tmp_path / "out.fits", images=frames,
                      confidence=None, progress=False)
    said = [w for w in caught if "MargNet's catalog columns not measured" in str(w.message)]
    assert said and {w.filename for w in said} == {__file__}, [
        (w.filename, str(w.message)) for w in caught]


@pytest.mark.parametrize("model", ["margnet-sgq", "margnet-cnn-sgq"])
def test_classify_flags_a_star_blended_with_its_neighbour(model):
    """A star with a neighbour three times as bright 1.4 FWHM away is flagged
    ``blended``, with its blendedness kept; a lone star is not.  The image-only
    CNN gets the flag too (its inputs unchanged: the stamps and the PSF)."""
    from sourceclf import classify
    from sourceclf.crowding import BLENDED_LIMIT, FLAG_BLENDED
    from sourceclf.cutouts import make_cutouts

    frames, psf = _frames([(50.0, 50.0, 100.0), (120.0, 120.0, 100.0), (124.2, 120.0, 300.0)])
    sources = _sources([(50.0, 50.0), (120.0, 120.0)])
    columns, _ = measure_columns(sources, frames, psf)
    assert columns["blendedness_r"][0] == 0.0
    assert columns["blendedness_r"][1] > BLENDED_LIMIT
    # Three stars: too few for the frames' Moffat index, which the CNN reads (one warning).
    cnn = model == "margnet-cnn-sgq"
    with (pytest.warns(SourceclfWarning, match="Moffat index") if cnn else nullcontext()):
        out = classify(sources, images=frames, psf=FWHM_PIX * 0.396, confidence=None,
                       model=model)
    flags = np.asarray(out["pred_flag"]).astype(str)
    assert [FLAG_BLENDED in f.split(";") for f in flags] == [False, True]
    assert out["blendedness"][0] == 0.0 and out["blendedness"][1] > BLENDED_LIMIT
    assert not out["pred_class"].mask.any()  # still classified
    assert out.colnames[:2] == ["ra", "dec"] and "dered_r" not in out.colnames
    if model == "margnet-cnn-sgq":  # the same stamps given as cutouts: nothing measured
        stamps = make_cutouts(table=sources, images=frames).data
        with pytest.warns(SourceclfWarning, match="Moffat index"):
            alone = classify(sources, stamps, psf=FWHM_PIX * 0.396, confidence=None,
                             model=model)
        assert "blendedness" not in alone.colnames
        np.testing.assert_array_equal(alone["prob_star"], out["prob_star"])


def test_the_cnn_on_frames_without_a_measurable_psf_says_so_once():
    """The image-only CNN asked for by name on frames whose PSF cannot be measured:
    its rows are flagged, without a warning about MargNet's columns it does not read."""
    from sourceclf import classify
    from sourceclf.psf import FLAG_PSF_UNKNOWN

    frames, _ = _frames([(50.0, 50.0, 100.0), (150.0, 150.0, 100.0)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = classify(_sources([(50.0, 50.0), (150.0, 150.0)]), images=frames,
                       confidence=None, model="margnet-cnn-sgq")
    said = [str(w.message) for w in caught if issubclass(w.category, SourceclfWarning)]
    assert not any("MargNet's catalog columns" in m for m in said), said
    assert all(FLAG_PSF_UNKNOWN in f for f in np.asarray(out["pred_flag"]).astype(str))
    assert "blendedness" not in out.colnames


def test_the_colour_excess_corrects_the_measured_magnitudes():
    """A position catalog with E(B-V) gets SDSS's extinction; classify's meta says so."""
    from sourceclf import classify
    from sourceclf.bands import EXTINCTION_COEFFICIENTS

    frames, psf = _frames([(50.0, 50.0, 100.0), (150.0, 150.0, 100.0)])
    sources = _sources([(50.0, 50.0), (150.0, 150.0)])
    plain, _ = measure_columns(sources, frames, psf)
    sources["ebv"] = [0.05, 0.5]
    corrected, _ = measure_columns(sources, frames, psf)
    for b in BANDS:
        expected = np.array([0.05, 0.5]) * EXTINCTION_COEFFICIENTS[b]
        np.testing.assert_allclose(corrected[f"extinction_{b}"], expected)
        np.testing.assert_allclose(corrected[f"dered_{b}"], plain[f"dered_{b}"] - expected)
    np.testing.assert_allclose(corrected["g_r"], plain["g_r"])  # colours are observed ones
    out = classify(sources, images=frames, psf=FWHM_PIX * 0.396, confidence=None)
    assert out.meta["CLFCOLS"].endswith("extinction from the table")
    out = classify(_sources([(50.0, 50.0)]), images=frames, psf=FWHM_PIX * 0.396,
                   confidence=None)
    assert "no extinction correction" in out.meta["CLFCOLS"]


def test_a_given_fwhm_stands_for_the_psf():
    """{band: FWHM}: a Moffat of that width and the assumed index, the sky measured."""
    from sourceclf.photometry import ASSUMED_BETA

    frames, psf = _frames([(50.0, 50.0, 100.0), (150.0, 150.0, 100.0)])
    sources = _sources([(50.0, 50.0), (150.0, 150.0)])
    columns, used = measure_columns(sources, frames, {b: FWHM_PIX * 0.396 for b in BANDS})
    assert used["r"].beta == ASSUMED_BETA and used["r"].fwhm == pytest.approx(FWHM_PIX * 0.396)
    assert used["r"].sky_sigma == pytest.approx(0.02, rel=0.1)
    exact, _ = measure_columns(sources, frames, psf)
    np.testing.assert_allclose(columns["dered_r"], exact["dered_r"], atol=0.02)
    np.testing.assert_array_equal(columns["deVRad_r"], exact["deVRad_r"])


def test_the_fits_read_the_psf_at_the_frames_own_pixel_scale():
    """The PSF's FWHM (arcsec) was turned into pixels at SDSS's 0.396": on frames of
    0.2" pixels the fitted PSF was half the stars' width, so stars came out extended."""
    stars, at = [(50.0, 50.0, 100.0), (150.0, 150.0, 100.0)], [(50.0, 50.0), (150.0, 150.0)]
    sdss, _ = measure_columns(_sources(at), *_frames(stars))
    fine, used = measure_columns(_sources(at, 0.2), *_frames(stars, scale=0.2))
    assert used["r"].fwhm == pytest.approx(FWHM_PIX * 0.2)
    assert np.all(fine["deVRad_r"] < 0.2)  # point sources, as on SDSS's pixels
    np.testing.assert_allclose(fine["dered_r"], sdss["dered_r"], atol=0.02)


def test_classify_with_a_psf_argument_measures_the_columns_and_flags_off_frame_rows():
    from sourceclf import classify

    frames, _ = _frames([(50.0, 50.0, 100.0), (150.0, 150.0, 100.0)])
    out = classify(_sources([(50.0, 50.0), (150.0, 150.0), (900.0, 900.0)]), images=frames,
                   psf=FWHM_PIX * 0.396, confidence=None)
    assert out.meta["CLFMODEL"] == "margnet-sgq" and "CLFCOLS" in out.meta
    # Its measured columns are missing only because the row is off the frames: one flag.
    assert out["pred_flag"].tolist()[2] == "off_frame"
    assert out["pred_class"].mask.tolist() == [False, False, True]
    assert out.colnames[:2] == ["ra", "dec"] and "deVRad_r" not in out.colnames


def test_without_photutils_or_galsim_the_frames_are_classified_by_the_images(monkeypatch):
    """A missing optional package is a one-line reason, not a traceback: the columns
    go unmeasured (one warning), the image-only model runs, the coverage is unknown."""
    import builtins

    from sourceclf import classify
    from sourceclf.photometry import detect_segments
    from sourceclf.profile_fits import _drawn_templates, profile_templates

    real_import = builtins.__import__
    _drawn_templates.cache_clear()  # profiles drawn by earlier tests would need no GalSim

    def without(*names):
        def fake(name, *args, **kwargs):
            if name.split(".")[0] in names:
                raise ImportError(name)
            return real_import(name, *args, **kwargs)
        return fake

    frames, psf = _frames([(50.0, 50.0, 100.0), (150.0, 150.0, 100.0)])
    monkeypatch.setattr(builtins, "__import__", without("galsim"))
    with pytest.raises(InvalidInputError, match="GalSim"):
        profile_templates(1.2, 3.5)
    monkeypatch.setattr(builtins, "__import__", without("photutils"))
    with pytest.raises(InvalidInputError, match="photutils"):
        detect_segments(frames["r"][0], 3.0, 0.02)
    with warnings.catch_warnings(record=True) as caught:  # the PSF is measured with photutils
        warnings.simplefilter("always")
        out = classify(_sources([(50.0, 50.0), (150.0, 150.0)]), images=frames,
                       confidence=None)
    said = [str(w.message) for w in caught if issubclass(w.category, SourceclfWarning)]
    assert any(m.startswith("cannot measure the PSF") and "sourceclf[images]" in m
               for m in said), said
    assert out.meta["CLFMODEL"] == "margnet-cnn-sgq"
    assert out["frame_coverage"].mask.all()
    # A given PSF needs no photutils for the columns (the neighbour fits use scipy).
    out = classify(_sources([(50.0, 50.0), (150.0, 150.0)]), images=frames, psf=1.2,
                   confidence=None)
    assert out.meta["CLFMODEL"] == "margnet-sgq"
    assert out["frame_coverage"].mask.all()


def test_stamps_of_their_own_psf_each_are_fitted_through_it():
    """measure_stamp_columns with a FWHM per row: the rows of one seeing (on the grid of
    fwhm_groups) measure as with that FWHM given once; each row keeps its own width; a
    row of unknown FWHM is left unmeasured; a FWHM that is not positive is refused."""
    from sourceclf.photometry import measure_stamp_columns

    yy, xx = np.mgrid[:32, :32] - 15.5
    sharp, wide = 1.2, 1.6  # arcsec, both on the 0.02" grid
    stamps = np.stack([np.stack([50.0 * moffat_profile(xx, yy, f / 0.396, BETA)] * 5)
                       for f in (sharp, wide, sharp, wide)])
    stamps = stamps + np.random.default_rng(0).normal(0.0, 0.01, stamps.shape)
    table, sky = Table({"id": np.arange(4)}), {b: 0.01 for b in BANDS}
    per_row = np.array([sharp, wide, sharp, np.nan])
    out = measure_stamp_columns(table, stamps, {b: per_row for b in BANDS}, sky,
                                beta={b: BETA for b in BANDS})
    for fwhm, rows in ((sharp, [0, 2]), (wide, [1])):
        alone = measure_stamp_columns(table[rows], stamps[rows], {b: fwhm for b in BANDS}, sky,
                                      beta={b: BETA for b in BANDS})
        for column in ("dered_r", "deVRad_r", "blendedness_r"):
            np.testing.assert_array_equal(out[column][rows], alone[column], err_msg=column)
    np.testing.assert_allclose(out["psffwhm_r"][:3] * 0.908, per_row[:3])
    assert not np.isfinite(out["dered_r"][3])  # its FWHM is unknown
    assert out["deVRad_r"][1] < 0.2  # the wide star is fitted through its wide PSF
    with pytest.raises(InvalidInputError, match="band 'u' needs a positive PSF FWHM, got -1"):
        measure_stamp_columns(table, stamps, {b: np.array([1.2, -1.0, 1.2, 1.2]) for b in BANDS},
                              sky)
