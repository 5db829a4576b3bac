"""Training: an optax loop with jit-compiled NNX steps, data-parallel sharding over a
device mesh, orbax checkpoints with resume, tqdm progress and JSON metrics."""

from actfx.train.checkpoint import Checkpointer
from actfx.train.loop import FitResult, TrainConfig, batch_indices, evaluate, fit
from actfx.train.metrics import write_json
from actfx.train.optimizers import make_optimizer, make_schedule, piecewise_schedule
from actfx.train.sharding import batch_sharded, make_data_mesh, replicated
from actfx.train.steps import make_eval_step, make_train_step

__all__ = [
    "Checkpointer",
    "FitResult",
    "TrainConfig",
    "batch_indices",
    "batch_sharded",
    "evaluate",
    "fit",
    "make_data_mesh",
    "make_eval_step",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "piecewise_schedule",
    "replicated",
    "write_json",
]
