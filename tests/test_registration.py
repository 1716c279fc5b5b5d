"""sourceclf.registration: each band's frame registered on the r frame's stars."""

import warnings

import numpy as np
import pytest

from sourceclf.bands import BANDS
from sourceclf.psf import moffat_profile

pytest.importorskip("photutils")

from sourceclf.field_psf import field_psfs, psf_memo  # noqa: E402
from sourceclf.registration import (MIN_MATCHED, REGISTRATION_TOLERANCE,  # noqa: E402
                                    band_offsets, describe_registration, register_frames)

SIZE, SCALE = 400, 0.396
#: Where each band's frame puts the stars against where its WCS says (pixels).
MISSED = {"u": (0.3, -0.2), "g": (-0.1, 0.1), "r": (0.0, 0.0), "i": (1.2, -0.8), "z": (0.0, 0.0)}


@pytest.fixture(scope="module")
def field(tan_wcs):
    """Five frames of 16 bright isolated stars, each band's frame offset from the others
    (its WCS knows) and the i band's stars 1.2, -0.8 pixels from where its WCS puts them
    (its WCS does not know)."""
    rng = np.random.default_rng(0)
    grid = np.linspace(40, SIZE - 40, 4)
    sky = [(x + rng.uniform(-5, 5), y + rng.uniform(-5, 5)) for x in grid for y in grid]
    ra, dec = tan_wcs(scale=SCALE).pixel_to_world_values(*np.transpose(sky))
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float)
    frames = {}
    for k, band in enumerate(BANDS):
        wcs = tan_wcs((200.0 + 2.0 * k, 200.0 - 2.0 * k), SCALE)
        x, y = wcs.world_to_pixel_values(ra, dec)
        x, y = x + MISSED[band][0], y + MISSED[band][1]
        flux = rng.uniform(3000, 6000, len(x))
        data = sum(f * moffat_profile(xx - a, yy - b, 3.0, 4.0) for a, b, f in zip(x, y, flux))
        frames[band] = ((data + rng.normal(0.0, 1.0, data.shape)).astype(np.float32), wcs)
    return frames


def _brightest(field):
    """A one-row table at the brightest star of the r frame."""
    from astropy.table import Table

    r_data, r_wcs = field["r"]
    py, px = np.unravel_index(np.argmax(r_data), r_data.shape)
    ra, dec = r_wcs.pixel_to_world_values(px, py)
    return Table({"ra": [float(ra)], "dec": [float(dec)]})


def test_offsets_are_measured_on_the_shared_stars(field):
    with psf_memo():
        offsets = band_offsets(field)
    assert offsets["r"].dx == 0 and offsets["r"].dy == 0
    for band in BANDS:
        assert offsets[band].n_stars >= MIN_MATCHED
        assert offsets[band].dx == pytest.approx(MISSED[band][0], abs=0.05)
        assert offsets[band].dy == pytest.approx(MISSED[band][1], abs=0.05)
    # the same from the stars of a PSF measured already (classify's psf=)
    given = band_offsets(field, field_psfs(field))
    assert given["i"].dx == pytest.approx(offsets["i"].dx)


def test_a_band_beyond_the_tolerance_is_registered_and_the_input_is_untouched(field):
    before = {b: field[b][1].wcs.crpix.copy() for b in BANDS}
    with psf_memo():
        registered = register_frames(field)
        again = band_offsets(registered)
    assert REGISTRATION_TOLERANCE < np.hypot(*MISSED["i"])
    assert [b for b in BANDS if registered[b][1] is not field[b][1]] == ["i"]
    assert registered["i"][0] is field["i"][0]  # the data are not copied
    assert abs(again["i"].dx) < 0.05 and abs(again["i"].dy) < 0.05
    assert again["u"].dx == pytest.approx(MISSED["u"][0], abs=0.05)  # within: left alone
    assert all(np.array_equal(field[b][1].wcs.crpix, before[b]) for b in BANDS)
    assert describe_registration(registered).endswith("i by +1.20 -0.80 pixels (16 stars)")
    assert describe_registration(field) is None
    assert describe_registration(["not", "frames"]) is None  # never read by classify
    # registered frames are not registered twice
    twice = register_frames(registered)
    assert all(twice[b][1] is registered[b][1] for b in BANDS)


def test_a_band_without_stars_keeps_its_wcs(field):
    frames = dict(field)
    frames["z"] = (np.random.default_rng(1).normal(0.0, 1.0, (SIZE, SIZE)).astype(np.float32),
                   field["z"][1])
    with psf_memo():
        offsets = band_offsets(frames)
        registered = register_frames(frames)
    assert offsets["z"].n_stars == 0 and np.isnan(offsets["z"].dx)
    assert registered["z"][1] is frames["z"][1]


