"""What a training run reports: metrics.jsonl, TensorBoard, the progress bar.

``metrics.jsonl`` holds one JSON object a line (``step``, ``train_loss``, ``lr``,
``tokens_per_s`` at logging steps; ``val_loss`` and, for synthetic tasks, ``val_accuracy``
at evaluation steps; ``tokens``, the tokens this run has trained on so far, and
``elapsed_s``). Rank 0 alone writes it; on resume the lines written
after the checkpoint being resumed are dropped first, so the file reads as one run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from ..runs.layout import METRICS_FILE


class MetricsLog:
    """The loop's report: what it writes (rank 0), shows, and returns at the end.

    Attributes:
        train_loss: the last step's loss (NaN before the first step).
        val_loss: the last evaluation's loss (None before the first).
        val_accuracy: the last evaluation's exact match (synthetic tasks; else None).
        tokens_per_s: throughput over the last logging interval.
    """

    def __init__(self, run_dir: Path, tc, step: int, main: bool) -> None:
        self.run_dir, self.main = run_dir, main
        self.tokens_per_step = tc.batch_size * tc.seq_len
        self.bar = _progress(tc, step, main)
        self.writer = _tensorboard(run_dir) if main else None
        self.t0 = time.perf_counter()
        self.t_last, self.steps_since = self.t0, 0
        self.train_loss, self.tokens_per_s = math.nan, 0.0
        self.val_loss: float | None = None
        self.val_accuracy: float | None = None

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.t0

    def stepped(self, loss: float) -> None:
        """One optimiser step finished with ``loss``."""
        self.train_loss = loss
        self.steps_since += 1

    def throughput(self, lr: float) -> dict[str, Any]:
        """The logging fields: loss, learning rate and tokens/s since the last of them."""
        now = time.perf_counter()
        self.tokens_per_s = self.steps_since * self.tokens_per_step / max(now - self.t_last, 1e-9)
        self.t_last, self.steps_since = now, 0
        return {
            "train_loss": round(self.train_loss, 6),
            "lr": lr,
            "tokens_per_s": round(self.tokens_per_s, 1),
        }

    def validated(self, val_loss: float, val_accuracy: float | None) -> dict[str, Any]:
        """The evaluation fields."""
        self.val_loss, self.val_accuracy = val_loss, val_accuracy
        record = {"val_loss": round(val_loss, 6), "train_loss": round(self.train_loss, 6)}
        if val_accuracy is not None:
            record["val_accuracy"] = round(val_accuracy, 6)
        return record

    def write(self, step: int, record: dict[str, Any]) -> None:
        """Append ``record`` (if any) to metrics.jsonl and TensorBoard (rank 0)."""
        if record and self.main:
            record = {
                "step": step,
                **record,
                "tokens": step * self.tokens_per_step,
                "elapsed_s": round(self.wall_s, 3),
            }
            _append_metrics(self.run_dir, record, self.writer)

    def note(self, line: str) -> None:
        """One line for the reader, above the progress bar when there is one."""
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def show(self) -> None:
        """Advance the progress bar by one step."""
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(  # drawn with the bar's next update, at its own interval
                refresh=False,
                loss=f"{self.train_loss:.3f}",
                tok_s=f"{self.tokens_per_s:,.0f}",
                **({"val": f"{self.val_loss:.3f}"} if self.val_loss is not None else {}),
            )


def _progress(tc, step: int, main: bool):
    if not (main and tc.progress):
        return None
    try:
        from tqdm import tqdm  # text, in a terminal as in a notebook (no ipywidgets needed)
    except ImportError:  # pragma: no cover
        return None
    # a log file gets a line every 15 s, not every step
    interval = 0.1 if sys.stderr.isatty() else 15.0
    return tqdm(
        total=tc.max_steps,
        initial=step,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        leave=True,
        mininterval=interval,
    )


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: metrics.jsonl only
        return None
    return SummaryWriter(str(run_dir / "tb"))


def _append_metrics(run_dir: Path, record: dict[str, Any], writer) -> None:
    with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if writer is not None:
        for k, v in record.items():
            if k != "step" and isinstance(v, (int, float)):
                writer.add_scalar(k, v, record["step"])


def truncate_metrics(run_dir: Path, step: int) -> None:
    """On resume, drop metric lines written after the checkpoint being resumed."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except ValueError:  # a line torn by a kill
            continue
    atomic_write_text(path, "".join(k + "\n" for k in kept))
