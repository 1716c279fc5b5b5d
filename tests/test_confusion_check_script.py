"""docs/scripts/confusion_check.py: the light the catalog columns' fits leave around a source."""

import numpy as np
import pytest

from conftest import (CROWD_BETA, CROWD_FAINT, CROWD_FWHM, CROWD_SIZE, CROWD_SKY,
                      star_among_faint_sources)

SIZE, FWHM, BETA, SKY, FAINT = CROWD_SIZE, CROWD_FWHM, CROWD_BETA, CROWD_SKY, CROWD_FAINT


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("confusion_check")


def _stamps(n, faint=0, seed=0):
    """``n`` stamps of a star of 400 sky sigmas (flux) among ``faint`` sources too faint
    for the neighbour search (`conftest.star_among_faint_sources`)."""
    return star_among_faint_sources(n, 400.0, faint, seed)


def _templates():
    from sourceclf.bands import SDSS_PIXEL_SCALE
    from sourceclf.profile_fits import profile_templates

    return profile_templates(FWHM * SDSS_PIXEL_SCALE, BETA, size=SIZE)


def test_a_source_alone_leaves_the_sky_noise(script):
    """A star with nothing around it but the sky's noise leaves about the noise: 1."""
    light = script.left_light(_stamps(12), _templates(), FWHM, BETA, SKY)
    assert np.all(np.isfinite(light))
    assert 0.7 < np.median(light) < 1.4


def test_sources_too_faint_to_be_fitted_are_left_light(script):
    """Faint sources around the star, below the neighbour search's threshold, are light
    the fits do not model: the figure rises well above the sky noise's."""
    from astropy.stats import gaussian_fwhm_to_sigma
    from scipy.ndimage import gaussian_filter

    from sourceclf.neighbour_fits import NEIGHBOUR_THRESHOLD
    from sourceclf.profile_fits import fit_with_neighbours
    from sourceclf.psf import moffat_profile

    # each faint source's PSF-smoothed peak lies below the search's threshold
    yy, xx = np.mgrid[-20:21, -20:21].astype(float)
    smooth = gaussian_filter(FAINT * moffat_profile(xx, yy, FWHM, BETA),
                             FWHM * gaussian_fwhm_to_sigma)
    peak = smooth.max()
    assert peak < NEIGHBOUR_THRESHOLD * SKY

    crowded = _stamps(12, faint=8)
    # of the 8 faint sources per stamp, the fits model about one at most (two that overlap)
    assert fit_with_neighbours(crowded, _templates(), FWHM, BETA, SKY)[2].mean() < 1.5
    light = script.left_light(crowded, _templates(), FWHM, BETA, SKY)
    assert np.median(light) > 1.8
    alone = script.left_light(_stamps(12), _templates(), FWHM, BETA, SKY)
    assert np.all(light > np.median(alone))


def test_a_stamp_cut_at_a_frame_edge_is_read_on_its_pixels(script):
    """Pixels beyond a frame (NaN) are not read; a stamp with too few pixels left in the
    annulus gives NaN, not an error."""
    stamps = _stamps(2)
    stamps[0, :, :10] = np.nan  # a third of the stamp beyond the frame
    stamps[1] = np.nan
    light = script.left_light(stamps, _templates(), FWHM, BETA, SKY)
    assert 0.5 < light[0] < 2.0
    assert np.isnan(light[1])


def test_a_folder_without_fields_is_a_one_line_error(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        script.main(["--data", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert str(tmp_path) in err[-1] and "Traceback" not in "".join(err)


def test_the_thirds_leave_out_a_source_without_a_figure(script):
    from astropy.table import MaskedColumn, Table

    labels = np.array(["point", "extended"] * 5)
    result = Table({"pred_class": MaskedColumn(np.where(labels == "point", "STAR", "GALAXY")),
                    "pred_flag": np.full(10, "")})
    light = np.array([1.0, 1.1, 1.2, 2.0, 2.1, 2.2, 5.0, 6.0, 7.0, np.nan])
    text = script.thirds_text(labels, result, light)
    assert [int(part.strip("()")) for part in text.split()[1::2]] == [3, 3, 3]
    assert text.split()[::2] == ["1.00", "1.00", "1.00"]


def test_an_unknown_model_is_a_one_line_error(script, shared_data, capsys):
    with pytest.raises(SystemExit) as stop:
        script.main(["--data", str(shared_data), "--models", "no-such-model"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "unknown model 'no-such-model'" in err[-1] and "Traceback" not in "".join(err)
