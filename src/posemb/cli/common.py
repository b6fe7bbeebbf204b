"""Helpers shared by subcommands."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def int_list(text: str) -> list[int]:
    """``"128,256,512"`` -> ``[128, 256, 512]``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 128,256, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 128,256, got {text!r}")
    return values


def length_list(text: str) -> list[int]:
    """Evaluation lengths: ``int_list`` with every length >= 2 (one context token, one target)."""
    values = int_list(text)
    if any(v < 2 for v in values):
        raise argparse.ArgumentTypeError(
            f"evaluation lengths need at least 2 tokens (one of context, one predicted), got {text!r}"
        )
    return values


def existing_run(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(
            f"run directory {text!r} does not exist (train one with `posemb train --out DIR`)"
        )
    return path


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