def test_stamps_of_the_registered_frames_are_centred_in_every_band(field):
    """The brightest star cut from each band: off-centre in i as the frames are given,
    centred as in r once registered."""
    from sourceclf.cutouts import make_cutouts

    table = _brightest(field)

    def centre(frames, band):
        stamp = make_cutouts(table=table, images=frames).data[0, BANDS.index(band)]
        yy, xx = np.mgrid[:stamp.shape[0], :stamp.shape[1]]
        w = np.clip(stamp, 0, None) ** 2
        return np.array([(xx * w).sum(), (yy * w).sum()]) / w.sum()

    with psf_memo():
        registered = register_frames(field)
    assert np.hypot(*(centre(field, "i") - centre(field, "r"))) > 1.0
    assert np.hypot(*(centre(registered, "i") - centre(field, "r"))) < 0.3


def test_sources_drawn_in_land_where_the_fields_own_sources_are(field):
    """The injection check draws its sources where the field's own lie: in i, 1.2, -0.8
    pixels from where the i frame's WCS puts them, as classify will look for them."""
    galsim = pytest.importorskip("galsim")
    from astropy.table import Table

    from sourceclf.recipes.injection import inject_sources

    ra, dec = field["r"][1].pixel_to_world_values(93.0, 200.0)  # between the stars
    catalog = Table({"ra": [float(ra)], "dec": [float(dec)], "class": ["STAR"]})
    for b in BANDS:
        catalog[f"dered_{b}"], catalog[f"extinction_{b}"] = [14.0], [0.0]
        catalog[f"deVRad_{b}"] = [0.0]
    psfs = {b: galsim.Moffat(beta=4.0, fwhm=3.0 * SCALE) for b in BANDS}
    with psf_memo():
        psf = field_psfs(field)
        injected = inject_sources(field, catalog, psfs, random_state=0, psf=psf)
    for band in ("r", "i"):
        assert injected[band][1] is field[band][1]  # the frames' own WCSs
        added = injected[band][0] - field[band][0]
        x, y = field[band][1].world_to_pixel_values(ra, dec)
        yy, xx = np.indices(added.shape)
        weight = added * (np.hypot(xx - x, yy - y) < 8)
        centre = np.array([(xx * weight).sum(), (yy * weight).sum()]) / weight.sum()
        np.testing.assert_allclose(centre - (x, y), MISSED[band], atol=0.1)


def test_classify_registers_the_frames_and_says_so(field):
    from sourceclf import classify
    from sourceclf.exceptions import SourceclfWarning

    table = _brightest(field)
    with warnings.catch_warnings():  # frames unlike SDSS's sky: the rows are flagged
        warnings.simplefilter("ignore", SourceclfWarning)
        result = classify(table, images=field, model="margnet-cnn-sgq", progress=False)
    assert result.meta["CLFREG"].endswith("i by +1.20 -0.80 pixels (16 stars)")
    assert field["i"][1].wcs.crpix[0] == 200.0 + 2.0 * BANDS.index("i")  # untouched


def test_the_crowded_fields_i_frame_is_registered(shared_data):
    """On 005405-6-0099 the i frame misses the r frame's stars by about a pixel; on
    004510-4-0030 every band is within a quarter of one and nothing moves."""
    from sourceclf.frames import read_frame

    def offsets(field):
        folder = shared_data / f"sdss_frame_{field}"
        frames = {b: read_frame(folder / f"frame-{b}-{field}.fits.bz2") for b in BANDS}
        with psf_memo():
            return band_offsets(frames), describe_registration(register_frames(frames))

    crowded, said = offsets("005405-6-0099")
    assert 0.8 < crowded["i"].size < 1.2 and crowded["i"].n_stars >= MIN_MATCHED
    assert "i by +0.8" in said
    quiet, said = offsets("004510-4-0030")
    assert said is None
    assert all(quiet[b].size < 0.25 for b in BANDS if quiet[b].n_stars)


def test_the_check_script_says_what_registration_does(field, doc_script):
    """docs/scripts/registration_check.py: the offsets in one line, and frames moved by a
    factor of given offsets."""
    script = doc_script("registration_check")
    with psf_memo():
        line = script.offset_line("test", field, None)
    assert "i +1.20 -0.80 (16 stars)" in line
    assert line.endswith("i by +1.20 -0.80 pixels (16 stars)")
    moved = script.moved(field, MISSED, 2.0)
    with psf_memo():
        offsets = band_offsets(moved)
    assert offsets["i"].dx == pytest.approx(3 * MISSED["i"][0], abs=0.05)
    assert offsets["u"].dy == pytest.approx(3 * MISSED["u"][1], abs=0.05)
    assert moved["i"][0] is field["i"][0] and moved["i"][1] is not field["i"][1]


def test_the_run_summary_names_the_bands_registered(field, tmp_path):
    """sourceclf-classify's summary (classify_file's) prints meta['CLFREG']."""
    from sourceclf.exceptions import SourceclfWarning
    from sourceclf.streaming import classify_file

    _brightest(field).write(tmp_path / "one.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SourceclfWarning)
        summary = classify_file(tmp_path / "one.fits", tmp_path / "out.fits", images=field,
                                model="margnet-cnn-sgq", progress=False)
    assert any(line.endswith("i by +1.20 -0.80 pixels (16 stars)") for line in summary.lines())
