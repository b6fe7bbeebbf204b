"""Hugging Face interop: exports and imports of causal LMs, and extending the position
tables of model directories.

``transformers`` is never imported here: directories are read and written as
``config.json`` + safetensors (+ tokenizer files), so any transformers version that reads
those loads the results. Nothing is unpickled.

- :func:`export_run`: a posemb run -> the Hugging Face architecture that computes exactly
  what it computes (:data:`ARCHITECTURES`: GPT-2, GPT-NeoX, MPT; ``posemb export-hf``).
- :func:`import_hf_dir`: a directory of one of those -> a posemb run (``posemb import-hf``).
- :func:`extend`: grow the position tables of a posemb run or of a directory of one of the
  families of :data:`FAMILIES` (``posemb extend``).
- :func:`key_map`: the one posemb <-> GPT-2 weight-name map (GPT-NeoX's and MPT's live in
  :mod:`.gpt_neox` and :mod:`.mpt`).
"""

from .architectures import ARCHITECTURES, Architecture, export_target, import_source
from .convert import export_run, import_hf_dir
from .gpt2 import (
    from_hf,
    hf_config,
    incompatibilities,
    key_map,
    model_config_from_hf,
    to_hf,
)
from .hf_extend import FAMILIES, Extension, extend
from .layouts import KeyPair

__all__ = [
    "ARCHITECTURES",
    "FAMILIES",
    "Architecture",
    "Extension",
    "KeyPair",
    "export_run",
    "export_target",
    "extend",
    "from_hf",
    "hf_config",
    "import_hf_dir",
    "import_source",
    "incompatibilities",
    "key_map",
    "model_config_from_hf",
    "to_hf",
]
