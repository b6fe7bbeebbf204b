"""Training: the loop, its session, data stream and schedule, and runs started from others.

The run folder it writes (settings, checkpoints, loading) is :mod:`posemb.runs`; the
settings are re-exported here because a run is built from them::

    from posemb.train import build_config, train
    train(build_config("tiny", {"train.max_steps": 200}), "runs/a")
"""

from ..runs.config import (
    PRESETS,
    DataConfig,
    RunConfig,
    TrainConfig,
    build_config,
    parse_sets,
    read_toml,
)
from .lineage import init_config
from .trainer import TrainingDiverged, TrainingInterrupted, TrainResult, train

__all__ = [
    "PRESETS",
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingInterrupted",
    "build_config",
    "init_config",
    "parse_sets",
    "read_toml",
    "train",
]
