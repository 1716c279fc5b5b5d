"""docs/scripts/crowded_columns_trial.py: the rows it measures again, with the neighbour fits."""

import numpy as np
from astropy.table import Table

from sourceclf.bands import BANDS
from sourceclf.psf import moffat_profile


def _catalog(n=6):
    """Two simulated fields of three stars each, every star with a bright neighbour
    5 pixels to its right; the recipe's columns set to a value no fit gives."""
    table = Table({"field": np.repeat([0, 1], n // 2)})
    for b in BANDS:
        table[f"psf_fwhm_{b}"] = np.repeat([1.2, 1.6], n // 2)
        table[f"psf_beta_{b}"] = 3.5
        table[f"sky_sigma_{b}"] = 0.02
        for column in ("dered", "deVRad", "psf_flux"):
            table[f"{column}_{b}"] = -99.0
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        table[f"{a}_{b}"] = -99.0
    yy, xx = np.mgrid[:32, :32] - 15.5
    stamps = np.empty((n, 5, 32, 32))
    rng = np.random.default_rng(1)
    for i in range(n):
        fwhm = table["psf_fwhm_r"][i] / 0.396
        source = 40.0 * moffat_profile(xx, yy, fwhm, 3.5)
        neighbour = 200.0 * moffat_profile(xx - 5.0, yy, fwhm, 3.5)
        stamps[i] = source + neighbour + rng.normal(0.0, 0.02, (5, 32, 32))
    return table, stamps


def test_the_chosen_rows_are_measured_with_their_neighbours_field_by_field(doc_script):
    script = doc_script("crowded_columns_trial")
    table, stamps = _catalog()
    rows = np.array([True, False, True, True, False, True])
    out = script.neighbour_fit_columns(table, stamps, rows)
    assert set(out) == set(script.MEASURED)
    for column in script.MEASURED:
        assert np.all(out[column][~rows] == -99.0)  # the other rows keep the recipe's
        assert np.isfinite(out[column][rows]).all() and np.all(out[column][rows] != -99.0)
    # the neighbour (200) is fitted apart: each star is the PSF (radius 0), of about its
    # own flux. The neighbour's position is refined before the residual of the first fit
    # is searched for merged neighbours (neighbour_fits.without_neighbours); with the
    # neighbour left at its peak's centroid (0.4 pixel off) that residual showed a
    # spurious "merged" neighbour beside it, which left the star 0.15-0.2" profiles.
    for b in BANDS:
        np.testing.assert_array_equal(out[f"deVRad_{b}"][rows], 0.0)
        assert np.all((out[f"psf_flux_{b}"][rows] > 36.0) & (out[f"psf_flux_{b}"][rows] < 44.0))


class _Oracle:
    """Right on the rows of crowded fields (a marked feature), wrong on the others."""

    classes = ("GALAXY", "QSO", "STAR")

    def predict_proba(self, features, stamps):
        truth = np.rint(features[:, 0]).astype(int) % 3  # dered_u holds the class index
        crowded = features[:, 5] > 0  # deVRad_u marks the crowded rows
        return np.eye(3)[np.where(crowded, truth, (truth + 1) % 3)]


def test_held_out_accuracy_scores_the_test_rows_by_part_seeing_and_magnitude(doc_script):
    script = doc_script("crowded_columns_trial")
    rng = np.random.default_rng(0)
    n = 600
    label = rng.integers(0, 3, n)
    crowded = rng.random(n) < 0.4
    table = Table({"class": np.array(_Oracle.classes)[label], "crowded_field": crowded,
                   "psf_fwhm_r": rng.uniform(0.8, 2.4, n),
                   "rendered_dered_r": rng.uniform(16.0, 23.0, n)})
    for b in BANDS:
        table[f"dered_{b}"] = label.astype(float)
        table[f"deVRad_{b}"] = crowded.astype(float)
        table[f"psffwhm_{b}"] = 1.2
        table[f"extinction_{b}"] = 0.1
    for a, b in zip(BANDS[:-1], BANDS[1:]):
        table[f"{a}_{b}"] = 0.0
    accuracy = script.held_out_accuracy(_Oracle(), table, np.zeros((n, 5, 4, 4)))
    for part, expected in (("crowded", 1.0), ("others", 0.0)):
        overall, seeing, magnitude = accuracy[part]
        assert overall == expected
        assert len(seeing) == len(script.SEEING_BINS) - 1
        assert len(magnitude) == len(script.MAGNITUDE_EDGES) + 1
        assert {v for v in seeing + magnitude if v is not None} == {expected}
