"""CPU training keeps freed memory for the next step (train/host.py): a step's activations
come from the heap, not from fresh pages the kernel must map and zero.

glibc's own decisions are read back with ``mallinfo2``: where a 24 MiB block (a step's
activation) comes from, and whether the heap keeps it once freed. Counting page faults
instead depends on glibc's adaptive threshold and on what the process allocated before
(an untuned process faulted 549 times a training step in BENCHMARKS.md, and 0 times on
this probe in one run of the suite), so the test asks glibc directly.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from kit import subprocess_env

PROBE = """
import ctypes, torch
from posemb.train.host import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
tuned = keep_freed_memory()
block = torch.empty(24 << 20, dtype=torch.uint8).fill_(1)  # an activation, every page written
mapped = libc.mallinfo2().hblkhd  # bytes in blocks glibc mapped on their own (mmap)
del block
kept = libc.mallinfo2().fordblks  # free bytes the heap still holds
print(tuned, mapped >= 24 << 20, kept >= 24 << 20)
"""


def probe(**env: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        check=True,
    ).stdout.split()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning is glibc's mallopt")
def test_a_steps_blocks_come_from_the_heap_and_stay_there():
    tuned, mapped, kept = probe()
    assert tuned == "True"
    assert mapped == "False"  # from the heap, not a fresh mapping
    assert kept == "True"  # freed, and kept for the next step (not trimmed)
    # untuned, glibc maps the block on its own (and unmaps it when freed)
    assert probe(POSEMB_MALLOC_TUNING="0") == ["False", "True", "False"]
