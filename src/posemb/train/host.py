"""The host side of CPU training: freed memory kept for the next step.

A training step allocates its activations and gradients afresh and frees them at its end.
glibc's ``malloc`` hands blocks above its mmap threshold (128 KiB at first, adjusted as the
process runs) straight back to the operating system when they are freed, so the next step
maps new pages and the kernel zeroes every one of them again. At nanoGPT's CPU recipe
shape (4 layers x 128, T=64, batch 12, one thread; BENCHMARKS.md) that was 549 page faults
and 0.95 ms of system time a step (of 61 ms of CPU time); tuned, 3 and 0.02 ms.

:func:`keep_freed_memory` raises glibc's mmap and trim thresholds (``mallopt``) so that
freed blocks up to 32 MiB stay in the process's heap and are reused by the next step:
what PyTorch's CPU performance guide gets from swapping in jemalloc or tcmalloc, without
a preload. The process keeps the memory of its largest step until it exits, as those
allocators do. It changes nothing but where memory comes from; results are bit-identical.
Only glibc (Linux) is tuned; elsewhere, or with ``POSEMB_MALLOC_TUNING=0`` in the
environment, nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks below it come from the heap
TRIM_THRESHOLD = 2**31 - 1  # free memory at the heap's top is kept (an int: 2 GiB at most)
ENV = "POSEMB_MALLOC_TUNING"

_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Keep freed blocks in the heap for reuse (once per process); True when glibc was tuned."""
    global _tuned
    if _tuned is None:
        _tuned = _tune()
    return _tuned


def _tune() -> bool:
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success
    mmap_ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and mmap_ok
