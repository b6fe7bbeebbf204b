"""Training-step throughput: posemb against Hugging Face GPT2LMHeadModel of the same shape,
measured in the same process, reported as a ratio.

    python benchmarks/bench_throughput.py                       # CPU: the tiny preset's shape
    python benchmarks/bench_throughput.py --shape gpt2-124m     # GPU: GPT-2 124M, T=1024, batch 16
    python benchmarks/bench_throughput.py --interleave          # CPU: one step each in turn

Both models: the same layers, heads, width, vocabulary, sequence length and batch, the same
AdamW (fused on CUDA), bf16 autocast on CUDA, learned positions, tied embeddings, SDPA
attention (HF: attn_implementation="sdpa"). Warm-up steps are excluded; the median of the
timed repeats is reported. Optional --compile times torch.compile for both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from posemb import ModelConfig, Transformer  # noqa: E402

SHAPES = {
    # the `tiny` run preset's model: 2 layers, 4 heads, 128 wide, byte vocabulary, T=128, batch 16
    "tiny": dict(n_layer=2, n_head=4, d_model=128, vocab_size=256, seq_len=128, batch=16),
    # nanoGPT's CPU recipe for shakespeare_char (benchmarks/nanogpt_side_by_side.py)
    "shakespeare-cpu": dict(n_layer=4, n_head=4, d_model=128, vocab_size=65, seq_len=64, batch=12),
    # GPT-2 124M (nanoGPT's padded vocabulary): the GPU peers' shape in BENCHMARKS.md
    "gpt2-124m": dict(n_layer=12, n_head=12, d_model=768, vocab_size=50304, seq_len=1024, batch=16),
}


def build_posemb(s):
    cfg = ModelConfig.preset(
        "gpt2",
        n_layer=s["n_layer"],
        n_head=s["n_head"],
        d_model=s["d_model"],
        vocab_size=s["vocab_size"],
        max_positions=s["seq_len"],
    )
    return Transformer(cfg)


def build_hf(s):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        n_layer=s["n_layer"],
        n_head=s["n_head"],
        n_embd=s["d_model"],
        vocab_size=s["vocab_size"],
        n_positions=s["seq_len"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    cfg._attn_implementation = "sdpa"  # the default in recent transformers; explicit for older ones
    return GPT2LMHeadModel(cfg)


def time_steps(model, s, device, steps, warmup, compile_, bf16):
    model.to(device).train()
    fwd = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    ids = torch.randint(0, s["vocab_size"], (s["batch"], s["seq_len"]), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with amp:
            loss = fwd(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    med = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "ms_per_step": med * 1e3,
        "tokens_per_s": s["batch"] * s["seq_len"] / med,
        "peak_gib": peak,
    }


def make_step(model, s, fused: bool, compile_: bool):
    """One training step of ``model`` (forward, backward, AdamW) as a function of the ids."""
    model.train()
    fwd = model
    if compile_:
        from posemb.model.compile_check import compile_model

        fwd = compile_model(model)  # as posemb trains: static shapes, cpp_wrapper on the CPU
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused or None)

    def step(ids):
        loss = fwd(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


# CPU variants timed side by side (--interleave): (name, builder, fused AdamW, compiled)
VARIANTS = [
    ("hf_gpt2 (torch AdamW default)", build_hf, False, False),
    ("hf_gpt2 (fused AdamW)", build_hf, True, False),
    ("posemb eager (fused AdamW: posemb's default)", build_posemb, True, False),
    ("posemb compiled (train.compile=auto, long runs)", build_posemb, True, True),
]


# --findings: posemb alone, one change at a time (the CPU profile's findings)
FINDINGS = [
    ("posemb eager, torch AdamW default (before)", build_posemb, False, False),
    ("posemb eager, fused AdamW", build_posemb, True, False),
    ("posemb compiled, fused AdamW (after)", build_posemb, True, True),
]


def interleaved(s, steps: int, warmup: int, variants=VARIANTS) -> dict:
    """Every variant takes one step in turn, ``steps`` rounds: load on the machine falls on
    all alike. Per variant: median step time; per pair: median of per-round ratios."""
    from posemb.train.host import keep_freed_memory

    keep_freed_memory()  # as posemb's CPU training does (it serves every model in the process)
    runs = []
    for name, build, fused, compile_ in variants:
        torch.manual_seed(0)
        runs.append((name, make_step(build(s), s, fused, compile_)))
    ids = torch.randint(0, s["vocab_size"], (s["batch"], s["seq_len"]))
    times = {name: [] for name, _ in runs}
    for i in range(warmup + steps):
        for name, step in runs if i % 2 else runs[::-1]:
            t = time.perf_counter()
            step(ids)
            if i >= warmup:
                times[name].append(time.perf_counter() - t)
    tokens = s["batch"] * s["seq_len"]
    out = {n: {"tokens_per_s": tokens / statistics.median(ts)} for n, ts in times.items()}
    for n in times:
        for base in [v[0] for v in variants[: 1 if variants is FINDINGS else 2]]:
            r = [b / a for a, b in zip(times[n], times[base])]
            out[n][f"speed vs {base}"] = statistics.median(r)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--shape", choices=SHAPES, default=None, help="default: tiny on CPU, gpt2-124m on CUDA"
    )
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time torch.compile for both")
    p.add_argument("--out", default=None, help="write the JSON result here")
    p.add_argument(
        "--findings",
        action="store_true",
        help="with --interleave: posemb before/after each CPU change instead of HF GPT-2",
    )
    p.add_argument(
        "--interleave",
        action="store_true",
        help="CPU: posemb as it trains (eager and compiled) and HF GPT-2 (two AdamWs), one "
        "step each in turn, one thread; ratios per round",
    )
    args = p.parse_args(argv)
    if args.interleave:
        torch.set_num_threads(1)
        s = SHAPES[args.shape or "tiny"]
        variants = FINDINGS if args.findings else VARIANTS
        res = interleaved(s, args.steps or 60, max(args.warmup, 5), variants)
        res = {"shape": args.shape or "tiny", "torch": torch.__version__, "runs": res}
        res["loadavg"] = os.getloadavg()
        for name, r in res["runs"].items():
            ratios = ", ".join(f"{k} {v:.3f}x" for k, v in r.items() if k.startswith("speed"))
            print(f"{name:48s} {r['tokens_per_s']:>9,.0f} tok/s  {ratios}", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=1))
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = args.shape or ("gpt2-124m" if device.type == "cuda" else "tiny")
    s = SHAPES[shape]
    steps = args.steps or (20 if device.type == "cuda" else 10)
    bf16 = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    import transformers

    result = {
        "shape": shape,
        **s,
        "device": machine,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bf16_autocast": bf16,
        "runs": {},
    }
    modes = [False, True] if args.compile else [False]
    for compile_ in modes:
        tag = "compiled" if compile_ else "eager"
        for name, build in (("posemb", build_posemb), ("hf_gpt2", build_hf)):
            torch.manual_seed(0)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            r = time_steps(build(s), s, device, steps, args.warmup, compile_, bf16)
            result["runs"][f"{name}_{tag}"] = r
            print(
                f"{name:>8} {tag:>8}: {r['tokens_per_s']:>12,.0f} tok/s  {r['ms_per_step']:8.2f} "
                "ms/step" + (f"  {r['peak_gib']:.2f} GiB" if r["peak_gib"] else ""),
                flush=True,
            )
        ratio = (
            result["runs"][f"posemb_{tag}"]["tokens_per_s"]
            / result["runs"][f"hf_gpt2_{tag}"]["tokens_per_s"]
        )
        result[f"ratio_{tag}"] = ratio
        print(f"posemb / HF GPT-2 ({tag}): {ratio:.3f}x  on {machine}, torch {torch.__version__}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
