"""Hand memory the station has freed back to the system.

Every card passes a few megabytes through the heap (decoded faces, colour planes, packed panels,
the bytes sent to the printer). glibc keeps what Python frees for reuse, and after a run of
cards of ~0.6 MB buffers its heaps hold tens of megabytes of free pages that the resident size
still counts, growing with the cards printed (docs/BENCHMARKS.md). `malloc_trim(0)` returns the
whole free pages of every arena to the kernel in well under a millisecond: a worker calls it
when it finds nothing to print.

Elsewhere than glibc (musl, macOS) there is nothing to call and this does nothing.
"""

from __future__ import annotations

import ctypes

from agent.core.libc import libc_function

_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


_TRIM = libc_function("malloc_trim", ctypes.c_size_t)
_MALLOPT = libc_function("mallopt", ctypes.c_int, ctypes.c_int)


def share_arenas(arenas: int = 2) -> bool:
    """Let every thread started from now on share `arenas` heaps, in place of one heap per thread
    (glibc makes up to eight a core); each heap keeps its own free memory. Call before the
    threads start. The station's threads spend their time waiting on devices, not in malloc.
    False where the C library has no such setting."""
    return _MALLOPT is not None and _MALLOPT(_M_ARENA_MAX, arenas) == 1


def give_back() -> None:
    """Return the heaps' whole free pages to the kernel (a no-op without glibc)."""
    if _TRIM is not None:
        _TRIM(0)
