"""Training shared by every prior: the data mesh, the optimizer, the state, the jitted step,
checkpoints, logs and the loop. Each stage (``train/e2v.py``, ...) adds its loss and data."""

from ggtalker_jax.train.checkpoint import Checkpointer, config_differences
from ggtalker_jax.train.logging import ProgressBar, TrainLogger
from ggtalker_jax.train.loop import (
    DataSource,
    TrainingDiverged,
    TrainResult,
    run_training,
    train_module,
)
from ggtalker_jax.train.optim import (
    make_optimizer,
    make_schedule,
    section_optimizer,
    section_schedule,
)
from ggtalker_jax.train.parallel import (
    batch_sharding,
    initialize_distributed,
    make_data_mesh,
    per_example,
    replicate,
    replicated,
    shard_batch,
)
from ggtalker_jax.train.state import TrainState, split_model
from ggtalker_jax.train.step import make_train_step

__all__ = [
    "Checkpointer",
    "DataSource",
    "ProgressBar",
    "TrainLogger",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "batch_sharding",
    "config_differences",
    "initialize_distributed",
    "make_data_mesh",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "per_example",
    "replicate",
    "replicated",
    "run_training",
    "section_optimizer",
    "section_schedule",
    "shard_batch",
    "split_model",
    "train_module",
]
