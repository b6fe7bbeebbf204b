"""The length limits a Hugging Face folder repeats outside ``config.json``'s table size.

A tokenizer, a sentence-transformers wrapper or a generation config that still says 512
after the table grew to 2048 silently truncates every input to the old length. ``posemb
extend`` rewrites these fields (every file is read through :func:`posemb.data.inside`)::

    file                        field                          rule
    tokenizer_config.json       model_max_length, max_len,     a limit (see below)
                                max_length
    tokenizer.json              truncation.max_length,         a limit
                                padding.strategy.Fixed
    sentence_bert_config.json   max_seq_length                 a limit
    generation_config.json      max_length                     the table's size only
    config.json                 max_length (older configs)     the table's size only

A limit at or above the old size becomes ``N`` (transformers' "no limit", ``1e30``, stays).
A limit below the old size was chosen on purpose (all-MiniLM-L6-v2 encodes 256 of its 512
positions) and is kept, with a note naming it. A generation ``max_length`` is how much to
generate, not a model limit: it follows only when it equalled the table's size (Whisper's
448), or when a shrunk table is now shorter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import inside
from ..files import read_json
from ..positional.checks import is_int
from ..runs.layout import CONFIG_FILE
from .tokenizers import HF_TOKENIZER

NO_LIMIT = 10**20  # transformers writes int(1e30) as model_max_length for "no limit"
# (file, path of keys to the field, is it a limit or a generation length)
FIELDS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("tokenizer_config.json", ("model_max_length",), True),
    ("tokenizer_config.json", ("max_len",), True),
    ("tokenizer_config.json", ("max_length",), True),
    (HF_TOKENIZER, ("truncation", "max_length"), True),
    (HF_TOKENIZER, ("padding", "strategy", "Fixed"), True),
    ("sentence_bert_config.json", ("max_seq_length",), True),
    ("generation_config.json", ("max_length",), False),
    (CONFIG_FILE, ("max_length",), False),
)
FILES = tuple(dict.fromkeys(name for name, _, _ in FIELDS))


def _new_value(value: Any, old: int, to: int, is_limit: bool) -> Any:
    if not is_int(value) or value >= NO_LIMIT:
        return value
    if value > to or (value >= old if is_limit else value == old):
        return to
    return value


def _parent(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    for key in path[:-1]:
        data = data.get(key)
        if not isinstance(data, dict):
            return None
    return data


def update_limits(data: dict[str, dict[str, Any]], old: int, to: int) -> tuple[set[str], list[str]]:
    """Rewrite the fields of :data:`FIELDS` in ``data`` (file name -> parsed JSON) in place.

    Returns:
        The names of the files changed, and notes on the limits kept on purpose.
    """
    changed, notes = set(), []
    for name, path, is_limit in FIELDS:
        parent = _parent(data.get(name, {}), path)
        if parent is None or path[-1] not in parent:
            continue
        value = parent[path[-1]]
        new = _new_value(value, old, to, is_limit)
        if new != value:
            parent[path[-1]] = new
            changed.add(name)
        elif is_limit and is_int(value) and value < old:
            notes.append(
                f"kept {name} {'.'.join(path)}={value} (below the old {old} positions, so chosen "
                f"on purpose); set it to {to} to use the new positions"
            )
    return changed, notes


def read_limit_files(src: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The JSON files of :data:`FILES` that ``src`` has (``config.json``: the one given)."""
    data = {CONFIG_FILE: config}
    for name in FILES:
        if name != CONFIG_FILE and inside(src, name).is_file():
            data[name] = read_json(src / name)
    return data
