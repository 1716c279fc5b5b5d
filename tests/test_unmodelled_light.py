"""The light a source's fits leave around it (sourceclf.unmodelled_light), and the
``confused`` flag it raises (sourceclf.crowding.confusion_flags)."""

import json

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from conftest import (CROWD_BETA, CROWD_FAINT, CROWD_FWHM, CROWD_SIZE, CROWD_SKY,
                      star_among_faint_sources)
from sourceclf.crowding import (CONFUSED_LIMIT, FLAG_BLENDED, FLAG_CONFUSED, confusion_flags,
                                measurement_flags)
from sourceclf.conformal import ConformalPredictor, set_membership
from sourceclf.models import load_model
from sourceclf.unmodelled_light import unmodelled_light

SIZE, FWHM, BETA, SKY, FAINT = CROWD_SIZE, CROWD_FWHM, CROWD_BETA, CROWD_SKY, CROWD_FAINT


def _stamps(n, flux, faint=0, seed=0):
    """``n`` stamps of a star of ``flux`` (sky sigmas) among ``faint`` sources too faint
    for the neighbour search (`conftest.star_among_faint_sources`)."""
    return star_among_faint_sources(n, flux, faint, seed)


def _fits(stamps):
    from sourceclf.bands import SDSS_PIXEL_SCALE
    from sourceclf.profile_fits import fit_with_neighbours, profile_templates

    templates = profile_templates(FWHM * SDSS_PIXEL_SCALE, BETA, size=SIZE)
    return fit_with_neighbours(stamps, templates, FWHM, BETA, SKY, return_unmodelled=True)


@pytest.mark.parametrize("flux", [30.0, 400.0, 4000.0])
def test_a_star_alone_in_the_sky_noise_leaves_nothing_of_its_own_size(flux):
    """The sky's noise is taken off: a star alone, faint or bright, is far below the
    limit (its fit through the true PSF leaves the noise alone)."""
    unmodelled = _fits(_stamps(12, flux))[4]
    assert np.all(np.isfinite(unmodelled))
    assert np.median(unmodelled) < 0.2 * CONFUSED_LIMIT
    assert np.all(unmodelled < 0.5 * CONFUSED_LIMIT)


def test_faint_sources_around_a_faint_star_reach_the_limit_and_a_bright_star_does_not():
    """Ten sources too faint to be fitted around a star: their light, against a faint
    star's own wings, reaches the limit in some stamps (none alone does); against a
    bright star's it stays far below."""
    faint_star = _fits(_stamps(12, 30.0, faint=10))
    assert faint_star[2].mean() < 2.5  # the fits model few of them
    assert np.median(faint_star[4]) > 0.5 * CONFUSED_LIMIT
    assert (faint_star[4] >= CONFUSED_LIMIT).sum() >= 3
    assert np.all(_fits(_stamps(12, 30.0))[4] < 0.5 * CONFUSED_LIMIT)
    bright_star = _fits(_stamps(12, 4000.0, faint=10))[4]
    assert np.all(bright_star < 0.3 * CONFUSED_LIMIT)


def test_the_fits_are_the_same_with_or_without_the_figure():
    stamps = _stamps(4, 60.0, faint=8)
    from sourceclf.bands import SDSS_PIXEL_SCALE
    from sourceclf.profile_fits import fit_with_neighbours, profile_templates

    templates = profile_templates(FWHM * SDSS_PIXEL_SCALE, BETA, size=SIZE)
    plain = fit_with_neighbours(stamps, templates, FWHM, BETA, SKY)
    assert len(plain) == 4
    for a, b in zip(plain, _fits(stamps)):
        np.testing.assert_array_equal(a, b)


