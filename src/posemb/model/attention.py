"""Multi-head self-attention with the positional hooks and a KV cache.

Kernels (docs/DESIGN.md, "Performance rules"):
- schemes without a logit bias (learned, sinusoidal, RoPE, NoPE) go through
  ``scaled_dot_product_attention`` with ``is_causal=True`` whenever no padding or cache
  offset requires an explicit mask, so no ``t x s`` mask is built and GPUs get flash/cuDNN;
- bias schemes (ALiBi, T5, Shaw) use FlexAttention with the scheme's ``score_mod`` on CUDA
  (``attention="auto"``) and an additive bias through SDPA elsewhere.

Notation: ``b`` batch, ``t`` query length, ``s`` key length (cache + new), ``h`` heads,
``d`` width, ``dh`` head width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..positional.base import PositionalScheme
from .config import ModelConfig


@dataclass
class AttentionContext:
    """Per-forward facts every layer shares (computed once by the Transformer).

    Attributes:
        q_positions: ``[b, t]`` positions of the new tokens.
        k_positions: ``[b, s]`` positions of all keys (cache + new).
        key_mask: ``[b, s]`` bool, True for real tokens; None when nothing is padded.
        past_length: keys already in the cache.
        causal: whether queries may only see earlier keys.
    """

    q_positions: Tensor
    k_positions: Tensor
    key_mask: Tensor | None
    past_length: int
    causal: bool

    def bool_mask(self, t: int, s: int, device: torch.device) -> Tensor | None:
        """``[b|1, 1, t, s]`` True = may attend; None when SDPA's is_causal (or nothing) suffices.

        Causal masks are bottom-right aligned (query i sits at key index past + i). A query
        always sees its own key, so a padded query never has an all-masked row (no NaN).
        """
        needs_offset = self.causal and self.past_length > 0 and t > 1
        if self.key_mask is None and not needs_offset:
            return None
        q_idx = torch.arange(t, device=device).unsqueeze(1) + self.past_length  # [t, 1]
        k_idx = torch.arange(s, device=device).unsqueeze(0)  # [1, s]
        allowed = (
            (k_idx <= q_idx) if self.causal else torch.ones(t, s, dtype=torch.bool, device=device)
        )
        allowed = allowed[None, None]  # [1, 1, t, s]
        if self.key_mask is not None:
            allowed = allowed & self.key_mask[:, None, None, :]  # [b, 1, t, s]
            allowed = allowed | (k_idx == q_idx)[None, None]
        return allowed


class SelfAttention(nn.Module):
    """Causal or bidirectional multi-head attention; the scheme is passed in per call."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.backend = cfg.attention

    def forward(
        self,
        x: Tensor,
        scheme: PositionalScheme,
        ctx: AttentionContext,
        past_kv: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x ``[b, t, d]`` -> (``[b, t, d]``, the layer's keys and values for the cache)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)  # 3 x [b, t, d]
        q = q.view(b, t, self.n_head, self.head_dim).transpose(1, 2)  # [b, h, t, dh]
        k = k.view(b, t, self.n_head, self.head_dim).transpose(1, 2)  # [b, h, t, dh]
        v = v.view(b, t, self.n_head, self.head_dim).transpose(1, 2)  # [b, h, t, dh]
        if scheme.rotates_qk:
            q, k = scheme.rotate_qk(q, k, ctx.q_positions)
        if past_kv is not None:
            k = torch.cat((past_kv[0], k), dim=2)  # [b, h, s, dh]
            v = torch.cat((past_kv[1], v), dim=2)
        s = k.shape[2]
        dropout = self.dropout if self.training else 0.0

        # decode steps (a cache in use) take the SDPA bias path: a compiled flex kernel per
        # growing key length would recompile at every generated token
        if scheme.biases_logits and ctx.past_length == 0 and self._use_flex(x):
            y = self._flex(q, k, v, scheme, ctx)
        elif scheme.biases_logits:
            bias = scheme.attention_bias(q, ctx.q_positions, ctx.k_positions)  # [b|1, h, t, s]
            allowed = ctx.bool_mask(t, s, x.device)
            if allowed is None and ctx.causal and t > 1:
                allowed = torch.ones(t, s, dtype=torch.bool, device=x.device).tril(s - t)
            if allowed is not None:
                bias = bias.masked_fill(~allowed, float("-inf"))
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout
            )
        else:
            allowed = ctx.bool_mask(t, s, x.device)
            is_causal = allowed is None and ctx.causal and ctx.past_length == 0 and t > 1
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, dropout_p=dropout, is_causal=is_causal
            )
        y = y.transpose(1, 2).reshape(b, t, d)  # [b, t, d]
        return self.proj(y), (k, v)

    def _use_flex(self, x: Tensor) -> bool:
        if _flex_attention is None:
            return False
        if x.device.type == "cpu" and torch.is_grad_enabled() and x.requires_grad:
            return False  # FlexAttention has no CPU backward; the SDPA bias path is equivalent
        if self.backend == "flex":
            return True
        return self.backend == "auto" and x.device.type == "cuda" and _flex_attention is not None

    def _flex(
        self, q: Tensor, k: Tensor, v: Tensor, scheme: PositionalScheme, ctx: AttentionContext
    ) -> Tensor:
        if _flex_attention is None:
            raise RuntimeError(
                "attention='flex' needs torch.nn.attention.flex_attention (torch >= 2.5)"
            )
        score_mod = scheme.score_mod(q, ctx.q_positions, ctx.k_positions)
        t, s = q.shape[2], k.shape[2]
        key_mask, causal = (
            ctx.key_mask,
            ctx.causal,
        )  # no cache here: decode steps take the SDPA path
        flex = _flex_attention
        if q.device.type == "cuda" and not torch.compiler.is_compiling():
            flex = _compiled_flex()  # eager flex materialises scores; the compiled one is fused
        if not causal and key_mask is None:
            return flex(q, k, v, score_mod=score_mod)

        def mask_mod(b, h, q_idx, kv_idx):
            keep = (kv_idx <= q_idx) if causal else (kv_idx >= 0)
            if key_mask is not None:
                keep = (keep & key_mask[b, kv_idx]) | (kv_idx == q_idx)
            return keep

        block_mask = _create_block_mask(
            mask_mod, q.shape[0] if key_mask is not None else None, None, t, s, device=q.device
        )
        return flex(q, k, v, score_mod=score_mod, block_mask=block_mask)


_COMPILED_FLEX = None


def _compiled_flex():
    global _COMPILED_FLEX
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(_flex_attention, dynamic=False)
    return _COMPILED_FLEX


try:  # FlexAttention: torch >= 2.5
    from torch.nn.attention.flex_attention import create_block_mask as _create_block_mask
    from torch.nn.attention.flex_attention import flex_attention as _flex_attention
except ImportError:  # pragma: no cover - older torch
    _flex_attention = None
    _create_block_mask = None
