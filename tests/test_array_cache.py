"""sourceclf.utils._cache.array_cache: arrays kept read-only, least recently used dropped
past a size in bytes."""

import numpy as np
import pytest

from sourceclf.utils._cache import array_cache


def test_results_are_kept_read_only_and_dropped_past_the_byte_bound():
    made = []

    @array_cache(max_bytes=3 * 800)  # three arrays of 100 float64
    def filled(value, size=100):
        made.append(value)
        return np.full(size, float(value))

    first = filled(1)
    assert filled(1) is first and made == [1]
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 2.0
    filled(2), filled(3)
    filled(1)  # used last: 2 is now the oldest
    filled(4)
    assert filled.cache_info() == (2, 4, 3, 2400)
    filled(1), filled(3), filled(4)
    assert made == [1, 2, 3, 4]
    filled(2)
    assert made == [1, 2, 3, 4, 2]
    # Larger than the bound: returned, not kept.
    assert len(filled(5, 400)) == 400 and len(filled(5, 400)) == 400
    assert made[-2:] == [5, 5] and filled.cache_info()[2:] == (3, 2400)
    filled.cache_clear()
    assert filled.cache_info() == (0, 0, 0, 0)
    filled(1)
    assert made[-1] == 1
