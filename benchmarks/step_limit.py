"""How fast can posemb's CPU step get beside nanoGPT's? The limit, measured on this machine.

    python benchmarks/step_limit.py --nanogpt ~/src/nanoGPT
    ATEN_CPU_CAPABILITY=avx2 python benchmarks/step_limit.py --nanogpt ~/src/nanoGPT
    python benchmarks/step_limit.py --nanogpt ~/src/nanoGPT --compile   # also compiled

One process, one thread, nanoGPT's CPU recipe shape (4 layers, 4 heads, 128 wide, T=64,
batch 12, vocabulary 65, exact GELU, no biases): nanoGPT's own ``GPT`` (its ``model.py``
from the checkout you give, with its own ``configure_optimizers``) and posemb's
``Transformer`` (with the optimiser ``posemb train`` builds) take training steps in turn on
the same batches, ``--rounds`` rounds of ``--steps`` steps each after a warm-up; the median
step of each is compared. Then ``torch.profiler`` records ``--steps`` steps of each and
sums the kernels both call with the same shapes:

- the matrix multiplies (``aten::mm``/``addmm``/``bmm``) and the fused CPU attention
  (flash attention, forward and backward): nothing on posemb's side removes them;
- the exact GELU (forward and backward), which both compute with the same kernel in eager
  mode (compiling fuses it).

The **limit** is nanoGPT's step over posemb's time in the shared multiplies and attention:
the ratio posemb would reach if everything else in its step took no time. Printed with the
ratio measured eagerly (and compiled, with ``--compile``) and the share of the way to the
limit. Results go to ``benchmarks/results/step-limit-TIME/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from nanogpt_side_by_side import BATCH, BLOCK, REPO, machine

sys.path.insert(0, str(REPO / "src"))
from posemb import ModelConfig, Transformer  # noqa: E402
from posemb.model.optim import build_optimizer  # noqa: E402

VOCAB = 65  # shakespeare_char's characters
MATMUL = ("aten::mm", "aten::addmm", "aten::bmm")
ATTENTION = "_scaled_dot_product_flash_attention"  # forward and backward kernels
GELU = ("aten::gelu", "aten::gelu_backward")


def nanogpt_model(checkout: Path):
    """nanoGPT's GPT at the recipe's shape and its own optimiser (lr 1e-3, beta2 0.99)."""
    sys.path.insert(0, str(checkout))
    from model import GPT, GPTConfig  # nanoGPT's model.py (benchmark code, not posemb)

    cfg = GPTConfig(BLOCK, VOCAB, 4, 4, 128, dropout=0.0, bias=False)
    model = GPT(cfg)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")

    def step(x, y):
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def posemb_model(compiled: bool):
    """posemb's Transformer at the same shape, with the optimiser ``posemb train`` builds."""
    cfg = ModelConfig(
        vocab_size=VOCAB, n_layer=4, n_head=4, d_model=128, max_positions=BLOCK,
        dropout=0.0, activation="gelu", bias=False,
    )  # fmt: skip
    model = Transformer(cfg)
    opt = build_optimizer(model, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, decay_positions=True)
    net = model
    if compiled:
        from posemb.model.compile_check import compile_model

        net = compile_model(model)

    def step(x, y):
        net(x, targets=y).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        w = torch.randint(0, VOCAB, (BATCH, BLOCK + 1), generator=g)
        out.append((w[:, :-1].contiguous(), w[:, 1:].contiguous()))  # as nanoGPT's get_batch
    return out


def timed(step, data) -> list[float]:
    times = []
    for x, y in data:
        t = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - t)
    return times


def profiled(step, data) -> dict[str, float]:
    """Milliseconds a step in the shared kernels (self CPU time), and the whole step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for x, y in data:
            step(x, y)
    rows = prof.key_averages()
    per = 1e-3 / len(data)  # microseconds over the steps -> ms a step

    def total(match) -> float:
        return sum(r.self_cpu_time_total for r in rows if match(r.key)) * per

    return {
        "matmul_ms": total(lambda k: k in MATMUL),
        "attention_ms": total(lambda k: ATTENTION in k),
        "gelu_ms": total(lambda k: k in GELU),
        "profiled_step_ms": total(lambda k: True),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nanogpt", required=True, help="a nanoGPT checkout (its model.py)")
    p.add_argument("--rounds", type=int, default=10, help="timed rounds (default 10)")
    p.add_argument("--steps", type=int, default=20, help="steps per round and side (default 20)")
    p.add_argument("--compile", action="store_true", help="also time posemb compiled")
    p.add_argument("--out", help="results folder (default benchmarks/results/step-limit-TIME)")
    args = p.parse_args(argv)
    checkout = Path(args.nanogpt).expanduser()
    if not (checkout / "model.py").is_file():
        p.error(f"no model.py in {checkout}: give --nanogpt the path of a nanoGPT checkout")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sides = {"nanoGPT": nanogpt_model(checkout), "posemb": posemb_model(False)}
    if args.compile:
        sides["posemb compiled"] = posemb_model(True)
    data = batches(args.steps)
    for step in sides.values():
        timed(step, data[:5])  # warm-up (and compilation)
    times = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, step in sides.items():
            times[name] += timed(step, data)
    median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    prof = {name: profiled(sides[name], data) for name in ("nanoGPT", "posemb")}
    shared = prof["posemb"]["matmul_ms"] + prof["posemb"]["attention_ms"]
    limit = median["nanoGPT"] / shared
    report = {
        "machine": machine(),
        "median_step_ms": median,
        "profile_ms_per_step": prof,
        "limit": limit,
        "limit_with_gelu": median["nanoGPT"] / (shared + prof["posemb"]["gelu_ms"]),
    }
    lines = [
        "median step: " + ", ".join(f"{k} {v:.1f} ms" for k, v in median.items()),
        f"posemb's step, profiled: matrix multiplies {prof['posemb']['matmul_ms']:.1f} ms, "
        f"attention {prof['posemb']['attention_ms']:.1f} ms, GELU {prof['posemb']['gelu_ms']:.1f}"
        f" ms of {prof['posemb']['profiled_step_ms']:.1f} ms (nanoGPT's: "
        f"{prof['nanoGPT']['matmul_ms']:.1f}, {prof['nanoGPT']['attention_ms']:.1f}, "
        f"{prof['nanoGPT']['gelu_ms']:.1f} of {prof['nanoGPT']['profiled_step_ms']:.1f} ms)",
        f"limit (nanoGPT's step / posemb's multiplies and attention): {limit:.2f}x; "
        f"with the GELU kept: {report['limit_with_gelu']:.2f}x",
    ]
    for name in sides:
        if name != "nanoGPT":
            ratio = median["nanoGPT"] / median[name]
            report[f"ratio {name}"] = ratio
            lines.append(
                f"{name}: {ratio:.2f}x nanoGPT, {(ratio - 1) / (limit - 1):.0%} of the way to "
                "the limit"
            )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or REPO / "benchmarks" / "results" / f"step-limit-{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    report["lines"] = lines
    (out / "results.json").write_text(json.dumps(report, indent=1))
    print("\n".join(lines))
    print(f"results: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
