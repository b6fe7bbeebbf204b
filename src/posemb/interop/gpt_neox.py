"""posemb <-> Hugging Face GPT-NeoX: the export of RoPE and NoPE runs.

GPT-NeoX with ``use_parallel_residual=false`` has posemb's block exactly: pre-norm
LayerNorm (with bias), one fused q/k/v projection, RoPE on queries and keys, softmax
scaled by ``1/sqrt(dh)``, then ``x + MLP(LN(x + Attn(LN(x))))`` with a two-layer MLP. The
rotation is the half-split layout (``rotate_half``), posemb's default, with
``rotary_pct=1.0`` and base ``rotary_emb_base``; ``rotary_pct=0.0`` rotates nothing, which
is NoPE. The differences are names and one layout: GPT-NeoX groups the fused projection's
rows per head (``*``: rows ``[3, h, dh]`` <-> ``[h, 3, dh]``)::

    posemb                        Hugging Face (GPTNeoXForCausalLM)                   layout
    wte.weight                    gpt_neox.embed_in.weight
    blocks.{i}.ln_1.{w,b}         gpt_neox.layers.{i}.input_layernorm.{w,b}
    blocks.{i}.attn.qkv.{w,b}     gpt_neox.layers.{i}.attention.query_key_value.{w,b} *
    blocks.{i}.attn.proj.{w,b}    gpt_neox.layers.{i}.attention.dense.{w,b}
    blocks.{i}.ln_2.{w,b}         gpt_neox.layers.{i}.post_attention_layernorm.{w,b}
    blocks.{i}.mlp.fc.{w,b}       gpt_neox.layers.{i}.mlp.dense_h_to_4h.{w,b}
    blocks.{i}.mlp.proj.{w,b}     gpt_neox.layers.{i}.mlp.dense_4h_to_h.{w,b}
    ln_f.{w,b}                    gpt_neox.final_layer_norm.{w,b}
    lm_head.weight                embed_out.weight  (untied; transformers 5 names it lm_head)

``bias=false`` is GPT-NeoX with biases of zeros, ``interleaved=true`` RoPE the half-split
one with each head's q/k channels permuted (:mod:`.layouts`). The config is written with
the field names every transformers version reads (``rotary_pct``, ``rotary_emb_base``,
``rope_scaling``); transformers 5 turns them into ``rope_parameters``.

Notation: ``d`` width, ``f`` MLP width, ``V`` vocabulary, ``h`` heads, ``dh`` head width.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..model import ModelConfig
from ..positional import scheme_class
from .hf_files import config_float, config_int
from .layouts import KeyPair, map_from_hf, map_to_hf, narrow, widen, widened

# the posemb schemes GPT-NeoX holds: RoPE, or none (rotary_pct=0.0)
SCHEMES = ("rope", "nope")
PREFIX = "gpt_neox."
# posemb activation -> transformers ACT2FN name computing exactly the same function
ACTIVATION_TO_HF = {
    "gelu_tanh": "gelu_pytorch_tanh",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
}
ACTIVATION_FROM_HF = {
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}
# the unembedding: transformers 4 names it embed_out, transformers 5 lm_head (and renames
# embed_out when it loads); we write the name both read
HEAD, HEAD_V5 = "embed_out.weight", "lm_head.weight"


def wide_config(cfg: ModelConfig) -> ModelConfig:
    """The config GPT-NeoX holds for ``cfg`` (biases of zeros, half-split rotation)."""
    return widened(cfg, fill_bias=True, table=False)


def key_map(cfg: ModelConfig) -> list[KeyPair]:
    """Every weight of a GPT-NeoX-shaped posemb model, with its HF name and shape."""
    d, f, V, h = cfg.d_model, cfg.ff_dim, cfg.vocab_size, cfg.n_head
    pairs = [KeyPair("wte.weight", PREFIX + "embed_in.weight", False, (V, d))]
    for i in range(cfg.n_layer):
        p, q = f"blocks.{i}.", f"{PREFIX}layers.{i}."
        pairs += [
            KeyPair(p + "ln_1.weight", q + "input_layernorm.weight", False, (d,)),
            KeyPair(p + "ln_1.bias", q + "input_layernorm.bias", False, (d,)),
            KeyPair(
                p + "attn.qkv.weight", q + "attention.query_key_value.weight", False, (3 * d, d), h
            ),
            KeyPair(p + "attn.qkv.bias", q + "attention.query_key_value.bias", False, (3 * d,), h),
            KeyPair(p + "attn.proj.weight", q + "attention.dense.weight", False, (d, d)),
            KeyPair(p + "attn.proj.bias", q + "attention.dense.bias", False, (d,)),
            KeyPair(p + "ln_2.weight", q + "post_attention_layernorm.weight", False, (d,)),
            KeyPair(p + "ln_2.bias", q + "post_attention_layernorm.bias", False, (d,)),
            KeyPair(p + "mlp.fc.weight", q + "mlp.dense_h_to_4h.weight", False, (f, d)),
            KeyPair(p + "mlp.fc.bias", q + "mlp.dense_h_to_4h.bias", False, (f,)),
            KeyPair(p + "mlp.proj.weight", q + "mlp.dense_4h_to_h.weight", False, (d, f)),
            KeyPair(p + "mlp.proj.bias", q + "mlp.dense_4h_to_h.bias", False, (d,)),
        ]
    pairs += [
        KeyPair("ln_f.weight", PREFIX + "final_layer_norm.weight", False, (d,)),
        KeyPair("ln_f.bias", PREFIX + "final_layer_norm.bias", False, (d,)),
    ]
    if not cfg.tie_embeddings:
        pairs.append(KeyPair("lm_head.weight", HEAD, False, (V, d)))
    return pairs


def to_hf(tensors: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """posemb state dict -> GPTNeoXForCausalLM tensors."""
    given = {k: v for k, v in tensors.items() if not (cfg.tie_embeddings and k == "lm_head.weight")}
    wide = wide_config(cfg)
    return map_to_hf(key_map(wide), widen(given, cfg, wide), "GPT-NeoX")


def from_hf(tensors: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """GPTNeoXForCausalLM tensors (either head name) -> posemb state dict."""
    given = {HEAD if k == HEAD_V5 else k: v for k, v in tensors.items()}
    given = {k: v for k, v in given.items() if not k.endswith((".attention.bias", ".masked_bias"))}
    if cfg.tie_embeddings:
        given.pop(HEAD, None)  # a stored tied copy
    wide = wide_config(cfg)
    return narrow(map_from_hf(key_map(wide), given, "GPT-NeoX"), cfg, wide)


def incompatibilities(cfg: ModelConfig) -> list[str]:
    """Each field of ``cfg`` GPT-NeoX cannot express, with its value and what it needs."""
    problems = []
    opts = cfg.position_options
    if cfg.position not in SCHEMES:
        problems.append(f"model.position={cfg.position!r} (GPT-NeoX rotates: 'rope' or 'nope')")
    if not cfg.causal:
        problems.append("model.causal=false (GPT-NeoX is a causal LM: true)")
    if cfg.norm != "layernorm":
        problems.append(f"model.norm={cfg.norm!r} (GPT-NeoX uses 'layernorm')")
    if cfg.activation not in ACTIVATION_TO_HF:
        problems.append(
            f"model.activation={cfg.activation!r} (one of {', '.join(ACTIVATION_TO_HF)})"
        )
    if _rotates(cfg) and float(opts.get("scale", 1.0)) < 1.0:
        problems.append(
            f"model.position_options.scale={opts['scale']} (transformers' linear RoPE scaling "
            "needs a factor >= 1)"
        )
    return problems


def _rotates(cfg: ModelConfig) -> bool:
    """The scheme rotates q/k (RoPE): GPT-NeoX rotates every channel, else none."""
    return scheme_class(cfg.position).rotates_qk


def hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """``config.json`` of a GPTNeoXForCausalLM equal to ``cfg`` (check compatibility first)."""
    cfg = wide_config(cfg)
    opts = cfg.position_options
    scale = float(opts.get("scale", 1.0))
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_positions,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "intermediate_size": cfg.ff_dim,
        "hidden_act": ACTIVATION_TO_HF[cfg.activation],
        "rotary_pct": 1.0 if _rotates(cfg) else 0.0,
        "rotary_emb_base": float(opts.get("base", 10000.0)),
        "rope_scaling": {"type": "linear", "factor": scale} if scale != 1.0 else None,
        "use_parallel_residual": False,  # posemb's sequential block: x + MLP(LN(x + Attn))
        "attention_bias": True,
        "layer_norm_eps": cfg.norm_eps,
        "hidden_dropout": cfg.dropout,
        "attention_dropout": cfg.dropout,
        "initializer_range": cfg.init_std,
        "tie_word_embeddings": cfg.tie_embeddings,
        "use_cache": True,
        "bos_token_id": None,
        "eos_token_id": None,
        "torch_dtype": "float32",
    }


def export_notes(cfg: ModelConfig) -> list[str]:
    """What the user should know about a GPT-NeoX export of ``cfg`` (nothing: it is exact)."""
    return []


def _rope(config: dict[str, Any], where: str) -> tuple[float, float, float, list[str]]:
    """(rotary fraction, base, linear scale, problems) from either config generation."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    params = params if isinstance(params, dict) else {}
    pct = params.get("partial_rotary_factor", config.get("rotary_pct", 0.25))
    base = params.get("rope_theta", config.get("rotary_emb_base", config.get("rope_theta", 10000)))
    kind = params.get("rope_type", params.get("type", "default"))
    problems = []
    if pct not in (0, 0.0, 1, 1.0):
        problems.append(f"rotary_pct={pct!r} (posemb rotates all channels (1.0) or none (0.0))")
    if kind not in ("default", "linear"):
        problems.append(f"rope type {kind!r} (posemb has plain and linearly scaled RoPE)")
    factor = config_float(params, "factor", where, default=1.0) if kind == "linear" else 1.0
    base = config_float({"rotary_emb_base": base}, "rotary_emb_base", where, minimum=1.0)
    return float(pct), base, factor, problems


