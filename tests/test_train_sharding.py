"""Data-parallel sharding on 8 fake CPU devices (``jax_num_cpu_devices``), in a subprocess
because the device count is fixed when JAX's backend starts."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    import numpy as np
    from flax import nnx
    from actfx.data import load_digits
    from actfx.nn.models import SmallCNN
    from actfx.train import TrainConfig, batch_sharded, evaluate, fit, make_data_mesh

    out = {"device_count": jax.device_count()}
    ds = load_digits(seed=0)

    # batches really are split: 8 shards of 64 / 8 rows, one per device
    mesh = make_data_mesh()
    xb = jax.device_put(ds.x_train[:64], batch_sharded(mesh))
    out["shard_shapes"] = sorted({tuple(s.data.shape) for s in xb.addressable_shards})
    out["shard_devices"] = len({s.device for s in xb.addressable_shards})

    def run(num_devices, ckpt=None, on_step=None):
        m = SmallCNN(act=lambda: jax.nn.silu, widths=(8, 16), rngs=nnx.Rngs(0))
        cfg = TrainConfig(steps=8, batch_size=64, learning_rate=0.05, augment=True, pad=1,
                          eval_every=8, num_devices=num_devices, checkpoint_dir=ckpt,
                          checkpoint_every=4, progress=False)
        r = fit(m, ds, config=cfg, on_step=on_step)
        leaves = jax.tree.leaves(nnx.state(m))
        return r, [np.asarray(v) for v in leaves]

    r1, p1 = run(1)
    r8, p8 = run(8)
    out["max_abs_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(p1, p8))
    out["max_abs"] = max(float(np.max(np.abs(a))) for a in p1)
    out["acc1"], out["acc8"] = r1.final["test_accuracy"], r8.final["test_accuracy"]
    out["loss1"], out["loss8"] = r1.final["test_loss"], r8.final["test_loss"]
    m = SmallCNN(widths=(8, 16), rngs=nnx.Rngs(0))
    odd = evaluate(m, (ds.x_test[:13], ds.y_test[:13]), batch_size=5)
    out["eval_odd_count"] = odd["accuracy"] * 13

    # interrupt + resume on 8 devices gives the same parameters as the uninterrupted 8-device run
    class Stop(Exception):
        pass
    def stop(step, metrics):
        if step == 6:
            raise Stop
    try:
        run(8, ckpt=sys.argv[1], on_step=stop)
    except Stop:
        pass
    rr, pr = run(8, ckpt=sys.argv[1])
    out["resumed_from"] = rr.resumed_from
    out["resume_identical"] = all(np.array_equal(a, b) for a, b in zip(pr, p8))

    try:
        fit(SmallCNN(widths=(8,), rngs=nnx.Rngs(0)), ds,
            config=TrainConfig(steps=1, batch_size=60, progress=False))
    except ValueError as e:
        out["error"] = str(e)
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path_factory.mktemp("ckpt8"))],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    out = json.loads(line[len("RESULT") :])
    print(out)
    return out


def test_eight_fake_devices_split_the_batch(result):
    assert result["device_count"] == 8
    assert result["shard_devices"] == 8 and result["shard_shapes"] == [[8, 8, 8, 1]]


def test_eight_devices_match_one_device(result):
    # same global batch and BatchNorm statistics: only the reduction order differs
    assert result["max_abs_diff"] <= 1e-4 * max(1.0, result["max_abs"]), result
    assert abs(result["loss1"] - result["loss8"]) < 1e-4
    assert abs(result["acc1"] - result["acc8"]) <= 1 / 359 + 1e-12


def test_eight_devices_resume_and_padding(result):
    assert result["resumed_from"] == 4
    assert result["resume_identical"]
    # per-example values summed in float64: the count is an integer up to float64 round-off
    # (a padded row counted by mistake would add 1; float32 batch means were off by ~1e-6)
    assert abs(result["eval_odd_count"] - round(result["eval_odd_count"])) < 1e-12


def test_batch_not_divisible_by_devices_is_an_error(result):
    assert "batch_size=60" in result["error"] and "divisible" in result["error"]
