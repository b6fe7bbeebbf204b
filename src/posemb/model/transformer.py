"""A pre-norm transformer (GPT-2 layout) whose positions come from any posemb scheme.

    x = E[tokens] (+ P[positions] if the scheme adds to the input)
    for each block:  x = x + Attn(LN(x))   (q/k rotated or logits biased by the scheme)
                     x = x + MLP(LN(x))
    logits = LN(x) @ E^T (tied) or a separate head

Causal LM (``cfg.causal``) or bidirectional encoder. Notation: ``b`` batch, ``t`` new
tokens, ``s`` keys (cache + new), ``d`` width, ``V`` vocabulary.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..positional import TABLE_SCHEMES, build_scheme
from ..positional.base import PositionalScheme
from ..positional.learned import position_ids_from_mask
from .attention import AttentionContext, SelfAttention
from .config import ModelConfig
from .inputs import check_input_ids, check_labels, check_positions, padding_mask
from .memory import check_model_fits


@dataclass
class KVCache:
    """Keys and values of every layer, with the positions and padding of the cached tokens.

    Attributes:
        layers: per layer ``(k, v)``, each ``[b, h, s, dh]`` (keys already rotated for RoPE).
        positions: ``[b, s]`` positions of the cached tokens (bias schemes need them).
        key_mask: ``[b, s]`` bool padding mask of the cached tokens, or None (no padding).
    """

    layers: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    positions: Tensor | None = None
    key_mask: Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.positions is None else self.positions.shape[1]

    def next_position(self) -> Tensor:
        """``[b, 1]`` the position the next real token gets (one past each row's last)."""
        assert self.positions is not None
        return self.positions[:, -1:] + 1


@dataclass
class TransformerOutput:
    logits: Tensor  # [b, t, V]
    loss: Tensor | None = None  # mean nats per scored token
    hidden_states: Tensor | tuple[Tensor, ...] | None = None  # final [b, t, d], or per layer
    cache: KVCache | None = None


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.ff_dim, bias=cfg.bias)
        self.proj = nn.Linear(cfg.ff_dim, cfg.d_model, bias=cfg.bias)
        self.act = {
            "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
            "gelu": F.gelu,
            "relu": F.relu,
            "silu": F.silu,
        }[cfg.activation]
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(self.act(self.fc(x))))


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.bias)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = make_norm(cfg)
        self.attn = SelfAttention(cfg)
        self.ln_2 = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, scheme, ctx, past_kv=None, use_cache=False):
        """``x [b, t, d]`` -> ``(x, (k, v))``; ``(x, None)`` without ``use_cache`` (training
        returns no views of its keys and values: FSDP2 warns of views a block returns)."""
        a, kv = self.attn(self.ln_1(x), scheme, ctx, past_kv)
        x = x + self.resid_dropout(a)
        x = x + self.mlp(self.ln_2(x))
        return x, kv if use_cache else None


def build_positions(cfg: ModelConfig) -> tuple[PositionalScheme | None, nn.ModuleList | None]:
    """``(pos, layer_pos)``: one scheme shared by every layer, or one per layer (Shaw)."""
    context = cfg.scheme_context()
    first = build_scheme(cfg.position, **context, **cfg.position_options)
    if not first.per_layer:
        return first, None
    rest = [
        build_scheme(cfg.position, **context, **cfg.position_options)
        for _ in range(cfg.n_layer - 1)
    ]
    return None, nn.ModuleList([first, *rest])


def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy (nats) of ``logits`` ``[b, t, V]`` against aligned ``targets``
    ``[b, t]``, over the positions whose target is not -100 (in float32)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100
    )


