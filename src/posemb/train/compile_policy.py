"""Whether a run is compiled, decided from what the run itself measures, and recorded.

``train.compile=auto`` on the CPU (one process, posemb's own model):

1. The run starts eagerly. After ``WARMUP`` steps, ``TIMED`` steps are timed: ``e`` seconds
   a step (these are training steps: the measurement costs nothing).
2. The saving expected from compiling is ``e x steps left x gain``, where ``gain`` is the
   share of an eager step that compiling saved the last time posemb compiled this model at
   this batch shape with this Inductor cache (measured, recorded in the cache folder), else
   ``GAIN_PRIOR``, below the smallest gain measured over a whole run: an assumption that
   errs towards staying eager. If the saving is less than what compiling is
   expected to cost here, the run stays eager. The expected cost is what posemb measured
   the last time it compiled this model and shape in this cache (so a warm cache is known),
   else ``COLD_COMPILE_S``.
3. Otherwise the compiled-kernel self-check (:mod:`posemb.model.compile_check`) compiles
   the model (its wall time is the compile cost, recorded for next time), and after one
   more warm-up step the run takes compiled and eager steps in turn, two at a time, and
   times the second of each two (the first after a switch runs with the other's memory in
   the caches), ``TIMED`` of each, so that both are timed over the same stretch of the run
   (load changes between stretches).
   Unless the compiled ones are at least ``MIN_GAIN`` faster, the run goes back to eager for
   the rest. Either way the measured gain is recorded for the next run's decision.

``true`` compiles from the first step (after the self-check), ``false`` never; CUDA
compiles from the first step under ``auto`` (not measured: a GPU's gain is large); several
processes and Hugging Face models stay eager under ``auto``.

The decision, its reason and its figures (seconds a step each way, compile seconds, steps
left, cache state) are printed in one line and written into ``trainer_state.json`` as
``"compile"`` at every checkpoint (a resumed run decides again, for its own steps).

The constants were measured with torch 2.13: nanoGPT's CPU recipe (4 layers, 128 wide,
batch 12 x 64) compiled in 24-31 s with a cold cache and 4 s with a warm one on a 2-core
Intel Xeon, where over whole runs a compiled step was 7-8% faster than eager with AVX-512
kernels and 3.3-5.4% with AVX2 ones, and 5% faster on a 2-core AMD EPYC (AVX2)
(BENCHMARKS.md, "The compile policy").
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..files import atomic_write_text
from ..model.compile_check import check_compile, compile_model, use_isa_cache

WARMUP = 2  # steps before timing (allocator, first-call costs)
TIMED = 10  # steps timed each way (their median: robust to a slow step)
COMPARING = 2 + 2 * (2 * TIMED - 1)  # steps compiled and eager in turn take (see _compare)
GAIN_PRIOR = 0.03  # share of an eager CPU step compiling is assumed to save, until measured
MIN_GAIN = 0.02  # compiled steps must be this much faster to keep (noise below)
COLD_COMPILE_S = 30.0  # compiling a small model with an empty Inductor cache
WARM_SHARE = 0.2  # a warm cache's compile against a cold one's (5 s against 31 s measured)
_GAIN_FROM = {"measured": "as measured here before", "assumed": "assumed until measured here"}
COSTS_DIR = "posemb-compile-costs"  # in the Inductor cache folder: measured seconds and gain


@dataclass
class CompileDecision:
    """What ``train.compile`` did in this process, and why.

    Attributes:
        setting: ``auto``, ``true`` or ``false``.
        compiled: the run trains compiled (now).
        reason: one sentence.
        eager_step_s: seconds an eager step before deciding (median of ``TIMED``).
        compiled_step_s: seconds a compiled step (median of ``TIMED``, timed in turn with
            ``TIMED`` eager steps).
        measured_gain: the share of an eager step compiling saved, from those steps in turn.
        compile_s: measured seconds to compile (the self-check's wall time).
        expected_compile_s: what compiling was expected to cost before deciding.
        expected_gain: the share of an eager step compiling was expected to save.
        gain_from: ``measured`` (the last compilation of this shape in this cache) or
            ``assumed`` (``GAIN_PRIOR``: never measured here).
        cache: ``warm`` (posemb compiled this shape in this cache before) or ``cold``.
        steps_left: optimiser steps left when the decision was made.
        at_step: the step it was made at.
    """

    setting: str
    compiled: bool = False
    reason: str = ""
    eager_step_s: float | None = None
    compiled_step_s: float | None = None
    measured_gain: float | None = None
    compile_s: float | None = None
    expected_compile_s: float | None = None
    expected_gain: float | None = None
    gain_from: str | None = None
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
    phase: str = "eager"  # eager -> compare (compiled and eager in turn) -> done
    times: list[float] = field(default_factory=list)  # eager steps, before deciding
    paired: dict[str, list[float]] = field(default_factory=lambda: {"compiled": [], "eager": []})
    first_step: int = 0
    switched_at: int = -1  # the last step after which s.net changed while comparing
    eager_net: Any = None
    compiled_net: Any = None

    def stepped(self, s, seconds: float, note) -> None:
        """One training step took ``seconds``; swap ``s.net`` when the decision says so and
        ``note`` (a print) the decision once it is made."""
        if not self.measuring:
            return
        if self.phase == "compare":
            self._compare(s, seconds, note)
            return
        if s.step - self.first_step > WARMUP:
            self.times.append(seconds)
        if len(self.times) == TIMED:
            self._after_eager(s, statistics.median(self.times), note)

    def _compare(self, s, seconds: float, note) -> None:
        """Compiled and eager steps in turn, two at a time, the second of each two timed: the
        gain measured over the same stretch of the run (a machine's load changes between
        stretches), without the first step after a switch (the caches hold the other's)."""
        if s.step - self.first_step <= 1 or s.step == self.switched_at + 1:
            return  # the first compiled step may still compile; a first step after a switch
        self.paired["compiled" if s.net is self.compiled_net else "eager"].append(seconds)
        if min(len(v) for v in self.paired.values()) >= TIMED:
            self._after_compiled(s, note)
            return
        s.net = self.eager_net if s.net is self.compiled_net else self.compiled_net
        self.switched_at = s.step

    def _after_eager(self, s, eager_s: float, note) -> None:
        d = self.decision
        d.eager_step_s, d.at_step = eager_s, s.step
        d.steps_left = s.cfg.train.max_steps - s.step
        recorded = _recorded(s)
        d.expected_compile_s, d.cache = expected_cost(recorded)
        d.expected_gain, d.gain_from = expected_gain(recorded)
        saving = eager_s * d.steps_left * d.expected_gain
        if d.steps_left <= COMPARING:
            self._stop(f"{d.steps_left} steps left: too few to compare compiled and eager", note)
            return
        if saving <= d.expected_compile_s:  # nothing to gain: no compilation
            self._stop(
                f"compiling would save about {saving:.1f} s over the {d.steps_left:,} steps "
                f"left ({d.expected_gain:.0%} of {eager_s * 1e3:.1f} ms a step, "
                f"{_GAIN_FROM[d.gain_from]}) and cost about {d.expected_compile_s:.0f} s here "
                f"(Inductor cache {d.cache})",
                note,
            )
            return
        t = time.perf_counter()
        ok, why = _checked(s)
        d.compile_s = time.perf_counter() - t
        if not ok:
            self._stop(f"the compiled-kernel check failed ({why})", note)
            return
        record(s, **{f"{d.cache}_s": d.compile_s})
        self.eager_net, self.compiled_net = s.net, compile_model(s.net)
        s.net = self.compiled_net
        d.compiled, self.phase, self.first_step = True, "compare", s.step

    def _after_compiled(self, s, note) -> None:
        d = self.decision
        compiled_s = statistics.median(self.paired["compiled"])
        eager_s = statistics.median(self.paired["eager"])
        d.compiled_step_s, d.measured_gain = compiled_s, 1 - compiled_s / eager_s
        record(s, gain=d.measured_gain)
        figures = (
            f"{compiled_s * 1e3:.1f} ms a compiled step against {eager_s * 1e3:.1f} ms eager, "
            f"{TIMED} of each in turn ({d.measured_gain:+.0%}), {d.compile_s:.0f} s to compile"
        )
        if d.measured_gain < MIN_GAIN:
            s.net, d.compiled = self.eager_net, False
            self._stop(f"{figures}: not faster here, so the rest runs eagerly", note)
            return
        s.net = self.compiled_net
        left = s.cfg.train.max_steps - s.step
        saved = (eager_s - compiled_s) * left
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


def _cost_file(s) -> Path:
    """Where this model and batch shape's compile seconds are kept, in the Inductor cache."""
    key = json.dumps(
        [s.cfg.model.to_dict(), s.micro, s.cfg.train.seq_len, torch.__version__], sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(use_isa_cache()) / COSTS_DIR / f"{digest}.json"


def _recorded(s) -> dict[str, float]:
    """What earlier runs measured for this model and shape in this cache (``cold_s``,
    ``warm_s``: compile seconds; ``gain``: the share of an eager step compiling saved),
    finite numbers only; ``{}`` when nothing (readable) is recorded."""
    try:
        costs = json.loads(_cost_file(s).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(costs, dict):
        return {}
    numbers = {k: v for k, v in costs.items() if isinstance(v, (int, float))}
    return {k: float(v) for k, v in numbers.items() if math.isfinite(v)}


def expected_cost(costs: dict[str, float]) -> tuple[float, str]:
    """The compile seconds expected here and the cache state, from what was recorded here
    (:func:`_recorded`). ``warm`` when posemb compiled this model and shape in this cache
    before: the last warm compile it measured, or ``WARM_SHARE`` of the cold one; ``cold``
    otherwise: ``COLD_COMPILE_S``."""
    if costs.get("warm_s", -1) >= 0:
        return costs["warm_s"], "warm"
    if costs.get("cold_s", -1) >= 0:
        return WARM_SHARE * costs["cold_s"], "warm"
    return COLD_COMPILE_S, "cold"


def expected_gain(costs: dict[str, float]) -> tuple[float, str]:
    """The share of an eager step compiling is expected to save: the last one measured for
    this model and shape in this cache (``costs``, :func:`_recorded`; ``measured``, a loss
    counts as 0), else ``GAIN_PRIOR`` (``assumed``)."""
    gain = costs.get("gain")
    if gain is None:
        return GAIN_PRIOR, "assumed"
    return min(max(gain, 0.0), 1.0), "measured"


def record(s, **figures: float) -> None:
    """Keep measured figures (compile seconds, gain) beside the kernels they are about, for
    the next run's decision (best effort: a cache folder that cannot be written is skipped)."""
    path = _cost_file(s)
    try:
        costs = _recorded(s)
        costs.update({k: round(v, 4) for k, v in figures.items()})
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(costs))  # a run reading it never sees half a file
    except (OSError, ValueError, TypeError):
        pass
