"""Garbage-collector settings for the service process, whose hot path makes many small objects.

Every snapshot the detectors apply decodes a state into a few hundred objects (datetimes,
Decimals, models) and drops them a moment later. With CPython's default thresholds (a young
collection every 700 allocations) the collector ran thousands of times a second and its older
generations walked the whole heap: about a fifth of the detectors' time in
``bench/detector_throughput.py``. Young collections every 50,000 allocations keep cyclic
garbage bounded (the heap does not grow with it: see ``bench/memory.py``) at a fraction of
the cost.

Usage::

    tune_collector()        # once, when the service role starts
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune_collector"]

# (young, middle, old): allocations before a young collection, and young (middle)
# collections before a middle (old) one.
THRESHOLDS = (50_000, 20, 20)


def tune_collector() -> None:
    """Apply ``THRESHOLDS``; idempotent."""
    gc.set_threshold(*THRESHOLDS)
