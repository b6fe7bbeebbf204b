"""Which extension method for this Hugging Face model? Every method x fine-tuning budget,
scored past the folder's old end (``posemb sweep --hf HF_DIR``): the Longformer table
(Beltagy et al. 2020: copied rows against random ones, before and after training), for the
user's own model and text, with error bars.

For each extension method the folder's tables are grown to ``to`` positions (default 4x
the ``N`` it serves) and the model is scored at ``N``, ``2N``, ``4N`` as it is (budget 0),
then after fine-tuning at ``to`` on each budget of training tokens (``posemb train --init
HF_DIR --extend METHOD``: the model's own objective, posemb's trainer). The control is the
folder itself read through a sliding window of its ``N`` positions. Every model scores the
same text (seeded spans from across the validation split; an encoder: the same masked
offsets), so any two records are a paired comparison. Interrupted sweeps resume: finished
fine-tunes are reused, an interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..eval.reading import pm
from ..eval.runner import (
    evaluate_run,
    load_eval_text,
    model_provenance,
    record_provenance,
    write_results,
)
from ..eval.tables import eval_report
from ..eval.text import DEFAULT_SEED, drawn_tokens
from ..files import atomic_write_text, read_json
from ..interop.hf_model import open_for_scoring, open_hf
from ..positional.extend import EXTEND_METHODS
from ..report import markdown_table
from ..runs import step_reached
from ..train import train
from ..train.lineage import init_hf_config

DEFAULT_BUDGETS = (0,)  # tokens of fine-tuning: extension alone unless told


@dataclass
class HFSweepPlan:
    """One sweep of a Hugging Face folder.

    Attributes:
        source: the folder.
        to: positions every extended model serves (None: 4x the folder's).
        eval_lens: lengths scored (None: N, 2N, 4N).
        methods: extension methods.
        budgets: fine-tuning budgets in training tokens (0: extension alone).
        data: the text (training and evaluation).
        seed: the fine-tunes' seed (their fresh rows, data order and dropout).
        batch_size: fine-tuning sequences a step (of ``to`` tokens each).
        lr: fine-tuning peak learning rate.
    """

    source: str
    to: int | None = None
    eval_lens: list[int] | None = None
    methods: list[str] = field(default_factory=lambda: list(EXTEND_METHODS))
    budgets: list[int] = field(default_factory=lambda: list(DEFAULT_BUDGETS))
    data: str = "stdlib"
    seed: int = 1337
    eval_seed: int = DEFAULT_SEED
    eval_tokens: int | None = None
    batch_size: int = 8
    lr: float = 1e-4
    progress: bool = False

    def settings(self) -> dict[str, Any]:
        """What identifies the sweep (plan.json); a rerun with others is refused."""
        out = {k: v for k, v in asdict(self).items() if k not in ("progress",)}
        out["source"] = str(Path(self.source).resolve())
        return out

    def check_against(self, previous: dict[str, Any], where: Path) -> None:
        """Refuse to continue a sweep folder written with other settings: its fine-tunes
        would be reused for another model, length or recipe. Methods and budgets may be
        added (they add models); the rest must match."""
        new = self.settings()
        additive = ("methods", "budgets")
        differ = [k for k in new if k not in additive and previous.get(k) != new[k]]
        if differ:
            raise ValueError(
                f"{where} holds a sweep with other settings ({differ[0]}: "
                f"{previous.get(differ[0])!r}, not {new[differ[0]]!r}); its fine-tunes belong to "
                "those: use another --out to start anew"
            )


def _steps(budget: int, batch_size: int, length: int) -> int:
    return max(1, math.ceil(budget / (batch_size * length)))


def lengths_for(n: int, to: int, asked: list[int] | None) -> list[int]:
    """The lengths scored: ``asked``, else 1x, 2x, 4x the folder's ``n`` up to ``to`` (and
    ``to`` itself when it is not one of them).

    Raises:
        ValueError: ``to`` below ``n`` (a sweep grows tables), or an asked length past ``to``.
    """
    if to < n:
        raise ValueError(
            f"--to {to} is below the {n} positions the folder serves: a sweep grows its table "
            f"(choose --to {2 * n} or more)"
        )
    if asked:
        if max(asked) > to:
            raise ValueError(
                f"--eval-lens up to {max(asked)} reach past --to {to}: raise --to or lower the "
                "lengths"
            )
        return asked
    lens = [L for L in (n, 2 * n, 4 * n) if L <= to]
    return lens if to in lens else [*lens, to]


def _finetune(plan: HFSweepPlan, method: str, budget: int, to: int, run_dir: Path, say) -> int:
    """Fine-tune ``method``'s model on ``budget`` tokens into ``run_dir`` (or resume it);
    returns the tokens it trains on (whole steps: ``budget`` rounded up)."""
    steps = _steps(budget, plan.batch_size, to)
    tokens = steps * plan.batch_size * to
    settings = {
        "model.max_positions": to,
        "train.seq_len": to,
        "train.batch_size": plan.batch_size,
        "train.max_steps": steps,
        "train.lr": plan.lr,
        "train.min_lr": plan.lr / 10,
        "train.warmup_steps": max(1, steps // 10),
        "train.eval_every": steps,
        "train.checkpoint_every": max(1, min(steps, 100)),
        "train.seed": plan.seed,
        "train.progress": plan.progress,
        "data.source": plan.data,
    }
    done = step_reached(run_dir)
    if done is not None and done >= steps:
        say(f"{run_dir.name}: fine-tuned earlier")
    elif done is not None:
        say(f"{run_dir.name}: resuming at step {done}")
        train(None, run_dir, resume=True)
    else:
        say(
            f"{run_dir.name}: fine-tuning {steps} step{'s' if steps > 1 else ''} of "
            f"{plan.batch_size} x {to} tokens ({tokens:,} tokens)"
        )
        train(init_hf_config(Path(plan.source), method, settings), run_dir)
    return tokens


def run_hf_sweep(plan: HFSweepPlan, out: Path, say=print) -> list[dict]:
    """Score the folder through a sliding window, then every method x budget (module doc)."""
    base, tokenizer, cfg, mask_id = open_for_scoring(plan.source, plan.data)
    n = base.position_limit
    to = plan.to or 4 * n
    lens = lengths_for(n, to, plan.eval_lens)
    if (out / "plan.json").is_file():
        plan.check_against(read_json(out / "plan.json"), out)
    n_tokens = drawn_tokens(plan.eval_tokens, mask_id is not None)
    text = load_eval_text(cfg, tokenizer, plan.data, lens, n_tokens=n_tokens,
                          seed=plan.eval_seed)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)  # every check passed: the sweep may write
    atomic_write_text(out / "plan.json", json.dumps(plan.settings(), indent=1))
    if mask_id is not None:
        text = text.with_mask(mask_id)
    say(f"every model scores {text.summary()}")
    text_prov = text.provenance()
    kind = base.folder.model_type

    def score(model, run_dir, recipe, method, mode="nonoverlap"):
        prov = record_provenance(text_prov, model_provenance(run_dir, model, cfg))
        recs = evaluate_run(model, cfg, text, lens, mode=mode, recipe=recipe, provenance=prov,
                            scheme=kind)  # fmt: skip
        for r in recs:
            r["method"] = method
        return recs

    records = score(base, plan.source, "as is", "none", mode="sliding")
    for method in plan.methods:
        for budget in sorted(plan.budgets):
            if budget == 0:
                generator = torch.Generator().manual_seed(plan.seed)
                model = base.extend_positions(to, method, generator=generator)
                where, recipe = plan.source, "extended"
            else:
                where = out / "runs" / f"{method}-{budget}"
                tokens = _finetune(plan, method, budget, to, where, say)
                model, recipe = open_hf(where), f"ft {tokens:,} tokens"
            recs = score(model, where, recipe, method)
            say(f"{method}, {recipe}: " + ", ".join(
                f"@{r['eval_len']} {pm(r['loss'], r['loss_se'])}" for r in recs
                if r["loss"] is not None))  # fmt: skip
            records += recs
    return records


def hf_table(records: list[dict]) -> tuple[list[str], list[list[object]]]:
    """Rows: each method and recipe (and the sliding-window control); columns: the loss at
    every length and the paired change from the shortest."""
    lengths = sorted({r["eval_len"] for r in records})
    keyed: dict[tuple, dict[int, dict]] = {}
    for r in records:
        keyed.setdefault((r["method"], r["recipe"], r["mode"]), {})[r["eval_len"]] = r
    header = ["method", "training", "mode", *[f"loss @{L}" for L in lengths]]
    header.append(f"@{lengths[-1]} - @{lengths[0]}")
    rows = []
    for key, by_len in keyed.items():
        cells: list[object] = [
            pm(by_len[L]["loss"], by_len[L]["loss_se"])
            if L in by_len and by_len[L]["loss"] is not None
            else "n/a"
            for L in lengths
        ]
        change = by_len.get(lengths[-1], {}).get("change_from")
        delta = None
        if change:
            delta = pm(change["diff"], change["diff_se"], sign=True) + (
                " (tie)" if change["tie"] else ""
            )
        rows.append([*key, *cells, delta])
    return header, rows


def write_hf_sweep(plan: HFSweepPlan, out: Path, records: list[dict]) -> tuple[Path, Path]:
    """results.json/csv, hf.md (the method x training table) and the report."""
    write_results(out, records)
    header, rows = hf_table(records)
    table = markdown_table(header, rows)
    atomic_write_text(out / "hf.md", table + "\n")
    kind = records[0]["scheme"]
    budgets = ", ".join(f"{b:,}" for b in sorted(plan.budgets))
    intro = (
        f"The Hugging Face {kind} model of {plan.source}: its tables grown by each method and "
        f"scored as they are and after fine-tuning on {budgets} tokens, beside the folder "
        "itself through a sliding window; every model scores the same held-out text "
        "(paired). Loss: mean nats per token, ± its standard error over spans."
    )
    report = eval_report(out, records, f"posemb sweep --hf: {kind}", intro, [])
    report.table("Method x training: loss by length and the paired change", header, rows)
    return report.write(out)
