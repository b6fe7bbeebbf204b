"""posemb <-> Hugging Face MPT: the export of ALiBi runs.

MPT is the one Hugging Face causal LM whose ALiBi sits in posemb's block exactly:
pre-norm LayerNorm, one fused q/k/v projection in the order q, k, v, logits scaled by
``1/sqrt(dh)`` plus the ALiBi bias, then ``x + MLP(LN(x + Attn(LN(x))))`` with an exact-GELU
MLP of width ``4 d``. Its slopes (``alibi_bias_max=8``) are the paper's for every head
count, and it biases key ``j`` by ``-m (s - 1 - j)`` instead of ``-m (i - j)``: the two
differ by a constant per query row, which softmax ignores. What MPT cannot hold is a bias:
transformers' MPT has none (not in its projections, not in its LayerNorms), so only
``bias=false`` runs match. (BLOOM adds a LayerNorm after the embeddings; Falcon's ALiBi is
rounded to bfloat16 and divided by ``sqrt(dh)``: neither is exact.)

    posemb                        Hugging Face (MptForCausalLM)
    wte.weight                    transformer.wte.weight
    blocks.{i}.ln_1.weight        transformer.blocks.{i}.norm_1.weight
    blocks.{i}.attn.qkv.weight    transformer.blocks.{i}.attn.Wqkv.weight
    blocks.{i}.attn.proj.weight   transformer.blocks.{i}.attn.out_proj.weight
    blocks.{i}.ln_2.weight        transformer.blocks.{i}.norm_2.weight
    blocks.{i}.mlp.fc.weight      transformer.blocks.{i}.ffn.up_proj.weight
    blocks.{i}.mlp.proj.weight    transformer.blocks.{i}.ffn.down_proj.weight
    ln_f.weight                   transformer.norm_f.weight
    lm_head.weight                lm_head.weight  (only when untied)

MPT's bias is built for ``max_seq_len`` keys, so the export serves ``model.max_positions``
tokens; ALiBi itself has no limit: raise ``max_seq_len`` in ``config.json`` to go longer.

Notation: ``d`` width, ``V`` vocabulary, ``dh`` head width.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..model import ModelConfig
from .hf_files import config_float, config_int
from .layouts import KeyPair, map_from_hf, map_to_hf

# the posemb scheme MPT holds
SCHEMES = ("alibi",)
PREFIX = "transformer."


def key_map(cfg: ModelConfig) -> list[KeyPair]:
    """Every weight of an MPT-shaped posemb model, with its HF name and shape."""
    d, f, V = cfg.d_model, cfg.ff_dim, cfg.vocab_size
    pairs = [KeyPair("wte.weight", PREFIX + "wte.weight", False, (V, d))]
    for i in range(cfg.n_layer):
        p, q = f"blocks.{i}.", f"{PREFIX}blocks.{i}."
        pairs += [
            KeyPair(p + "ln_1.weight", q + "norm_1.weight", False, (d,)),
            KeyPair(p + "attn.qkv.weight", q + "attn.Wqkv.weight", False, (3 * d, d)),
            KeyPair(p + "attn.proj.weight", q + "attn.out_proj.weight", False, (d, d)),
            KeyPair(p + "ln_2.weight", q + "norm_2.weight", False, (d,)),
            KeyPair(p + "mlp.fc.weight", q + "ffn.up_proj.weight", False, (f, d)),
            KeyPair(p + "mlp.proj.weight", q + "ffn.down_proj.weight", False, (d, f)),
        ]
    pairs.append(KeyPair("ln_f.weight", PREFIX + "norm_f.weight", False, (d,)))
    if not cfg.tie_embeddings:
        pairs.append(KeyPair("lm_head.weight", "lm_head.weight", False, (V, d)))
    return pairs


def to_hf(tensors: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """posemb state dict -> MptForCausalLM tensors."""
    given = {k: v for k, v in tensors.items() if not (cfg.tie_embeddings and k == "lm_head.weight")}
    return map_to_hf(key_map(cfg), given, "MPT")


def from_hf(tensors: dict[str, Tensor], cfg: ModelConfig) -> dict[str, Tensor]:
    """MptForCausalLM tensors -> posemb state dict."""
    given = dict(tensors)
    if cfg.tie_embeddings:
        given.pop("lm_head.weight", None)  # a stored tied copy
    return map_from_hf(key_map(cfg), given, "MPT")


def incompatibilities(cfg: ModelConfig) -> list[str]:
    """Each field of ``cfg`` MPT cannot express, with its value and what MPT needs."""
    problems = []
    if cfg.position not in SCHEMES:
        problems.append(f"model.position={cfg.position!r} (MPT uses 'alibi')")
    if not cfg.causal:
        problems.append("model.causal=false (MPT is a causal LM: true)")
    if cfg.bias:
        problems.append("model.bias=true (transformers' MPT has no biases: false)")
    if cfg.norm != "layernorm":
        problems.append(f"model.norm={cfg.norm!r} (MPT uses 'layernorm')")
    if cfg.activation != "gelu":
        problems.append(f"model.activation={cfg.activation!r} (MPT's MLP uses exact 'gelu')")
    if cfg.ff_dim != 4 * cfg.d_model:
        problems.append(f"model.d_ff={cfg.d_ff} (MPT's MLP is 4 * d_model = {4 * cfg.d_model})")
    return problems


def hf_config(cfg: ModelConfig) -> dict[str, Any]:
    """``config.json`` of an MptForCausalLM equal to ``cfg`` (check compatibility first)."""
    return {
        "architectures": ["MptForCausalLM"],
        "model_type": "mpt",
        "vocab_size": cfg.vocab_size,
        "d_model": cfg.d_model,
        "n_heads": cfg.n_head,
        "n_layers": cfg.n_layer,
        "expansion_ratio": 4,
        "max_seq_len": cfg.max_positions,
        "attn_config": {
            "alibi": True,
            "alibi_bias_max": 8,
            # typed as an integer by transformers 5's MptAttentionConfig (a float is refused);
            # dropout only acts while training, and model.dropout is kept in resid_pdrop
            "attn_pdrop": 0,
            "attn_type": "multihead_attention",
            "clip_qkv": None,
            "qk_ln": False,
            "softmax_scale": None,
        },
        "no_bias": True,
        "learned_pos_emb": False,
        "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": cfg.dropout,
        "emb_pdrop": cfg.dropout,
        "logit_scale": None,
        "initializer_range": cfg.init_std,
        "tie_word_embeddings": cfg.tie_embeddings,
        "use_cache": True,
        "bos_token_id": None,
        "eos_token_id": None,
        "torch_dtype": "float32",
    }


def export_notes(cfg: ModelConfig) -> list[str]:
    """What the user should know about an MPT export of ``cfg``."""
    notes = [
        f"MPT builds its ALiBi bias for max_seq_len={cfg.max_positions} keys: raise max_seq_len "
        "in config.json to run longer inputs (ALiBi itself has no limit)"
    ]
    if cfg.dropout:
        notes.append(
            f"attn_config.attn_pdrop is written as 0 (transformers 5 types it as an integer); "
            f"set it to {cfg.dropout} to fine-tune with posemb's dropout"
        )
    return notes


def model_config_from_hf(config: dict[str, Any], where: str) -> ModelConfig:
    """A posemb ModelConfig from an MPT ``config.json``; what transformers' MPT computes
    differently from posemb is refused, naming each field."""
    attn = config.get("attn_config") or {}
    attn = attn if isinstance(attn, dict) else {}
    problems = []
    if attn.get("clip_qkv") is not None:
        problems.append(f"attn_config.clip_qkv={attn['clip_qkv']} (posemb does not clip q/k/v)")
    if attn.get("softmax_scale") is not None:
        problems.append(
            f"attn_config.softmax_scale={attn['softmax_scale']} (posemb scales by "
            "1/sqrt(head width))"
        )
    if problems:
        raise ValueError(f"{where} cannot be imported: {'; '.join(problems)}")
    return ModelConfig(
        vocab_size=config_int(config, "vocab_size", where),
        max_positions=config_int(config, "max_seq_len", where),
        n_layer=config_int(config, "n_layers", where),
        n_head=config_int(config, "n_heads", where),
        d_model=config_int(config, "d_model", where),
        dropout=config_float(config, "resid_pdrop", where, below=1.0, default=0.0),
        position="alibi",
        bias=False,
        activation="gelu",
        norm_eps=config_float(config, "layer_norm_epsilon", where, default=1e-5),
        tie_embeddings=bool(config.get("tie_word_embeddings", True)),
        init_std=config_float(config, "initializer_range", where, default=0.02),
    )
