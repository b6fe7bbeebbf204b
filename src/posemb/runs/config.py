"""Run settings: model, training and data, from presets, TOML files and ``--set`` overrides.

The schema of a run's ``config.json`` (:meth:`RunConfig.to_dict` / :meth:`RunConfig.from_dict`,
``schema_version``); the trainer reads them, every reader of a run validates them here.
Settings are grouped as ``model.*`` (ModelConfig fields), ``train.*`` and ``data.*``.
Config files are data: TOML parsed with ``tomllib``, never executed. Unknown keys and bad
values are errors naming the key and the closest valid one.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..model.config import PRESETS as MODEL_PRESETS
from ..model.config import ModelConfig
from ..positional.checks import (
    check_bool,
    check_finite,
    check_int,
    check_positive_int,
    is_int,
    unknown,
)
from ..positional.extend import EXTEND_METHODS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCHEMA_VERSION = 1
POSITION_RECIPES = ("start", "random", "offset", "stretch")
SEED_MAX = 2**63 - 1  # seeds reach torch (int64) and numpy: 0 .. 2**63 - 1
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")  # train.device


def check_seed(name: str, value: object) -> int:
    """A seed in ``0 .. 2**63 - 1`` (what torch and numpy both take); else a ValueError."""
    if not is_int(value) or not 0 <= value <= SEED_MAX:
        raise ValueError(
            f"{name} must be an integer from 0 to {SEED_MAX} (2**63 - 1), got {value!r}"
        )
    return value


@dataclass(kw_only=True)
class TrainConfig:
    """How a model is trained. Every field is a ``train.*`` setting."""

    max_steps: int = 1000
    batch_size: int = 16  # global batch (sequences per optimiser step, over all ranks)
    seq_len: int = 128  # training length L (tokens per sequence)
    grad_accum: int = 1  # micro-batches per optimiser step (batch_size must divide by it)
    lr: float = 1e-3
    min_lr: float = 1e-4  # the cosine schedule ends here
    warmup_steps: int = 100
    weight_decay: float = 0.1
    # Weight decay pulls unused rows of a learned table towards zero: rows past the training
    # length get no gradient, only decay, and would end up at 0 rather than at their init.
    # GPT-2/nanoGPT also exempt 1-D parameters. Set true to decay position tables too.
    decay_positions: bool = False
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    eval_every: int = 200
    eval_batches: int = 20
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 1337
    # How training assigns position ids to a sequence of length L:
    #   start  -- 0 .. L-1 (the usual; rows >= L are never trained)
    #   random -- L sorted distinct positions from [0, max_positions) per sequence
    #             (Ruoss et al. 2023): every row gets trained, for evaluation past L
    #   offset -- k .. k+L-1 with a random shift k per sequence
    #   stretch -- fractional positions o + s*i: each sequence read as if up to train.stretch
    #             times longer, squeezed into the table at a random offset, so that the table
    #             extended with `interpolate` is used in distribution past L (learned tables:
    #             rows mixed linearly; any scheme with fractional positions)
    positions: Literal["start", "random", "offset", "stretch"] = "start"
    stretch: float = 8.0  # train.positions=stretch: the longest stretch (8: up to 8L)
    # A run started from another run's weights (a fine-tune; `posemb train --init RUN`):
    # the optimiser, schedule and data stream start fresh; config.json records its lineage.
    init: str = ""  # the source run folder; empty: a fresh model
    init_method: str = ""  # how its table grows to model.max_positions (an extension method)
    # auto: on CUDA; on the CPU for runs long enough to repay compiling (session.py), in both
    # cases after a self-check that the compiled model matches eager (model/compile_check.py)
    # steps at the start that train only the position table(s), every other weight frozen (a
    # table grown past its trained rows learns them first; then everything trains at train.lr)
    table_only_steps: int = 0
    # synthetic tasks: stop at the first evaluation step whose held-out exact match (the
    # validation batches, a stream apart from training's) reaches this fraction; the step is
    # recorded in trainer_state.json ('competence') and a resume does not train past it.
    # 0: off (train to max_steps)
    stop_at_accuracy: float = 0.0
    compile: Literal["auto", "true", "false"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 autocast on CUDA
    # Data parallelism under torchrun (ignored in one process): ddp -- a whole replica per
    # process, gradients all-reduced; fsdp -- parameters, gradients and moments sharded across
    # the processes (FSDP2, posemb/train/sharding.py). Checkpoints are the same files either way.
    parallel: Literal["ddp", "fsdp"] = "ddp"
    device: str = "auto"  # auto: cuda if available, else cpu; cpu, cuda, cuda:N, mps
    progress: bool = True  # progress bar on stderr

    def __post_init__(self) -> None:
        for name in (
            "max_steps",
            "batch_size",
            "seq_len",
            "grad_accum",
            "eval_every",
            "eval_batches",
            "checkpoint_every",
            "log_every",
        ):
            check_positive_int(f"train.{name}", getattr(self, name))
        check_int("train.warmup_steps", self.warmup_steps, minimum=0)
        check_int("train.table_only_steps", self.table_only_steps, minimum=0)
        if check_finite("train.stop_at_accuracy", self.stop_at_accuracy, 0.0) > 1.0:
            raise ValueError(
                "train.stop_at_accuracy is an exact-match fraction from 0 (off) to 1, got "
                f"{self.stop_at_accuracy!r}"
            )
        for name in ("lr", "min_lr", "weight_decay", "grad_clip"):
            check_finite(f"train.{name}", getattr(self, name), 0.0)
        check_finite("train.stretch", self.stretch, 1.0)
        for name in ("beta1", "beta2"):
            check_finite(f"train.{name}", getattr(self, name), 0.0, 1.0)
        check_seed("train.seed", self.seed)
        if not isinstance(self.device, str) or not DEVICE.fullmatch(self.device):
            raise ValueError(
                f"train.device={self.device!r} is not a device posemb trains on: use auto, cpu, "
                "cuda, cuda:N (the N-th GPU) or mps"
            )
        check_bool("train.progress", self.progress, "true or false")
        check_bool("train.decay_positions", self.decay_positions, "true or false")
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"train.batch_size={self.batch_size} is not divisible by "
                f"train.grad_accum={self.grad_accum}"
            )
        for name in ("init", "init_method"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"train.{name} must be a string, got {getattr(self, name)!r}")
        if self.init_method and self.init_method not in EXTEND_METHODS:
            raise unknown("extension method (train.init_method)", self.init_method, EXTEND_METHODS)
        if self.init_method and not self.init:
            raise ValueError(
                f"train.init_method={self.init_method!r} extends the table of a run started "
                "from another: set train.init=RUN too (posemb train --init RUN --extend METHOD)"
            )
        if self.positions not in POSITION_RECIPES:
            raise unknown("position recipe (train.positions)", self.positions, POSITION_RECIPES)
        if str(self.compile).lower() not in ("auto", "true", "false"):
            raise ValueError(f"train.compile must be auto, true or false, got {self.compile!r}")
        self.compile = str(self.compile).lower()
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise unknown("dtype (train.dtype)", self.dtype, ("auto", "float32", "bfloat16"))
        if self.parallel not in ("ddp", "fsdp"):
            raise unknown("data parallelism (train.parallel)", self.parallel, ("ddp", "fsdp"))

    def optimizer_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`posemb.model.optim.build_optimizer`."""
        return {
            "lr": self.lr,
            "betas": (self.beta1, self.beta2),
            "weight_decay": self.weight_decay,
            "decay_positions": self.decay_positions,
        }


