"""Whether a run is compiled, decided from what the run itself measures, and recorded.

``train.compile=auto`` on the CPU (one process, posemb's own model):

1. The run starts eagerly. After ``WARMUP`` steps, ``TIMED`` steps are timed: ``e`` seconds
   a step (these are training steps: the measurement costs nothing).
2. The most compiling could save is ``e x steps left x MAX_GAIN``. If that is less than
   what compiling is expected to cost here, the run stays eager. The expected cost is what
   posemb measured the last time it compiled this model at this batch shape with this
   Inductor cache (recorded in the cache folder, so a warm cache is known), else
   ``COLD_COMPILE_S``.
3. Otherwise the compiled-kernel self-check (:mod:`posemb.model.compile_check`) compiles
   the model (its wall time is the compile cost, recorded for next time), the run goes on
   compiled, and ``TIMED`` compiled steps are timed after one more warm-up step. Unless they
   are at least ``MIN_GAIN`` faster than eager, the run goes back to eager for the rest.

``true`` compiles from the first step (after the self-check), ``false`` never; CUDA
compiles from the first step under ``auto`` (not measured: a GPU's gain is large); several
processes and Hugging Face models stay eager under ``auto``.

The decision, its reason and its figures (seconds a step each way, compile seconds, steps
left, cache state) are printed in one line and written into ``trainer_state.json`` as
``"compile"`` at every checkpoint (a resumed run decides again, for its own steps).

The constants were measured on a 2-core Intel Xeon (AVX-512), torch 2.13: nanoGPT's CPU
recipe (4 layers, 128 wide, batch 12 x 64) compiled in 31 s with a cold cache and 5 s with a
warm one, and a compiled step was 2-9% faster than eager (BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..model.compile_check import check_compile, compile_model, use_isa_cache

WARMUP = 2  # steps before timing (allocator, first-call costs)
TIMED = 5  # steps timed each way
MAX_GAIN = 0.15  # the largest share of an eager CPU step compiling has saved here
MIN_GAIN = 0.02  # compiled steps must be this much faster to keep (noise below)
COLD_COMPILE_S = 30.0  # compiling a small model with an empty Inductor cache
WARM_SHARE = 0.2  # a warm cache's compile against a cold one's (5 s against 31 s measured)
COSTS_DIR = "posemb-compile-costs"  # in the Inductor cache folder: measured compile seconds


@dataclass
class CompileDecision:
    """What ``train.compile`` did in this process, and why.

    Attributes:
        setting: ``auto``, ``true`` or ``false``.
        compiled: the run trains compiled (now).
        reason: one sentence.
        eager_step_s, compiled_step_s: measured seconds a step (median of ``TIMED``).
        compile_s: measured seconds to compile (the self-check's wall time).
        expected_compile_s: what compiling was expected to cost before deciding.
        cache: ``warm`` (posemb compiled this shape in this cache before) or ``cold``.
        steps_left: optimiser steps left when the decision was made.
        at_step: the step it was made at.
    """

    setting: str
    compiled: bool = False
    reason: str = ""
    eager_step_s: float | None = None
    compiled_step_s: float | None = None
    compile_s: float | None = None
    expected_compile_s: float | None = None
    cache: str | None = None
    steps_left: int | None = None
    at_step: int | None = None

    def record(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def line(self) -> str:
        return f"compile: {'compiled' if self.compiled else 'eager'}: {self.reason}"


@dataclass
class CompilePolicy:
    """Measures and decides during the loop (:meth:`stepped` after every step)."""

    decision: CompileDecision
    measuring: bool = False  # auto on a CPU, one process: decide from timed steps
    phase: str = "eager"  # eager -> compiled -> done
    times: list[float] = field(default_factory=list)
    first_step: int = 0

    def stepped(self, s, seconds: float, note) -> None:
        """One training step took ``seconds``; swap ``s.net`` when the decision says so and
        ``note`` (a print) the decision once it is made."""
        if not self.measuring:
            return
        done = s.step - self.first_step
        start = WARMUP if self.phase == "eager" else 1  # one compiled step may still compile
        if done > start:
            self.times.append(seconds)
        if len(self.times) < TIMED:
            return
        step_s = sorted(self.times)[TIMED // 2]
        self.times = []
        if self.phase == "eager":
            self._after_eager(s, step_s, note)
        else:
            self._after_compiled(s, step_s, note)

    def _after_eager(self, s, eager_s: float, note) -> None:
        d = self.decision
        d.eager_step_s, d.at_step = eager_s, s.step
        d.steps_left = s.cfg.train.max_steps - s.step
        d.expected_compile_s, d.cache = expected_cost(s)
        most = eager_s * d.steps_left * MAX_GAIN
        if most < d.expected_compile_s:
            self._stop(
                f"compiling would save at most {most:.1f} s over the {d.steps_left:,} steps "
                f"left ({MAX_GAIN:.0%} of {eager_s * 1e3:.1f} ms a step) and cost about "
                f"{d.expected_compile_s:.0f} s here (Inductor cache {d.cache})",
                note,
            )
            return
        t = time.perf_counter()
        ok, why = _checked(s)
        d.compile_s = time.perf_counter() - t
        if not ok:
            self._stop(f"the compiled-kernel check failed ({why})", note)
            return
        record_cost(s, d.compile_s, d.cache)
        s.net = compile_model(s.net)
        d.compiled, self.phase, self.first_step = True, "compiled", s.step

    def _after_compiled(self, s, compiled_s: float, note) -> None:
        d = self.decision
        d.compiled_step_s = compiled_s
        gain = 1 - compiled_s / d.eager_step_s
        figures = (
            f"{compiled_s * 1e3:.1f} ms a compiled step against {d.eager_step_s * 1e3:.1f} ms "
            f"eager ({gain:+.0%}), {d.compile_s:.0f} s to compile"
        )
        if gain < MIN_GAIN:
            s.net = _eager(s.net)
            d.compiled = False
            self._stop(f"{figures}: not faster here, so the rest runs eagerly", note)
            return
        left = s.cfg.train.max_steps - s.step
        saved = (d.eager_step_s - compiled_s) * left
        self._stop(f"{figures}; about {saved:.0f} s saved over the {left:,} steps left", note)

    def _stop(self, reason: str, note) -> None:
        self.decision.reason, self.measuring, self.phase = reason, False, "done"
        note(self.decision.line())


def start_policy(s) -> CompilePolicy:
    """The decision before the first step: compile now, never, or measure (auto on a CPU)."""
    tc, device = s.cfg.train, s.device
    d = CompileDecision(tc.compile)
    if tc.compile == "false":
        d.reason = "train.compile=false"
    elif s.cfg.hf is not None:
        d.reason = "a Hugging Face model trains eagerly (posemb compiles its own models only)"
    elif device.type != "cpu":
        d.compiled, d.reason = True, f"{device.type}: compiled from the first step"
    elif tc.compile == "true":
        t = time.perf_counter()
        ok, why = _checked(s)
        d.compile_s = time.perf_counter() - t
        d.compiled = ok
        d.reason = "train.compile=true" if ok else f"{why}; training eagerly instead"
    elif s.world > 1:
        d.reason = "several processes: auto compiles one-process CPU runs only"
    elif tc.max_steps - s.step <= 2 * (WARMUP + TIMED):
        left = tc.max_steps - s.step
        d.reason = (
            f"{left} step{'' if left == 1 else 's'} to go: too few to time, let alone pay back"
        )
    else:
        return CompilePolicy(d, measuring=True, first_step=s.step)
    return CompilePolicy(d)


def _checked(s) -> tuple[bool, str]:
    """The compiled-kernel self-check at the training batch's shape."""
    tc = s.cfg.train
    positions = {"start": None, "stretch": torch.float32}.get(tc.positions, torch.int64)
    check = check_compile(s.cfg.model, s.device, (s.micro, tc.seq_len), positions=positions)
    return check.ok, check.reason


def _eager(net: torch.nn.Module) -> torch.nn.Module:
    """The module a compiled ``net`` wraps."""
    return getattr(net, "_orig_mod", net)


def _cost_file(s) -> Path:
    """Where this model and batch shape's compile seconds are kept, in the Inductor cache."""
    key = json.dumps(
        [s.cfg.model.to_dict(), s.micro, s.cfg.train.seq_len, torch.__version__], sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(use_isa_cache()) / COSTS_DIR / f"{digest}.json"


def expected_cost(s) -> tuple[float, str]:
    """The compile seconds expected here and the cache state. ``warm`` when posemb compiled
    this model and shape in this cache before: the last warm compile it measured, or
    ``WARM_SHARE`` of the cold one; ``cold`` otherwise: ``COLD_COMPILE_S``."""
    try:
        costs = json.loads(_cost_file(s).read_text())
        if "warm_s" in costs:
            return float(costs["warm_s"]), "warm"
        return WARM_SHARE * float(costs["cold_s"]), "warm"
    except (OSError, ValueError, KeyError, TypeError):
        return COLD_COMPILE_S, "cold"


def record_cost(s, seconds: float, cache: str) -> None:
    """Keep a measured compile time beside the kernels it built (best effort)."""
    path = _cost_file(s)
    try:
        costs = json.loads(path.read_text()) if path.exists() else {}
        costs[f"{cache}_s"] = round(seconds, 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(costs))
    except (OSError, ValueError, TypeError):
        pass
