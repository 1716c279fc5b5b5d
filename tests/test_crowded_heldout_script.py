"""docs/scripts/crowded_heldout.py: its point-source-vs-galaxy score."""

import numpy as np


def test_balanced_is_the_mean_of_the_two_shares(doc_script):
    script = doc_script("crowded_heldout")
    truth = np.array(["STAR", "QSO", "STAR", "GALAXY", "GALAXY"])
    # A QSO called STAR is a point source called right; a STAR called GALAXY is not.
    pred = np.array(["QSO", "STAR", "GALAXY", "GALAXY", "QSO"])
    assert script.balanced(truth, pred) == 0.5 * (2 / 3 + 1 / 2)