def model_config_from_hf(config: dict[str, Any], where: str) -> ModelConfig:
    """A posemb ModelConfig from a GPT-NeoX ``config.json``; what posemb cannot compute
    identically is refused, naming each field."""
    act = config.get("hidden_act", "gelu")
    pct, base, scale, problems = _rope(config, where)
    if not isinstance(act, str) or act not in ACTIVATION_FROM_HF:
        problems.append(f"hidden_act={act!r} (posemb has {', '.join(ACTIVATION_FROM_HF)})")
    if config.get("use_parallel_residual", True):
        problems.append("use_parallel_residual=true (posemb's block is sequential)")
    if not config.get("attention_bias", True):
        problems.append("attention_bias=false (posemb's attention has biases, or none at all)")
    if problems:
        raise ValueError(f"{where} cannot be imported: {'; '.join(problems)}")
    d, f = config_int(config, "hidden_size", where), config_int(config, "intermediate_size", where)
    options: dict[str, Any] = {}  # only what differs from posemb's defaults
    if pct and base != 10000.0:
        options["base"] = base
    if pct and scale != 1.0:
        options["scale"] = scale
    return ModelConfig(
        vocab_size=config_int(config, "vocab_size", where),
        max_positions=config_int(config, "max_position_embeddings", where),
        n_layer=config_int(config, "num_hidden_layers", where),
        n_head=config_int(config, "num_attention_heads", where),
        d_model=d,
        d_ff=None if f == 4 * d else f,  # None: 4 * d_model, as a run's default
        dropout=config_float(config, "hidden_dropout", where, below=1.0, default=0.0),
        position="rope" if pct else "nope",
        position_options=options,
        norm_eps=config_float(config, "layer_norm_eps", where, default=1e-5),
        activation=ACTIVATION_FROM_HF[act],
        tie_embeddings=bool(config.get("tie_word_embeddings", False)),
        init_std=config_float(config, "initializer_range", where, default=0.02),
    )
