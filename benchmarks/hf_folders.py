"""Random Hugging Face model folders with tokenizers trained on the standard library's train
split (posemb's built-in text), for the benchmarks of Hugging Face models
(``hf_end_to_end.py``, ``hf_speed.py``). Nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def train_tokenizer(kind: str, vocab: int, bpe_specials: tuple[str, ...] = ()):
    """WordPiece with BERT's special tokens (``kind="bert"``), else byte-level BPE."""
    import tokenizers as tk

    from posemb.data import open_source

    texts = list(open_source("stdlib").train_texts())
    if kind == "bert":
        tok = tk.Tokenizer(tk.models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = tk.normalizers.BertNormalizer(lowercase=False)
        tok.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
        tok.decoder = tk.decoders.WordPiece()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        trainer = tk.trainers.WordPieceTrainer(vocab_size=vocab, special_tokens=specials)
    else:
        tok = tk.Tokenizer(tk.models.BPE())
        tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab,
            special_tokens=list(bpe_specials),
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
        )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def random_folder(
    kind: str,
    folder: Path,
    cls: str,
    fields: dict[str, Any],
    vocab: int,
    positions: int,
    bpe_specials: tuple[str, ...] = (),
) -> Path:
    """A random ``cls`` model of ``kind`` (seed 0) with its tokenizer, as ``save_pretrained``
    writes it; ``tokenizer_config.json`` names its limit (and BERT's mask and pad tokens)."""
    import torch
    import transformers

    tok = train_tokenizer(kind, vocab, bpe_specials)
    torch.manual_seed(0)
    config = transformers.AutoConfig.for_model(kind, vocab_size=tok.get_vocab_size(), **fields)
    getattr(transformers, cls)(config).save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    extra = {"mask_token": "[MASK]", "pad_token": "[PAD]"} if kind == "bert" else {}
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"model_max_length": positions, **extra}), encoding="utf-8"
    )
    return folder
