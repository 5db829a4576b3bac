"""Training: ``fit`` (an optax loop with jit-compiled NNX steps, any loss and optimiser,
model regularisers added automatically, data-parallel sharding, verified orbax checkpoints
with resume, tqdm progress, JSON metrics), ``evaluate``/``predict`` and ``restore``."""

from actfx._src.train._data import batch_indices
from actfx._src.train.checkpoint import CheckpointDamagedError, Checkpointer, restore
from actfx._src.train.config import FitResult, TrainConfig
from actfx._src.train.evaluation import evaluate, predict
from actfx._src.train.json_record import write_json
from actfx._src.train.loop import fit
from actfx._src.train.losses import check_labels, cross_entropy, cross_entropy_loss, mse_loss
from actfx._src.train.optimizers import make_optimizer, make_schedule, piecewise_schedule
from actfx._src.train.sharding import batch_sharded, make_data_mesh, replicated
from actfx._src.train.steps import make_eval_step, make_predict_step, make_train_step

__all__ = [
    "CheckpointDamagedError",
    "Checkpointer",
    "FitResult",
    "TrainConfig",
    "batch_indices",
    "batch_sharded",
    "check_labels",
    "cross_entropy",
    "cross_entropy_loss",
    "evaluate",
    "fit",
    "make_data_mesh",
    "make_eval_step",
    "make_optimizer",
    "make_predict_step",
    "make_schedule",
    "make_train_step",
    "mse_loss",
    "piecewise_schedule",
    "predict",
    "replicated",
    "restore",
    "write_json",
]
