"""Rotary positional embedding (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary
Position Embedding").

Each pair of channels ``(x_a, x_b)`` of a query or key at position ``p`` is read as the
complex number ``x_a + i x_b`` and multiplied by ``e^{i p theta_k}``, with
``theta_k = base^(-2k/d)`` for pair ``k = 0 .. d/2-1``:

    out_a = x_a cos(p theta_k) - x_b sin(p theta_k)
    out_b = x_b cos(p theta_k) + x_a sin(p theta_k)

A rotation keeps norms, and ``<R_i q, R_j k>`` depends on ``i - j`` only, so the attention
logits see relative positions although every vector is rotated by its absolute position.

Two channel layouts pair the channels differently (``d = 8`` shown, ``f_k`` = pair ``k``)::

    half-split (default; Hugging Face Llama's ``rotate_half``, GPT-NeoX):
        x:     [x0 x1 x2 x3 | x4 x5 x6 x7]
        pairs: (x0, x4) (x1, x5) (x2, x6) (x3, x7)  -> frequencies f0 f1 f2 f3
    interleaved (original RoFormer, GPT-J):
        x:     [x0 x1 | x2 x3 | x4 x5 | x6 x7]
        pairs: (x0, x1) (x2, x3) (x4, x5) (x6, x7)  -> frequencies f0 f1 f2 f3

``scale`` is linear position interpolation (Chen et al. 2023, "Extending Context Window of
Large Language Models via Positional Interpolation"): the angle uses ``p / scale``, so a
model trained on ``L`` positions sees ``scale * L`` positions inside its trained range.

Notation: ``b`` batch, ``t`` query length, ``s`` key length, ``h`` heads, ``dh`` head width
(``d`` below: the width of the rotated tensor).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import PositionalScheme
from .checks import check_bool, is_finite_number, is_int


def rope_angles(positions: Tensor, dim: int, base: float = 10000.0, scale: float = 1.0) -> Tensor:
    """Rotation angles ``(p / scale) * theta_k`` in float32.

    Args:
        positions: ``[...]`` int or float positions.
        dim: rotated width ``d`` (even).
        base: frequency base (10000 in the paper).
        scale: position interpolation factor (1.0: none).

    Returns:
        ``[..., d/2]`` float32 angles; column ``k`` uses ``theta_k = base^(-2k/d)``.
    """
    exponents = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim
    inv_freq = 1.0 / (base**exponents)  # [d/2]
    pos = positions.to(torch.float32) / scale
    return pos.unsqueeze(-1) * inv_freq  # [..., d/2]


def apply_rope(
    x: Tensor,
    positions: Tensor,
    base: float = 10000.0,
    interleaved: bool = False,
    scale: float = 1.0,
) -> Tensor:
    """Rotate ``x`` by its positions.

    The angles are computed in float32, the rotation in float32 (float64 for a float64
    ``x``); the result has ``x``'s dtype.
    No data-dependent control flow: safe under ``torch.compile(fullgraph=True)``.

    Args:
        x: ``[b, h, t, d]`` queries or keys, ``d`` even.
        positions: ``[b, t]`` (``b`` may be 1) or ``[t]``, int or float.
        base: frequency base.
        interleaved: pair ``(x[2k], x[2k+1])`` (RoFormer, GPT-J) instead of the default
            half-split pairs ``(x[k], x[k + d/2])`` (Hugging Face Llama).
        scale: position interpolation factor; the angle uses ``positions / scale``.

    Returns:
        ``[b, h, t, d]`` rotated tensor, dtype of ``x``.

    Example::

        q = apply_rope(q, torch.arange(t))  # q: [b, h, t, dh]
    """
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RoPE needs an even width, got {d}")
    if positions.dim() not in (1, 2):
        raise ValueError(f"positions must be [t] or [b, t], got shape {tuple(positions.shape)}")
    angles = rope_angles(positions, d, base, scale)  # [t, d/2] or [b, t, d/2]
    if angles.dim() == 3:
        angles = angles.unsqueeze(1)  # [b, 1, t, d/2]: broadcast over heads
    compute = torch.promote_types(x.dtype, torch.float32)  # float32, or float64 for float64 x
    cos, sin = angles.cos().to(compute), angles.sin().to(compute)
    xf = x.to(compute)
    if interleaved:
        x1, x2 = xf[..., 0::2], xf[..., 1::2]  # [b, h, t, d/2] each
        out = torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)  # [b, h, t, d/2, 2]
        out = out.flatten(-2)  # [b, h, t, d]: back to [a0 b0 a1 b1 ...]
    else:
        x1, x2 = xf[..., : d // 2], xf[..., d // 2 :]  # [b, h, t, d/2] each
        out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)  # [b, h, t, d]
    return out.to(x.dtype)


class RotaryPositionalEmbedding(PositionalScheme):
    """Rotates queries and keys inside every attention layer (RoPE).

    No table and no parameters: any position, also past the training length, has a
    rotation. Frequencies are recomputed per call (cheap, and immune to ``model.half()``
    casting a cached buffer).

    Args:
        head_dim: width ``dh`` of each head (even).
        base: frequency base (10000 in the paper).
        interleaved: channel layout; see :func:`apply_rope`.
        scale: position interpolation factor (Chen et al. 2023).
    """

    name = "rope"
    fractional_positions = True  # any real position is a valid input of its formula
    rotates_qk = True

    def __init__(
        self,
        head_dim: int,
        *,
        base: float = 10000.0,
        interleaved: bool = False,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not is_int(head_dim) or head_dim <= 0 or head_dim % 2:
            raise ValueError(f"RoPE needs a positive even head_dim, got {head_dim!r}")
        if not (is_finite_number(base) and base > 1.0):
            raise ValueError(f"base must be a finite number > 1, got {base!r}")
        if not (is_finite_number(scale) and scale > 0.0):
            raise ValueError(
                f"scale must be a finite number > 0, got {scale!r} (1.0: no interpolation)"
            )
        check_bool("interleaved", interleaved)
        self.head_dim, self.base = head_dim, float(base)
        self.interleaved, self.scale = bool(interleaved), float(scale)

    def rotate_qk(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """q, k ``[b, h, t, dh]``, positions ``[b, t]`` or ``[t]`` -> rotated (q, k)."""
        if q.shape[-1] != self.head_dim or k.shape[-1] != self.head_dim:
            raise ValueError(
                f"RoPE was built for head_dim={self.head_dim}, got q {tuple(q.shape)}, k "
                f"{tuple(k.shape)}"
            )
        rotate = dict(base=self.base, interleaved=self.interleaved, scale=self.scale)
        return apply_rope(q, positions, **rotate), apply_rope(k, positions, **rotate)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate one tensor ``[b, h, t, dh]``."""
        return apply_rope(x, positions, self.base, self.interleaved, self.scale)

    def extra_repr(self) -> str:
        return (
            f"head_dim={self.head_dim}, base={self.base}, interleaved={self.interleaved}, "
            f"scale={self.scale}, {super().extra_repr()}"
        )
