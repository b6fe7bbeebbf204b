"""The folder a Hugging Face model is fine-tuned into (``posemb train --init HF_DIR``).

The run's folder is the model's folder at every checkpoint: ``AutoModel`` and pipelines
load it as it is. posemb's trainer writes its checkpoints there (``model.safetensors`` under
the model's own tensor names, with a content hash in the header; ``optimizer.safetensors``,
``trainer_state.json``, ``metrics.jsonl``) and its settings, provenance and lineage in
``posemb_run.json``. At the start it writes what :func:`write_start` writes: the model's
``config.json`` (its tables' new size), and the source's other top-level files — tokenizer
files with their limits raised to the new size (:mod:`.limits`), sentence-transformers and
generation files, the README — never the source's weights. Folders of the source (a
sentence-transformers ``1_Pooling/``) are not copied: the caller is told which.
"""

from __future__ import annotations

import copy
from pathlib import Path

from ..files import write_json
from ..runs.layout import (
    CONFIG_FILE,
    JOURNAL,
    LOCK_FILE,
    METRICS_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    RUN_SETTINGS_FILE,
    STATE_FILE,
)
from .hf_files import OTHER_WEIGHTS, SAFETENSORS_INDEX, weight_files
from .hf_model import HFModel, read_folder
from .limits import read_limit_files, update_limits
from .outdir import copy_file, files_to_copy

# a source that posemb trained itself: its run files are not the new run's
_RUN_FILES = (STATE_FILE, OPTIMIZER_FILE, METRICS_FILE, LOCK_FILE, RUN_SETTINGS_FILE, JOURNAL)


def write_start(run_dir: Path, model: HFModel, source: str | Path) -> tuple[list[str], list[str]]:
    """Write the start files of a run of ``model`` (grown from ``source``) into
    ``run_dir``; returns the names written and the source's folders not copied."""
    src = read_folder(source)
    limit_files = read_limit_files(src.path, copy.deepcopy(src.config))
    rewritten, _ = update_limits(limit_files, src.positions, model.position_limit)
    skip = {CONFIG_FILE, MODEL_FILE, SAFETENSORS_INDEX, *OTHER_WEIGHTS, *_RUN_FILES}
    skip |= set(weight_files(src.path))
    copied, folders = files_to_copy(src.path, skip)
    written = [CONFIG_FILE]
    write_json(run_dir / CONFIG_FILE, model.hf.config.to_dict())
    for path in copied:
        if path.name in rewritten:
            write_json(run_dir / path.name, limit_files[path.name])
        else:
            copy_file(path, run_dir / path.name)
        written.append(path.name)
    return written, folders
