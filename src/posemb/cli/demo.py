"""The main job, on built-in data (the Python standard library's own source), CPU-friendly.

1. trains a small causal LM with a learned position table of 128 rows on 128-token
   sequences (progress bar);
2. prints a generated sample;
3. runs the order probe on "The cat chased the dog" / "The dog chased the cat";
4. shows what happens past the table: the clear error for position 128 + k, then loss at
   1x/2x/4x the training length with every extension method, clamp, and a sliding window;
5. writes the run (checkpoint, metrics), a plot of the learned table's cosine
   similarities, results.json and report.md / report.html.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

HELP = "the main job: train, generate, probe order, and go past the table (a few minutes on a CPU)"
EXAMPLE = "posemb demo --out runs/demo"
MARKER = "posemb-demo.txt"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output directory (default runs/demo)")
    p.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    p.add_argument("--data", default="stdlib", metavar="SRC", help="training text (default: stdlib)")


def _section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..analysis.plots import plot_cosine_heatmap
    from ..eval.probe import probe_order
    from ..eval.runner import describe, eval_tokens, evaluate_run, write_eval_report, write_results
    from ..positional.extend import EXTEND_METHODS
    from ..positional.learned import PositionOutOfRangeError
    from ..train import build_config, load_run, train
    from .generate import generate_text

    out = Path(args.out)
    if out.exists():
        if not (out / MARKER).exists():
            raise FileExistsError(f"{str(out)!r} exists and is not a posemb demo output; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by `posemb demo`; safe to delete\n")
    t0 = time.perf_counter()
    L = 128
    cfg = build_config("tiny", {
        "model.max_positions": L, "train.seq_len": L, "train.max_steps": args.steps,
        "train.eval_every": max(1, args.steps // 3), "train.checkpoint_every": max(1, args.steps // 3),
        "data.source": args.data,
    })
    run_dir = out / "run"

    _section(f"1. Training a {cfg.model.n_layer}-layer model with a learned table of {L} positions on {args.data}")
    result = train(cfg, run_dir)
    print(f"step {result.step}: train loss {result.train_loss:.3f}, validation loss {result.val_loss:.3f} "
          f"({result.tokens_per_s:,.0f} tokens/s)")
    model, tokenizer = load_run(run_dir)

    _section("2. A sample (temperature 0.8, top-k 40)")
    print(generate_text(model, tokenizer, "def ", 160, temperature=0.8, top_k=40, seed=0))

    _section("3. Does word order matter? (cosine similarity of pooled representations)")
    probe = probe_order(model, tokenizer, "The cat chased the dog", "The dog chased the cat")
    print(f"with the learned table: {probe.final_with:.4f}   with positions removed: {probe.final_without:.4f}")
    print(probe.reading())

    _section(f"4. Past the end of the table ({L} positions)")
    try:
        model(torch.zeros(1, L + 16, dtype=torch.long))
    except PositionOutOfRangeError as e:
        print(f"model(input of {L + 16} tokens) -> PositionOutOfRangeError:\n  {e}")
    lengths = [L, 2 * L, 4 * L]
    data = eval_tokens(cfg, tokenizer, None)
    records = []
    for method in EXTEND_METHODS:
        records += evaluate_run(model, cfg, data, lengths, method=method, max_windows=16, byte_level=True)
    records += evaluate_run(model, cfg, data, lengths, overflow="clamp", max_windows=16, byte_level=True)
    records += evaluate_run(model, cfg, data, lengths, mode="sliding", max_windows=8, byte_level=True)
    print(f"{'method':<14}" + "".join(f"{'loss @' + str(n):>12}" for n in lengths))
    rows: dict[str, dict[int, float]] = {}
    for r in records:
        key = r["method"] if r["mode"] != "sliding" else "sliding window"
        rows.setdefault(key, {})[r["eval_len"]] = r["loss"]
    for key, by_len in rows.items():
        print(f"{key:<14}" + "".join(f"{by_len.get(n, float('nan')):>12.3f}" for n in lengths))

    _section("5. Files")
    eval_dir = out / "past-the-table"
    write_results(eval_dir, records)
    reading = describe(records)
    md, page = write_eval_report(
        eval_dir, records, "posemb demo: past the end of a learned table",
        f"A {cfg.model.n_layer}-layer byte-level model with a learned table of {L} rows, trained for "
        f"{args.steps} steps on {L}-token sequences of {args.data}, evaluated at {', '.join(map(str, lengths))} "
        "tokens with each table extension method, clamping, and a sliding window.", reading)
    heatmap = plot_cosine_heatmap(model.pos.weight.detach(), out / "position_cosine.png",
                                  title=f"Learned table: cosine similarity of positions (trained at {L})")
    print(" ".join(reading))
    print(f"run (checkpoint, metrics.jsonl): {run_dir}\nposition table plot: {heatmap}\n"
          f"report: {page}\ntotal time {time.perf_counter() - t0:.0f}s")
    sys.stdout.flush()
    return 0
