"""Length generalisation: loss at evaluation lengths past the training length.

Two ways to score a text with a model at length ``L``:

- ``nonoverlap``: cut the text into windows of exactly ``L`` tokens and score each window
  in one pass. Past a learned table's end this needs an extension method or an overflow
  policy; otherwise it raises :class:`~posemb.PositionOutOfRangeError` (the clear message).
- ``sliding``: score sequences of ``L`` tokens so that every token (but the first) is
  predicted once, with up to ``window`` (default: the table size) tokens of context:
  windows start every ``stride`` tokens and only the tokens not yet scored count
  (the standard strided-perplexity evaluation).

The text is an :class:`~posemb.eval.text.EvalText`: seeded spans from across the split,
and the targets scored at every length, so both modes and every length score the same
tokens. Each result holds the mean loss (nats per scored token), its standard error over
spans, every span's mean (for paired comparisons) and the mean loss at each position of a
window (over all its targets, the cliff past the trained length).

Shapes: ``n`` spans, ``S`` span length, ``L`` evaluation length, ``w`` windows (``n * S // L``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..model import Transformer
from ..positional.checks import is_int
from .stats import mean_se
from .text import EvalText

Advance = Callable[[int], None]  # progress: called with the tokens just run through the model


def check_eval_len(eval_len: int) -> None:
    """An evaluation length scores tokens 1 .. L-1 from their prefix: it needs L >= 2."""
    if not is_int(eval_len) or eval_len < 2:
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
    loss_se: float | None = None  # standard error of ``loss`` over ``units``
    units: list[float] = field(default_factory=list)  # per span (text) or example (task) means
    unit: str = "spans"  # what ``units`` and the standard errors are over
    per_position_bins: dict = field(default_factory=dict)  # binned curve with standard errors
    accuracy_se: float | None = None

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
    """A copy of ``model`` whose table is extended to ``new_max`` with ``method`` (when it is
    shorter), and/or whose overflow policy is ``overflow``. A model without a table, or one
    with nothing to change, is returned as it is.
    """
    if model.position_table() is None:
        return model  # sinusoidal/rope/alibi/...: nothing to extend
    grow = method is not None and new_max is not None and new_max > model.config.max_positions
    if not grow and overflow is None:
        return model  # the table already covers new_max: nothing to change
    return model.extend_positions(
        new_max if grow else None, method or "interpolate", overflow=overflow
    )


@torch.inference_mode()
def token_losses(model: Transformer, ids: torch.Tensor) -> torch.Tensor:
    """ids ``[b, t]`` -> per-token losses ``[b, t-1]`` (loss of predicting token i+1).

    The cross-entropy runs over the logits as the model returns them (contiguous ``[b*t, V]``,
    the last position's against a dummy target, then dropped): slicing ``[:, :-1]`` first would
    copy the logits, a fifth of the evaluation's time at 512 tokens (BENCHMARKS.md)."""
    logits = model(ids).logits  # [b, t, V]
    targets = ids.roll(-1, dims=1)  # [b, t]: position i's target is token i+1
    losses = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none"
    )
    return losses.view(ids.shape)[:, :-1]  # [b, t-1]


@torch.inference_mode()
def masked_losses(
    model: Transformer, inputs: torch.Tensor, truth: torch.Tensor, which: torch.Tensor
) -> torch.Tensor:
    """An encoder's losses ``[b, t]`` at the masked positions ``which`` (predicting ``truth``
    in place from ``inputs``, where those positions read the mask token); NaN elsewhere."""
    logits = model(inputs).logits  # [b, t, V]
    out = torch.full(truth.shape, float("nan"), device=logits.device)  # [b, t]
    # only the masked positions' log-softmax: an encoder scores a sixth of a window
    out[which] = F.cross_entropy(logits[which].float(), truth[which], reduction="none")
    return out


