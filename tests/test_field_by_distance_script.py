"""docs/scripts/field_by_distance.py: a field's scores in rings of distance from a position."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS


@pytest.fixture(scope="module")
def script(doc_script):
    return doc_script("field_by_distance")


def test_ring_scores_count_each_class_in_each_ring(script):
    labels = np.array(["point", "extended", "extended", "point", "extended", "extended"])
    pred = np.array(["QSO", "STAR", "GALAXY", "GALAXY", "GALAXY", "GALAXY"])
    decided = np.array([True, True, False, True, True, True])
    distance = np.array([1.0, 2.0, 2.5, 4.0, 9.0, 20.0])
    flags = np.array(["crowded", "crowded;blended", "", "", "", "crowded"])
    inner, middle, outer = script.ring_scores(labels, pred, decided, distance,
                                              edges=(0.0, 3.0, 9.0), flags=flags)
    assert (inner["inner"], inner["outer"], outer["outer"]) == (0.0, 3.0, np.inf)
    # A QSO is a point source called right; one galaxy of two called GALAXY.
    assert (inner["n_point"], inner["point"], inner["n_extended"], inner["extended"]) == \
        (1, 1.0, 2, 0.5)
    # Only the decided extended source counts there: the one called STAR.
    assert (inner["n_extended_decided"], inner["extended_decided"]) == (1, 0.0)
    assert inner["crowded"] == pytest.approx(2 / 3)  # "crowded;blended" counts
    assert middle["point"] == 0.0 and np.isnan(middle["extended"]) and middle["crowded"] == 0
    # The last ring has no outer edge: 9 and 20 arcmin both fall in it.
    assert (outer["n_extended"], outer["extended"], outer["crowded"]) == (2, 1.0, 0.5)
    assert np.isnan(script.ring_scores(labels, pred, decided, distance)[0]["crowded"])
    # Apart below and from CLEAR_EXTENT: the marginal galaxy called STAR, the clear one not.
    extent = np.array([0.0, 0.2, script.CLEAR_EXTENT, 0.0, 0.9, 0.1])
    inner, middle, outer = script.ring_scores(labels, pred, decided, distance,
                                              edges=(0.0, 3.0, 9.0), extent=extent)
    assert (inner["n_extended_marginal"], inner["extended_marginal"]) == (1, 0.0)
    assert (inner["n_extended_clear"], inner["extended_clear"]) == (1, 1.0)
    assert (outer["n_extended_marginal"], outer["n_extended_clear"]) == (1, 1)


def test_ring_colours_per_kind(script):
    labels = np.array(["point", "point", "extended", "extended", "extended", "point"])
    extent = np.array([0.0, 0.01, 0.2, 0.5, 0.6, 0.0])
    distance = np.array([1.0, 2.0, 1.5, 2.5, 1.0, 10.0])
    colour = np.array([0.3, 0.5, 0.35, 1.2, np.nan, 2.0])
    inner, outer = script.ring_colours(labels, extent, distance, colour, edges=(0.0, 3.0))
    assert inner["point"][:2] == (2, pytest.approx(0.4))
    assert inner["marginal"] == (1, 0.35, 0.35, 0.35)
    assert inner["clear"][:2] == (1, 1.2)  # the one without a colour is left out
    assert outer["point"][:2] == (1, 2.0) and outer["clear"][0] == 0
    assert np.isnan(outer["clear"][1])


def test_ring_areas_cover_the_frame(script):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [1.0, 1.0]  # the centre on a corner of the frame
    wcs.wcs.cdelt = [-0.396 / 3600, 0.396 / 3600]
    frame = (np.zeros((400, 600), np.float32), wcs)
    centre = SkyCoord(150.0 * u.deg, 2.0 * u.deg)
    areas = script.ring_areas(frame, centre, edges=(0.0, 1.0, 2.0))
    side = 0.396 / 60
    assert sum(areas) == pytest.approx(400 * 600 * side ** 2, rel=1e-6)
    # A quarter of the 1' circle lies on the frame (to the grid's step).
    assert areas[0] == pytest.approx(np.pi / 4, rel=0.03)
    assert areas[1] == pytest.approx(np.pi / 4 * 3, rel=0.03)


def test_centre_and_edges_are_read(script):
    import argparse

    centre = script._parse_centre("323.36258,-0.82325")
    assert centre.ra.deg == pytest.approx(323.36258) and centre.dec.deg == pytest.approx(-0.82325)
    with pytest.raises(argparse.ArgumentTypeError, match="--centre takes RA,DEC in degrees"):
        script._parse_centre("M2")
    assert script._parse_edges("0,3,9") == (0.0, 3.0, 9.0) and script._parse_edges("0") == (0.0,)
    for bad in ("3,9", "0,9,3", "0,a"):
        with pytest.raises(argparse.ArgumentTypeError, match="--edges takes increasing"):
            script._parse_edges(bad)
