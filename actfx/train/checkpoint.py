"""Orbax checkpoints of the training state plus a JSON record of progress."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Save/restore ``(state pytree, JSON metadata)`` pairs by step in ``directory``.

    A thin wrapper over ``orbax.checkpoint.CheckpointManager`` keeping the last
    ``max_to_keep`` steps. Saves are synchronous, so a checkpoint is complete on disk
    when :meth:`save` returns (a killed run loses at most the steps since the last save).

    Example:
      >>> import tempfile, jax.numpy as jnp
      >>> with tempfile.TemporaryDirectory() as d:
      ...     ck = Checkpointer(d)
      ...     ck.save(3, {"w": jnp.ones(2)}, {"epoch": 1})
      ...     step, state, meta = ck.restore_latest({"w": jnp.zeros(2)})
      ...     ck.close()
      >>> step, state["w"].tolist(), meta
      (3, [1.0, 1.0], {'epoch': 1})
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
        self.directory = os.path.abspath(os.fspath(directory))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
            item_names=("state", "meta"),
        )

    def latest_step(self) -> int | None:
        """The newest saved step, or ``None`` when the directory has no checkpoint."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Write ``state`` (a pytree of arrays) and ``meta`` (JSON-able) as ``step``."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def restore_latest(self, target: Any) -> tuple[int, Any, dict] | None:
        """``(step, state, meta)`` of the newest checkpoint, or ``None`` if there is none.

        ``target`` is a pytree with the structure, shapes, dtypes (and shardings) to
        restore into, e.g. the freshly initialised state.
        """
        step = self.latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        out = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        return step, out["state"], dict(out["meta"])

    def close(self) -> None:
        """Finish pending writes and release the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
