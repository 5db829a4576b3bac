"""Orbax checkpoints of a model (and optimiser) state with a verified JSON record.

Each step directory holds three orbax items: ``model`` (the model's ``nnx.State``:
parameters, BatchNorm statistics, RNG counters), ``optimizer`` (the optimiser state, may be
empty) and ``meta`` (JSON). ``meta["integrity"]`` stores SHA-256 digests of both states and
of the rest of ``meta``, so a checkpoint with flipped bytes, truncated data, missing files or
garbage JSON is detected on restore; :meth:`Checkpointer.restore_latest` then warns, names
the damaged step, moves it aside (``<step>.damaged``) and falls back to the newest intact one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

_ITEMS = ("model", "optimizer", "meta")


class CheckpointDamagedError(ValueError):
    """A checkpoint step failed to restore or did not match its recorded digests."""


def tree_digest(tree: Any) -> str:
    """SHA-256 over the structure, shapes, dtypes and bytes of a pytree of arrays.

    Example:
      >>> import numpy as np
      >>> tree_digest({"a": np.zeros(2)}) == tree_digest({"a": np.zeros(2)})
      True
      >>> tree_digest({"a": np.zeros(2)}) == tree_digest({"a": np.ones(2)})
      False
    """
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        h.update(jax.tree_util.keystr(path).encode())
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        a = np.ascontiguousarray(np.asarray(jax.device_get(leaf)))
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def tree_layout(tree: Any) -> list[list]:
    """``[[path, shape, dtype], ...]`` of a pytree's leaves (what a restore must match)."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shape = list(getattr(leaf, "shape", np.shape(leaf)))
        out.append([jax.tree_util.keystr(path), shape, str(getattr(leaf, "dtype", ""))])
    return out


def _layout_diff(saved: list, now: list) -> str:
    a, b = {p: (s, d) for p, s, d in saved}, {p: (s, d) for p, s, d in now}
    lines = [f"{p}: {a[p]} in the checkpoint, {b[p]} now" for p in a if p in b and a[p] != b[p]]
    lines += [f"{p}: only in the checkpoint" for p in a if p not in b]
    lines += [f"{p}: only in the model" for p in b if p not in a]
    return "; ".join(lines[:5]) + (f" (+{len(lines) - 5} more)" if len(lines) > 5 else "")


def _json_digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _meta_digest(meta: dict) -> str:
    return _json_digest({k: v for k, v in meta.items() if k != "integrity"})


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"


def _boxed(tree: Any) -> Any:
    # orbax refuses to save an empty pytree (e.g. a stateless optimizer)
    return tree if jax.tree.leaves(tree) else {"empty": np.zeros((), np.int8)}


def _abstract(target: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, target)