def test_too_few_pixels_or_no_light_of_its_own_give_nan():
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float) - (SIZE - 1) / 2.0
    own = np.exp(-(xx ** 2 + yy ** 2) / 8.0)
    residual = np.random.default_rng(1).normal(0.0, SKY, (SIZE, SIZE))
    assert np.isfinite(unmodelled_light(residual, own, FWHM, SKY))
    assert np.isnan(unmodelled_light(residual, -own, FWHM, SKY))  # no positive flux
    assert np.isnan(unmodelled_light(residual, 0.0 * own, FWHM, SKY))
    present = np.zeros((SIZE, SIZE), dtype=bool)
    present[:3] = True  # the annulus lies off the measured pixels
    assert np.isnan(unmodelled_light(residual, own, FWHM, SKY, present=present))
    # a stamp cut at a frame's edge is read on its own pixels: NaN beyond are not read
    stamps = _stamps(1, 60.0, faint=8)
    cut = stamps.copy()
    cut[0, :, :8] = np.nan
    assert np.isfinite(_fits(cut)[4][0])


def test_the_flag_reads_the_r_band_at_the_limit():
    table = Table({"unmodelled_r": MaskedColumn([0.2, CONFUSED_LIMIT, 3.0, np.nan, 5.0],
                                                mask=[False, False, False, False, True]),
                   "unmodelled_g": [9.0] * 5})
    values, confused = confusion_flags(table)
    np.testing.assert_array_equal(confused, [False, True, True, False, False])
    assert np.isnan(values[3]) and np.isnan(values[4])
    assert confusion_flags(Table({"unmodelled_g": [9.0]})) == (None, None)


def test_measurement_flags_name_the_flags_their_columns_hold():
    table = Table({"unmodelled_r": [2.0, 0.1]})
    for b in "gri":
        table[f"blendedness_{b}"] = [0.0, 0.5]
    found = {flag: (column, list(raised)) for flag, column, _, raised, _ in
             measurement_flags(table)}
    assert found == {FLAG_BLENDED: ("blendedness", [False, True]),
                     FLAG_CONFUSED: ("unmodelled_light", [True, False])}
    assert measurement_flags(Table({"x": [1.0]})) == []


def test_the_arithmetic_light_over_its_own():
    """Lumps of known brightness around a source, no noise: the figure is their root mean
    square after the smoothing (less each ring's mean) over the smoothed own light there."""
    from astropy.stats import gaussian_fwhm_to_sigma
    from scipy.ndimage import gaussian_filter

    from sourceclf.psf import moffat_profile

    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float) - (SIZE - 1) / 2.0
    own = 50.0 * moffat_profile(xx, yy, FWHM, BETA)
    lumps = 3.0 * moffat_profile(xx - 6.0, yy, FWHM, BETA)
    figure = unmodelled_light(lumps, own, FWHM, 1e-9)
    # the same by hand
    s = FWHM * gaussian_fwhm_to_sigma
    reach = np.hypot(xx, yy) / FWHM
    read = (reach >= 1.0) & (reach < 3.0)
    smooth = gaussian_filter(lumps, s)[read]
    ring = np.rint(reach[read] * FWHM).astype(int)
    mean = np.bincount(ring, smooth) / np.maximum(np.bincount(ring), 1)
    expected = np.sqrt(np.mean((smooth - mean[ring]) ** 2)) / gaussian_filter(own, s)[read].mean()
    assert figure == pytest.approx(expected, rel=1e-9)
    assert unmodelled_light(2.0 * lumps, own, FWHM, 1e-9) == pytest.approx(2.0 * figure)
    assert unmodelled_light(lumps, 2.0 * own, FWHM, 1e-9) == pytest.approx(figure / 2.0)
    # round light about the source is its own leftover, not others' light: a tenth of its
    # own profile left counts for under half that (the rings are a pixel wide)
    assert unmodelled_light(0.1 * own, own, FWHM, 1e-9) < 0.05 < figure


