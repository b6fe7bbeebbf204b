"""Tokenizers across the posemb / Hugging Face boundary.

Export (posemb run -> HF directory):

- ``bpe``: the run's ``tokenizer.json`` *is* a Hugging Face ``tokenizers`` file; it is
  copied with a minimal ``tokenizer_config.json`` (``PreTrainedTokenizerFast``), so
  ``AutoTokenizer.from_pretrained(DST)`` encodes exactly as posemb does.
- ``byte``: expressed exactly as a byte-level BPE with the 256 byte symbols and no merges
  (id = byte value, GPT-2's printable stand-in for each byte), same two files.
- ``char``: not expressible (a ``transformers`` tokenizer maps unknown characters to an
  unknown token or drops them; posemb's raises). No HF tokenizer is written.

For ``byte`` and ``char`` the posemb file is also kept as ``posemb_tokenizer.json``, which
``import-hf`` prefers, so a round trip restores the run's own tokenizer.

Import (HF directory -> posemb run), first found wins: ``posemb_tokenizer.json``,
``tokenizer.json``, ``vocab.json`` + ``merges.txt`` (byte-level BPE, GPT-2's layout), else
the byte tokenizer with a warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data import BPETokenizer, Tokenizer, build_tokenizer, inside, load_tokenizer
from ..files import atomic_write_text, read_json, write_json

POSEMB_TOKENIZER = "posemb_tokenizer.json"
HF_TOKENIZER = "tokenizer.json"
HF_TOKENIZER_CONFIG = "tokenizer_config.json"


def byte_symbols() -> list[str]:
    """The printable character standing for each byte 0..255 in byte-level BPE files.

    Printable Latin-1 bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for themselves;
    the other 68 bytes get U+0100, U+0101, ... in byte order. E.g. byte 32 (space) -> ``Ġ``.
    """
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    symbols, extra = [], 0
    for b in range(256):
        if b in printable:
            symbols.append(chr(b))
        else:
            symbols.append(chr(0x100 + extra))
            extra += 1
    return symbols


def byte_level_tokenizer() -> Any:
    """A ``tokenizers.Tokenizer`` that encodes as posemb's byte tokenizer: id = UTF-8 byte."""
    import tokenizers as tk

    vocab = {c: i for i, c in enumerate(byte_symbols())}
    hf = tk.Tokenizer(tk.models.BPE(vocab=vocab, merges=[]))
    hf.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    hf.decoder = tk.decoders.ByteLevel()
    return hf


def export_tokenizer(
    tokenizer: Tokenizer | None,
    dst: Path,
    model_max_length: int,
    special: dict[str, Any] | None = None,
) -> list[str]:
    """Write the HF tokenizer files that express ``tokenizer``; return notes for the user.

    ``special``: ``tokenizer_config.json`` fields kept from the model this run was imported
    from (``eos_token``, ``bos_token``, ...; see :mod:`.metadata`).
    """
    if tokenizer is None:
        return ["the run has no tokenizer.json: no tokenizer files were written"]
    if tokenizer.kind != "bpe":  # posemb's own file, under a name transformers ignores
        atomic_write_text(
            dst / POSEMB_TOKENIZER,
            json.dumps(tokenizer.to_dict(), ensure_ascii=False, sort_keys=True),
        )
    if tokenizer.kind == "char":
        return [
            "the run's 'char' tokenizer has no transformers equivalent (posemb raises on an "
            "unknown character); no tokenizer.json was written (posemb's file is kept as "
            f"{POSEMB_TOKENIZER})"
        ]
    hf = tokenizer.hf if tokenizer.kind == "bpe" else byte_level_tokenizer()
    atomic_write_text(dst / HF_TOKENIZER, hf.to_str())
    write_json(
        dst / HF_TOKENIZER_CONFIG,
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": model_max_length,
            "clean_up_tokenization_spaces": False,
            **(special or {}),
        },
    )
    return []


