"""CPU training keeps freed memory for the next step (train/host.py): a step's activations
come from the heap, not from fresh pages the kernel must map and zero."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
from trainkit import subprocess_env

# As a training step does: allocate eight 4 MiB tensors (activations), free them all at the end
# (glibc trims the freed top of its heap beyond twice its adaptive mmap threshold); the page
# faults of 20 such rounds after 20 first ones.
FAULTS = """
import resource, torch
from posemb.train.host import keep_freed_memory
tuned = keep_freed_memory()
def rounds(n):
    for _ in range(n):
        step = [torch.ones(1 << 20) for _ in range(8)]  # 8 x 4 MiB, every page written
        del step
rounds(20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(20)
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(**env: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS],
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        check=True,
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning is glibc's mallopt")
def test_freed_blocks_are_reused_without_page_faults():
    tuned, faults = page_faults()
    untuned, untuned_faults = page_faults(POSEMB_MALLOC_TUNING="0")
    assert (tuned, untuned) == ("True", "False")
    # untuned: fresh 4 KiB pages every round (20 x 8 x 1,024 = 163,840); tuned: none
    assert untuned_faults > 50_000, untuned_faults
    assert faults < 5_000, faults
