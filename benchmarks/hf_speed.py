"""posemb on a Hugging Face model beside the plain transformers ways, on the same model, the
same windows and the same batch: BENCHMARKS.md ("Hugging Face models").

    pip install accelerate                  # transformers' Trainer needs it (not posemb)
    python benchmarks/hf_speed.py --out runs/hf-speed

Two models built here with a table of N = 128 positions (a BERT-shaped ``BertForMaskedLM``
and a GPT-2-shaped ``GPT2LMHeadModel``: 4 layers, 4 heads, 256 wide, a 4,096-id tokenizer
trained on the standard library), then:

- **evaluation at 4N = 512 tokens**: ``posemb eval FOLDER --lengths 512 --extend tile``
  (the table grown in memory, the folder's own objective: next tokens or a fixed mask)
  against the loop a user would write with transformers over the very same windows (the
  folder grown by ``posemb extend``, ``model(input_ids=...)`` under ``torch.no_grad``, the
  cross-entropy of the same targets), both in batches of the same size;
- **fine-tuning at 4N**: ``posemb train --init FOLDER --extend tile`` against transformers'
  ``Trainer`` on the same grown model, batch, length, learning rate and objective (BERT's
  masking through ``DataCollatorForLanguageModeling``; next tokens for GPT-2), the same
  number of steps, no evaluation or checkpoint inside the timed steps.

Each side runs in its own process, one after the other, ``--repeats`` times alternating
which goes first: the figures are the medians of the steady-state time (the timed loop
only: the median of 3 evaluation passes over all windows after one warm-up pass, the median
training step after the first 3) and of the process's peak resident memory (``ru_maxrss``).
Results: ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import hf_folders
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
N, LONG, VOCAB = 128, 512, 4096
PASSES = 3  # timed evaluation passes over all windows (the median is reported)
SHAPES = {
    "bert": (
        "BertForMaskedLM",
        dict(num_hidden_layers=4, num_attention_heads=4, hidden_size=256, intermediate_size=1024,
             max_position_embeddings=N),
    ),
    "gpt2": (
        "GPT2LMHeadModel",
        dict(n_layer=4, n_head=4, n_embd=256, n_positions=N, bos_token_id=0, eos_token_id=0),
    ),
}  # fmt: skip


# -- the folders ----------------------------------------------------------------------------------
def build(kind: str, folder: Path) -> None:
    cls, fields = SHAPES[kind]
    hf_folders.random_folder(kind, folder, cls, fields, VOCAB, N)


def windows(folder: Path, n_windows: int) -> tuple[np.ndarray, object]:
    """The evaluation text posemb draws (seeded spans of LONG from across the validation
    split), as ``[w, LONG]`` windows, and the text itself (its mask, for an encoder)."""
    from posemb.eval.runner import load_eval_text
    from posemb.interop.hf_model import open_for_scoring

    _, tokenizer, cfg, mask_id = open_for_scoring(folder)
    text = load_eval_text(cfg, tokenizer, None, [LONG], n_spans=n_windows)
    if mask_id is not None:
        text = text.with_mask(mask_id)
    return text.windows(LONG), text


# -- the timed sides (each in its own process) ----------------------------------------------------
def posemb_eval(folder: Path, n_windows: int, batch: int) -> dict:
    from posemb.eval.length import eval_nonoverlap
    from posemb.interop.hf_model import open_hf

    _, text = windows(folder, n_windows)
    model = open_hf(folder).extend_positions(LONG, "tile")
    seconds = []
    for _ in range(PASSES + 1):  # the first pass warms up (kernels, allocator) and is not counted
        t0 = time.perf_counter()
        res = eval_nonoverlap(model, text, LONG, batch_size=batch)
        seconds.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(seconds[1:]), "loss": res.loss}


def plain_eval(folder: Path, grown: Path, n_windows: int, batch: int) -> dict:
    import transformers

    ids, text = windows(folder, n_windows)
    masked = text.masked is not None
    auto = transformers.AutoModelForMaskedLM if masked else transformers.AutoModelForCausalLM
    model = auto.from_pretrained(grown).eval()
    inputs = text.windows(LONG, inputs=True) if masked else ids
    which = text.window_targets(LONG) if masked else None
    seconds = []
    for _ in range(PASSES + 1):  # the first pass warms up, as posemb's
        t0 = time.perf_counter()
        loss = _plain_pass(model, inputs, ids, which, batch, masked)
        seconds.append(time.perf_counter() - t0)
    return {"seconds": statistics.median(seconds[1:]), "loss": loss}


def _plain_pass(model, inputs, ids, which, batch: int, masked: bool) -> float:
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ids), batch):
            x = torch.from_numpy(inputs[i : i + batch])
            logits = model(input_ids=x).logits.float()
            y = torch.from_numpy(ids[i : i + batch])
            if masked:
                keep = torch.from_numpy(which[i : i + batch])
                losses = F.cross_entropy(logits[keep], y[keep], reduction="sum")
                count += int(keep.sum())
            else:
                losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), y[:, 1:], reduction="sum")
                count += y[:, 1:].numel()
            total += float(losses)
    return total / count


def posemb_train(folder: Path, out: Path, steps: int, batch: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)  # a run of an earlier call
    cmd = [sys.executable, "-m", "posemb", "train", "--init", str(folder), "--extend", "tile",
           "--set", f"model.max_positions={LONG}", f"train.max_steps={steps}",
           f"train.batch_size={batch}", "train.lr=1e-4", "train.warmup_steps=1",
           f"train.eval_every={steps}", f"train.checkpoint_every={steps}", "train.log_every=1",
           "train.eval_batches=1", "train.progress=false", "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    elapsed = [r["elapsed_s"] for r in rows]
    steps_s = np.diff(elapsed)[3:]  # the median step after the first 3
    return {"step_seconds": float(np.median(steps_s)), "loss": rows[-1]["train_loss"]}


def trainer_train(folder: Path, grown: Path, out: Path, steps: int, batch: int) -> dict:
    import transformers

    ids, text = windows(folder, steps * batch // 4 + 8)
    masked = text.masked is not None
    auto = transformers.AutoModelForMaskedLM if masked else transformers.AutoModelForCausalLM
    model = auto.from_pretrained(grown)
    tokenizer = transformers.AutoTokenizer.from_pretrained(grown)
    rows = [torch.from_numpy(w) for w in np.resize(ids, (steps * batch, LONG))]
    if masked:  # BERT's recipe: 15% chosen, 80/10/10
        rows = [{"input_ids": w} for w in rows]
        collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm=True)
    else:  # next tokens: the model shifts the labels
        rows = [{"input_ids": w, "labels": w} for w in rows]
        collator = transformers.default_data_collator
    times: list[float] = []

    class Clock(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter())

    args = transformers.TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, max_steps=steps,
        learning_rate=1e-4, warmup_steps=1, logging_strategy="no", save_strategy="no",
        report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=rows, data_collator=collator, callbacks=[Clock()]
    )
    result = trainer.train()
    return {"step_seconds": float(np.median(np.diff(times)[3:])), "loss": result.training_loss}


# -- the driver ----------------------------------------------------------------------------------
def child(argv: list[str]) -> None:
    """One timed side: print its figures and this process's peak memory as JSON."""
    name, *rest = argv
    fn = {"posemb-eval": posemb_eval, "plain-eval": plain_eval, "posemb-train": posemb_train,
          "trainer-train": trainer_train}[name]  # fmt: skip
    args = [Path(a) if "/" in a else int(a) for a in rest]
    out = fn(*args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({**out, "peak_mib": max(peak, kids)}))


