"""A learned 2-D table past its grid, measured on a CPU: docs/RESULTS.md ("Vision").

    pip install scikit-learn               # its 8 x 8 digits ship inside the package
    python benchmarks/vit_digits.py --out runs/vit-digits      # about 5 minutes, 2 cores

A small ViT (transformers' ``ViTForImageClassification``: 2 layers, 4 heads, 64 wide,
1 channel, 4-px patches) is trained on scikit-learn's handwritten digits (1,797 images of
8 x 8 pixels, 1,297 to train, 500 held out, split with a fixed seed) upsampled to 16 x 16:
a grid of 4 x 4 patches. It is then asked the same held-out digits at 32 x 32 pixels, a grid
of 8 x 8 patches the table never had:

- with a **learned table**, grown by each of posemb's grid methods (``bicubic``: what
  transformers' ``interpolate_pos_encoding`` computes; ``bilinear``; ``tile``; ``pad-random``),
  as it is and after a short fine-tune at 32 px (``--finetune-steps``);
- beside a **fixed 2-D sinusoidal** table (MAE's, frozen: rebuilt for the 8 x 8 grid, i.e.
  patches 0..7 of each side, or resampled bicubic, i.e. the 4 x 4 grid's coordinates
  stretched) and **no positions** (a zero table), trained the same way.

Each configuration is trained with ``--seeds`` seeds; the table is the mean accuracy ± its
standard error over seeds (and, at 16 px, the training resolution, for reference).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from posemb.positional.grid import extend_grid, sincos_grid

TRAIN_PX, TEST_PX, PATCH = 16, 32, 4
METHODS = ("bicubic", "bilinear", "tile", "pad-random")


def digits(seed: int = 0):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # [n, 1, 8, 8] in 0..1
    y = torch.tensor(d.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    test, train = order[:500], order[500:]
    return (x[train], y[train]), (x[test], y[test])


def at(x: torch.Tensor, px: int) -> torch.Tensor:
    """The 8 x 8 digits at ``px`` x ``px`` pixels (bilinear upsampling)."""
    return F.interpolate(x, size=(px, px), mode="bilinear", align_corners=False)


def model(kind: str, seed: int):
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.ViTConfig(
        image_size=TRAIN_PX, patch_size=PATCH, num_channels=1, hidden_size=64,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, num_labels=10,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    m = transformers.ViTForImageClassification(cfg)
    set_positions(m, kind, TRAIN_PX // PATCH)
    return m


def set_positions(m, kind: str, side: int) -> None:
    """``sincos``: a fixed 2-D sinusoidal table; ``none``: a zero table; both frozen."""
    pos = m.vit.embeddings.position_embeddings  # [1, 1 + side*side, d]
    if kind == "learned":
        return
    d = pos.shape[-1]
    cells = sincos_grid((side, side), d) if kind == "sincos" else torch.zeros(side**2, d)
    table = torch.cat([torch.zeros(1, d), cells])[None]
    m.vit.embeddings.position_embeddings = torch.nn.Parameter(table, requires_grad=False)
    m.config.image_size = side * PATCH


def regrid(m, kind: str, method: str | None, seed: int) -> None:
    """The model at TEST_PX: its table on the 8 x 8 grid, resampled by ``method``, or (no
    method) a fixed table rebuilt for it (the sinusoid at patches 0..7 of each side)."""
    side = TEST_PX // PATCH
    if method is None:
        set_positions(m, kind, side)
    else:
        param = m.vit.embeddings.position_embeddings
        old = TRAIN_PX // PATCH
        g = torch.Generator().manual_seed(seed)
        new = extend_grid(param.detach()[0], (old, old), (side, side), method, prefix=1,
                          generator=g)  # fmt: skip
        m.vit.embeddings.position_embeddings = torch.nn.Parameter(
            new[None], requires_grad=param.requires_grad
        )
    m.config.image_size = TEST_PX  # as a folder written by posemb extend --image-size says
    for module in (m.vit.embeddings, m.vit.embeddings.patch_embeddings):
        if isinstance(getattr(module, "image_size", None), (tuple, list)):
            module.image_size = (TEST_PX, TEST_PX)
    m.vit.embeddings.patch_embeddings.num_patches = side * side


def train(m, x, y, steps: int, lr: float, seed: int, batch: int = 64) -> None:
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    m.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + np.cos(np.pi * step / steps))
        idx = torch.randint(0, len(x), (batch,), generator=g)
        loss = m(pixel_values=x[idx], labels=y[idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def accuracy(m, x, y) -> float:
    m.eval()
    return float((m(pixel_values=x).logits.argmax(-1) == y).float().mean())


def run(args) -> dict:
    import copy

    (xtr, ytr), (xte, yte) = digits()
    small, big = (at(xtr, TRAIN_PX), ytr), (at(xtr, TEST_PX), ytr)
    test_small, test_big = at(xte, TRAIN_PX), at(xte, TEST_PX)
    results: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    for seed in range(1, args.seeds + 1):
        for kind in ("learned", "sincos", "none"):
            base = model(kind, seed)
            train(base, *small, args.steps, args.lr, seed)
            add(f"{kind} | 16 px (trained)", accuracy(base, test_small, yte))
            for method in {"learned": METHODS, "sincos": (None, "bicubic"), "none": (None,)}[kind]:
                label = f"{kind}{'' if method is None else ', ' + method}"
                m = copy.deepcopy(base)
                regrid(m, kind, method, seed)
                add(f"{label} | 32 px", accuracy(m, test_big, yte))
                train(m, *big, args.finetune_steps, args.lr / 3, seed + 1000)
                add(f"{label} | 32 px, fine-tuned", accuracy(m, test_big, yte))
        print(f"seed {seed} done", flush=True)
    return results


def table(results: dict[str, list[float]]) -> str:
    rows = ["| model | test at | accuracy (mean ± se over seeds) | seeds |", "|---|---|---:|---:|"]
    for name, values in results.items():
        model_name, where = name.split(" | ")
        mean = statistics.mean(values)
        se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
        rows.append(
            f"| {model_name} | {where} | {100 * mean:.1f}% ± {100 * se:.1f} | {len(values)} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=600, help="training steps at 16 px")
    p.add_argument("--finetune-steps", type=int, default=100, help="fine-tuning steps at 32 px")
    p.add_argument("--lr", type=float, default=2e-3)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = run(args)
    text = table(results)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "results": results}))
    (out / "results.md").write_text(text + "\n")
    print(text)
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