def import_tokenizer(src: Path) -> tuple[Tokenizer, list[str]]:
    """The tokenizer of a Hugging Face directory, and notes (warnings) for the user.

    Every file is read through :func:`posemb.data.inside`: a link leaving ``src`` is refused.
    """
    src = Path(src)
    for name in (POSEMB_TOKENIZER, HF_TOKENIZER):
        if inside(src, name).exists():
            return load_tokenizer(src / name), []
    vocab, merges = inside(src, "vocab.json"), inside(src, "merges.txt")
    if vocab.exists() and merges.exists():
        return _bpe_from_vocab_merges(src, vocab, merges), [
            "built tokenizer.json from vocab.json + merges.txt (byte-level BPE)"
        ]
    return build_tokenizer("byte"), [
        f"warning: {str(src)!r} has no tokenizer ({HF_TOKENIZER} or vocab.json + merges.txt); "
        "the run gets posemb's byte tokenizer, which is NOT the model's own: its text will be "
        "garbage until you fine-tune or replace tokenizer.json"
    ]


def model_tokenizer(src: Path) -> Tokenizer:
    """A Hugging Face folder's own tokenizer (``tokenizer.json``, ``vocab.json`` +
    ``merges.txt``, or BERT's ``vocab.txt``), to score and train the model in its own tokens.

    Raises:
        ValueError: the folder has none of them (posemb never substitutes another).
    """
    src = Path(src)
    if inside(src, HF_TOKENIZER).exists():
        return load_tokenizer(src / HF_TOKENIZER)
    vocab, merges = inside(src, "vocab.json"), inside(src, "merges.txt")
    if vocab.exists() and merges.exists():
        return _bpe_from_vocab_merges(src, vocab, merges)
    if inside(src, "vocab.txt").exists():
        return _wordpiece(src, src / "vocab.txt")
    raise ValueError(
        f"{str(src)!r} has no tokenizer ({HF_TOKENIZER}, vocab.json + merges.txt or vocab.txt): "
        "the model is scored and trained in its own tokens; copy its tokenizer files in"
    )


def special_token_id(src: Path, tokenizer: Tokenizer, name: str) -> int | None:
    """The id of a special token (``name``: ``"mask_token"``, ``"pad_token"``, ...) as the
    folder's ``tokenizer_config.json`` or ``special_tokens_map.json`` names it; for the mask
    token, ``[MASK]`` or ``<mask>`` when neither does. None when the vocabulary lacks it."""
    found = None
    for file in (HF_TOKENIZER_CONFIG, "special_tokens_map.json"):
        path = inside(Path(src), file)
        value = read_json(path).get(name) if path.is_file() else None
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            found = value
            break
    candidates = [found] if found else (["[MASK]", "<mask>"] if name == "mask_token" else [])
    for token in candidates:
        token_id = tokenizer.hf.token_to_id(token) if isinstance(tokenizer, BPETokenizer) else None
        if token_id is not None:
            return int(token_id)
    return None


def _wordpiece(src: Path, vocab: Path) -> BPETokenizer:
    """BERT's WordPiece from its ``vocab.txt`` (lower-casing as ``tokenizer_config.json``
    says, as BERT's uncased models do by default)."""
    import tokenizers as tk

    config = inside(src, HF_TOKENIZER_CONFIG)
    options = read_json(config) if config.exists() else {}
    try:
        hf = tk.Tokenizer(tk.models.WordPiece.from_file(str(vocab), unk_token="[UNK]"))
    except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception
        raise ValueError(f"{str(vocab)!r} is not a WordPiece vocabulary ({e})") from None
    hf.normalizer = tk.normalizers.BertNormalizer(
        lowercase=bool(options.get("do_lower_case", True))
    )
    hf.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    hf.decoder = tk.decoders.WordPiece()
    return BPETokenizer(hf)


def _bpe_from_vocab_merges(src: Path, vocab: Path, merges: Path) -> BPETokenizer:
    """GPT-2's byte-level BPE from its two files; a file tokenizers cannot read names itself."""
    import tokenizers as tk

    config = inside(src, HF_TOKENIZER_CONFIG)
    options = read_json(config) if config.exists() else {}
    try:
        hf = tk.Tokenizer(tk.models.BPE.from_file(str(vocab), str(merges)))
    except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception
        raise ValueError(
            f"{str(vocab)!r} + {str(merges)!r} are not a BPE vocabulary and merges list "
            f"tokenizers can read ({e})"
        ) from None
    hf.pre_tokenizer = tk.pre_tokenizers.ByteLevel(
        add_prefix_space=bool(options.get("add_prefix_space", False))
    )
    hf.decoder = tk.decoders.ByteLevel()
    return BPETokenizer(hf)