def side(*args: object) -> dict:
    cmd = [sys.executable, __file__, "--child", *map(str, args)]
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", help="where the models and results go (required)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--windows", type=int, default=48, help="evaluation windows of 512")
    p.add_argument("--steps", type=int, default=20, help="fine-tuning steps")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--child", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    if not args.out:
        p.error("--out DIR is required")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    report = {"machine": {"cpu": platform.processor() or platform.machine(),
                          "torch": torch.__version__, "python": platform.python_version(),
                          "date": time.strftime("%Y-%m-%d %H:%M")}, "models": {}}  # fmt: skip
    for kind in SHAPES:
        folder, grown = out / kind, out / f"{kind}-{LONG}"
        if not folder.exists():
            build(kind, folder)
            subprocess.run([sys.executable, "-m", "posemb", "extend", str(folder), str(grown),
                            "--to", str(LONG), "--method", "tile"], check=True)  # fmt: skip
        pairs = []
        for rep in range(args.repeats):
            runs = {
                "posemb eval": ("posemb-eval", folder, args.windows, args.batch),
                "transformers loop": ("plain-eval", folder, grown, args.windows, args.batch),
                "posemb train": (
                    "posemb-train", folder, out / f"{kind}-ft-{rep}", args.steps, args.batch
                ),
                "transformers Trainer": (
                    "trainer-train", folder, grown, out / f"{kind}-trainer-{rep}", args.steps,
                    args.batch,
                ),
            }  # fmt: skip
            order = list(runs) if rep % 2 == 0 else list(runs)[::-1]
            pairs.append({name: side(*runs[name]) for name in order})
            print(kind, rep, json.dumps(pairs[-1]), flush=True)
        med = {
            name: {k: statistics.median(p[name][k] for p in pairs) for k in pairs[0][name]}
            for name in pairs[0]
        }
        report["models"][kind] = {"pairs": pairs, "median": med}
        e, f = med["posemb eval"], med["transformers loop"]
        t, h = med["posemb train"], med["transformers Trainer"]
        eval_ratio = f["seconds"] / e["seconds"]
        train_ratio = h["step_seconds"] / t["step_seconds"]
        print(
            f"{kind}: eval at {LONG} posemb {e['seconds']:.2f} s ({e['peak_mib']:.0f} MiB) vs "
            f"transformers loop {f['seconds']:.2f} s ({f['peak_mib']:.0f} MiB): "
            f"{eval_ratio:.2f}x; fine-tuning step posemb {t['step_seconds']:.3f} s "
            f"({t['peak_mib']:.0f} MiB) vs Trainer {h['step_seconds']:.3f} s "
            f"({h['peak_mib']:.0f} MiB): {train_ratio:.2f}x",
            flush=True,
        )
    (out / "results.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
