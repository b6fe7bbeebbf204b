"""Does ``torch.compile`` compute the same thing as eager here? Checked once, before use.

Compiled CPU kernels depend on the machine's instruction set, and they have been wrong on
some: torch 2.13's compiled CPU FlexAttention returns wrong values under AVX2
(``ATEN_CPU_CAPABILITY=avx2``). So before training a compiled model on the CPU, posemb
compiles a copy of it (the same shape, scheme and batch, dropout off: compiled and eager
must draw nothing random) and compares its logits, loss and gradients with eager on a fixed
batch. On disagreement the caller runs eagerly and says why.

The copy is compiled exactly as the trainer compiles its model (:func:`compile_model`), at
the training batch's shape, so the trainer's own compilation reuses the check's (torch
caches compiled code per model class, shape and call): checking costs one eager step, not
a second compilation.

Inductor's on-disk kernel cache (``/tmp/torchinductor_$USER``) is keyed without the
instruction set, so a process could be handed kernels built for another one.
:func:`use_isa_cache` gives each instruction set its own cache folder before anything is
compiled on the CPU (a ``TORCHINDUCTOR_CACHE_DIR`` you set yourself is kept).

:func:`check_compile` returns a :class:`CompileCheck` (pass/fail and the reason), cached
per process for each model shape, batch shape and device. The torch RNG is left as it was.

Shapes: ``b`` batch, ``t`` length.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ModelConfig

TOLERANCE = 1e-3  # relative; float32 compiled-vs-eager differences are ~1e-6
PROBE_SHAPE = (2, 16)  # (b, t) when the caller names no batch shape
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
_RESULTS: dict[tuple, CompileCheck] = {}


@dataclass(frozen=True)
class CompileCheck:
    """The verdict: ``ok`` and, when not ok, ``reason`` (one sentence)."""

    ok: bool
    reason: str = ""


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` compiled as posemb trains it: static shapes (every step has the same), and
    on the CPU Inductor's C++ wrapper (the graph's kernels are called from C++ rather than
    from Python)."""
    if _device_of(model).type == "cpu":
        use_isa_cache()
    return _compile(model)


def _compile(model: torch.nn.Module) -> torch.nn.Module:
    """The compilation under test (tests replace it)."""
    options = {"cpp_wrapper": True} if _device_of(model).type == "cpu" else None
    return torch.compile(model, dynamic=False, options=options)