@dataclass(kw_only=True)
class DataConfig:
    """Where tokens come from. Every field is a ``data.*`` setting."""

    source: str = "stdlib"  # stdlib | FILE | DIR | GLOB | synthetic:TASK | hf:NAME[:CONFIG]
    tokenizer: str = "byte"  # byte | char | bpe | bpe:PATH/tokenizer.json
    vocab_size: int = 4096  # BPE only
    val_fraction: float = 0.1
    cache_dir: str = ""  # token cache; empty: $POSEMB_CACHE or ~/.cache/posemb

    def __post_init__(self) -> None:
        for name in ("source", "tokenizer", "cache_dir"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"data.{name} must be a string, got {getattr(self, name)!r}")
        check_positive_int("data.vocab_size", self.vocab_size)
        check_finite("data.val_fraction", self.val_fraction, 0.0, 1.0)


HF_OBJECTIVES = ("causal", "masked")


@dataclass(kw_only=True)
class HFConfig:
    """A run of a Hugging Face model (``posemb train --init HF_DIR``): every field is an
    ``hf.*`` setting. ``posemb train`` fills them from the folder; ``hf.new_head`` is the
    user's (a bare encoder gets a fresh head). Such a run's ``model.*`` settings are a
    summary of the model (sizes, vocabulary, positions) for posemb's estimates."""

    source: str = ""  # the folder the run started from
    model_type: str = ""  # its config.json's model_type
    objective: str = "causal"  # causal: the next token; masked: masked tokens in place
    mask_token_id: int = -1  # the masked-LM objective's mask token (-1: none)
    new_head: bool = False  # a folder without the objective's head gets a fresh one

    def __post_init__(self) -> None:
        for name in ("source", "model_type"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"hf.{name} must be a string, got {getattr(self, name)!r}")
        if self.objective not in HF_OBJECTIVES:
            raise unknown("objective (hf.objective)", self.objective, HF_OBJECTIVES)
        check_int("hf.mask_token_id", self.mask_token_id, minimum=-1)
        check_bool("hf.new_head", self.new_head, "true or false")