class Checkpointer:
    """Save/restore ``(model state, optimizer state, JSON meta)`` by step in ``directory``.

    A thin wrapper over ``orbax.checkpoint.CheckpointManager`` keeping the last
    ``max_to_keep`` steps. Saves are synchronous (a checkpoint is complete on disk when
    :meth:`save` returns) and orbax writes each step into a temporary directory renamed
    on completion, so a process killed mid-save leaves the previous steps intact.

    Example:
      >>> import tempfile, jax.numpy as jnp
      >>> with tempfile.TemporaryDirectory() as d:
      ...     ck = Checkpointer(d)
      ...     ck.save(3, {"w": jnp.ones(2)}, {}, {"epoch": 1})
      ...     step, model, opt, meta = ck.restore_latest({"w": jnp.zeros(2)}, {})
      ...     ck.close()
      >>> step, model["w"].tolist(), meta["epoch"]
      (3, [1.0, 1.0], 1)
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2, create: bool = True):
        self.directory = os.path.abspath(os.fspath(directory))
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ValueError(f"checkpoint_dir must be a directory, got the file {self.directory!r}")
        if not create and not os.path.isdir(self.directory):
            raise FileNotFoundError(f"checkpoint_dir {self.directory!r} does not exist")
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=create, enable_async_checkpointing=False
            ),
            item_names=_ITEMS,
        )

    def steps(self) -> list[int]:
        """Saved steps, oldest first."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest saved step (intact or not), or ``None`` when there is none."""
        return self._manager.latest_step()

    def save(self, step: int, model_state: Any, optimizer_state: Any, meta: dict) -> None:
        """Write both states (pytrees of arrays) and ``meta`` (JSON-able) as ``step``."""
        meta = dict(meta)
        meta.pop("integrity", None)
        meta["layout"] = {
            "model": tree_layout(model_state),
            "optimizer": _json_digest(tree_layout(optimizer_state)),
        }
        meta["integrity"] = {
            "model": tree_digest(model_state),
            "optimizer": tree_digest(optimizer_state),
            "meta": _meta_digest(meta),
        }
        self._manager.save(
            step,
            args=ocp.args.Composite(
                model=ocp.args.StandardSave(model_state),
                optimizer=ocp.args.StandardSave(_boxed(optimizer_state)),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def read_meta(self, step: int) -> dict:
        """The JSON ``meta`` of ``step``, checked against its digest.

        Raises:
          CheckpointDamagedError: missing, unreadable or altered.
        """
        try:
            out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            meta = dict(out["meta"])
        except Exception as e:  # orbax raises many types for damaged files
            raise CheckpointDamagedError(f"step {step}: meta unreadable: {_short(e)}") from e
        integ = meta.get("integrity")
        if not isinstance(integ, dict) or integ.get("meta") != _meta_digest(meta):
            raise CheckpointDamagedError(f"step {step}: meta does not match its digest")
        return meta

    def restore(
        self, step: int, model_target: Any, optimizer_target: Any = None
    ) -> tuple[Any, Any, dict]:
        """``(model_state, optimizer_state or None, meta)`` of ``step``, verified.

        The targets give structure, shapes, dtypes (and shardings) to restore into; with
        ``optimizer_target=None`` only the model and meta are read.

        Raises:
          ValueError: the targets' structure differs from the checkpoint's (a different
            model or optimizer; the checkpoint itself is fine).
          CheckpointDamagedError: the step cannot be read or fails its digests.
        """
        meta = self.read_meta(step)
        layout = meta.get("layout", {})
        if layout.get("model") != tree_layout(model_target):
            raise ValueError(
                f"the model does not match checkpoint {self.directory}/{step}: "
                + _layout_diff(layout.get("model", []), tree_layout(model_target))
            )
        if optimizer_target is not None and layout.get("optimizer") != _json_digest(
            tree_layout(optimizer_target)
        ):
            raise ValueError(
                f"the optimizer state does not match checkpoint "
                f"{self.directory}/{step} (a different optimizer?)"
            )
        try:
            items = {"model": ocp.args.StandardRestore(_abstract(model_target))}
            if optimizer_target is not None and jax.tree.leaves(optimizer_target):
                items["optimizer"] = ocp.args.StandardRestore(_abstract(optimizer_target))
            out = self._manager.restore(step, args=ocp.args.Composite(**items))
            model_state = out["model"]
            opt_state = out["optimizer"] if "optimizer" in items else optimizer_target
        except Exception as e:  # orbax/tensorstore raise many types for damaged files
            raise CheckpointDamagedError(f"step {step}: {_short(e)}") from e
        self._verify(step, meta, model_state, opt_state)
        return model_state, opt_state, meta

    @staticmethod
    def _verify(step: int, meta: dict, model_state: Any, opt_state: Any) -> None:
        integ = meta["integrity"]
        if integ.get("model") != tree_digest(model_state):
            raise CheckpointDamagedError(f"step {step}: model state does not match its digest")
        if opt_state is not None and integ.get("optimizer") != tree_digest(opt_state):
            raise CheckpointDamagedError(f"step {step}: optimizer state does not match its digest")

    def restore_latest(
        self, model_target: Any, optimizer_target: Any = None, *, quarantine: bool = True
    ) -> tuple[int, Any, Any, dict] | None:
        """``(step, model_state, optimizer_state, meta)`` of the newest intact checkpoint.

        Damaged newer steps are reported with a ``UserWarning`` naming them and, when
        ``quarantine``, renamed to ``<step>.damaged`` so later saves can reuse the step.
        Returns ``None`` when there is no intact checkpoint.
        """
        damaged = []
        result = None
        for step in reversed(self.steps()):
            try:
                result = (step, *self.restore(step, model_target, optimizer_target))
                break
            except CheckpointDamagedError as e:
                damaged.append(step)
                where = os.path.join(self.directory, str(step))
                fallback = "an older checkpoint" if step != self.steps()[0] else "no checkpoint"
                warnings.warn(
                    f"checkpoint {where} is damaged ({e}); falling back to {fallback}", stacklevel=3
                )
        if damaged and quarantine:
            self._quarantine(damaged)
        return result

    def _quarantine(self, steps: list[int]) -> None:
        for step in steps:
            src = os.path.join(self.directory, str(step))
            dst = f"{src}.damaged"
            try:
                if os.path.exists(dst):
                    shutil.rmtree(dst)
                if os.path.exists(src):
                    os.replace(src, dst)
            except OSError as e:  # e.g. a read-only directory: leave it, say so
                warnings.warn(
                    f"could not move the damaged checkpoint {src} aside: {e}", stacklevel=3
                )
        self._manager.reload()

    def close(self) -> None:
        """Finish pending writes and release the manager."""
        self._manager.wait_until_finished()
        self._manager.close()


def restore(model: nnx.Module, checkpoint_dir: str | os.PathLike, step: int | None = None) -> int:
    """Load the model state (parameters, BatchNorm statistics) of a :func:`fit` checkpoint
    into ``model`` in place, for inference or fine-tuning; returns the step loaded.

    ``model`` must have the structure of the trained one (build it with the same factory
    and arguments; its initial values are overwritten). The optimiser state in the
    checkpoint is not read. With ``step=None`` the newest intact checkpoint is used (a
    damaged newer one is skipped with a warning; nothing on disk is changed).

    Args:
      model: an NNX model, updated in place.
      checkpoint_dir: the ``TrainConfig.checkpoint_dir`` of the run.
      step: the step to load (``None``: the newest intact one).

    Returns:
      The step that was loaded.

    Raises:
      FileNotFoundError: ``checkpoint_dir`` does not exist or holds no checkpoint.
      ValueError: ``step`` is not saved there, or is damaged, or the model's structure
        differs from the checkpoint's.

    Example:
      >>> import tempfile, numpy as np
      >>> from flax import nnx
      >>> from actfx.train import TrainConfig, fit, predict
      >>> x = np.random.default_rng(0).normal(size=(32, 3)).astype(np.float32)
      >>> y = (x[:, 0] > 0).astype(np.int32)
      >>> with tempfile.TemporaryDirectory() as d:
      ...     m = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
      ...     _ = fit(m, (x, y), config=TrainConfig(steps=4, batch_size=8, checkpoint_dir=d,
      ...                                           progress=False))
      ...     fresh = nnx.Linear(3, 2, rngs=nnx.Rngs(1))
      ...     restore(fresh, d), bool(np.array_equal(predict(fresh, x), predict(m, x)))
      (4, True)
    """
    d = os.fspath(checkpoint_dir)
    if not os.path.isdir(d):
        raise FileNotFoundError(f"checkpoint_dir {d!r} does not exist or is not a directory")
    ck = Checkpointer(d, create=False)
    try:
        target = nnx.state(model)
        if step is None:
            found = ck.restore_latest(target, None, quarantine=False)
            if found is None:
                raise FileNotFoundError(f"checkpoint_dir {d!r} holds no intact checkpoint")
            step, state, _, _ = found
        else:
            if step not in ck.steps():
                raise ValueError(
                    f"step={step!r} is not in checkpoint_dir {d!r} (saved: {ck.steps()})"
                )
            state, _, _ = ck.restore(step, target, None)
    finally:
        ck.close()
    nnx.update(model, state)
    return int(step)