class Transformer(nn.Module):
    """Causal LM or bidirectional encoder with a pluggable positional scheme.

    Example::

        model = Transformer(ModelConfig.preset("tiny"))
        out = model(torch.randint(0, 256, (2, 16)), labels=ids)
        out.logits  # [2, 16, 256]; out.loss: mean nats per token
    """

    # The state-dict name of the table ``position_table()`` returns (schemes with one): the
    # name checkpoint key maps (GPT-2's ``wpe``) and ``posemb analyze`` use for it
    POSITION_TABLE_KEY: ClassVar[str] = "pos.weight"

    def __init__(self, cfg: ModelConfig) -> None:
        if not isinstance(cfg, ModelConfig):
            raise TypeError(
                f"Transformer takes a ModelConfig (posemb.ModelConfig(...) or "
                f"ModelConfig.preset(name)), got {type(cfg).__name__}"
            )
        check_model_fits(cfg)  # refuse a size nobody can allocate, before allocating it
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.pos, self.layer_pos = build_positions(cfg)  # state-dict keys pos.*, layer_pos.N.*
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_weights()
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight

    def _init_weights(self) -> None:
        """GPT-2 init: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer).

        Positional schemes initialise their own parameters (their ``init`` option).
        """
        std = self.config.init_std
        for module in [self.wte, self.lm_head, *self.blocks]:
            for m in module.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, 0.0, std)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(proj.weight, 0.0, std / math.sqrt(2 * self.config.n_layer))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- positions: the only way other modules reach the positional scheme ------------------------
    def scheme(self, layer: int = 0) -> PositionalScheme:
        """The scheme layer ``layer`` uses (the shared one, unless the scheme is per layer)."""
        return self.pos if self.pos is not None else self.layer_pos[layer]

    def position_schemes(self) -> list[PositionalScheme]:
        """Every scheme module: the shared one, or one per layer (Shaw)."""
        return [self.pos] if self.pos is not None else list(self.layer_pos)

    @property
    def position_limit(self) -> int | None:
        """Positions this model cannot serve start here (None: no limit)."""
        return self.scheme(0).position_limit

    def position_parameters(self) -> list[nn.Parameter]:
        """The scheme's trained parameters (a learned table, T5's or Shaw's tables); empty
        for fixed schemes. Weight decay leaves them alone unless ``train.decay_positions``."""
        return [p for scheme in self.position_schemes() for p in scheme.parameters()]

    def position_table(self) -> Tensor | None:
        """The table of absolute positions ``[offset + max_positions, d]`` (the parameter
        itself: detach it to plot it), or None when the scheme has none."""
        return self.scheme(0).table

    def with_positions(self, name: str, **options: Any) -> Transformer:
        """A copy of this model whose positions come from the scheme ``name`` (fresh, built
        with ``options``); every other weight is copied. This model is untouched.

        Example: ``model.with_positions("nope")`` is the same network without positions
        (the order probe's control).
        """
        cfg = self.config.replace(position=name, position_options=options)
        return self._copy_with(cfg, *build_positions(cfg))

    def extend_positions(
        self,
        new_max: int | None = None,
        method: str = "interpolate",
        *,
        overflow: str | None = None,
        **options: Any,
    ) -> Transformer:
        """A copy of this model whose table serves ``new_max`` positions, and/or has the
        overflow policy ``overflow``; its config says so. This model is untouched.

        Args:
            new_max: positions of the new table (reserved offset rows not counted); smaller
                than now crops, None keeps the size.
            method: one of ``posemb.EXTEND_METHODS`` (see :func:`posemb.extend_table`).
            overflow: ``"error"``, ``"clamp"`` or ``"wrap"``; None keeps the policy.
            **options: options of the method (``generator``, ``std``, ...): fresh ``random``
                rows are drawn with the table's init std unless ``std`` is given.

        Raises:
            ValueError: the scheme has no table (only ``TABLE_SCHEMES`` do).

        Example::

            longer = model.extend_positions(1024, "interpolate")
            clamped = model.extend_positions(overflow="clamp")
        """
        if not self.scheme(0).has_table:
            raise ValueError(
                f"model.position={self.config.position!r} has no table of positions to extend "
                f"or to give an overflow policy (schemes with one: {', '.join(TABLE_SCHEMES)})"
            )
        new_max = self.config.max_positions if new_max is None else new_max
        grown = [
            s.extend(new_max, method, overflow=overflow, **options) for s in self.position_schemes()
        ]
        opts = dict(self.config.position_options)
        if overflow is not None:
            opts["overflow"] = overflow
        cfg = self.config.replace(max_positions=new_max, position_options=opts)
        if self.pos is not None:
            return self._copy_with(cfg, grown[0], None)
        return self._copy_with(cfg, None, nn.ModuleList(grown))

    def _copy_with(
        self, cfg: ModelConfig, pos: PositionalScheme | None, layer_pos: nn.ModuleList | None
    ) -> Transformer:
        """A copy of this model (weights copied, not shared) with ``cfg`` and these schemes."""
        new = copy.deepcopy(self)
        ref = self.wte.weight
        for module in (pos, layer_pos):
            if module is not None:
                module.to(device=ref.device, dtype=ref.dtype).train(self.training)
        new.config, new.pos, new.layer_pos = cfg, pos, layer_pos
        return new

    # -- run folders (Hugging Face's names) --------------------------------------------------
    def save_pretrained(self, save_directory, tokenizer=None):
        """Write a posemb run folder: ``config.json`` + ``model.safetensors`` (+ the tokenizer).

        ``Transformer.from_pretrained(dir)`` reads it back; with a tokenizer,
        ``posemb.load(dir)`` too. See :func:`posemb.runs.save_pretrained`.
        """
        # The run folder's format is posemb.runs, a layer above the model (it builds models
        # from settings); importing it here at module level would make a cycle
        # (model -> runs -> model). The method imports it when called: the model class keeps
        # the ecosystem's names, the format keeps one home.
        from ..runs.load import save_pretrained

        return save_pretrained(self, save_directory, tokenizer)

    @classmethod
    def from_pretrained(cls, directory, device="cpu") -> Transformer:
        """The model of a posemb run folder (``posemb train``, ``save_pretrained``,
        ``import-hf``, ``extend``), in eval mode; as ``posemb.load`` without the tokenizer."""
        from ..runs.load import load_model  # a call-time import: see save_pretrained

        return load_model(directory, device)[0]

    # -- forward ----------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: Tensor,
        positions: Tensor | None = None,
        attention_mask: Tensor | None = None,
        cache: KVCache | None = None,
        use_cache: bool = False,
        labels: Tensor | None = None,
        output_hidden_states: bool = False,
        targets: Tensor | None = None,
    ) -> TransformerOutput:
        """Run the model.

        Args:
            input_ids: ``[b, t]`` token ids.
            positions: ``[b, t]`` or ``[t]`` positions; default: ``past .. past+t-1``, or
                derived from ``attention_mask`` so left padding doesn't consume positions.
            attention_mask: ``[b, t]`` (``[b, past+t]`` with a cache) 1 = token, 0 = padding.
            cache: a :class:`KVCache` from an earlier call with ``use_cache=True``.
            use_cache: return the updated cache in ``out.cache``.
            labels: causal LM: the input ids themselves (shifted here, as Hugging Face does);
                encoder: per-token targets. ``-100`` marks tokens without loss.
            output_hidden_states: ``out.hidden_states`` holds the embeddings' output and every
                block's output (the last one after the final norm) instead of only the last.
            targets: ``[b, t]`` each position's own target, never shifted (a causal LM's
                position ``i`` predicts ``targets[:, i]``, the token after it; nanoGPT's
                convention): what the trainer passes, from windows of ``t + 1`` tokens, so
                that every position, the table's last row included, has a target. ``-100``
                marks positions without loss. Give ``labels`` or ``targets``, not both.
        """
        cfg = self.config
        b, t = self._check_inputs(input_ids, labels, targets)
        past = cache.length if cache is not None else 0
        positions, key_mask = self._positions(input_ids, positions, attention_mask, cache, past)

        x = self.wte(input_ids)  # [b, t, d]
        first = self.scheme(0)
        if first.adds_to_input:
            new_mask = (
                key_mask[:, key_mask.shape[1] - t :] if key_mask is not None else None
            )  # [b, t]
            x = x + first.embed_positions(positions, new_mask).to(x.dtype)
        x = self.drop(x)

        k_positions = positions.expand(b, t)
        if cache is not None and cache.positions is not None:
            k_positions = torch.cat((cache.positions.expand(b, -1), k_positions), dim=1)  # [b, s]
        ctx = AttentionContext(positions.expand(b, t), k_positions, key_mask, past, cfg.causal)

        hidden = [x] if output_hidden_states else None
        new_layers = []
        for i, block in enumerate(self.blocks):
            past_kv = cache.layers[i] if cache is not None and cache.layers else None
            x, kv = block(x, self.scheme(i), ctx, past_kv, use_cache)
            if use_cache:
                new_layers.append(kv)
            if hidden is not None and i < len(self.blocks) - 1:
                hidden.append(x)
        x = self.ln_f(x)  # [b, t, d]
        if hidden is not None:
            hidden.append(x)
        logits = self.lm_head(x)  # [b, t, V]

        loss = None
        if labels is not None:
            loss = self.loss(logits, labels.to(logits.device))
        elif targets is not None:
            loss = cross_entropy(logits, targets.to(logits.device))
        new_cache = None
        if use_cache:
            new_cache = KVCache(new_layers, k_positions, key_mask)
        return TransformerOutput(
            logits, loss, tuple(hidden) if hidden is not None else x, new_cache
        )

    def _check_inputs(
        self, input_ids: Tensor, labels: Tensor | None, targets: Tensor | None
    ) -> tuple[int, int]:
        """``(b, t)`` of valid ``input_ids``, with ``labels`` or ``targets`` (not both) checked."""
        cfg = self.config
        b, t = check_input_ids(input_ids, cfg.vocab_size)
        if labels is not None and targets is not None:
            raise ValueError(
                "give labels (a causal LM's are shifted inside) or targets (aligned with the "
                "positions), not both"
            )
        if labels is not None:
            check_labels(labels, input_ids, cfg.causal, cfg.vocab_size)
        if targets is not None:
            check_labels(targets, input_ids, False, cfg.vocab_size, "targets")
        return b, t

    def _positions(
        self,
        input_ids: Tensor,
        positions: Tensor | None,
        attention_mask: Tensor | None,
        cache: KVCache | None,
        past: int,
    ) -> tuple[Tensor, Tensor | None]:
        """The checked positions ``[b or 1, t]`` and the key padding mask (or None)."""
        b, t = input_ids.shape
        # masks and positions built on the CPU for a model on an accelerator: follow the tokens
        if isinstance(attention_mask, Tensor):
            attention_mask = attention_mask.to(input_ids.device)
        if isinstance(positions, Tensor):
            positions = positions.to(input_ids.device)
        key_mask = padding_mask(attention_mask, cache, b, t, past)
        host_known = positions is None and key_mask is None
        if positions is None:
            if key_mask is not None:  # padding doesn't consume positions
                positions = position_ids_from_mask(key_mask, past_length=past)
            else:
                positions = torch.arange(past, past + t, device=input_ids.device).unsqueeze(0)
        positions = check_positions(positions, self.scheme(0), b, t, host_known, past)
        return positions, key_mask

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy (nats) over tokens whose label is not -100 (a causal LM's
        labels shifted: position i predicts token i+1)."""
        if self.config.causal:
            logits, labels = logits[:, :-1], labels[:, 1:]
        return cross_entropy(logits, labels)

    # -- generation --------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        vocab_size: int | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Sample ``max_new_tokens`` tokens after ``input_ids`` ``[b, t]``; returns ``[b, t + n]``.

        ``temperature=0`` is greedy. Uses the KV cache. When a learned table's end is reached
        the context slides (the last ``max_positions - 1`` tokens are re-encoded), as nanoGPT
        crops to its block size, so generation never asks for a position the table lacks.
        ``vocab_size`` samples only ids below it (a tokenizer smaller than the model's padded
        vocabulary: the padding ids decode to nothing). ``progress`` shows a progress bar
        with the time left on stderr (only when stderr is a terminal).
        """
        from .generation import generate

        return generate(
            self, input_ids, max_new_tokens, temperature, top_k, generator, vocab_size, progress
        )
