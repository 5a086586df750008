"""glibc malloc settings for a long-running, multi-threaded sidecar with a small memory budget.

Each poll reads and decodes an answer of up to a few MB in the poller thread while the server's threads answer
requests; glibc gives every thread that allocates its own arena (up to 8 per core) and keeps freed memory of
each mapped, so RSS grows with the largest answer times the threads that ever touched one. One arena and a
128 KiB trim threshold hand it back: at 3,000 connectors RSS 53.6 -> 48.9 MB (bench/scale.py), for no measurable
CPU. The environment (``MALLOC_ARENA_MAX``, ``MALLOC_TRIM_THRESHOLD_``) wins when set. Elsewhere than glibc this
does nothing.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_ARENA_MAX = -8
ARENAS = 1
TRIM_THRESHOLD = 128 * 1024


def tune_malloc() -> bool:
    """Apply the settings (before the threads start); True when glibc took them."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        ok = mallopt(M_ARENA_MAX, ARENAS) == 1 and ok
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    return ok
