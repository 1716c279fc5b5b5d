"""The image models' stamps less their neighbours' fitted light (sourceclf.stamp_neighbours)."""

import numpy as np
import pytest

from sourceclf.bands import BANDS, SDSS_PIXEL_SCALE
from sourceclf.psf import moffat_profile
from sourceclf.exceptions import InvalidInputError
from sourceclf.stamp_neighbours import (neighbour_light, stamp_sky_sigma, subtract_neighbours,
                                        subtracts_neighbours)

SIZE, FWHM_PIX, BETA, NOISE = 32, 3.0, 3.5, 0.02
FWHM = FWHM_PIX * SDSS_PIXEL_SCALE
CENTRE = (SIZE - 1) / 2.0
YY, XX = np.mgrid[:SIZE, :SIZE].astype(float)


def _profile(x, y, flux, fwhm_pix=FWHM_PIX):
    return flux * moffat_profile(XX - x, YY - y, fwhm_pix, BETA)


def _noise(seed, shape=(SIZE, SIZE)):
    return np.random.default_rng(seed).normal(0.0, NOISE, shape)


def _aperture(image, x=CENTRE, y=CENTRE, radius=4.0):
    return float(image[(XX - x) ** 2 + (YY - y) ** 2 <= radius ** 2].sum())


def test_a_bright_neighbour_is_taken_away_and_the_source_kept():
    source = _profile(CENTRE, CENTRE, 30.0)
    neighbour = _profile(CENTRE + 8.0, CENTRE - 4.0, 150.0)
    stamp = source + neighbour + 0.3 + _noise(0)  # a sky left on the stamp stays too
    light, count = neighbour_light(stamp[None], FWHM, BETA, NOISE)
    assert count[0] >= 1
    left = stamp - light[0]
    # the neighbour's light gone to within a few per cent, the source's within 1%
    assert abs(_aperture(left - source - 0.3, CENTRE + 8.0, CENTRE - 4.0)) < 0.03 * 150.0
    assert _aperture(left - 0.3) == pytest.approx(_aperture(source), rel=0.01)


def test_a_galaxy_alone_keeps_all_its_light():
    """Its wings are the source's, fitted by the wider profiles: nothing is subtracted."""
    galaxy = _profile(CENTRE, CENTRE, 80.0, fwhm_pix=3.2 * FWHM_PIX)
    stamp = galaxy + _noise(1)
    light, count = neighbour_light(stamp[None], FWHM, BETA, NOISE)
    assert count[0] == 0 and not light.any()


def test_a_galaxy_keeps_its_wings_beside_a_neighbour():
    galaxy = _profile(CENTRE, CENTRE, 80.0, fwhm_pix=3.0 * FWHM_PIX)
    neighbour = _profile(CENTRE - 9.0, CENTRE + 5.0, 60.0)
    stamp = galaxy + neighbour + _noise(2)
    light, count = neighbour_light(stamp[None], FWHM, BETA, NOISE)
    assert count[0] >= 1
    # what was subtracted is the neighbour's light, not the galaxy's
    assert light[0].sum() == pytest.approx(neighbour.sum(), rel=0.1)
    left = stamp - light[0]
    assert _aperture(left, radius=8.0) == pytest.approx(_aperture(galaxy, radius=8.0), rel=0.03)


def test_stamp_sky_sigma_reads_the_noise_of_a_crowded_stamp():
    stamp = _noise(3) + sum(_profile(x, y, 40.0) for x, y in ((5, 5), (25, 8), (9, 26), (16, 16)))
    assert stamp_sky_sigma(stamp[None])[0] == pytest.approx(NOISE, rel=0.3)  # 0.025
    assert np.isnan(stamp_sky_sigma(np.full((1, 4, 4), np.nan))[0])


def _five_band(stamp, n=3):
    return np.repeat(np.repeat(stamp[None, None], len(BANDS), axis=1), n, axis=0).astype(np.float32)


def test_subtract_neighbours_cleans_the_rows_asked_through_their_psf():
    stamp = _profile(CENTRE, CENTRE, 30.0) + _profile(CENTRE + 8.0, CENTRE - 4.0, 150.0) + _noise(4)
    stamps = _five_band(stamp)
    fwhm = {b: np.array([FWHM, np.nan, FWHM]) for b in BANDS}  # row 1: PSF unknown
    cleaned, count = subtract_neighbours(stamps, fwhm, rows=np.array([True, True, False]))
    assert cleaned.dtype == stamps.dtype and cleaned.shape == stamps.shape
    assert count.tolist()[1:] == [0, 0] and count[0] >= 1
    np.testing.assert_array_equal(cleaned[1:], stamps[1:])  # unknown PSF, and a row not asked
    assert _aperture(cleaned[0, 2], CENTRE + 8.0, CENTRE - 4.0) < 0.05 * 150.0
    # the sky noise measured on the stamps gives the fit a sky noise given does
    given, _ = subtract_neighbours(stamps, fwhm, {b: BETA for b in BANDS},
                                   {b: NOISE for b in BANDS}, rows=np.array([True, False, False]))
    np.testing.assert_allclose(given[0], cleaned[0], atol=0.02)


