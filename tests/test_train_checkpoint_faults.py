"""Checkpoint faults: a damaged newest checkpoint (truncated data, flipped bytes, missing or
garbage metadata, an empty step directory, ...) is detected, named in a warning and skipped
in favour of the newest intact one, by ``restore`` and by a resuming ``fit``; a checkpoint of
another run is refused unless asked; a process killed inside a save leaves a usable
directory."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from actfx.train import Checkpointer, TrainConfig, fit, restore


class Net(nnx.Module):
    """Linear -> BatchNorm -> relu -> Linear: parameters and BN statistics."""

    def __init__(self, seed=0, width=8):
        rngs = nnx.Rngs(seed)
        self.l1 = nnx.Linear(4, width, rngs=rngs)
        self.bn = nnx.BatchNorm(width, rngs=rngs)
        self.l2 = nnx.Linear(width, 3, rngs=rngs)

    def __call__(self, x):
        return self.l2(jax.nn.relu(self.bn(self.l1(x))))


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)


def _cfg(d, **kw):
    return TrainConfig(
        **{
            "steps": 8,
            "batch_size": 16,
            "learning_rate": 0.05,
            "eval_every": 4,
            "checkpoint_every": 4,
            "checkpoint_dir": d,
            "progress": False,
            **kw,
        }
    )


def _flat(model):
    return {
        "/".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(nnx.state(model))
    }


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An intact 8-step run with checkpoints at 4 and 8, and the states at both."""
    d = str(tmp_path_factory.mktemp("intact") / "ck")
    m = Net()
    fit(m, _data(), config=_cfg(d))
    at = {}
    for step in (4, 8):
        fresh = Net(seed=1)
        assert restore(fresh, d, step=step) == step
        at[step] = _flat(fresh)
    _assert_same(at[8], _flat(m))
    return d, at


def _largest_file(root):
    files = [os.path.join(p, f) for p, _, fs in os.walk(root) for f in fs]
    return max(files, key=os.path.getsize)


