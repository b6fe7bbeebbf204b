"""Refuse a size nobody can allocate before allocating it (docs/DESIGN.md, "Reliability rules").

``model.max_positions=10**12`` or ``extend_table(w, 10**12, ...)`` would otherwise end in
the allocator's own error (or the kernel's OOM killer) deep inside torch. Every layer of
posemb asks :func:`check_fits` first, with its estimate in bytes and the setting to lower;
it compares the estimate with the memory the device has available now and raises
:class:`SizeTooLargeError` (a ``ValueError``) naming both in GiB.

This file sits in ``positional/`` because it is the bottom of the dependency graph
(``model/memory.py`` holds the model and training estimates and calls it). Estimates are
lower bounds: a size is only refused when even the lower bound cannot fit.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

GIB = 1024**3


class SizeTooLargeError(ValueError):
    """An allocation that cannot fit in the memory available; raised before allocating."""


def format_gib(nbytes: int | float) -> str:
    """``1.5 GiB``; very large or small values with 2-3 significant digits (``4.66e+11 GiB``)."""
    gib = nbytes / GIB
    return f"{gib:,.1f} GiB" if 0.1 <= gib < 1e6 else f"{gib:.3g} GiB"


def _linux_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """Room left under a cgroup v2 memory limit (containers), when one is set."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def _host_available() -> int | None:
    avail = _linux_available()
    if avail is None:
        for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):  # macOS has the total only
            try:
                avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf(name)
                break
            except (ValueError, OSError, AttributeError):
                continue
    room = _cgroup_room()
    if room is not None:
        avail = room if avail is None else min(avail, room)
    return avail


def available_bytes(device: torch.device | str | None = None) -> int | None:
    """Memory a new allocation on ``device`` can use now; None when unknown (no refusal).

    ``device`` defaults to torch's default device (``with torch.device(...)`` included).
    CUDA: the free memory of that card; CPU: ``MemAvailable`` (within a cgroup limit).
    """
    dev = torch.device(device) if device is not None else torch.get_default_device()
    if dev.type == "meta":
        return None
    if dev.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(dev)[0])
        except (RuntimeError, AssertionError):
            return None
    if dev.type != "cpu":
        return None  # other accelerators: no portable query
    return _host_available()


def check_fits(nbytes: int, what: str, fix: str, device: torch.device | str | None = None) -> None:
    """Raise :class:`SizeTooLargeError` when ``nbytes`` cannot fit on ``device``.

    Args:
        nbytes: the estimate (a lower bound) in bytes; Python ints never overflow.
        what: what needs it, naming the setting (``"a learned table of 10^12 x 768"``).
        fix: how to make it fit (``"lower model.max_positions"``).
        device: where it would be allocated (default: torch's default device).
    """
    avail = available_bytes(device)
    if avail is not None and nbytes > avail:
        raise SizeTooLargeError(
            f"{what} needs at least {format_gib(nbytes)}, more than the {format_gib(avail)} "
            f"this machine has available; {fix}"
        )


def tensor_bytes(numel: int, dtype: torch.dtype | None = None) -> int:
    """Bytes of ``numel`` elements of ``dtype`` (default: torch's default float dtype)."""
    dtype = dtype or torch.get_default_dtype()
    return int(numel) * dtype.itemsize
