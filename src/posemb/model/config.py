"""ModelConfig: every architectural choice of a posemb transformer, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ..positional import SCHEMES, scheme_class, validate_options
from ..positional.checks import check_bool, check_finite, check_positive_int, is_number, unknown

NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu_tanh", "gelu", "relu", "silu")
ATTENTION_BACKENDS = ("auto", "sdpa", "flex")


@dataclass(kw_only=True)
class ModelConfig:
    """A transformer's shape and positional scheme.

    Defaults give a small causal LM with a learned table. ``ModelConfig.preset("gpt2")`` is
    architecturally Hugging Face GPT-2 (learned table, LayerNorm eps 1e-5, tanh-GELU,
    biases, tied embeddings), so it exports losslessly.
    """

    vocab_size: int = 256
    max_positions: int = 256  # rows of a learned table; also the default training length cap
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    d_ff: int | None = None  # MLP width; None -> 4 * d_model (GPT-2)
    dropout: float = 0.0
    position: str = "learned"  # one of posemb.SCHEMES
    position_options: dict[str, Any] = field(default_factory=dict)  # passed to build_scheme
    causal: bool = True  # False: bidirectional encoder
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_eps: float = 1e-5  # GPT-2's LayerNorm epsilon
    bias: bool = True  # biases in Linear layers and LayerNorm (GPT-2: True)
    activation: Literal["gelu_tanh", "gelu", "relu", "silu"] = "gelu_tanh"
    tie_embeddings: bool = True  # output projection shares the token embedding
    init_std: float = 0.02  # std of weight init (GPT-2)
    attention: Literal["auto", "sdpa", "flex"] = "auto"  # auto: flex for bias schemes on CUDA

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_positions", "n_layer", "n_head", "d_model"):
            check_positive_int(name, getattr(self, name))
        if self.d_ff is not None:
            check_positive_int("d_ff", self.d_ff)
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}; "
                "choose d_model as a multiple of n_head (e.g. "
                f"{self.n_head * max(1, self.d_model // self.n_head)})"
            )
        if not (is_number(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.position not in SCHEMES:
            raise unknown("positional scheme (model.position)", self.position, SCHEMES)
        if not isinstance(self.position_options, dict):
            raise ValueError(
                f"position_options must be a dict, got {type(self.position_options).__name__}"
            )
        for key, field_name in (
            ("dim", "d_model"),
            ("n_heads", "n_head"),
            ("head_dim", "d_model / n_head"),
            ("max_positions", "max_positions"),
            ("causal", "causal"),
        ):
            if key in self.position_options:
                raise ValueError(
                    f"position_options[{key!r}] is set by the model itself; set "
                    f"model.{field_name} instead"
                )
        validate_options(self.position, self.position_options)
        for name in ("norm_eps", "init_std"):
            check_finite(name, getattr(self, name), 0)
        if self.position == "rope" and self.head_dim % 2:
            raise ValueError(f"rope needs an even head width; d_model/n_head = {self.head_dim}")
        for name, value, choices in (
            ("norm", self.norm, NORMS),
            ("activation", self.activation, ACTIVATIONS),
            ("attention", self.attention, ATTENTION_BACKENDS),
        ):
            if value not in choices:
                raise unknown(f"{name} (model.{name})", value, choices)
        for name in ("causal", "bias", "tie_embeddings"):
            check_bool(name, getattr(self, name), "true or false")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def ff_dim(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    def scheme_context(self) -> dict[str, Any]:
        """What the model tells its positional scheme (build_scheme keeps what it needs)."""
        return {
            "dim": self.d_model,
            "n_heads": self.n_head,
            "head_dim": self.head_dim,
            "max_positions": self.max_positions,
            "causal": self.causal,
        }

    # -- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict; an unknown key is an error naming the closest field."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise unknown("model setting", key, names)
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        return ModelConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named architecture with field overrides, e.g. ``preset("gpt2", n_layer=2)``."""
        if name not in PRESETS:
            raise unknown("model preset", name, PRESETS)
        return cls.from_dict({**PRESETS[name], **overrides})

    @property
    def has_position_table(self) -> bool:
        """The scheme serves positions from a table of ``max_positions`` rows (``learned``):
        positions past it need an extension, an overflow policy or a sliding window."""
        return scheme_class(self.position).has_table

    @property
    def has_fractional_positions(self) -> bool:
        """The scheme reads float positions (``2.5``): the ``stretch`` training recipe's."""
        return scheme_class(self.position).fractional_positions


# Architectures by name. A run preset (posemb train --preset NAME) trains the model preset of
# the same name: one name, one model.
PRESETS: dict[str, dict[str, Any]] = {
    # 36 k parameters: unit tests, quick experiments in a notebook
    "micro": dict(vocab_size=256, max_positions=64, n_layer=2, n_head=2, d_model=32),
    # byte-level, 0.46 M parameters: the `tiny` run preset, trained in minutes on 2 CPU cores
    "tiny": dict(vocab_size=256, max_positions=256, n_layer=2, n_head=4, d_model=128),
    # byte-level, 0.86 M parameters: the shape of nanoGPT's CPU recipe (4 layers x 128)
    "small": dict(vocab_size=256, max_positions=256, n_layer=4, n_head=4, d_model=128),
    # nanoGPT's baby GPT for shakespeare_char (vocab set from the data)
    "shakespeare-char": dict(
        vocab_size=65, max_positions=256, n_layer=6, n_head=6, d_model=384, dropout=0.2, bias=False
    ),
    # Hugging Face GPT-2 (124M); vocab 50257 as released
    "gpt2": dict(vocab_size=50257, max_positions=1024, n_layer=12, n_head=12, d_model=768),
    # GPT-2 124M shape with nanoGPT's padded vocab, for training benchmarks
    "gpt2-124m": dict(vocab_size=50304, max_positions=1024, n_layer=12, n_head=12, d_model=768),
}
