"""Hugging Face interop: GPT-2 export and import, and extending the tables of model directories.

``transformers`` is never imported here: directories are read and written as
``config.json`` + safetensors (+ tokenizer files), so any transformers version that reads
those loads the results. Nothing is unpickled.

- :func:`export_run`: a posemb run -> a ``GPT2LMHeadModel`` directory (``posemb export-hf``).
- :func:`import_hf_dir`: a GPT-2 directory -> a posemb run (``posemb import-hf``).
- :func:`extend`: grow the position tables of a posemb run or of a directory of one of the
  families of :data:`FAMILIES` (``posemb extend``).
- :func:`key_map`: the one posemb <-> GPT-2 weight-name map.
"""

from .convert import export_run, import_hf_dir
from .gpt2 import (
    KeyPair,
    from_hf,
    hf_config,
    incompatibilities,
    key_map,
    model_config_from_hf,
    to_hf,
)
from .hf_extend import FAMILIES, Extension, extend

__all__ = [
    "FAMILIES",
    "Extension",
    "KeyPair",
    "export_run",
    "extend",
    "from_hf",
    "hf_config",
    "import_hf_dir",
    "incompatibilities",
    "key_map",
    "model_config_from_hf",
    "to_hf",
]