def _windows(text: EvalText, eval_len: int) -> tuple[np.ndarray, ...]:
    """What scoring at ``eval_len`` reads, once: the windows ``[w, L]`` (next-token scoring),
    or the inputs, the true tokens and the masked positions, ``[w, L]`` each (a masked text)."""
    if text.masked is None:
        return (text.windows(eval_len),)
    return (
        text.windows(eval_len, inputs=True),
        text.windows(eval_len),
        text.window_targets(eval_len),
    )


def _score(model, windows: tuple[np.ndarray, ...], rows: slice, begin: int, end: int, device):
    """Losses of ``rows`` of ``windows`` (:func:`_windows`) at positions ``begin .. end-1``:
    ``[b, end-begin-1]`` next-token losses, or ``[b, end-begin]`` masked ones (NaN where not
    masked)."""
    parts = [torch.from_numpy(a[rows, begin:end]).to(device) for a in windows]
    losses = token_losses(model, *parts) if len(parts) == 1 else masked_losses(model, *parts)
    return losses.double().cpu().numpy()


def batch_windows(eval_len: int, vocab_size: int) -> int:
    """Windows per forward pass: about 16k tokens, fewer when the logits ``[b, L, V]`` or an
    ``L × L`` attention bias would take more than about 256 MiB."""
    by_tokens = 16384 // eval_len
    by_logits = (1 << 26) // (vocab_size * eval_len)
    by_bias = (1 << 24) // (eval_len * eval_len)
    return max(1, min(by_tokens, by_logits, by_bias))


def as_text(text: EvalText | np.ndarray, eval_len: int, max_windows: int) -> EvalText:
    """``text`` itself, or ``max_windows`` seeded spans of ``eval_len`` drawn from a token array."""
    if isinstance(text, EvalText):
        if eval_len not in text.lengths:
            raise ValueError(
                f"length {eval_len} is not one of the lengths the text was drawn for "
                f"({text.lengths}): draw it with EvalText.draw(tokens, lengths=[..., {eval_len}])"
            )
        return text
    return EvalText.draw(text, [eval_len], n_spans=max_windows)


