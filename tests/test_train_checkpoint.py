"""Checkpoint/resume: an interrupted run resumed from its checkpoint ends exactly where an
uninterrupted run ends (parameters, BatchNorm statistics, optimiser state, history)."""

import os
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from flax import nnx

from actfx.data import load_digits
from actfx.nn.models import SmallCNN
from actfx.train import Checkpointer, TrainConfig, fit


class Interrupted(Exception):
    pass


def _model():
    return SmallCNN(act=lambda: jax.nn.silu, widths=(8, 16), rngs=nnx.Rngs(0))


def _config(ckpt_dir):
    # SGD + momentum (optimizer state), BatchNorm (running stats), augmentation (per-step
    # keys), a piecewise schedule with a boundary after the interruption point.
    return TrainConfig(
        steps=24,
        batch_size=32,
        learning_rate=0.05,
        augment=True,
        pad=1,
        eval_every=8,
        checkpoint_every=5,
        checkpoint_dir=ckpt_dir,
        lr_boundaries=(0.75,),
        progress=False,
    )


def _flat(model):
    return {
        "/".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(nnx.state(model))
    }


def _strip_timing(history):
    return [{k: v for k, v in h.items() if k != "images_per_s"} for h in history]


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="module")
def uninterrupted(digits, tmp_path_factory):
    m = _model()
    r = fit(m, digits, config=_config(str(tmp_path_factory.mktemp("full"))))
    return _flat(m), r


def test_resume_after_interruption_is_bitwise_identical(digits, tmp_path, uninterrupted):
    ref_state, ref = uninterrupted
    ckpt = str(tmp_path / "ckpt")

    def stop_at_13(step, metrics):
        if step == 13:
            raise Interrupted

    with pytest.raises(Interrupted):
        fit(_model(), digits, config=_config(ckpt), on_step=stop_at_13)
    ck = Checkpointer(ckpt)
    assert ck.latest_step() == 10
    ck.close()

    m = _model()
    r = fit(m, digits, config=_config(ckpt))
    assert r.resumed_from == 10 and r.final["step"] == 24
    state = _flat(m)
    assert state.keys() == ref_state.keys()
    for k in ref_state:
        np.testing.assert_array_equal(state[k], ref_state[k], err_msg=k)
    assert _strip_timing(r.history) == _strip_timing(ref.history)


def test_rerun_of_finished_run_is_a_no_op(digits, tmp_path, uninterrupted):
    ref_state, _ = uninterrupted
    ckpt = str(tmp_path / "ckpt")
    fit(_model(), digits, config=_config(ckpt))
    m = _model()
    r = fit(m, digits, config=_config(ckpt))
    assert r.resumed_from == 24 and r.final["step"] == 24
    for k, v in _flat(m).items():
        np.testing.assert_array_equal(v, ref_state[k], err_msg=k)


_KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    import jax
    from flax import nnx
    from actfx.data import load_digits
    from actfx.nn.models import SmallCNN
    from actfx.train import TrainConfig, fit

    def kill(step, metrics):
        if step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

    m = SmallCNN(act=lambda: jax.nn.silu, widths=(8, 16), rngs=nnx.Rngs(0))
    cfg = TrainConfig(steps=24, batch_size=32, learning_rate=0.05, augment=True, pad=1,
                      eval_every=8, checkpoint_every=5, checkpoint_dir=sys.argv[1],
                      lr_boundaries=(0.75,), progress=False)
    fit(m, load_digits(seed=0), config=cfg, on_step=kill)
    """
)


@pytest.mark.slow
def test_resume_after_sigkill(digits, tmp_path, uninterrupted):
    """A process killed with SIGKILL mid-run leaves a usable checkpoint."""
    ref_state, _ = uninterrupted
    ckpt = str(tmp_path / "ckpt")
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, ckpt, "17"],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    m = _model()
    r = fit(m, digits, config=_config(ckpt))
    assert r.resumed_from == 15
    for k, v in _flat(m).items():
        np.testing.assert_array_equal(v, ref_state[k], err_msg=k)