def test_classify_flags_the_rows_whose_fits_leave_light_as_bright_as_their_own():
    """Faint stars among sources too faint to be fitted are flagged ``confused`` where
    their r band's unmodelled light reaches the limit, kept in ``unmodelled_light``;
    bright lone stars are not."""
    from astropy.wcs import WCS

    from sourceclf import classify
    from sourceclf.bands import BANDS
    from sourceclf.psf import PSFMeasurement, moffat_profile

    noise, side = 0.02, 400
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:side, :side].astype(float)
    data = rng.normal(0.0, noise, (side, side))
    lone = [(40.0 + 80.0 * i, 40.0) for i in range(5)]
    among = [(40.0 + 80.0 * i, 40.0 + 80.0 * j) for i in range(5) for j in range(1, 5)]
    for x, y in lone:
        data += 100.0 * noise * moffat_profile(xx - x, yy - y, FWHM, BETA)
    for x, y in among:
        data += 30.0 * noise * moffat_profile(xx - x, yy - y, FWHM, BETA)
        for r, a in zip(rng.uniform(1.2, 3.0, 10) * FWHM, rng.uniform(0, 2 * np.pi, 10)):
            data += FAINT * noise * moffat_profile(xx - x - r * np.cos(a), yy - y - r * np.sin(a),
                                                   FWHM, BETA)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix = [150.0, 2.0], [200.0, 200.0]
    wcs.wcs.cdelt = [-0.396 / 3600, 0.396 / 3600]
    frames = {b: (data.astype(np.float32), wcs) for b in BANDS}
    psf = {b: PSFMeasurement(FWHM * 0.396, 0.0, BETA, 0.0, 2, noise, None) for b in BANDS}
    ra, dec = wcs.pixel_to_world_values(*np.transpose(lone + among))
    result = classify(Table({"ra": ra, "dec": dec}), images=frames, psf=psf,
                      model="margnet-sgq", confidence=0.9, progress=False)
    flagged = np.array([FLAG_CONFUSED in str(f).split(";") for f in result["pred_flag"]])
    light = np.ma.filled(result["unmodelled_light"], np.nan)
    np.testing.assert_array_equal(flagged, light >= CONFUSED_LIMIT)
    assert not flagged[:len(lone)].any()
    assert flagged[len(lone):].sum() >= 3
    assert result["unmodelled_light"].description.startswith("light the fits leave")
    # The flagged rows' sets come from the model's table of confused rows, the others'
    # from its own calibration.
    clf = load_model("margnet-sgq")
    own = clf.flag_calibrations[FLAG_CONFUSED]
    assert result.meta["CLFFLCAL"] == f"{FLAG_CONFUSED}:{len(own)}"
    proba = np.column_stack([np.ma.filled(result[f"prob_{c.lower()}"], np.nan).astype(float)
                             for c in clf.classes])
    for rows, predictor in ((flagged, ConformalPredictor.from_table(own, clf.classes, 0.9)),
                            (~flagged, ConformalPredictor.from_classifier(clf, 0.9))):
        np.testing.assert_array_equal(set_membership(result, clf.classes)[rows],
                                      predictor.predict_sets(proba[rows])[0][:, :, 0])
    # The shift alarm's reference of the flagged rows is their table, of the others the
    # model's calibration rows: each counts its own rows.
    shifted = json.loads(result.meta["CLFSHFLG"])[FLAG_CONFUSED]["0.9"]
    assert sum(shifted["rows"]) == flagged.sum()
    assert sum(shifted["calibration"]) == len(own)
    assert sum(json.loads(result.meta["CLFSHREF"])["0.9"]["rows"]) == (~flagged).sum()


def test_the_annulus_is_read_away_from_neighbours_and_less_its_rings():
    from sourceclf.psf import moffat_profile
    from sourceclf.unmodelled_light import annulus_residual

    yy, xx = np.mgrid[:SIZE, :SIZE].astype(float) - (SIZE - 1) / 2.0
    residual = np.random.default_rng(2).normal(0.0, 1.0, (SIZE, SIZE))
    values, read = annulus_residual(residual, FWHM)
    reach = np.hypot(xx, yy) / FWHM
    np.testing.assert_array_equal(read, (reach >= 1.0) & (reach < 3.0))
    ring = np.rint(reach[read] * FWHM).astype(int)
    np.testing.assert_allclose(np.bincount(ring, values), 0.0, atol=1e-9)  # each ring's mean off
    neighbour = moffat_profile(xx - 6.0, yy, FWHM, BETA).ravel()
    _, apart = annulus_residual(residual, FWHM, neighbours=[neighbour])
    assert apart.sum() < read.sum() and not apart[15:17, 20:23].any()
    assert annulus_residual(residual, FWHM, present=np.zeros((SIZE, SIZE), bool))[0] is None
