"""Vision transformers' learned 2-D tables: ``posemb extend SRC DST --image-size N``.

A ViT trained at 224 px with 16-px patches has a table of 14 x 14 patch rows (after its
class token's row); a 384-px image needs 24 x 24. transformers answers with
``interpolate_pos_encoding=True``, redone at every forward pass and never saved. ``posemb
extend --image-size 384`` resamples the table once, with the family's own method
(:data:`VISION_FAMILIES`), and writes a folder that runs at 384 px without any flag: the same
outputs as the original folder with ``interpolate_pos_encoding=True`` (tested on tiny models
of every family). The prefix rows (class, distillation tokens) are copied bit for bit;
``image_size`` is rewritten in ``config.json`` (the vision sub-config of a CLIP or SigLIP
model) and wherever ``preprocessor_config.json`` repeats the old size; stale
``position_ids`` buffers are rebuilt. Every other file is copied, as ``posemb extend`` does
for text models (:mod:`.hf_extend`).

Not listed: BEiT and Data2VecVision (their relative position biases are sized by the grid
too), ViTMAE (a fixed sinusoidal table), models with a different patch layout (YOLOS, DPT).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..files import read_json, read_safetensors, write_json, write_safetensors
from ..positional.checks import check_positive_int
from ..positional.grid import extend_grid
from ..runs.layout import CONFIG_FILE
from .families import matches
from .hf_files import OTHER_WEIGHTS, SAFETENSORS_INDEX, config_int, weight_files
from .outdir import copy_file, files_to_copy, output_dir

PREPROCESSOR = "preprocessor_config.json"


@dataclass(frozen=True)
class VisionFamily:
    """Where a vision model keeps its 2-D table and how it resamples it at run time.

    Attributes:
        key: the table's tensor name (suffix, as :func:`posemb.interop.families.matches`).
        prefix: rows before the grid (class token: 1; DeiT's class and distillation: 2).
        sub_config: the ``config.json`` group holding ``image_size``/``patch_size``
            (``vision_config`` of a CLIP or SigLIP model), or None for the top level.
        antialias: its ``interpolate_pos_encoding`` filters before resampling (bicubic,
            ``align_corners=False`` in every family listed).
    """

    key: str
    prefix: int
    sub_config: str | None = None
    antialias: bool = False


_VIT = "embeddings.position_embeddings"
VISION_FAMILIES: dict[str, VisionFamily] = {
    "vit": VisionFamily(_VIT, 1),
    "vit_msn": VisionFamily(_VIT, 1),
    "deit": VisionFamily(_VIT, 2),
    "dinov2": VisionFamily(_VIT, 1),
    "dinov2_with_registers": VisionFamily(_VIT, 1, antialias=True),  # registers: their own
    "clip": VisionFamily("vision_model.embeddings.position_embedding.weight", 1, "vision_config"),
    "clip_vision_model": VisionFamily("embeddings.position_embedding.weight", 1),
    "siglip": VisionFamily("vision_model.embeddings.position_embedding.weight", 0, "vision_config"),
    "siglip_vision_model": VisionFamily("embeddings.position_embedding.weight", 0),
}


@dataclass
class VisionExtension:
    """What was done: the family, the grids and image sizes, notes."""

    kind: str
    old_size: int
    new_size: int
    old_grid: tuple[int, int]
    new_grid: tuple[int, int]
    notes: list[str]


def sizes(config: dict[str, Any], family: VisionFamily, where: str) -> tuple[dict, int, int]:
    """``(the config group, image size, patch size)``; square sizes only, as transformers'."""
    group = config
    if family.sub_config is not None:
        group = config.get(family.sub_config)
        if not isinstance(group, dict):
            raise ValueError(f"{where} lacks its {family.sub_config!r} group")
    sizes = {}
    for field in ("image_size", "patch_size"):
        value = group.get(field)
        if isinstance(value, list) and len(value) == 2 and value[0] == value[1]:
            value = value[0]  # [224, 224]: a square given twice
        sizes[field] = config_int({field: value} if field in group else {}, field, where)
    return group, sizes["image_size"], sizes["patch_size"]


def grow_vision_tensors(
    tensors: dict[str, torch.Tensor],
    config: dict[str, Any],
    where: str,
    image_size: int,
    method: str | None = None,
    *,
    antialias: bool | None = None,
    generator: torch.Generator | None = None,
) -> tuple[str, int, tuple[int, int], tuple[int, int]]:
    """Resample the table in ``tensors`` (a model's weights, in place) for ``image_size``
    px and rewrite ``config`` (in place); ``method``/``antialias`` default to the family's
    own run-time resampling. Returns ``(model_type, old size, old grid, new grid)``."""
    model_type = config.get("model_type")
    family = VISION_FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if family is None:
        raise ValueError(
            f"{where} is a {model_type!r} model; --image-size resamples the 2-D tables of "
            f"{', '.join(VISION_FAMILIES)} (docs/HF.md)"
        )
    check_positive_int("--image-size", image_size)
    group, old_size, patch = sizes(config, family, where)
    if image_size % patch:
        raise ValueError(
            f"--image-size {image_size} is not a multiple of the patch size {patch}: choose "
            f"{(image_size // patch + 1) * patch} or {max(patch, image_size // patch * patch)}"
        )
    old, new = (old_size // patch,) * 2, (image_size // patch,) * 2
    found = [k for k in tensors if matches(k, family.key)]
    if len(found) != 1:
        raise ValueError(f"{where}: expected one table named [PREFIX.]{family.key}, found {found}")
    key = found[0]
    table = tensors[key]
    lead = table.dim() == 3  # a [1, P + N, d] parameter, not an nn.Embedding's [P + N, d]
    rows = table[0] if lead else table
    if rows.shape[0] != family.prefix + old[0] * old[1]:
        raise ValueError(
            f"{key} has {rows.shape[0]} rows, but image_size {old_size} and patch_size {patch} "
            f"give {family.prefix} + {old[0]} x {old[1]}"
        )
    grown = extend_grid(
        rows,
        old,
        new,
        method or "bicubic",
        family.prefix,
        antialias=family.antialias if antialias is None else antialias,
        generator=generator,
    )
    tensors[key] = grown.unsqueeze(0) if lead else grown
    for name in [k for k in tensors if k.endswith("position_ids")]:  # stale buffers: rebuilt
        ids = tensors[name]
        tensors[name] = torch.arange(grown.shape[0], dtype=ids.dtype).reshape(
            *ids.shape[:-1], grown.shape[0]
        )
    group["image_size"] = image_size
    return model_type, old_size, old, new


def _preprocessor(data: dict[str, Any], old: int, new: int) -> bool:
    """Rewrite every size of ``preprocessor_config.json`` equal to ``old`` px; True if any."""
    changed = False
    for field in ("size", "crop_size", "image_size"):
        value = data.get(field)
        if value == old:
            data[field], changed = new, True
        elif isinstance(value, dict):
            for k, v in value.items():
                if v == old and k in ("height", "width", "shortest_edge", "longest_edge"):
                    value[k], changed = new, True
    return changed


def extend_vision(
    src: Path,
    config: dict[str, Any],
    dst: str | Path,
    image_size: int,
    method: str | None = None,
    *,
    antialias: bool | None = None,
    force: bool = False,
    seed: int = 0,
    allow_shrink: bool = False,
) -> VisionExtension:
    """Write ``src`` (a vision model folder whose ``config.json`` is ``config``) with its
    2-D table resampled for ``image_size`` px into ``dst`` (module doc). A smaller image
    size than the model's is refused unless ``allow_shrink`` (nothing is written)."""
    where = str(src / CONFIG_FILE)
    config = copy.deepcopy(config)
    files = weight_files(src)  # refuses pickle-only folders and names leaving src
    tensors: dict[str, torch.Tensor] = {}
    metadata: dict[str, dict[str, str]] = {}
    owner: dict[str, str] = {}
    for name in files:
        found, metadata[name] = read_safetensors(src / name)
        tensors.update(found)
        owner.update(dict.fromkeys(found, name))
    generator = torch.Generator().manual_seed(seed)
    kind, old_size, old, new = grow_vision_tensors(
        tensors, config, where, image_size, method, antialias=antialias, generator=generator
    )
    if image_size < old_size and not allow_shrink and method != "crop":
        raise ValueError(
            f"--image-size {image_size} is smaller than the model's {old_size} px (a grid of "
            f"{old[0]} x {old[1]} patches would shrink to {new[0]} x {new[1]}); pass "
            "--allow-shrink to shrink it (or --method crop to keep its top-left patches)"
        )
    rewritten = {CONFIG_FILE}
    preprocessor = None
    if (src / PREPROCESSOR).is_file():
        preprocessor = read_json(src / PREPROCESSOR)
        if _preprocessor(preprocessor, old_size, image_size):
            rewritten.add(PREPROCESSOR)
    copied, skipped = files_to_copy(src, {SAFETENSORS_INDEX, *rewritten, *files, *OTHER_WEIGHTS})
    with output_dir(dst, force=force, src=src) as out:
        for name in files:
            part = {k: v for k, v in tensors.items() if owner.get(k) == name}
            write_safetensors(out / name, part, metadata[name])
        if (src / SAFETENSORS_INDEX).is_file():
            copy_file(src / SAFETENSORS_INDEX, out / SAFETENSORS_INDEX)
        write_json(out / CONFIG_FILE, config)
        if PREPROCESSOR in rewritten:
            write_json(out / PREPROCESSOR, preprocessor)
        for path in copied:
            copy_file(path, out / path.name)
    notes = [f"folders not copied: {', '.join(skipped)}"] if skipped else []
    return VisionExtension(kind, old_size, image_size, old, new, notes)