def _device_of(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _probe_config(cfg: ModelConfig) -> ModelConfig:
    """The model itself, dropout off (compiled and eager must draw nothing random)."""
    return cfg.replace(dropout=0.0)


def _batch(cfg: ModelConfig, shape: tuple[int, int], positions, device: torch.device):
    """Token ids ``[b, t]`` and, when the trainer passes them, positions ``[b, t]`` of its
    dtype (float positions are fractional: half steps)."""
    b, t = shape
    ids = torch.randint(0, cfg.vocab_size, (b, t), device=device)
    if positions is None:
        return ids, None
    step = 0.5 if positions.is_floating_point else 1
    pos = (torch.arange(t, device=device) * step).to(positions).repeat(b, 1)
    return ids, pos


def _forward_backward(model, ids, pos) -> list[torch.Tensor]:
    """Logits, loss and every gradient of one step (called as the trainer calls its model:
    each position's own target)."""
    out = model(ids, positions=pos, targets=ids.roll(-1, dims=1))
    out.loss.backward()
    grads = [p.grad.detach().flatten() for p in model.parameters() if p.grad is not None]
    return [out.logits.detach().float(), out.loss.detach().reshape(1), torch.cat(grads)]


def _disagreement(got: list[torch.Tensor], want: list[torch.Tensor]) -> str:
    for name, g, w in zip(("logits", "loss", "gradients"), got, want):
        err = float((g - w).norm())
        scale = float(w.norm())
        if not err <= TOLERANCE * scale + 1e-6:  # NaN fails too
            return f"{name} differ by {err / max(scale, 1e-12):.2g} (relative)"
    return ""


def check_compile(
    cfg: ModelConfig,
    device: torch.device | str = "cpu",
    shape: tuple[int, int] | None = None,
    positions: torch.dtype | None = None,
) -> CompileCheck:
    """Compile a copy of a model of ``cfg`` and compare it with eager on a fixed batch.

    Args:
        cfg: the model's configuration.
        device: where the model will run.
        shape: ``(b, t)`` of the batches it will run (default ``(2, 16)``, or the table's
            length if shorter); the trainer gives its micro-batch, so that its compilation
            reuses the check's.
        positions: the dtype of the position ids the caller passes (``train.positions``
            ``random``/``offset``: int64, ``stretch``: float32), None when it passes none.

    Returns:
        ``CompileCheck(ok=True)``, or ``ok=False`` with the reason (compilation failed, or
        logits/loss/gradients differ from eager by more than 1e-3 relative).
    """
    device = torch.device(device)
    probe = _probe_config(cfg)
    limit = probe.max_positions if probe.has_position_table else None
    shape = tuple(shape or (PROBE_SHAPE[0], min(PROBE_SHAPE[1], limit or PROBE_SHAPE[1])))
    key = (json.dumps(probe.to_dict(), sort_keys=True), shape, str(positions), str(device))
    if key in _RESULTS:
        return _RESULTS[key]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        from .transformer import Transformer

        model = Transformer(probe).to(device)
        compiled_copy = copy.deepcopy(model)
        ids, pos = _batch(probe, shape, positions, device)
        want = _forward_backward(model, ids, pos)
        del model
        try:
            got = _forward_backward(compile_model(compiled_copy), ids, pos)
        except Exception as e:  # noqa: BLE001 - any compiler failure means "use eager"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            result = CompileCheck(False, f"torch.compile failed here ({type(e).__name__}: {first})")
        else:
            diff = _disagreement(got, want)
            result = CompileCheck(not diff, _reason(diff, device) if diff else "")
    _RESULTS[key] = result
    return result


def _reason(diff: str, device: torch.device) -> str:
    return (
        f"torch.compile's {device.type} kernels disagree with eager on a test batch "
        f"({diff}; torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()})"
    )


# -- Inductor's kernel cache, one folder per instruction set -------------------------------------
def isa_cache_dir() -> Path:
    """Inductor's cache folder for this machine's instruction set and torch version:
    torch's default folder, then ``isa-<capability>-<digest>``, the digest over the CPU's
    feature flags, ``ATEN_CPU_CAPABILITY`` and the torch version."""
    flags = _cpu_flags()
    forced = os.environ.get("ATEN_CPU_CAPABILITY", "")
    capability = torch.backends.cpu.get_cpu_capability().lower()
    key = "\n".join([torch.__version__, platform.machine(), capability, forced, flags])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return _default_cache_dir() / f"isa-{capability}-{digest}"


def use_isa_cache() -> Path:
    """Point Inductor at :func:`isa_cache_dir` unless ``TORCHINDUCTOR_CACHE_DIR`` names a
    folder of the user's own (anything but torch's default); returns the folder in use."""
    current = os.environ.get(CACHE_ENV)
    default = _default_cache_dir()
    if current and Path(current).resolve() != default.resolve():
        return Path(current)  # the user's choice (make test-avx2 sets a fresh one)
    path = isa_cache_dir()
    os.environ[CACHE_ENV] = str(path)
    return path


def _default_cache_dir() -> Path:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        return Path(default_cache_dir())
    except ImportError:  # pragma: no cover - older torch
        user = os.environ.get("USER", "user")
        return Path(tempfile.gettempdir()) / f"torchinductor_{user}"


def _cpu_flags() -> str:
    """The CPU's feature flags (Linux: /proc/cpuinfo), else its description."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor()
