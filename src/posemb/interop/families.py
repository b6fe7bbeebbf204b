"""The one table of Hugging Face families with learned position tables.

Each row (``model_type`` in ``config.json``) says where every position table of the model
lives, which ``config.json`` fields hold its size, and how many reserved rows it has in
front. ``posemb extend`` grows every table of a row; ``posemb analyze`` reads one. Adding
a family is adding one row (and its tiny model in ``tests/interop/test_families.py``).

The offset convention: ``N`` always counts the positions a model can serve. A table with
reserved rows has ``offset + N`` rows; some configs count the reserved rows in their limit
(RoBERTa: ``max_position_embeddings = N + 2``), others do not (OPT, BART: ``= N``)::

    row kind            table rows   config limit   reserved rows
    GPT-2, BERT         N            N              0
    RoBERTa-like        N + 2        N + 2          pad_token_id + 1 (2 in every release)
    OPT, BART, BioGPT   N + 2        N              2 (a fixed offset in the model's code)

Encoder-decoder models have one table per stack (BART: ``encoder.`` and ``decoder.``);
Whisper's encoder table is a fixed sinusoid over audio frames, so only the decoder's is
listed. Tokenizer limits (``model_max_length``, ``truncation.max_length``, ...) follow the
first table of a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .hf_files import config_int


@dataclass(frozen=True)
class Table:
    """One learned position table.

    Attributes:
        key: the tensor's name without the base-model prefix (``wpe.weight`` matches
            ``wpe.weight`` and ``transformer.wpe.weight``).
        limit: the ``config.json`` field holding the table's size.
        also: other fields equal to the limit when present (GPT-2's old ``n_ctx``).
        offset: reserved leading rows.
        counts_offset: the limit counts the reserved rows too (RoBERTa: ``N + 2``).
        pad_offset: the reserved rows are ``pad_token_id + 1`` (RoBERTa's ``padding_idx``
            row and the rows before it) rather than the fixed ``offset``.
    """

    key: str
    limit: str
    also: tuple[str, ...] = ()
    offset: int = 0
    counts_offset: bool = False
    pad_offset: bool = False


@dataclass(frozen=True)
class Family:
    """Where a Hugging Face architecture keeps its position tables.

    Attributes:
        tables: every learned table (encoder-decoder models: one per stack).
        masks: key suffixes of stale causal-mask buffers ``[1, 1, N, N]`` that old
            checkpoints stored and transformers rebuilds; they are dropped.
        fixed: ``(field, value)`` pairs of ``config.json`` meaning the table is a fixed
            sinusoid, not learned (DistilBERT's ``sinusoidal_pos_embds=true``): refused.
    """

    tables: tuple[Table, ...]
    masks: tuple[str, ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()


_EMB = "embeddings.position_embeddings.weight"
_MAX = "max_position_embeddings"


def _bert(**kw: Any) -> Family:  # BERT's embeddings: N rows, no offset
    return Family((Table(_EMB, _MAX),), **kw)


def _roberta() -> Family:  # RoBERTa's embeddings: pad_token_id + 1 reserved rows, counted
    return Family((Table(_EMB, _MAX, offset=2, counts_offset=True, pad_offset=True),))


def _gpt(limit: str, *, also: tuple[str, ...] = (), masks: tuple[str, ...] = ()) -> Family:
    return Family((Table("wpe.weight", limit, also),), masks=masks)


def _seq2seq(offset: int) -> Family:  # BART's layout: one table per stack, same limit
    return Family(
        (
            Table("encoder.embed_positions.weight", _MAX, offset=offset),
            Table("decoder.embed_positions.weight", _MAX, offset=offset),
        )
    )


FAMILIES: dict[str, Family] = {
    # decoders with GPT-2's wpe table
    "gpt2": _gpt("n_positions", also=("n_ctx",), masks=(".attn.bias",)),
    "gpt_neo": _gpt(_MAX, masks=(".attn.attention.bias",)),
    "gpt_bigcode": _gpt("n_positions", also=("n_ctx",)),
    "imagegpt": _gpt("n_positions", also=("n_ctx",), masks=(".attn.bias",)),
    # decoders with a fixed offset of 2
    "opt": Family((Table("decoder.embed_positions.weight", _MAX, offset=2),)),
    "biogpt": Family((Table("embed_positions.weight", _MAX, offset=2),)),
    # BERT's embeddings
    "bert": _bert(),
    "distilbert": _bert(fixed=(("sinusoidal_pos_embds", True),)),
    "electra": _bert(),
    "albert": _bert(),
    "ernie": _bert(),
    "megatron-bert": _bert(),
    "big_bird": _bert(),
    "layoutlm": _bert(),  # its 2-D x/y/h/w tables index page coordinates, not positions
    "splinter": _bert(),
    "mobilebert": _bert(),
    "convbert": _bert(),
    "rembert": _bert(),
    # RoBERTa's embeddings
    "roberta": _roberta(),
    "xlm-roberta": _roberta(),
    "camembert": _roberta(),
    "xlm-roberta-xl": _roberta(),
    "data2vec-text": _roberta(),
    "roberta-prelayernorm": _roberta(),
    # encoder-decoder: one table per stack
    "bart": _seq2seq(2),
    "mbart": _seq2seq(2),
    "plbart": _seq2seq(2),
    "mvp": _seq2seq(2),
    "blenderbot": _seq2seq(0),
    "blenderbot-small": _seq2seq(0),
    "whisper": Family((Table("decoder.embed_positions.weight", "max_target_positions"),)),
}


def family_of(config: dict[str, Any], where: str) -> tuple[str, Family]:
    """``(model_type, row)`` of a Hugging Face ``config.json``; an unknown type or a fixed
    (not learned) table is one line naming it and listing what is supported."""
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        from .vision import VISION_FAMILIES  # a vision tower: another set of commands

        if isinstance(model_type, str) and model_type in VISION_FAMILIES:
            raise ValueError(
                f"{where} is a {model_type!r} vision model: posemb grows its patch grid with "
                "posemb extend SRC DST --image-size PX and draws it with posemb analyze; "
                "eval, train --init, sweep --hf and probe-order take text models only "
                "(docs/HF.md)"
            )
        raise ValueError(
            f"{where} is a {model_type!r} model; posemb works with the learned absolute "
            f"tables of {', '.join(FAMILIES)} (docs/HF.md), and posemb runs"
        )
    family = FAMILIES[model_type]
    for field, value in family.fixed:
        if config.get(field) == value:
            raise ValueError(
                f"{where}: {field}={value!r} means fixed sinusoidal positions, not a learned table"
            )
    kind = config.get("position_embedding_type", "absolute")
    if kind not in ("absolute", None):  # transformers 4.x BERT-likes: relative distance tables
        raise ValueError(
            f"{where}: position_embedding_type={kind!r} adds relative-distance tables sized by "
            "max_position_embeddings; posemb extend handles 'absolute' tables only"
        )
    return model_type, family


def table_offset(table: Table, config: dict[str, Any], where: str) -> int:
    """The reserved rows in front of ``table`` (RoBERTa-like: ``pad_token_id + 1``)."""
    if table.pad_offset and config.get("pad_token_id") is not None:
        return config_int(config, "pad_token_id", where, minimum=0) + 1
    return table.offset


def positions_served(table: Table, config: dict[str, Any], where: str) -> tuple[int, int, int]:
    """``(stored limit, reserved rows, positions N)`` of ``table`` from ``config.json``."""
    offset = table_offset(table, config, where)
    stored = config_int(
        config, table.limit, where, minimum=offset + 1 if table.counts_offset else 1
    )
    return stored, offset, stored - offset if table.counts_offset else stored


def table_sizes(
    table: Table, config: dict[str, Any], where: str, key: str, rows: int
) -> tuple[int, int, int]:
    """:func:`positions_served`, checked against the table's ``rows`` in the weights: a config
    that does not describe its table (``n_positions: 1000000000000`` beside 64 rows) is
    refused naming the field, before anything is sized from it."""
    stored, offset, served = positions_served(table, config, where)
    if rows != offset + served:
        reserved = f"{offset} reserved rows + " if offset else ""
        raise ValueError(
            f"{where}: {table.limit}={stored} does not match the position table {key}, which has "
            f"{rows} rows ({reserved}{rows - offset} positions): the config does not belong to "
            f"these weights; fix {table.limit}"
        )
    return stored, offset, served


def matches(key: str, suffix: str) -> bool:
    """Whether tensor ``key`` is ``suffix`` or ``PREFIX.suffix``."""
    return key == suffix or key.endswith("." + suffix)
