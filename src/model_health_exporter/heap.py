"""The process's C heap (glibc malloc): settings made once at start, and the freed pages
given back to the system while data arrives.

Numpy arrays, `bytes` and other blocks over 512 bytes come from malloc, not from
Python's own allocator. A long-running daemon that keeps a window of small long-lived
blocks per model version (closed buckets, the pending-feedback store, each model's
rendered `/metrics` text) between short-lived ones (a block's columns, a refresh's
temporaries) leaves freed blocks scattered between live ones, and glibc keeps every
page it ever touched resident, free or not. Measured with 200 versions and full windows
(`bench/ingest_daemon.py --parts memory --memory-window full`, docs/benchmarks.md):
about 87 KB per version held free, and a heap per thread that allocated.

Elsewhere than glibc (musl, macOS) `mallopt` and `malloc_trim` do not exist and all of
this does nothing."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Final

# mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8

MMAP_THRESHOLD_BYTES: Final = 128 * 1024
"""glibc's default, here kept fixed (see `tune_malloc`)."""

ARENAS: Final = 1
"""One malloc arena for every thread. By default each thread that allocates while
another holds the arena's lock gets an arena of its own (up to 8 per core), whose freed
blocks only that arena reuses: the ingest thread, the HTTP threads rendering pages and
`/metrics`, and the scan thread each keep their own free memory. The GIL serialises
nearly every allocation here anyway, so one arena costs no waiting."""


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    return function


_mallopt = _libc_function("mallopt")
_malloc_trim = _libc_function("malloc_trim")


def tune_malloc() -> None:
    """Call once at start, before threads start.

    The mmap threshold is kept where it is: by default each freed mmap'd block raises it
    to that block's size (up to 32 MiB), so the daemon's large short-lived buffers
    (checkpoints, whole /metrics bodies, 1 MiB log reads) move onto the heap after the
    first one, which then stays as large as the most they ever took at once, fragmented:
    702 KB against 470 KB of RSS per active version in `bench/ingest_daemon.py --parts
    memory`. Setting the threshold disables that. And one arena (`ARENAS`)."""
    if _mallopt is None:
        return
    _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    _mallopt(_M_ARENA_MAX, ARENAS)


def release_free_pages() -> bool:
    """Give the pages of freed heap blocks back to the system (`malloc_trim(0)`: every
    whole free page in the heap, not only at its top). Holds the arena's lock meanwhile,
    which with one arena blocks other threads' mallocs: measured 0.3-1 ms a call with
    200 versions (22 ms the first time after start-up). Returns whether any memory was
    given back; False where there is no malloc_trim."""
    if _malloc_trim is None:
        return False
    return bool(_malloc_trim(0))
