"""posemb <-> Hugging Face GPT-2: one explicit key map, config translation, shape checks.

The two models compute the same function (pre-norm blocks, learned absolute table,
tanh-GELU, LayerNorm, fused q/k/v in the order q, k, v, tied embeddings). They differ in
names and in one layout: GPT-2's ``Conv1D`` stores its weight as ``[in, out]`` where
``nn.Linear`` stores ``[out, in]``, so the four projection matrices are transposed::

    posemb                        Hugging Face (GPT2LMHeadModel)        transpose
    wte.weight                    transformer.wte.weight
    pos.weight                    transformer.wpe.weight
    blocks.{i}.ln_1.{w,b}         transformer.h.{i}.ln_1.{w,b}
    blocks.{i}.attn.qkv.weight    transformer.h.{i}.attn.c_attn.weight    yes  [3d, d] <-> [d, 3d]
    blocks.{i}.attn.proj.weight   transformer.h.{i}.attn.c_proj.weight    yes  [d, d]
    blocks.{i}.ln_2.{w,b}         transformer.h.{i}.ln_2.{w,b}
    blocks.{i}.mlp.fc.weight      transformer.h.{i}.mlp.c_fc.weight       yes  [f, d] <-> [d, f]
    blocks.{i}.mlp.proj.weight    transformer.h.{i}.mlp.c_proj.weight     yes  [d, f] <-> [f, d]
    ln_f.{w,b}                    transformer.ln_f.{w,b}
    lm_head.weight                lm_head.weight  (only when untied)

Two more posemb settings have an exact GPT-2 form (:mod:`.layouts`): ``bias=false`` is
GPT-2 with biases of zeros, and the ``sinusoidal`` scheme is GPT-2 whose ``wpe`` holds the
fixed vectors of positions ``0 .. N-1`` (the same function up to GPT-2's limit of ``N``).

Notation: ``d`` width, ``f`` MLP width, ``V`` vocabulary, ``N`` positions.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..model import ModelConfig, Transformer
from .hf_files import config_float, config_int
from .layouts import KeyPair, map_from_hf, map_to_hf, narrow, widen, widened

# the posemb schemes GPT-2 holds: its own learned table, or the sinusoid written as one
SCHEMES = ("learned", "sinusoidal")
HF_PREFIX = "transformer."
# GPT-2 checkpoints of older transformers also hold the causal mask as buffers; we never need them.
IGNORED_HF_SUFFIXES = (".attn.bias", ".attn.masked_bias")
# posemb activation <-> transformers ACT2FN name (GPT-2's own is "gelu_new", tanh-approximated)
ACTIVATION_TO_HF = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}
ACTIVATION_FROM_HF = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}


def key_map(cfg: ModelConfig) -> list[KeyPair]:
    """Every weight of a GPT-2-shaped posemb model, with its HF name and expected shape."""
    d, f, V, N = cfg.d_model, cfg.ff_dim, cfg.vocab_size, cfg.max_positions
    pairs = [
        KeyPair("wte.weight", "transformer.wte.weight", False, (V, d)),
        KeyPair(Transformer.POSITION_TABLE_KEY, "transformer.wpe.weight", False, (N, d)),
    ]
    for i in range(cfg.n_layer):
        p, h = f"blocks.{i}.", f"transformer.h.{i}."
        pairs += [
            KeyPair(p + "ln_1.weight", h + "ln_1.weight", False, (d,)),
            KeyPair(p + "ln_1.bias", h + "ln_1.bias", False, (d,)),
            KeyPair(p + "attn.qkv.weight", h + "attn.c_attn.weight", True, (3 * d, d)),
            KeyPair(p + "attn.qkv.bias", h + "attn.c_attn.bias", False, (3 * d,)),
            KeyPair(p + "attn.proj.weight", h + "attn.c_proj.weight", True, (d, d)),
            KeyPair(p + "attn.proj.bias", h + "attn.c_proj.bias", False, (d,)),
            KeyPair(p + "ln_2.weight", h + "ln_2.weight", False, (d,)),
            KeyPair(p + "ln_2.bias", h + "ln_2.bias", False, (d,)),
            KeyPair(p + "mlp.fc.weight", h + "mlp.c_fc.weight", True, (f, d)),
            KeyPair(p + "mlp.fc.bias", h + "mlp.c_fc.bias", False, (f,)),
            KeyPair(p + "mlp.proj.weight", h + "mlp.c_proj.weight", True, (d, f)),
            KeyPair(p + "mlp.proj.bias", h + "mlp.c_proj.bias", False, (d,)),
        ]
    pairs += [
        KeyPair("ln_f.weight", "transformer.ln_f.weight", False, (d,)),
        KeyPair("ln_f.bias", "transformer.ln_f.bias", False, (d,)),
    ]
    if not cfg.tie_embeddings:
        pairs.append(KeyPair("lm_head.weight", "lm_head.weight", False, (V, d)))
    return pairs


def wide_config(cfg: ModelConfig) -> ModelConfig:
    """The GPT-2-shaped config equal to ``cfg`` (biases of zeros, a sinusoid as the table)."""
    return widened(cfg, fill_bias=True, table=True)


def to_hf(tensors: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """posemb state dict (tied ``lm_head.weight`` optional) -> GPT2LMHeadModel tensors."""
    given = {k: v for k, v in tensors.items() if not (cfg.tie_embeddings and k == "lm_head.weight")}
    wide = wide_config(cfg)
    return map_to_hf(key_map(wide), widen(given, cfg, wide), "GPT-2")


def normalise_hf_keys(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """GPT2Model (``wte.weight``) or GPT2LMHeadModel (``transformer.wte.weight``) names ->
    the latter; stale causal-mask buffers dropped."""
    prefixed = any(k.startswith(HF_PREFIX) for k in tensors)
    out = {}
    for k, v in tensors.items():
        if k.endswith(IGNORED_HF_SUFFIXES):
            continue
        out[k if prefixed or k == "lm_head.weight" else HF_PREFIX + k] = v
    return out


def from_hf(tensors: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """GPT-2 tensors (either naming) -> posemb state dict (without ``lm_head`` when tied)."""
    given = normalise_hf_keys(tensors)
    if cfg.tie_embeddings:
        given.pop("lm_head.weight", None)  # some checkpoints store the tied copy too
    wide = wide_config(cfg)
    return narrow(map_from_hf(key_map(wide), given, "GPT-2"), cfg, wide)


# -- configs ---------------------------------------------------------------------------------------
def incompatibilities(cfg: ModelConfig) -> list[str]:
    """Each field of ``cfg`` that GPT-2 cannot express, with its value and what GPT-2 needs."""
    problems = []
    opts = cfg.position_options
    if cfg.position not in SCHEMES:
        problems.append(
            f"model.position={cfg.position!r} (GPT-2 has a learned table: 'learned' or "
            "'sinusoidal')"
        )
    elif cfg.has_position_table:
        if opts.get("offset", 0) != 0:
            problems.append(
                f"model.position_options.offset={opts['offset']} (GPT-2 has no reserved rows: 0)"
            )
        if opts.get("overflow", "error") != "error":
            problems.append(
                f"model.position_options.overflow={opts['overflow']!r} (GPT-2 has no overflow "
                "policy: 'error')"
            )
    if not cfg.causal:
        problems.append("model.causal=false (GPT-2 is a causal LM: true)")
    if cfg.norm != "layernorm":
        problems.append(f"model.norm={cfg.norm!r} (GPT-2 uses 'layernorm')")
    if cfg.activation not in ACTIVATION_TO_HF:
        problems.append(
            f"model.activation={cfg.activation!r} (one of {', '.join(ACTIVATION_TO_HF)})"
        )
    return problems


def hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """``config.json`` of a GPT2LMHeadModel equivalent to ``cfg`` (check compatibility first)."""
    cfg = wide_config(cfg)
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.max_positions,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": cfg.d_ff,  # None: 4 * n_embd, as posemb
        "activation_function": ACTIVATION_TO_HF[cfg.activation],
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": cfg.norm_eps,
        "initializer_range": cfg.init_std,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "use_cache": True,
        # posemb tokenizers have no special tokens; GPT-2's 50256 would lie outside a small vocab
        "bos_token_id": None,
        "eos_token_id": None,
        "torch_dtype": "float32",
    }


def export_notes(cfg: ModelConfig) -> list[str]:
    """What the user should know about a GPT-2 export of ``cfg``."""
    if cfg.has_position_table:  # GPT-2's own table
        return []
    return [
        f"GPT-2 holds the sinusoid as a table of {cfg.max_positions} rows: the export serves "
        "that many positions (posemb's scheme serves any)"
    ]


def model_config_from_hf(config: dict[str, Any], where: str) -> ModelConfig:
    """A posemb ``gpt2``-preset ModelConfig from a GPT-2 ``config.json``; refuses what posemb
    cannot compute identically, naming each field."""
    act = config.get("activation_function", "gelu_new")
    problems = []
    if not isinstance(act, str) or act not in ACTIVATION_FROM_HF:
        problems.append(f"activation_function={act!r} (posemb has {', '.join(ACTIVATION_FROM_HF)})")
    if not config.get("scale_attn_weights", True):
        problems.append("scale_attn_weights=false (posemb scales by 1/sqrt(head width))")
    if config.get("scale_attn_by_inverse_layer_idx", False):
        problems.append("scale_attn_by_inverse_layer_idx=true (posemb does not scale by layer)")
    if config.get("add_cross_attention", False):
        problems.append("add_cross_attention=true (posemb has no cross-attention)")
    if problems:
        raise ValueError(f"{where} cannot be imported: {'; '.join(problems)}")
    n_positions = config_int(config, "n_positions", where, default=None)
    if n_positions is None:  # older configs: n_ctx
        n_positions = config_int(config, "n_ctx", where, default=1024)
    # n_inner null (the default) means 4 * n_embd, as posemb's d_ff=None
    d_ff = None if config.get("n_inner") is None else config_int(config, "n_inner", where)
    return ModelConfig.preset(
        "gpt2",
        vocab_size=config_int(config, "vocab_size", where),
        max_positions=n_positions,
        n_layer=config_int(config, "n_layer", where),
        n_head=config_int(config, "n_head", where),
        d_model=config_int(config, "n_embd", where),
        d_ff=d_ff,
        dropout=config_float(config, "resid_pdrop", where, below=1.0, default=0.0),
        norm_eps=config_float(config, "layer_norm_epsilon", where, default=1e-5),
        activation=ACTIVATION_FROM_HF[act],
        tie_embeddings=bool(config.get("tie_word_embeddings", True)),
        init_std=config_float(config, "initializer_range", where, default=0.02),
    )
