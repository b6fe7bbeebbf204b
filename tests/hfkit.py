"""Tiny Hugging Face model folders with their own tokenizers, for the tests of posemb on
Hugging Face models (evaluation, fine-tuning, sweeps): nothing is fetched.

Each folder is what ``save_pretrained`` writes for a random model of one family (its
objective's head, safetensors), with a ``tokenizer.json`` trained here on a standard-library
module (WordPiece with ``[MASK]`` for BERT and ELECTRA, byte-level BPE with ``<mask>`` for
RoBERTa, byte-level BPE for GPT-2 and OPT) and a ``tokenizer_config.json`` naming the mask
token and the model's limit, as real folders do. The model's vocabulary is the tokenizer's.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import torch

# model_type -> (head class, tokenizer kind, config fields for a table of n positions)
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
FOLDERS = {
    "bert": ("BertForMaskedLM", "wordpiece", lambda n: {**SMALL, "max_position_embeddings": n}),
    "electra": (
        "ElectraForMaskedLM",
        "wordpiece",
        lambda n: {**SMALL, "embedding_size": 16, "max_position_embeddings": n},
    ),
    # RoBERTa's config counts its 2 reserved rows (pad_token_id + 1)
    "roberta": (
        "RobertaForMaskedLM",
        "bpe-mask",
        lambda n: {**SMALL, "max_position_embeddings": n + 2, "pad_token_id": 1},
    ),
    "gpt2": (
        "GPT2LMHeadModel",
        "bpe",
        lambda n: dict(
            n_layer=2, n_embd=32, n_head=2, n_positions=n, bos_token_id=0, eos_token_id=0
        ),
    ),
    # OPT's table has 2 reserved rows in front, its config does not count them
    "opt": (
        "OPTForCausalLM",
        "bpe",
        lambda n: dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            ffn_dim=64,
            word_embed_proj_dim=32,
            max_position_embeddings=n,
            pad_token_id=1,
        ),
    ),
}
MASKED = ("bert", "electra", "roberta")
TEXT_MODULES = ("textwrap.py", "difflib.py")


def training_text() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [(stdlib / m).read_text(encoding="utf-8") for m in TEXT_MODULES]


def tiny_tokenizer(kind: str, vocab_size: int = 300):
    """A ``tokenizers.Tokenizer`` of ``kind`` trained on standard-library text."""
    import tokenizers as tk

    if kind == "wordpiece":
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok = tk.Tokenizer(tk.models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = tk.normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
        tok.decoder = tk.decoders.WordPiece()
        trainer = tk.trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=specials, show_progress=False
        )
    else:
        specials = ["<s>", "<pad>", "</s>", "<unk>"] + (["<mask>"] if kind == "bpe-mask" else [])
        tok = tk.Tokenizer(tk.models.BPE())
        tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    tok.train_from_iterator(training_text(), trainer=trainer)
    return tok


def tiny_hf_folder(
    model_type: str, folder: Path, positions: int = 32, seed: int = 0, head: bool = True
) -> Path:
    """A random ``model_type`` model whose table serves ``positions``, written as
    ``save_pretrained`` writes it, with its tokenizer. ``head=False``: the bare base model
    (a ``BertModel``, as sentence-transformers folders hold)."""
    import transformers

    cls, kind, fields = FOLDERS[model_type]
    tok = tiny_tokenizer(kind)
    torch.manual_seed(seed)
    config = transformers.AutoConfig.for_model(
        model_type, vocab_size=tok.get_vocab_size(), **fields(positions)
    )
    model = getattr(transformers, cls)(config)
    if not head:
        model = model.base_model
    with torch.no_grad():  # random biases and gains too: a swapped tensor changes the output
        g = torch.Generator().manual_seed(seed)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save(str(folder / "tokenizer.json"))
    mask = {"wordpiece": "[MASK]", "bpe-mask": "<mask>"}.get(kind)
    tokenizer_config = {"model_max_length": positions, **({"mask_token": mask} if mask else {})}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return folder
