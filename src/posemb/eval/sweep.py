"""Sweep: one model per positional scheme, same data, budget, seed and size, trained at
length L and evaluated at L, 2L, 4L, 8L (learned tables: with every extension method and
the sliding window). Interrupted sweeps resume: finished models are skipped, a model
interrupted mid-training continues from its checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import atomic_write_text
from ..positional.extend import EXTEND_METHODS
from ..positional.names import unknown
from ..train import build_config, load_run, train
from ..train.checkpoint import read_trainer_state
from .runner import (
    describe,
    eval_tokens,
    evaluate_run,
    results_table,
    write_eval_report,
    write_results,
)

# name -> (scheme, training position recipe)
VARIANTS: dict[str, tuple[str, str]] = {
    "learned": ("learned", "start"),
    "learned+random": ("learned", "random"),
    "sinusoidal": ("sinusoidal", "start"),
    "rope": ("rope", "start"),
    "alibi": ("alibi", "start"),
    "t5": ("t5", "start"),
    "shaw": ("shaw", "start"),
    "nope": ("nope", "start"),
}

BUDGETS: dict[str, dict[str, Any]] = {
    # well under a minute per model on a 2-core CPU
    "quick": {
        "preset": "tiny",
        "train_len": 64,
        "windows": 8,
        "settings": {
            "model.n_layer": 2,
            "model.n_head": 4,
            "model.d_model": 128,
            "train.batch_size": 16,
            "train.max_steps": 600,
            "train.lr": 3e-3,
            "train.warmup_steps": 50,
            "train.eval_every": 600,
            "train.checkpoint_every": 300,
            "train.eval_batches": 4,
        },
    },
    # one GPU: ~6 layers x 384 wide (nanoGPT's baby GPT), minutes per model
    "full": {
        "preset": "tiny",
        "train_len": 256,
        "windows": 32,
        "settings": {
            "model.n_layer": 6,
            "model.n_head": 6,
            "model.d_model": 384,
            "train.batch_size": 64,
            "train.max_steps": 3000,
            "train.lr": 1e-3,
            "train.warmup_steps": 100,
            "train.eval_every": 500,
            "train.checkpoint_every": 500,
            "train.eval_batches": 20,
        },
    },
}


@dataclass
class SweepPlan:
    variants: list[str]
    train_len: int
    eval_lens: list[int]
    budget: str
    data: str
    seed: int = 1337
    progress: bool = False  # progress bars while training


def parse_variants(names: list[str] | None) -> list[str]:
    if not names:
        return list(VARIANTS)
    out = []
    for n in names:
        for part in n.split(","):
            part = part.strip()
            if part not in VARIANTS:
                raise unknown("sweep scheme", part, VARIANTS)
            out.append(part)
    return out


def variant_config(plan: SweepPlan, name: str):
    scheme, recipe = VARIANTS[name]
    budget = BUDGETS[plan.budget]
    L = plan.train_len
    settings = dict(budget["settings"])
    settings.update(
        {
            "model.position": scheme,
            "train.positions": recipe,
            "train.seq_len": L,
            "data.source": plan.data,
            "train.seed": plan.seed,
            "train.progress": plan.progress,
            # a learned table ends at the training length; randomised positions need rows up to 8L
            "model.max_positions": max(plan.eval_lens) if recipe == "random" else L,
        }
    )
    return build_config(budget["preset"], settings)


def _finished(run_dir: Path, max_steps: int) -> bool:
    try:
        return int(read_trainer_state(run_dir)["step"]) >= max_steps
    except (ValueError, KeyError, OSError):
        return False


def run_sweep(plan: SweepPlan, out: Path, log=print) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "plan.json",
        json.dumps({k: v for k, v in plan.__dict__.items() if k != "progress"}, indent=1),
    )
    records: list[dict] = []
    for k, name in enumerate(plan.variants, 1):
        cfg = variant_config(plan, name)
        run_dir = out / "runs" / name
        done_file = run_dir / "sweep_eval.json"
        if done_file.exists():
            log(f"[{k}/{len(plan.variants)}] {name}: finished earlier, skipped")
            records += json.loads(done_file.read_text())
            continue
        if _finished(run_dir, cfg.train.max_steps):
            log(f"[{k}/{len(plan.variants)}] {name}: trained earlier, evaluating")
        elif (run_dir / "trainer_state.json").exists():
            log(f"[{k}/{len(plan.variants)}] {name}: resuming training")
            train(None, run_dir, resume=True)
        else:
            log(
                f"[{k}/{len(plan.variants)}] {name}: training ({cfg.train.max_steps} steps at L={plan.train_len})"
            )
            if run_dir.exists():  # a start that never reached its first checkpoint
                import shutil

                shutil.rmtree(run_dir)
            train(cfg, run_dir)
        model, tokenizer = load_run(run_dir)
        data = eval_tokens(cfg, tokenizer, None)
        windows = BUDGETS[plan.budget]["windows"]
        recipe = name.split("+")[1] if "+" in name else "start"
        recs = []
        if model.position_limit is not None and max(plan.eval_lens) > model.position_limit:
            for method in EXTEND_METHODS:
                recs += evaluate_run(
                    model,
                    cfg,
                    data,
                    plan.eval_lens,
                    method=method,
                    max_windows=windows,
                    recipe=recipe,
                    byte_level=True,
                )
            recs += evaluate_run(
                model,
                cfg,
                data,
                plan.eval_lens,
                mode="sliding",
                max_windows=windows,
                recipe=recipe,
                byte_level=True,
            )
        else:
            recs += evaluate_run(
                model,
                cfg,
                data,
                plan.eval_lens,
                max_windows=windows,
                recipe=recipe,
                byte_level=True,
            )
        atomic_write_text(done_file, json.dumps(recs))
        best = min(
            (r for r in recs if r["loss"] is not None and r["eval_len"] == max(plan.eval_lens)),
            key=lambda r: r["loss"],
            default=None,
        )
        # the shortest length evaluated (the training length when the plan includes it)
        first = min(plan.eval_lens, key=lambda n: (n != plan.train_len, n))
        loss = next(
            (r["loss"] for r in recs if r["eval_len"] == first and r["loss"] is not None), None
        )
        log(
            f"    loss @{first}: "
            + (f"{loss:.3f}" if loss is not None else "n/a")
            + (
                f"   best @{max(plan.eval_lens)}: {best['loss']:.3f} ({best['method']}, {best['mode']})"
                if best
                else ""
            )
        )
        records += recs
    return records


def write_sweep_outputs(plan: SweepPlan, out: Path, records: list[dict]) -> tuple[Path, Path]:
    write_results(out, records)
    header, rows = results_table(records)
    from .report import markdown_table

    atomic_write_text(out / "results.md", markdown_table(header, rows) + "\n")
    intro = (
        f"{len(plan.variants)} models ({', '.join(plan.variants)}), budget {plan.budget}, same data "
        f"({plan.data}), seed and size, trained at L={plan.train_len} and evaluated at "
        f"{', '.join(map(str, plan.eval_lens))} tokens. Loss: mean nats per token on held-out text."
    )
    return write_eval_report(
        out,
        records,
        "posemb sweep: length generalisation by positional scheme",
        intro,
        describe(records),
    )
