"""Training: settings, the loop, checkpoints."""

from .checkpoint import CheckpointError, load_model, load_run
from .config import PRESETS, DataConfig, RunConfig, TrainConfig, build_config, parse_sets, read_toml
from .lineage import init_config
from .trainer import TrainingDiverged, TrainingInterrupted, TrainResult, train

__all__ = [
    "PRESETS",
    "CheckpointError",
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build_config",
    "init_config",
    "load_model",
    "load_run",
    "parse_sets",
    "read_toml",
    "train",
]
