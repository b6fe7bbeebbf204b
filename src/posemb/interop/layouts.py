"""Weight layouts across the posemb / Hugging Face boundary, shared by every architecture.

A :class:`KeyPair` names one tensor on both sides and says how its layout differs:

- ``transpose``: GPT-2's ``Conv1D`` stores ``[in, out]`` where ``nn.Linear`` stores ``[out, in]``;
- ``heads``: posemb's fused projection holds all queries, then all keys, then all values
  (rows ``[3, h, dh]``); GPT-NeoX groups them per head (rows ``[h, 3, dh]``).

Some posemb runs compute exactly what a Hugging Face architecture computes, but with a
different parametrisation. :func:`widen` rewrites their weights into the parametrisation
the architecture holds, and :func:`narrow` undoes it, exactly::

    posemb                    what the architecture holds             exact because
    bias=false                biases of zeros                         x @ W.T + 0 = x @ W.T
    sinusoidal (GPT-2)        a learned table = the fixed vectors     same vectors for p < N
    rope, interleaved=true    half-split RoPE, q/k channels permuted  q . k is a sum over
                              per head: [0 2 4 .. 1 3 5 ..]           channels (any order)

Notation: ``d`` width, ``h`` heads, ``dh`` head width, ``N`` positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import ModelConfig, Transformer
from ..positional import build_scheme, scheme_class

_BIASES = (
    "ln_1.bias",
    "attn.qkv.bias",
    "attn.proj.bias",
    "ln_2.bias",
    "mlp.fc.bias",
    "mlp.proj.bias",
)


@dataclass(frozen=True)
class KeyPair:
    """One tensor under its two names, and how the Hugging Face layout differs.

    Attributes:
        posemb: the posemb name.
        hf: the Hugging Face name.
        transpose: Conv1D ``[in, out]`` vs Linear ``[out, in]``.
        shape: the posemb shape (the HF shape is reversed when ``transpose``).
        heads: ``h`` when fused q/k/v rows are grouped per head in HF (GPT-NeoX), else 0.
    """

    posemb: str
    hf: str
    transpose: bool
    shape: tuple[int, ...]
    heads: int = 0

    @property
    def hf_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.shape)) if self.transpose else self.shape

    def to_hf(self, t: Tensor) -> Tensor:
        if self.heads:  # rows [3, h, dh] -> [h, 3, dh]
            t = t.reshape(3, self.heads, -1, *t.shape[1:]).transpose(0, 1).reshape(t.shape)
        return (t.T if self.transpose else t).contiguous()

    def from_hf(self, t: Tensor) -> Tensor:
        if self.transpose:
            t = t.T
        if self.heads:  # rows [h, 3, dh] -> [3, h, dh]
            t = t.reshape(self.heads, 3, -1, *t.shape[1:]).transpose(0, 1).reshape(t.shape)
        return t.contiguous()


def _check_keys(given: set[str], expected: set[str], where: str, arch: str) -> None:
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        more = lambda names: " ..." if len(names) > 4 else ""  # noqa: E731
        raise ValueError(
            f"{where} does not match a {arch} of this config: missing "
            f"{missing[:4]}{more(missing)}, unexpected {unexpected[:4]}{more(unexpected)}"
        )


def _check_shape(name: str, tensor: Tensor, shape: tuple[int, ...], where: str) -> None:
    if tuple(tensor.shape) != shape:
        raise ValueError(
            f"{where}: {name} has shape {tuple(tensor.shape)}, the config expects {shape}"
        )


def map_to_hf(pairs: list[KeyPair], tensors: dict[str, Tensor], arch: str) -> dict[str, Tensor]:
    """posemb tensors (exactly the names of ``pairs``) -> Hugging Face tensors."""
    where = "the posemb weights"
    _check_keys(set(tensors), {p.posemb for p in pairs}, where, arch)
    out = {}
    for p in pairs:
        _check_shape(p.posemb, tensors[p.posemb], p.shape, where)
        out[p.hf] = p.to_hf(tensors[p.posemb])
    return out


def map_from_hf(pairs: list[KeyPair], tensors: dict[str, Tensor], arch: str) -> dict[str, Tensor]:
    """Hugging Face tensors (exactly the names of ``pairs``) -> posemb tensors, float32."""
    where = "the Hugging Face weights"
    _check_keys(set(tensors), {p.hf for p in pairs}, where, arch)
    out = {}
    for p in pairs:
        _check_shape(p.hf, tensors[p.hf], p.hf_shape, where)
        out[p.posemb] = p.from_hf(tensors[p.hf]).to(torch.float32).contiguous()
    return out


# -- equivalent parametrisations ----------------------------------------------------------------
def _fixed_vectors(cfg: ModelConfig) -> bool:
    """The scheme adds a fixed vector per position to the input (sinusoidal): a table of
    those vectors computes the same."""
    scheme = scheme_class(cfg.position)
    return scheme.adds_to_input and not scheme.has_table


def _interleaved(cfg: ModelConfig) -> bool:
    """The scheme rotates q/k channel pairs ``(0, 1), (2, 3), ...`` (RoPE, interleaved)."""
    interleaved = bool(cfg.position_options.get("interleaved", False))
    return scheme_class(cfg.position).rotates_qk and interleaved


def widened(cfg: ModelConfig, *, fill_bias: bool, table: bool) -> ModelConfig:
    """The config whose weights :func:`widen` produces (see the module doc)."""
    changes: dict = {}
    if fill_bias and not cfg.bias:
        changes["bias"] = True
    if table and _fixed_vectors(cfg):
        changes.update(position="learned", position_options={})
    if _interleaved(cfg):
        changes["position_options"] = {**cfg.position_options, "interleaved": False}
    return cfg.replace(**changes) if changes else cfg


def _fills(cfg: ModelConfig, wide: ModelConfig) -> dict[str, Tensor]:
    """The tensors ``wide`` has and ``cfg`` lacks, with the values that make them equal."""
    fills: dict[str, Tensor] = {}
    if wide.bias and not cfg.bias:
        for i in range(cfg.n_layer):
            for name in _BIASES:
                size = {"attn.qkv.bias": 3 * cfg.d_model, "mlp.fc.bias": cfg.ff_dim}
                fills[f"blocks.{i}.{name}"] = torch.zeros(size.get(name, cfg.d_model))
        fills["ln_f.bias"] = torch.zeros(cfg.d_model)
    if wide.has_position_table and not cfg.has_position_table:  # the fixed vectors as a table
        scheme = build_scheme(cfg.position, **cfg.scheme_context(), **cfg.position_options)
        positions = torch.arange(cfg.max_positions).unsqueeze(0)  # [1, N]
        vectors = scheme.embed_positions(positions)[0]  # [N, d]
        fills[Transformer.POSITION_TABLE_KEY] = vectors.detach().contiguous()
    return fills


def _rope_permutation(cfg: ModelConfig) -> Tensor | None:
    """Rows of the fused projection, interleaved -> half-split pairs per q/k head; or None."""
    if not _interleaved(cfg):
        return None
    dh = cfg.head_dim
    within = torch.cat((torch.arange(0, dh, 2), torch.arange(1, dh, 2)))  # [dh]
    heads = torch.arange(2 * cfg.n_head).unsqueeze(1) * dh + within  # [2h, dh]: q and k heads
    rest = torch.arange(2 * cfg.d_model, 3 * cfg.d_model)  # values unchanged
    return torch.cat((heads.reshape(-1), rest))  # [3d]


def widen(tensors: dict[str, Tensor], cfg: ModelConfig, wide: ModelConfig) -> dict[str, Tensor]:
    """``cfg``'s tensors rewritten as the (equal) model ``wide`` (see :func:`widened`)."""
    out = {**tensors, **_fills(cfg, wide)}
    perm = _rope_permutation(cfg)
    if perm is not None:
        for i in range(cfg.n_layer):
            for name in (f"blocks.{i}.attn.qkv.weight", f"blocks.{i}.attn.qkv.bias"):
                if name in out:
                    out[name] = out[name][perm].contiguous()
    return out


def narrow(tensors: dict[str, Tensor], cfg: ModelConfig, wide: ModelConfig) -> dict[str, Tensor]:
    """The inverse of :func:`widen`; a filled tensor that differs from its fill (a bias that
    was trained elsewhere) is a ``ValueError`` naming it."""
    out = dict(tensors)
    for name, fill in _fills(cfg, wide).items():
        if name not in out or not torch.equal(out[name], fill.to(out[name].dtype)):
            raise ValueError(f"{name} is not what a {cfg.position}, bias={cfg.bias} run holds")
        del out[name]
    perm = _rope_permutation(cfg)
    if perm is not None:
        inverse = torch.argsort(perm)
        for i in range(cfg.n_layer):
            for name in (f"blocks.{i}.attn.qkv.weight", f"blocks.{i}.attn.qkv.bias"):
                if name in out:
                    out[name] = out[name][inverse].contiguous()
    return out