def eval_nonoverlap(
    model: Transformer,
    text: EvalText | np.ndarray,
    eval_len: int,
    *,
    max_windows: int = 64,
    batch_size: int | None = None,
    advance: Advance | None = None,
) -> LengthResult:
    """Score every span of ``text`` cut into windows of ``eval_len`` tokens.

    ``text`` may be a token array: ``max_windows`` seeded spans of ``eval_len`` are drawn.
    """
    check_eval_len(eval_len)
    text = as_text(text, eval_len, max_windows)
    device = next(model.parameters()).device
    w = text.n_spans * (text.span_len // eval_len)
    b = batch_size or batch_windows(eval_len, model.config.vocab_size)
    first = 0 if text.masked is not None else 1  # the first position that is a target
    losses = np.empty((w, eval_len - first))  # [w, L-1], or [w, L] for an encoder
    windows = _windows(text, eval_len)
    for i in range(0, w, b):
        rows = slice(i, min(i + b, w))
        losses[rows] = _score(model, windows, rows, 0, eval_len, device)
        if advance is not None:
            advance((rows.stop - rows.start) * eval_len)
    return _result(text, eval_len, "nonoverlap", losses)


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


def sliding_plan(
    limit: int | None, eval_len: int, window: int | None = None, stride: int | None = None
) -> list[tuple[int, int, int]]:
    """The windows a sliding evaluation of one sequence of ``eval_len`` runs (see
    :func:`sliding_targets`); ``window`` defaults to the table size ``limit``, ``stride`` to
    half the window."""
    window, stride = sliding_window(limit, eval_len, window, stride)
    if stride is None:
        return [(0, eval_len, 1)]
    return sliding_targets(eval_len, window, stride)


def sliding_window(
    limit: int | None, eval_len: int, window: int | None = None, stride: int | None = None
) -> tuple[int, int | None]:
    """``(window, stride)`` a sliding evaluation at ``eval_len`` uses: the window defaults to
    the table size ``limit`` (never longer than ``eval_len``), the stride to half the window
    (at most ``window - 1``); the stride is None when one window covers the whole sequence
    (one pass: no stride is used)."""
    window = min(window or limit or eval_len, eval_len)
    if window >= eval_len:
        return window, None
    return window, min(stride or max(1, window // 2), window - 1)


def eval_sliding(
    model: Transformer,
    text: EvalText | np.ndarray,
    eval_len: int,
    *,
    window: int | None = None,
    stride: int | None = None,
    max_windows: int = 16,
    batch_size: int | None = None,
    advance: Advance | None = None,
) -> LengthResult:
    """Score the spans of ``text`` as sequences of ``eval_len`` with a sliding window."""
    check_eval_len(eval_len)
    text = as_text(text, eval_len, max_windows)
    device = next(model.parameters()).device
    plan = sliding_plan(model.position_limit, eval_len, window, stride)
    w = text.n_spans * (text.span_len // eval_len)
    widest = max(end - begin for begin, end, _ in plan)
    b = batch_size or batch_windows(widest, model.config.vocab_size)
    masked = text.masked is not None
    per_target = np.empty((w, eval_len - (0 if masked else 1)))  # [w, L-1], encoder [w, L]
    windows = _windows(text, eval_len)
    for i in range(0, w, b):
        rows = slice(i, min(i + b, w))
        for begin, end, first in plan:
            losses = _score(model, windows, rows, begin, end, device)
            if masked:  # an encoder's targets begin..: the first window scores offset 0 too
                lo = 0 if begin == 0 else first
                per_target[rows, lo:end] = losses[:, lo - begin :]
            else:  # losses[:, j] is the loss of token begin+j+1; keep targets first .. end-1
                per_target[rows, first - 1 : end - 1] = losses[:, first - begin - 1 :]
            if advance is not None:
                advance((rows.stop - rows.start) * (end - begin))
    return _result(text, eval_len, "sliding", per_target)


def forward_tokens(
    limit: int | None,
    n_spans: int,
    span_len: int,
    eval_len: int,
    mode: str = "nonoverlap",
    stride: int | None = None,
) -> int:
    """Tokens one evaluation of ``n_spans`` spans of ``span_len`` runs through the model (the
    unit of the progress bar); ``limit`` is the model's table size (``model.position_limit``)."""
    windows = n_spans * (span_len // eval_len)
    if mode != "sliding":
        return windows * eval_len
    plan = sliding_plan(limit, eval_len, None, stride)
    return windows * sum(end - begin for begin, end, _ in plan)


def _result(text: EvalText, eval_len: int, mode: str, losses: np.ndarray) -> LengthResult:
    """Summarise per-window target losses ``[w, L-1]`` (an encoder's ``[w, L]``, NaN where
    not masked) over the text's scored targets."""
    n, per = text.n_spans, text.span_len // eval_len
    first = eval_len - losses.shape[1]  # 1: next-token targets start at position 1
    grid = np.full((n, per, eval_len), np.nan)
    grid[:, :, first:] = losses.reshape(n, per, eval_len - first)
    by_offset = np.full((n, text.span_len), np.nan)  # [n, S]: loss of the target at each offset
    by_offset[:, : per * eval_len] = grid.reshape(n, per * eval_len)
    if text.masked is not None:  # each span's masked offsets: the same count in every span
        units = by_offset[text.masked].reshape(n, -1).mean(axis=1)  # [n]
    else:
        units = by_offset[:, text.targets].mean(axis=1)  # [n] each span's mean over the targets
    loss, loss_se = mean_se(units)
    with warnings.catch_warnings():  # a position no window masked: no mean there (NaN)
        warnings.simplefilter("ignore", RuntimeWarning)
        curve = np.nanmean(losses, axis=0) if text.masked is not None else losses.mean(axis=0)
    return LengthResult(
        eval_len,
        mode,
        loss,
        text.scored_tokens,
        curve.tolist(),
        loss_se=loss_se,
        units=units.tolist(),
        per_position_bins=position_bins(losses, first),
    )


def position_bins(losses: np.ndarray, first: int = 1, n_bins: int = 32) -> dict:
    """Per-position losses ``[w, t]`` (column ``j``: the target at position ``first + j``;
    NaN where a window scored nothing) in ``min(n_bins, t)`` bins of (nearly) equal size:
    each bin's mean and its standard error over windows (a window's mean over the bin is one
    observation). ``first``: the first target position of each bin."""
    w, t = losses.shape
    starts = np.linspace(0, t, min(n_bins, t) + 1).astype(np.int64)[:-1]  # [bins]
    scored = ~np.isnan(losses)  # an encoder's windows score only their masked positions
    sums = np.add.reduceat(np.where(scored, losses, 0.0), starts, axis=1)  # [w, bins]
    counts = np.add.reduceat(scored, starts, axis=1)  # [w, bins]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a bin no window scored: NaN
        per_window = sums / counts  # [w, bins]; NaN where a window scored nothing in a bin
        mean = np.nanmean(per_window, axis=0)
        k = (~np.isnan(per_window)).sum(axis=0)
        se = np.where(k > 1, np.nanstd(per_window, axis=0, ddof=1) / np.sqrt(np.maximum(k, 1)), 0)
    return {
        "first": (starts + first).tolist(),
        "mean": [round(float(v), 5) for v in mean],
        "se": [round(float(v), 5) for v in se],
    }


@torch.inference_mode()
def eval_task(
    model: Transformer,
    task,
    eval_len: int,
    *,
    n: int = 128,
    seed: int = 0,
    batch_size: int = 32,
    advance: Advance | None = None,
) -> LengthResult:
    """Loss on answer tokens and exact-match accuracy of a synthetic task at ``eval_len``,
    with standard errors over the ``n`` examples (drawn with ``seed``).

    As in training (posemb.train.stream), a causal model at length ``L`` reads the first
    ``L`` tokens of a problem ``L + 1`` tokens long and each position predicts the next one;
    an encoder reads ``L`` tokens with its answers hidden and predicts them in place."""
    check_eval_len(eval_len)
    device = next(model.parameters()).device
    rng = np.random.default_rng([seed, eval_len])
    causal = model.config.causal
    ex_loss, ex_right, loss_sum, scored = [], [], 0.0, 0
    for i in range(0, n, batch_size):
        x, y = task.sample(min(batch_size, n - i), eval_len + causal, rng, causal=causal)
        x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        fits = y[:, 0] == -100  # [b]: the problem begins with padding (it fits the length)
        target = y  # [b, L]: each position's own target
        if causal:
            x, target = x[:, :-1], y[:, 1:]  # [b, L], [b, L]
        logits = model(x).logits.float()  # [b, L, V]
        mask = target != -100
        tl = F.cross_entropy(logits.transpose(1, 2), target, reduction="none", ignore_index=-100)
        counts = mask.sum(1)  # [b]
        ex_loss += (tl.sum(1) / counts.clamp_min(1)).double().cpu().tolist()
        right = ((logits.argmax(-1) == target) | ~mask).all(1) & fits  # [b]
        ex_right += right.double().cpu().tolist()
        loss_sum += float(tl.sum())
        scored += int(counts.sum())
        if advance is not None:
            advance(x.numel())
    accuracy, accuracy_se = mean_se(ex_right)
    return LengthResult(
        eval_len,
        "task",
        loss_sum / scored,
        scored,
        [],
        accuracy=accuracy,
        loss_se=mean_se(ex_loss)[1],
        units=ex_loss,
        unit="examples",
        accuracy_se=accuracy_se,
    )
