"""Length generalisation: loss at evaluation lengths past the training length.

Two ways to score a long text with a model:

- ``nonoverlap``: cut the tokens into windows of exactly ``eval_len`` and score each window
  in one pass. Past a learned table's end this needs an extension method or an overflow
  policy; otherwise it raises :class:`~posemb.PositionOutOfRangeError` (the clear message).
- ``sliding``: score a sequence of ``eval_len`` tokens so that every token (but the first)
  is predicted once, with up to ``window`` (default: the table size) tokens of context:
  windows start every ``stride`` tokens and only the tokens not yet scored count
  (the standard strided-perplexity evaluation).

Every function returns per-position mean losses as well as the mean, so the cliff past
the trained length is visible. Losses are mean nats per scored token.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data import iter_windows
from ..model import Transformer


def check_eval_len(eval_len: int) -> None:
    """An evaluation length scores tokens 1 .. L-1 from their prefix: it needs L >= 2."""
    if isinstance(eval_len, bool) or not isinstance(eval_len, int) or eval_len < 2:
        raise ValueError(
            f"evaluation length {eval_len!r} scores no token: a length needs at least 2 tokens "
            "(one of context, one predicted); use lengths >= 2"
        )


@dataclass
class LengthResult:
    eval_len: int
    mode: str
    loss: float | None  # mean nats per scored token
    tokens: int  # tokens scored
    per_position: list[float] = field(default_factory=list)  # mean loss at each target position
    accuracy: float | None = None  # synthetic tasks: exact match
    error: str | None = None

    @property
    def perplexity(self) -> float | None:
        return None if self.loss is None else math.exp(min(self.loss, 700))

    @property
    def bits_per_token(self) -> float | None:
        return None if self.loss is None else self.loss / math.log(2)


def adapt_model(
    model: Transformer,
    new_max: int | None = None,
    method: str | None = None,
    overflow: str | None = None,
) -> Transformer:
    """A copy of ``model`` whose learned table is extended to ``new_max`` with ``method``,
    or whose overflow policy is ``overflow``. Schemes without a table are returned as is.
    """
    scheme = model.scheme(0)
    if method is None and overflow is None:
        return model
    if not hasattr(scheme, "extend"):
        return model  # sinusoidal/rope/alibi/...: nothing to extend
    new = copy.deepcopy(model)
    if method is not None and new_max is not None and new_max > scheme.max_positions:
        new.pos = new.pos.extend(new_max, method)
        new.config = new.config.replace(max_positions=new_max)
    if overflow is not None:
        new.pos.overflow = overflow
    return new


@torch.no_grad()
def token_losses(model: Transformer, ids: torch.Tensor) -> torch.Tensor:
    """ids ``[b, t]`` -> per-token losses ``[b, t-1]`` (loss of predicting token i+1)."""
    logits = model(ids).logits[:, :-1].float()  # [b, t-1, V]
    return F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # [b, t-1]


def eval_nonoverlap(
    model: Transformer,
    tokens: np.ndarray,
    eval_len: int,
    *,
    max_windows: int = 64,
    batch_size: int = 8,
) -> LengthResult:
    """Score up to ``max_windows`` disjoint windows of ``eval_len`` tokens."""
    check_eval_len(eval_len)
    device = next(model.parameters()).device
    windows = list(_take(iter_windows(tokens, eval_len), max_windows))
    if not windows:
        raise ValueError(
            f"the evaluation text has {len(tokens)} tokens, fewer than one window of {eval_len}"
        )
    sums = torch.zeros(eval_len - 1, dtype=torch.float64)
    count = 0
    for i in range(0, len(windows), batch_size):
        ids = torch.stack(
            [torch.as_tensor(np.asarray(w, dtype=np.int64)) for w in windows[i : i + batch_size]]
        )
        losses = token_losses(model, ids.to(device)).double().cpu()  # [b, t-1]
        sums += losses.sum(0)
        count += losses.shape[0]
    per_pos = (sums / count).tolist()
    return LengthResult(
        eval_len,
        "nonoverlap",
        float(sums.sum() / (count * (eval_len - 1))),
        count * (eval_len - 1),
        per_pos,
    )


def sliding_targets(seq_len: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """The (begin, end, first_scored) spans of a strided evaluation of ``seq_len`` tokens.

    Window ``[begin, end)`` is run through the model; targets ``first_scored .. end-1`` are
    scored (each predicted from everything in the window before it). Token 0 has no
    context and is never a target; every other token is a target exactly once.
    """
    if window < 2:
        raise ValueError(f"the sliding window needs at least 2 tokens, got {window}")
    if not 1 <= stride <= window - 1:
        raise ValueError(f"--stride must be between 1 and window-1 = {window - 1}, got {stride}")
    spans, scored_to, begin = [], 1, 0
    while scored_to < seq_len:
        end = min(begin + window, seq_len)
        spans.append((begin, end, scored_to))
        scored_to = end
        begin += stride
        if end == seq_len:
            break
        begin = max(begin, end - window + stride) if begin + window <= end else begin
    return spans


def eval_sliding(
    model: Transformer,
    tokens: np.ndarray,
    eval_len: int,
    *,
    window: int | None = None,
    stride: int | None = None,
    max_windows: int = 16,
) -> LengthResult:
    """Score sequences of ``eval_len`` tokens with a sliding window of ``window`` tokens."""
    check_eval_len(eval_len)
    device = next(model.parameters()).device
    window = window or model.position_limit or eval_len
    window = min(window, eval_len)
    stride = stride or max(1, window // 2)
    spans = (
        sliding_targets(eval_len, window, min(stride, window - 1))
        if window < eval_len
        else [(0, eval_len, 1)]
    )
    seqs = list(_take(iter_windows(tokens, eval_len), max_windows))
    if not seqs:
        raise ValueError(
            f"the evaluation text has {len(tokens)} tokens, fewer than one sequence of {eval_len}"
        )
    ids = torch.stack([torch.as_tensor(np.asarray(s, dtype=np.int64)) for s in seqs]).to(
        device
    )  # [n, L]
    per_target = torch.zeros(ids.shape[0], eval_len - 1, dtype=torch.float64)
    for begin, end, first in spans:
        losses = token_losses(model, ids[:, begin:end]).double().cpu()  # [n, end-begin-1]
        # losses[:, j] is the loss of token begin+j+1; keep targets first .. end-1
        per_target[:, first - 1 : end - 1] = losses[:, first - begin - 1 :]
    per_pos = per_target.mean(0).tolist()
    return LengthResult(eval_len, "sliding", float(per_target.mean()), per_target.numel(), per_pos)


@torch.no_grad()
def eval_task(
    model: Transformer, task, eval_len: int, *, n: int = 128, seed: int = 0, batch_size: int = 32
) -> LengthResult:
    """Loss on answer tokens and exact-match accuracy of a synthetic task at ``eval_len``."""
    from ..data import exact_match

    check_eval_len(eval_len)
    device = next(model.parameters()).device
    rng = np.random.default_rng([seed, eval_len])
    losses, right, total, scored = [], 0.0, 0, 0
    for i in range(0, n, batch_size):
        x, y = task.sample(min(batch_size, n - i), eval_len, rng)
        x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        out = model(x, labels=y)
        mask = y[:, 1:] != -100
        losses.append(float(out.loss) * int(mask.sum()))
        scored += int(mask.sum())
        pred = torch.full_like(y, -1)
        pred[:, 1:] = out.logits[:, :-1].argmax(-1)
        right += exact_match(pred.cpu().numpy(), y.cpu().numpy()) * x.shape[0]
        total += x.shape[0]
    return LengthResult(eval_len, "task", sum(losses) / scored, scored, [], accuracy=right / total)


def _take(it, n):
    for i, x in enumerate(it):
        if i >= n:
            return
        yield x
