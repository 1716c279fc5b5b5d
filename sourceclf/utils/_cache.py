"""A least-recently-used cache of arrays, bounded by their size in bytes."""

import functools
import threading
from collections import OrderedDict

__all__ = ["array_cache"]


def array_cache(max_bytes):
    """Decorate a function of hashable arguments that returns a `numpy.ndarray`: its
    results are kept, read-only, and the least recently used are dropped once they hold
    more than ``max_bytes`` (a result larger than that alone is returned, not kept).

    The wrapper's ``cache_clear()`` empties the cache and ``cache_info()`` gives
    ``(hits, misses, entries, nbytes)``.  A result is computed outside the lock, so two
    threads asking for the same missing one may both compute it; they get equal arrays.
    """
    def decorate(function):
        kept, lock = OrderedDict(), threading.Lock()
        counts = {"hits": 0, "misses": 0, "nbytes": 0}

        @functools.wraps(function)
        def wrapper(*args):
            with lock:
                if args in kept:
                    kept.move_to_end(args)
                    counts["hits"] += 1
                    return kept[args]
                counts["misses"] += 1
            result = function(*args)
            result.flags.writeable = False
            if result.nbytes <= max_bytes:
                with lock:
                    if args not in kept:
                        kept[args] = result
                        counts["nbytes"] += result.nbytes
                    while counts["nbytes"] > max_bytes:
                        counts["nbytes"] -= kept.popitem(last=False)[1].nbytes
            return result

        def cache_clear():
            with lock:
                kept.clear()
                counts.update(hits=0, misses=0, nbytes=0)

        def cache_info():
            with lock:
                return counts["hits"], counts["misses"], len(kept), counts["nbytes"]

        wrapper.cache_clear, wrapper.cache_info = cache_clear, cache_info
        return wrapper
    return decorate
