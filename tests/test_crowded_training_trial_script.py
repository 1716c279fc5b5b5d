"""docs/scripts/crowded_training_trial.py: the crowded fields of its simulation."""

import numpy as np


def test_crowd_adds_neighbours_from_the_same_field_to_a_share_of_the_fields(doc_script):
    script = doc_script("crowded_training_trial")
    field = np.repeat(np.arange(20), 10)
    noiseless = np.zeros((200, 5, 32, 32), np.float32)
    noiseless[:, :, 15:17, 15:17] = (field + 1.0)[:, None, None, None]  # each field its level
    out, crowded = script.crowd(noiseless, field, np.random.default_rng(0), share=0.5,
                                means=(8.0, 8.0))
    assert 0 < len(np.unique(field[crowded])) < 20
    assert np.array_equal(crowded, np.isin(field, field[crowded]))  # whole fields
    changed = (out != noiseless).any(axis=(1, 2, 3))
    assert not changed[~crowded].any()  # the other fields untouched
    assert changed[crowded].mean() > 0.9
    level = (field + 1.0)[:, None, None, None]
    np.testing.assert_allclose(np.mod(out, level), 0.0)  # neighbours of the same field only
    assert (out[crowded].sum(axis=(1, 2, 3)) > noiseless[crowded].sum(axis=(1, 2, 3))).mean() > 0.9
