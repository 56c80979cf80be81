"""Shared bench helpers: the quick-mode switch and a peak-memory reader."""

from __future__ import annotations

import os
import resource

QUICK = os.environ.get("MEIO_BENCH_QUICK") == "1"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