@dataclass(kw_only=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    hf: HFConfig | None = None  # a run of a Hugging Face model; None: posemb's own model

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema_version": SCHEMA_VERSION,
            "model": self.model.to_dict(),
            "train": dataclasses.asdict(self.train),
            "data": dataclasses.asdict(self.data),
        }
        if self.hf is not None:
            out["hf"] = dataclasses.asdict(self.hf)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"config schema_version {version} is not supported (this posemb reads "
                f"{SCHEMA_VERSION})"
            )
        data.pop("tokenizer", None)  # informational copy written beside the run
        data.pop("provenance", None)  # how the run was made: informational
        data.pop("lineage", None)  # the run it started from (train.init): informational
        data.pop("start_files", None)  # the files a Hugging Face run wrote at its start
        flat: dict[str, Any] = {}
        for group, values in data.items():
            if group not in GROUPS:
                raise unknown("settings group", group, GROUPS)
            if not isinstance(values, dict):
                raise ValueError(f"[{group}] must be a table of settings, got {values!r}")
            for key, value in values.items():
                flat[f"{group}.{key}"] = value
        return build_config(None, flat)


GROUPS = ("model", "train", "data", "hf")
_CLASSES = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig, "hf": HFConfig}

# Run presets: "model" names a model preset (posemb.ModelConfig.preset, where architectures
# live), the other keys are training and data settings.
PRESETS: dict[str, dict[str, Any]] = {
    # the CPU demo: a few minutes on 2 cores
    "tiny": {
        "model": "tiny",
        "train.seq_len": 128,
        "train.batch_size": 16,
        "train.max_steps": 300,
        "train.lr": 2e-3,
        "train.warmup_steps": 30,
        "train.eval_every": 100,
        "train.checkpoint_every": 100,
        "train.eval_batches": 8,
    },
    # nanoGPT's baby GPT on shakespeare_char (config/train_shakespeare_char.py)
    "shakespeare-char": {
        "model": "shakespeare-char",
        "train.seq_len": 256,
        "train.batch_size": 64,
        "train.max_steps": 5000,
        "train.lr": 1e-3,
        "train.min_lr": 1e-4,
        "train.warmup_steps": 100,
        "train.beta2": 0.99,
        "train.weight_decay": 0.1,
        "train.eval_every": 250,
        "train.eval_batches": 200,
        "train.checkpoint_every": 1000,
        "data.tokenizer": "char",
    },
    # GPT-2 124M shape (nanoGPT's padded vocabulary)
    "gpt2-124m": {
        "model": "gpt2-124m",
        "train.seq_len": 1024,
        "train.batch_size": 16,
        "train.lr": 6e-4,
        "train.min_lr": 6e-5,
        "train.warmup_steps": 2000,
        "train.max_steps": 600000,
        "train.beta2": 0.95,
        "data.tokenizer": "bpe",
    },
}


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML literal (int, float, bool, string, array, inline table) or a
    bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``["train.lr=3e-4", "model.position=rope"]`` -> ``{"train.lr": 0.0003, ...}``."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value (e.g. train.max_steps=200), got {pair!r}")
        key, _, value = pair.partition("=")
        out[key.strip()] = parse_value(value.strip())
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Flatten a TOML experiment file (a path, or a shipped config's name) into ``group.key``
    settings."""
    from .. import configs

    p = Path(path)
    if not p.exists():
        p = configs.shipped(str(path)) or p
    shipped = f"a shipped config's name ({', '.join(configs.names())})"
    if p.is_dir():
        raise IsADirectoryError(
            f"config file {str(p)!r} is a directory; pass a .toml file or {shipped}"
        )
    if not p.is_file():
        raise FileNotFoundError(
            f"config file {str(p)!r} not found; pass an existing .toml or {shipped}"
        )
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(
            f"config file {str(p)!r} is not UTF-8 text ({e.reason} at byte {e.start}); "
            "save it as UTF-8 TOML"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {str(p)!r} is not valid TOML: {e}") from None
    flat: dict[str, Any] = {}
    for group, values in data.items():
        if group == "preset":
            flat["preset"] = values
            continue
        if group not in GROUPS:
            raise unknown(f"settings group in {p.name}", group, (*GROUPS, "preset"))
        if not isinstance(values, dict):
            raise ValueError(f"[{group}] in {p.name} must be a table of settings")
        for key, value in values.items():
            flat[f"{group}.{key}"] = value
    return flat


def flat_settings(cfg: RunConfig) -> dict[str, Any]:
    """Every setting of ``cfg`` as ``{"group.key": value}`` (``build_config(None, ...)``
    rebuilds it)."""
    return {
        f"{group}.{key}": value
        for group, values in cfg.to_dict().items()
        if isinstance(values, dict)
        for key, value in values.items()
    }


def all_keys() -> list[str]:
    return [f"{g}.{f.name}" for g, cls in _CLASSES.items() for f in dataclasses.fields(cls)]


def preset_settings(name: str) -> dict[str, Any]:
    """A run preset as flat settings: its model preset's fields as ``model.*``, then its own."""
    if name not in PRESETS:
        raise unknown("preset", name, PRESETS)
    settings = dict(PRESETS[name])
    model = MODEL_PRESETS[settings.pop("model")]
    return {**{f"model.{key}": value for key, value in model.items()}, **settings}


def build_config(preset: str | None, settings: dict[str, Any]) -> RunConfig:
    """Preset, then settings (file, then --set) applied in order; validated once at the end."""
    settings = dict(settings)
    preset = settings.pop("preset", None) or preset
    merged: dict[str, Any] = {}
    if preset is not None:
        merged.update(preset_settings(preset))
    merged.update(settings)
    valid = all_keys()
    groups: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
    for key, value in merged.items():
        if key not in valid:
            # a model.* key may also be a positional option: model.position_options.NAME
            if key.startswith("model.position_options."):
                groups["model"].setdefault("position_options", {})[key.split(".", 2)[2]] = value
                continue
            raise unknown("setting", key, valid)
        group, name = key.split(".", 1)
        groups[group][name] = value
    try:
        model = ModelConfig(**groups["model"])
        train = TrainConfig(**groups["train"])
        data = DataConfig(**groups["data"])
        hf = HFConfig(**groups["hf"]) if groups["hf"] else None
    except TypeError as e:  # a value of the wrong type reaching a dataclass
        raise ValueError(f"bad setting: {e}") from None
    if hf is not None and not hf.source:
        raise ValueError(
            "hf.* settings belong to a run of a Hugging Face model: start one with "
            "posemb train --init HF_DIR"
        )
    return RunConfig(model=model, train=train, data=data, hf=hf)


def check_vocabulary(cfg: RunConfig) -> None:
    """A new run's ``model.vocab_size``, set explicitly, must hold the tokenizer's ids where
    their number is known before training (byte: 256; bpe: ``data.vocab_size``); left
    unset, the vocabulary follows the tokenizer (the trainer grows it)."""
    size, data = cfg.model.vocab_size, cfg.data
    ids = {"byte": 256, "bpe": data.vocab_size}.get(data.tokenizer)
    if ids is not None and size < ids:
        raise ValueError(
            f"model.vocab_size={size} is smaller than the {data.tokenizer} tokenizer's {ids} ids: "
            f"a model's vocabulary holds every token id; set it to {ids} or more, or leave it out "
            "(it follows the tokenizer)"
        )