def test_pixels_beyond_the_frame_weigh_nothing():
    stamp = _profile(CENTRE, CENTRE, 30.0) + _profile(CENTRE + 8.0, CENTRE - 4.0, 150.0) + _noise(5)
    stamp[:, :6] = 0.0  # an edge stamp: the frame ends there
    present = np.ones((1, SIZE, SIZE), dtype=bool)
    present[:, :, :6] = False
    fwhm = {b: np.array([FWHM]) for b in BANDS}
    cleaned, count = subtract_neighbours(_five_band(stamp, 1), fwhm, present=present)
    assert count[0] >= 1
    assert np.all(cleaned[0, :, :, :6] == 0.0)  # nothing put where nothing was measured
    # 'nonzero' finds those pixels band by band: the same
    again, _ = subtract_neighbours(_five_band(stamp, 1), fwhm, present="nonzero")
    np.testing.assert_array_equal(again, cleaned)


@pytest.mark.filterwarnings("ignore:the Moffat index of the PSF")
def test_classify_gives_an_image_model_the_stamps_less_their_neighbours():
    """`classify` (and `model_inputs`) subtract the fitted neighbours of the rows it
    classifies, through the PSF given; ``subtract_neighbours=False`` keeps them."""
    pytest.importorskip("torch")
    from astropy.table import Table

    import sourceclf
    from sourceclf.inputs import model_inputs

    rng = np.random.default_rng(6)
    pixel = 0.396
    alone = _profile(CENTRE, CENTRE, 30.0)
    crowded = alone + _profile(CENTRE + 8.0, CENTRE - 4.0, 150.0)
    stamps = np.stack([np.repeat(s[None], 5, axis=0) for s in (alone, crowded)])
    stamps = (stamps + rng.normal(0.0, NOISE, stamps.shape)).astype(np.float32)
    stamps[0] = stamps[0] - alone + _profile(CENTRE, CENTRE, 30.0, fwhm_pix=1.2 / pixel)
    psf = 1.2
    table = Table({"ra": [10.0, 10.1], "dec": [1.0, 1.1]})
    kept = model_inputs(table, feature_set=None, uses_images=True, cutouts=stamps, psf=psf,
                        subtract_neighbours=False)
    np.testing.assert_array_equal(kept.stamps, stamps)
    less = model_inputs(table, feature_set=None, uses_images=True, cutouts=stamps, psf=psf)
    cleaned, count = subtract_neighbours(stamps, {b: np.full(2, psf) for b in BANDS},
                                         present=stamps != 0)
    np.testing.assert_array_equal(less.stamps, cleaned)
    assert count.tolist()[0] == 0 and count[1] >= 1
    assert less.flags.tolist() == kept.flags.tolist()  # the flags read the stamps as cut
    out = sourceclf.classify(table, stamps, model="margnet-cnn-sgq", psf=psf, confidence=None)
    raw = sourceclf.classify(table, stamps, model="margnet-cnn-sgq", psf=psf, confidence=None,
                             subtract_neighbours=False)
    given = sourceclf.classify(table, cleaned, model="margnet-cnn-sgq", psf=psf,
                               confidence=None, subtract_neighbours=False)
    assert out.meta["CLFNBSUB"] is True and raw.meta["CLFNBSUB"] is False
    np.testing.assert_allclose(out["prob_star"], given["prob_star"], atol=1e-6)
    assert out["prob_star"][0] == pytest.approx(raw["prob_star"][0], abs=1e-6)
    assert out["prob_star"][1] != pytest.approx(raw["prob_star"][1], abs=1e-4)


def test_which_models_see_their_stamps_less_their_neighbours():
    """'auto': the models that see a source through its stamps (and PSF) alone; those that
    read catalog columns, measured with the neighbours fitted, see the stamps as cut."""
    assert subtracts_neighbours(None) and subtracts_neighbours("psf_shape")
    assert not subtracts_neighbours("margnet24")
    assert subtracts_neighbours("margnet24", True) and not subtracts_neighbours(None, False)
    with pytest.raises(InvalidInputError, match="subtract_neighbours must be True, False or "
                                                "'auto', got 'yes'"):
        subtracts_neighbours(None, "yes")


def test_classify_refuses_a_bad_subtract_neighbours_in_one_line():
    from astropy.table import Table

    import sourceclf

    table = Table({c: [19.0] for c in ("u", "g", "r", "i", "z")})
    with pytest.raises(InvalidInputError, match="subtract_neighbours must be"):
        sourceclf.classify(table, subtract_neighbours=1)


def test_rows_of_different_psfs_are_cleaned_as_each_alone():
    """Every row its own FWHM and sky noise (stamps of many frames): grouped in one sort,
    each row cleaned as it is alone."""
    rows = [(_profile(CENTRE, CENTRE, 30.0) + _profile(CENTRE + 8.0, CENTRE - 4.0, 150.0 + 10 * k)
             + _noise(10 + k)) for k in range(4)]
    stamps = np.stack([np.repeat(r[None], 5, axis=0) for r in rows]).astype(np.float32)
    fwhm = {b: FWHM * np.array([1.0, 1.05, 1.0, 1.1]) for b in BANDS}
    together, count = subtract_neighbours(stamps, fwhm)
    for k in range(4):
        alone, one = subtract_neighbours(stamps[k:k + 1], {b: v[k:k + 1] for b, v in fwhm.items()})
        np.testing.assert_array_equal(together[k], alone[0])
        assert count[k] == one[0] >= 1
