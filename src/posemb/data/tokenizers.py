"""Tokenizers: ``byte`` (the default), ``char`` and ``bpe``, saved as ``tokenizer.json``.

Kinds (``data.tokenizer``):

- ``byte``: 256 ids, one per UTF-8 byte. Needs no training; exact round-trip for any string.
- ``char``: one id per character of the training text (sorted), plus ``"\\n"`` always, so
  the document separator encodes. A character outside the vocabulary raises ``ValueError``
  naming it (there is no unknown id: a silent ``<unk>`` would hide a data mismatch).
- ``bpe``: byte-level BPE trained with the optional Hugging Face ``tokenizers`` package
  (``vocab_size`` option); exact round-trip for any string. ``bpe:PATH`` loads an existing
  ``tokenizer.json`` (a file, or a directory holding one) instead of training.

Saved format: one file, ``DIR/tokenizer.json``. For ``bpe`` it is the Hugging Face
``tokenizer.json`` itself (loadable by ``tokenizers.Tokenizer.from_file``). For ``byte`` and
``char`` it is a small JSON object ``{"format": "posemb-tokenizer", "version": 1,
"kind": "char", "vocab": ["\\n", " ", "!", ...]}`` (``vocab`` only for ``char``).
:func:`load_tokenizer` tells them apart by the ``format`` key. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..files import atomic_write_text
from ..positional.checks import unknown
from .paths import inside

TOKENIZER_FILE = "tokenizer.json"
FORMAT = "posemb-tokenizer"
KINDS: tuple[str, ...] = ("byte", "char", "bpe")
DEFAULT_BPE_VOCAB = 4096
_HF_MISSING = (
    "the 'bpe' tokenizer needs the optional 'tokenizers' package: pip install 'posemb[hf]'"
)


@runtime_checkable
class Tokenizer(Protocol):
    """What the rest of posemb needs from a tokenizer."""

    kind: str
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Text to token ids."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Token ids to text; ids ``>= vocab_size`` raise ``ValueError``."""
        ...

    def save(self, directory: str | Path) -> Path:
        """Write ``directory/tokenizer.json`` atomically; return its path."""
        ...

    def fingerprint(self) -> str:
        """sha256 of the saved JSON: equal fingerprints encode identically."""
        ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255. Decoding replaces an invalid byte sequence with U+FFFD."""

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        _check_ids(ids, self.vocab_size)
        return bytes(ids).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": 1, "kind": "byte"}

    def save(self, directory: str | Path) -> Path:
        return atomic_write_text(Path(directory) / TOKENIZER_FILE, _dumps(self.to_dict()))

    def fingerprint(self) -> str:
        return _sha(_dumps(self.to_dict()))

    def __repr__(self) -> str:
        return "ByteTokenizer()"


class CharTokenizer:
    """One id per character in ``vocab`` (its index). Unknown characters raise ``ValueError``.

    Args:
        vocab: the characters, each a string of length 1, without duplicates.
    """

    kind = "char"

    def __init__(self, vocab: Sequence[str]) -> None:
        vocab = list(vocab)
        if any(not isinstance(c, str) or len(c) != 1 for c in vocab) or len(set(vocab)) != len(
            vocab
        ):
            raise ValueError("char vocabulary must be distinct single characters")
        if not vocab:
            raise ValueError("char vocabulary is empty: train it on some text")
        self.vocab = vocab
        self.vocab_size = len(vocab)
        self._index = {c: i for i, c in enumerate(vocab)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        """The sorted set of characters in ``texts``, plus ``"\\n"`` (the separator's)."""
        chars: set[str] = {"\n"}
        for text in texts:
            chars.update(text)
        return cls(sorted(chars))

    def encode(self, text: str) -> list[int]:
        index = self._index
        try:
            return [index[c] for c in text]
        except KeyError as err:
            c = err.args[0]
            raise ValueError(
                f"character {c!r} (U+{ord(c):04X}) at offset {text.index(c)} is not in this "
                f"char tokenizer's vocabulary of {self.vocab_size} characters; train the "
                "tokenizer on text that contains it, or use --set data.tokenizer=byte"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        _check_ids(ids, self.vocab_size)
        return "".join(self.vocab[i] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": 1, "kind": "char", "vocab": self.vocab}

    def save(self, directory: str | Path) -> Path:
        return atomic_write_text(Path(directory) / TOKENIZER_FILE, _dumps(self.to_dict()))

    def fingerprint(self) -> str:
        return _sha(_dumps(self.to_dict()))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class BPETokenizer:
    """A Hugging Face ``tokenizers.Tokenizer`` (byte-level BPE) behind the posemb protocol.

    Args:
        hf: the wrapped ``tokenizers.Tokenizer``.
    """

    kind = "bpe"

    def __init__(self, hf: Any) -> None:
        self.hf = hf
        self.vocab_size = int(hf.get_vocab_size(with_added_tokens=True))

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = DEFAULT_BPE_VOCAB) -> BPETokenizer:
        """Train byte-level BPE (GPT-2 style pre-tokenisation, no prefix space, no specials)."""
        tk = _import_tokenizers()
        if vocab_size < 257:
            raise ValueError(f"bpe vocab_size must be > 256 (the byte alphabet), got {vocab_size}")
        hf = tk.Tokenizer(tk.models.BPE())
        hf.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = tk.decoders.ByteLevel()
        trainer = tk.trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf)

    @classmethod
    def from_file(cls, path: str | Path) -> BPETokenizer:
        """Load a Hugging Face ``tokenizer.json`` (a file, or a directory holding one)."""
        try:
            file = _tokenizer_file(path)
        except (FileNotFoundError, IsADirectoryError):
            raise ValueError(
                f"no tokenizer file at {str(path)!r}: expected a tokenizer.json"
            ) from None
        return cls(_hf_from_str(_read_text(file), file))

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        _check_ids(ids, self.vocab_size)
        return self.hf.decode(ids, skip_special_tokens=False)

    def save(self, directory: str | Path) -> Path:
        return atomic_write_text(Path(directory) / TOKENIZER_FILE, self.hf.to_str())

    def fingerprint(self) -> str:
        return _sha(self.hf.to_str())

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


def build_tokenizer(
    kind: str, texts: Iterable[str] | None = None, *, vocab_size: int = DEFAULT_BPE_VOCAB
) -> Tokenizer:
    """Build a tokenizer by kind, training it on ``texts`` where the kind needs training.

    Args:
        kind: ``byte``, ``char``, ``bpe`` or ``bpe:PATH`` (load a ``tokenizer.json``).
        texts: training texts; required for ``char`` and ``bpe``, ignored otherwise.
        vocab_size: target vocabulary size for a trained ``bpe``.

    Raises:
        ValueError: unknown kind (naming the closest), or ``texts`` missing for training.
        ImportError: ``bpe`` without the ``tokenizers`` package.
    """
    if kind.startswith("bpe:"):
        return BPETokenizer.from_file(kind[len("bpe:") :])
    if kind not in KINDS:
        raise unknown("tokenizer kind", kind, (*KINDS, "bpe:PATH"))
    if kind == "byte":
        return ByteTokenizer()
    if texts is None:
        raise ValueError(f"the {kind!r} tokenizer is trained on text: pass the training texts")
    if kind == "char":
        return CharTokenizer.train(texts)
    return BPETokenizer.train(texts, vocab_size=vocab_size)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer saved by ``save``: a run directory or its ``tokenizer.json``.

    Raises:
        FileNotFoundError: no ``tokenizer.json`` there.
        ValueError: the file is neither a posemb nor a Hugging Face tokenizer.
    """
    file = _tokenizer_file(path)
    text = _read_text(file)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(file)!r} is not valid JSON: {err}") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        kind = data.get("kind")
        if kind == "byte":
            return ByteTokenizer()
        if kind == "char":
            vocab = data.get("vocab")
            if not isinstance(vocab, list):
                raise ValueError(
                    f"{str(file)!r}: a char tokenizer needs a 'vocab' list of characters"
                )
            try:
                return CharTokenizer(vocab)
            except ValueError as err:
                raise ValueError(f"{str(file)!r}: {err}") from None
        raise unknown(f"tokenizer kind in {str(file)!r}:", str(kind), KINDS)
    if isinstance(data, dict) and "model" in data:
        return BPETokenizer(_hf_from_str(text, file))
    raise ValueError(
        f"{str(file)!r} is neither a posemb tokenizer (format {FORMAT!r}) nor a Hugging Face "
        "tokenizer.json"
    )


def _tokenizer_file(path: str | Path) -> Path:
    """``path`` itself, or ``path/tokenizer.json`` for a folder (a link leaving it is refused)."""
    path = Path(path).expanduser()
    file = inside(path, TOKENIZER_FILE) if path.is_dir() else path
    if not file.exists():
        where = f"in {str(path)!r}" if file != path else f"at {str(path)!r}"
        raise FileNotFoundError(f"no {TOKENIZER_FILE} {where}")
    if not file.is_file():
        raise IsADirectoryError(f"{str(file)!r} is a directory, not a {TOKENIZER_FILE} file")
    return file


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{str(file)!r} is not UTF-8 text ({err.reason} at byte {err.start}); a tokenizer "
            "file is UTF-8 JSON"
        ) from None


def _hf_from_str(text: str, file: Path) -> Any:
    """A ``tokenizers.Tokenizer`` from the JSON text of ``file``; a bad file names itself."""
    tk = _import_tokenizers()
    try:
        return tk.Tokenizer.from_str(text)
    except Exception as err:  # noqa: BLE001 - tokenizers raises a bare Exception
        raise ValueError(
            f"{str(file)!r} is not a Hugging Face tokenizer file tokenizers can read ({err})"
        ) from None


def _import_tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise ImportError(_HF_MISSING) from None
    return tokenizers


def _check_ids(ids: list[int], vocab_size: int) -> None:
    for i in ids:
        if not 0 <= i < vocab_size:
            raise ValueError(
                f"token id {i} is outside the vocabulary (vocab_size {vocab_size}): ids must be "
                f"in [0, {vocab_size})"
            )


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
