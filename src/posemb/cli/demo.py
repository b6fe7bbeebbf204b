"""The main job, on built-in data (the Python standard library's own source), CPU-friendly.

1. trains three small byte-level models at L = 64 tokens with the same data, budget and
   seed: a learned position table of 64 rows, RoPE and ALiBi (a quick sweep subset);
2. prints a sample from the learned-table model;
3. runs the order probe on "The cat chased the dog" / "The dog chased the cat";
4. shows what happens past the table: the clear error for position 64 + k, then the loss
   at 1x/2x/4x/8x the training length with every extension method and a sliding window,
   beside RoPE and ALiBi, on 65,536 held-out tokens drawn from across the validation split
   (the same tokens at every length), each with its standard error;
5. writes the runs (checkpoints, metrics), a plot of the learned table's cosine
   similarities, results.json / results.md and report.md / report.html: the report holds
   everything the terminal shows (sample, probe, the error, tables, plots, provenance).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

HELP = "the main job: train, generate, probe order, and go past the table (a few minutes on a CPU)"
EXAMPLE = "posemb demo --out runs/demo"
MARKER = "posemb-demo.txt"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", default="runs/demo", metavar="DIR", help="output directory (default runs/demo)"
    )
    p.add_argument(
        "--data", default="stdlib", metavar="SRC", help="training text (default: stdlib)"
    )


def _section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def run(args: argparse.Namespace) -> int:
    import sys

    import torch

    from ..analysis.plots import plot_cosine_heatmap
    from ..eval.reading import describe
    from ..eval.sweep import BUDGETS, SweepPlan, run_sweep, sweep_report
    from ..positional.learned import PositionOutOfRangeError
    from ..report import Report
    from ..train import load_run

    out = _fresh_out(Path(args.out))
    t0 = time.perf_counter()
    L = BUDGETS["quick"]["train_len"]
    plan = SweepPlan(
        ["learned", "rope", "alibi"],
        L,
        [L, 2 * L, 4 * L, 8 * L],
        "quick",
        args.data,
        progress=sys.stderr.isatty(),
    )
    shown = Report("")  # what the terminal shows, for the report

    _section(
        f"1. Training three small models on {args.data} at L={L}: a learned table of {L} rows, "
        "RoPE, ALiBi"
    )
    records = run_sweep(plan, out)
    run_dir = out / "runs" / "learned"
    model, tokenizer = load_run(run_dir)

    title = "2. A sample from the learned-table model (temperature 0.8, top-k 40)"
    _show(shown, title, _sample(model, tokenizer))

    title = "3. Does word order matter? (cosine similarity of pooled representations)"
    _show(shown, title, _probe(model, tokenizer))

    title = f"4. Past the end of the table ({L} positions)"
    try:
        model(torch.zeros(1, L + 16, dtype=torch.long))
        message = f"model(input of {L + 16} tokens) ran without an error"
    except PositionOutOfRangeError as e:
        message = f"model(input of {L + 16} tokens) raises PositionOutOfRangeError:\n  {e}"
    _show(shown, title, message)
    heatmap = plot_cosine_heatmap(
        model.position_table().detach(),
        out / "position_cosine.png",
        title=f"Learned table, trained at L={L}: cosine similarity",
    )
    shown.image("The learned table: cosine similarity between positions", heatmap)
    report = sweep_report(plan, out, records, title="posemb demo: past the end of the table")
    report.blocks[:0] = shown.blocks
    md, page = report.write(out)
    print((out / "results.md").read_text())
    print(" ".join(describe(records)))

    _section("5. Files")
    print(
        f"learned-table run (checkpoint, metrics.jsonl): {run_dir}\nposition table plot: "
        f"{heatmap}\n"
        f"results: {out / 'results.json'}\nreport (everything above, plots, provenance): {page}\n"
        f"total time {time.perf_counter() - t0:.0f}s"
    )
    return 0


def _fresh_out(out: Path) -> Path:
    """``out`` emptied (only when a previous demo wrote it) and marked as the demo's."""
    if out.exists():
        if not (out / MARKER).exists():
            raise FileExistsError(
                f"{str(out)!r} exists and is not a posemb demo output; choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by `posemb demo`; safe to delete\n")
    return out


def _show(report, title: str, body: str) -> None:
    """Print a section and keep it for the report, as shown."""
    _section(title)
    print(body, flush=True)
    report.text(title, body, pre=True)


def _sample(model, tokenizer) -> str:
    from ..model.generation import generate_text

    return generate_text(model, tokenizer, "def ", 120, temperature=0.8, top_k=40, seed=0)


def _probe(model, tokenizer) -> str:
    from ..eval.probe import probe_order

    probe = probe_order(model, tokenizer, "The cat chased the dog", "The dog chased the cat")
    return (
        f"with the learned table: {probe.final_with:.4f}   with positions removed: "
        f"{probe.final_without:.4f}\n{probe.reading()}"
    )
