"""Does ``torch.compile`` compute the same thing as eager here? Checked once, before use.

Compiled CPU kernels depend on the machine's instruction set, and they have been wrong on
some: torch 2.13's compiled CPU FlexAttention returns wrong values under AVX2
(``ATEN_CPU_CAPABILITY=avx2``), and Inductor's on-disk kernel cache, keyed without the
instruction set, can hand kernels built for one to a process running with another. So
before training a compiled model on the CPU, posemb compiles a one-block copy of it (the
same widths, vocabulary, norm, activation and positional scheme: the same kernels) and
compares its logits, loss and gradients with eager on a fixed small batch. On disagreement
the caller runs eagerly and says why.

:func:`check_compile` returns a :class:`CompileCheck` (pass/fail and the reason), cached
per process for each model shape and device. The torch RNG is left as it was.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import torch

from .config import ModelConfig

TOLERANCE = 1e-3  # relative; float32 compiled-vs-eager differences are ~1e-6
_RESULTS: dict[tuple[str, str], CompileCheck] = {}


@dataclass(frozen=True)
class CompileCheck:
    """The verdict: ``ok`` and, when not ok, ``reason`` (one sentence)."""

    ok: bool
    reason: str = ""


def _compile(model: torch.nn.Module) -> torch.nn.Module:
    """The compilation under test: the trainer's own ``torch.compile`` call."""
    return torch.compile(model, dynamic=False)


def _probe_config(cfg: ModelConfig) -> ModelConfig:
    """One block, no dropout (compiled and eager must draw nothing random)."""
    return cfg.replace(n_layer=1, dropout=0.0)


def _forward_backward(model: torch.nn.Module, ids: torch.Tensor) -> list[torch.Tensor]:
    out = model(ids, labels=ids)
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


def check_compile(cfg: ModelConfig, device: torch.device | str = "cpu") -> CompileCheck:
    """Compile a one-block copy of ``cfg`` and compare it with eager on a fixed batch.

    Args:
        cfg: the model's configuration (only its shape matters).
        device: where the model will run.

    Returns:
        ``CompileCheck(ok=True)``, or ``ok=False`` with the reason (compilation failed, or
        logits/loss/gradients differ from eager by more than 1e-3 relative).
    """
    device = torch.device(device)
    probe = _probe_config(cfg)
    key = (json.dumps(probe.to_dict(), sort_keys=True), str(device))
    if key in _RESULTS:
        return _RESULTS[key]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        from .transformer import Transformer

        eager = Transformer(probe).to(device)
        compiled_copy = copy.deepcopy(eager)
        limit = eager.position_limit or 16
        ids = torch.randint(0, probe.vocab_size, (2, min(16, limit)), device=device)
        want = _forward_backward(eager, ids)
        try:
            got = _forward_backward(_compile(compiled_copy), ids)
        except Exception as e:  # noqa: BLE001 - any compiler failure means "use eager"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            result = CompileCheck(False, f"torch.compile failed here ({type(e).__name__}: {first})")
        else:
            diff = _disagreement(got, want)
            result = CompileCheck(
                not diff,
                f"torch.compile's {device.type} kernels disagree with eager on a test batch "
                f"({diff}; torch {torch.__version__}, CPU capability "
                f"{torch.backends.cpu.get_cpu_capability()})"
                if diff
                else "",
            )
    _RESULTS[key] = result
    return result
