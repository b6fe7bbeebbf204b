"""Who chased whom, the experiment: train a small bidirectional encoder on
``synthetic:order`` once with a learned table and once without positions (NoPE), with the
same data, seed and budget (what ``posemb demo`` and the tour do); each is then scored by
:func:`posemb.eval.order.score_order`, every question asked in both orders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runs.config import build_config
from ..train import train

TASK = "synthetic:order"
# What `posemb demo` trains, per model: about 10 s of one CPU core. At this budget (seed 0)
# the learned table answers nearly every question; NoPE cannot pass 50%.
ORDER_SETTINGS: dict[str, Any] = {
    "model.n_layer": 2,
    "model.n_head": 2,
    "model.d_model": 64,
    "model.max_positions": 32,
    "model.causal": False,
    "data.source": TASK,
    "train.seq_len": 32,
    "train.batch_size": 32,
    "train.max_steps": 400,
    "train.lr": 3e-3,
    "train.warmup_steps": 30,
    "train.eval_every": 400,
    "train.checkpoint_every": 400,
    "train.eval_batches": 4,
    "train.seed": 0,
}


def order_config(scheme: str, overrides: dict[str, Any] | None = None):
    """The run settings of the order encoder with positions ``scheme`` (``ORDER_SETTINGS``
    with ``overrides``)."""
    return build_config(None, {**ORDER_SETTINGS, "model.position": scheme, **(overrides or {})})


def train_order_models(
    out: Path,
    schemes: tuple[str, ...] = ("learned", "nope"),
    overrides: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Train one order encoder per scheme into ``out/order-SCHEME``; their run folders."""
    runs = {}
    for scheme in schemes:
        runs[scheme] = Path(out) / f"order-{scheme}"
        train(order_config(scheme, overrides), runs[scheme])
    return runs