def _truncate(step_dir):
    f = _largest_file(os.path.join(step_dir, "model"))
    with open(f, "r+b") as fh:
        fh.truncate(os.path.getsize(f) // 2)


def _flip_bytes(step_dir):
    f = _largest_file(os.path.join(step_dir, "model"))
    data = bytearray(open(f, "rb").read())
    for i in range(len(data) // 3, len(data) // 3 + 4):
        data[i] ^= 0xFF
    open(f, "wb").write(bytes(data))


def _delete_meta(step_dir):
    os.remove(os.path.join(step_dir, "meta", "metadata"))


def _garbage_json(step_dir):
    with open(os.path.join(step_dir, "meta", "metadata"), "w") as fh:
        fh.write('{"history": [1, 2,')


def _edit_meta(step_dir):
    p = os.path.join(step_dir, "meta", "metadata")
    meta = json.load(open(p))
    meta["history"][0]["train_loss"] = 0.0  # valid JSON, wrong content
    json.dump(meta, open(p, "w"))


def _empty_dir(step_dir):
    shutil.rmtree(step_dir)
    os.mkdir(step_dir)


def _delete_model_item(step_dir):
    shutil.rmtree(os.path.join(step_dir, "model"))


def _delete_checkpoint_metadata(step_dir):
    os.remove(os.path.join(step_dir, "_CHECKPOINT_METADATA"))


DAMAGE = {
    f.__name__[1:]: f
    for f in (
        _truncate,
        _flip_bytes,
        _delete_meta,
        _garbage_json,
        _edit_meta,
        _empty_dir,
        _delete_model_item,
    )
}


def _damaged_copy(run, tmp_path, kind):
    d = str(tmp_path / "ck")
    shutil.copytree(run[0], d)
    DAMAGE[kind](os.path.join(d, "8"))
    return d


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_restore_falls_back_past_a_damaged_checkpoint(run, tmp_path, kind):
    d = _damaged_copy(run, tmp_path, kind)
    fresh = Net(seed=1)
    with pytest.warns(UserWarning, match=r"ck/8 is damaged"):
        assert restore(fresh, d) == 4
    _assert_same(_flat(fresh), run[1][4])
    assert os.path.isdir(os.path.join(d, "8"))  # restore changes nothing on disk
    with pytest.raises(ValueError, match="step 8"):
        restore(Net(seed=1), d, step=8)


def test_lost_orbax_bookkeeping_alone_is_not_damage(run, tmp_path):
    """Without ``_CHECKPOINT_METADATA`` (timestamps) the data still verifies against its
    digests, so the step is used rather than discarded."""
    d = str(tmp_path / "ck")
    shutil.copytree(run[0], d)
    _delete_checkpoint_metadata(os.path.join(d, "8"))
    fresh = Net(seed=1)
    assert restore(fresh, d) == 8
    _assert_same(_flat(fresh), run[1][8])


@pytest.mark.parametrize("kind", ["truncate", "garbage_json", "empty_dir"])
def test_fit_resumes_from_the_newest_intact_checkpoint(run, tmp_path, kind):
    d = _damaged_copy(run, tmp_path, kind)
    m = Net()
    with pytest.warns(UserWarning, match=r"ck/8 is damaged"):
        r = fit(m, _data(), config=_cfg(d))
    assert r.resumed_from == 4 and r.final["step"] == 8
    _assert_same(_flat(m), run[1][8])  # the rerun redid steps 5-8 exactly
    assert os.path.isdir(os.path.join(d, "8.damaged"))  # kept aside for inspection


def test_no_intact_checkpoint_starts_over_with_a_warning(run, tmp_path):
    d = str(tmp_path / "ck")
    shutil.copytree(run[0], d)
    for step in ("4", "8"):
        _garbage_json(os.path.join(d, step))
    m = Net()
    with pytest.warns(UserWarning, match="damaged"):
        r = fit(m, _data(), config=_cfg(d))
    assert r.resumed_from is None
    _assert_same(_flat(m), run[1][8])
    with pytest.raises(FileNotFoundError, match="checkpoint_dir"):
        restore(Net(), str(tmp_path / "missing"))


def test_a_different_run_is_refused_unless_asked(run, tmp_path):
    d = str(tmp_path / "ck")
    shutil.copytree(run[0], d)
    with pytest.raises(ValueError, match=r"learning_rate: 0.05 in the checkpoint, 5.0 now"):
        fit(Net(), _data(), config=_cfg(d, learning_rate=5.0))
    with pytest.raises(ValueError, match="seed"):
        fit(Net(), _data(), config=_cfg(d, seed=3))
    with pytest.raises(ValueError, match="optimizer"):
        fit(Net(), _data(), config=_cfg(d), optimizer=optax.adam(1e-3))
    with pytest.raises(ValueError, match="loss_fn"):
        fit(Net(), _data(), config=_cfg(d), loss_fn=lambda m, b: (jnp.mean(m(b[0]) ** 2), {}))
    x, y = _data()
    with pytest.raises(ValueError, match="train data differ"):
        fit(Net(), (x[::-1], y[::-1]), config=_cfg(d))
    with pytest.raises(ValueError, match=r"model does not match.*l1"):
        fit(Net(width=6), _data(), config=_cfg(d))
    with pytest.raises(ValueError, match="model does not match"):
        restore(Net(width=6), d)
    ck = Checkpointer(d)
    assert ck.steps() == [4, 8]  # nothing was moved aside: the checkpoints are intact
    ck.close()
    # logging/device fields may change; an explicit override resumes anyway
    r = fit(Net(), _data(), config=_cfg(d, eval_every=2, progress=True))
    assert r.resumed_from == 8
    r = fit(Net(), _data(), config=_cfg(d, steps=10, learning_rate=0.01, resume_mismatch="ignore"))
    assert r.resumed_from == 8 and r.final["step"] == 10


_KILL_IN_SAVE = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    sys.path.insert(0, os.getcwd())
    from tests.test_train_checkpoint_faults import Net, _cfg, _data
    from actfx.train import Checkpointer, fit

    d = sys.argv[1]
    orig = Checkpointer.save

    def save(self, step, *a, **k):
        if step == 8:  # die while orbax writes step 8
            def killer():
                deadline = time.time() + 30
                while time.time() < deadline:
                    if any(n.startswith("8.") or n == "8" for n in os.listdir(d)):
                        os.kill(os.getpid(), signal.SIGKILL)
                    time.sleep(0.0005)
            threading.Thread(target=killer, daemon=True).start()
        return orig(self, step, *a, **k)

    Checkpointer.save = save
    fit(Net(), _data(), config=_cfg(d))
    """
)


@pytest.mark.slow
def test_kill_during_save_leaves_a_resumable_directory(run, tmp_path):
    d = str(tmp_path / "ck")
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_IN_SAVE, d],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    m = Net()
    r = fit(m, _data(), config=_cfg(d))  # a half-written step 8 is ignored or skipped
    assert r.resumed_from == 4 and r.final["step"] == 8
    _assert_same(_flat(m), run[1][8])
