"""fit/evaluate/write_json reliability (issue 22, and the explicit mesh of issue 23): the
resume fingerprint describes optimizers and functions by value, losses check shapes, aux
is validated at the first step, unhashable callables and line-search optimizers work,
arguments are checked before training, evaluate is exact across device counts, write_json
survives concurrent writers, and an explicit-sharding mesh trains like one device."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import threading

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from actfx._src.train._fingerprint import describe, run_fingerprint
from actfx.train import (
    Checkpointer,
    TrainConfig,
    cross_entropy,
    cross_entropy_loss,
    fit,
    mse_loss,
    write_json,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]], np.float32)).astype(np.float32)


def _cfg(**kw):
    return TrainConfig(**{"steps": 2, "batch_size": 16, "progress": False, **kw})


def _fp(optimizer=None, loss_fn=mse_loss):
    """The fingerprint as a checkpoint stores it (through JSON)."""
    fp = run_fingerprint(_cfg(), loss_fn, optimizer, _data())
    return json.loads(json.dumps(fp))


def _clip_adam(lr):
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(lr))


def _make_factory(scale):
    # two versions of "one factory edited under the same name": same qualname, other code
    src = f"def factory(schedule):\n    return optax.sgd(lambda t: {scale} * schedule(t))\n"
    ns = {"optax": optax}
    exec(compile(src, "<user>", "exec"), ns)
    return ns["factory"]


def _make_loss(power):
    src = (
        "def my_loss(model, batch):\n"
        f"    return jnp.mean(jnp.abs(model(batch[0]) - batch[1]) ** {power}), {{}}\n"
    )
    ns = {"jnp": jnp}
    exec(compile(src, "<user>", "exec"), ns)
    return ns["my_loss"]


# (a, b) pairs of runs that differ: the fingerprint must tell them apart
CHANGED = {
    "lr inside chain(clip, adam)": (lambda: _clip_adam(3e-3), lambda: _clip_adam(1e-3)),
    "schedule peak": (
        lambda: optax.adam(optax.warmup_cosine_decay_schedule(0.0, 1e-3, 2, 10)),
        lambda: optax.adam(optax.warmup_cosine_decay_schedule(0.0, 2e-3, 2, 10)),
    ),
    "jnp learning rate": (
        lambda: optax.adam(jnp.asarray(1e-3)),
        lambda: optax.adam(jnp.asarray(2e-3)),
    ),
    "MultiSteps k": (
        lambda: optax.MultiSteps(optax.adam(1e-3), 2).gradient_transformation(),
        lambda: optax.MultiSteps(optax.adam(1e-3), 3).gradient_transformation(),
    ),
    "factory edited": (lambda: _make_factory(1.0), lambda: _make_factory(0.5)),
    "deep chain": (
        lambda: optax.chain(optax.chain(optax.chain(optax.chain(_clip_adam(1e-3))))),
        lambda: optax.chain(optax.chain(optax.chain(optax.chain(_clip_adam(1.1e-3))))),
    ),
    "array by value": (
        lambda: optax.masked(optax.adam(1e-3), np.array([True, False])),
        lambda: optax.masked(optax.adam(1e-3), np.array([False, True])),
    ),
}


@pytest.mark.parametrize("case", sorted(CHANGED))
def test_fingerprint_tells_changed_optimizers_apart(case):
    make_a, make_b = CHANGED[case]
    a, a2, b = _fp(make_a()), _fp(make_a()), _fp(make_b())
    assert a == a2, "the same optimizer built twice must resume"
    assert a != b
    assert a["undescribable"] == [] and b["undescribable"] == []


def test_fingerprint_tells_an_edited_loss_and_dataclass_fields_apart():
    assert _fp(loss_fn=_make_loss(2)) == _fp(loss_fn=_make_loss(2))
    assert _fp(loss_fn=_make_loss(2)) != _fp(loss_fn=_make_loss(3))
    assert _fp(loss_fn=_ScaledMSE(1.0)) == _fp(loss_fn=_ScaledMSE(1.0))
    assert _fp(loss_fn=_ScaledMSE(1.0)) != _fp(loss_fn=_ScaledMSE(2.0))


def test_fingerprint_is_the_same_in_another_process():
    """Sets, dicts and hash seeds must not leak into the description (resume = new process)."""
    script = textwrap.dedent(
        """
        import json, optax
        from actfx._src.train._fingerprint import describe
        def f(x, _s=frozenset({"a", "b", "c", "d"})):
            return x in {"x", "y", "z"}
        opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(
            optax.piecewise_constant_schedule(1e-3, {10: 0.1, 20: 0.5})))
        print(json.dumps(describe([f, opt]), sort_keys=True))
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = []
    ns = {"__name__": "__main__", "print": printed.append}  # the same script, here
    exec(compile(script, "<string>", "exec"), ns)
    assert proc.stdout.strip().splitlines()[-1] == printed[-1]


class _Opaque:
    """An object with no attributes to compare (like a C extension object)."""

    __slots__ = ()


_OPAQUE = _Opaque()


def _opaque_loss(model, batch):
    assert _OPAQUE is not None
    return mse_loss(model, batch)


@pytest.fixture(scope="module")
def ckpt_run(tmp_path_factory):
    """A finished 2-step run of the README's chain(clip, adam) example, checkpointed."""
    d = str(tmp_path_factory.mktemp("fp") / "ck")
    x, y = _data()
    cfg = _cfg(checkpoint_dir=d, checkpoint_every=2)
    fit(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), (x, y), config=cfg, loss_fn=mse_loss,
        optimizer=_clip_adam(3e-3))  # fmt: skip
    return d


def test_fit_refuses_to_resume_after_the_learning_rate_in_a_chain_changed(ckpt_run, tmp_path):
    import shutil

    d = str(tmp_path / "ck")
    shutil.copytree(ckpt_run, d)
    cfg = _cfg(checkpoint_dir=d, checkpoint_every=2)
    x, y = _data()
    m = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"optimizer differs.*0\.003.*0\.001"):
        fit(m, (x, y), config=cfg, loss_fn=mse_loss, optimizer=_clip_adam(1e-3))
    with pytest.raises(ValueError, match="loss_fn differs"):
        fit(m, (x, y), config=cfg, loss_fn=_make_loss(2), optimizer=_clip_adam(3e-3))
    # the same run rebuilt resumes (a finished run: nothing left to do)
    r = fit(m, (x, y), config=cfg, loss_fn=mse_loss, optimizer=_clip_adam(3e-3))
    assert r.resumed_from == 2
    # what cannot be described by value is not guessed: the resume is refused, naming it
    d2 = str(tmp_path / "ck2")
    cfg2 = dataclasses.replace(cfg, checkpoint_dir=d2)
    fit(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), (x, y), config=cfg2, loss_fn=_opaque_loss)
    with pytest.raises(ValueError, match="cannot compare by value.*_OPAQUE"):
        fit(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), (x, y), config=cfg2, loss_fn=_opaque_loss)
    r = fit(
        nnx.Linear(3, 2, rngs=nnx.Rngs(0)),
        (x, y),
        config=dataclasses.replace(cfg2, resume_mismatch="ignore"),
        loss_fn=_opaque_loss,
    )
    assert r.resumed_from == 2


# ----------------------------------------------------------------------------- losses


def test_losses_refuse_to_broadcast_mismatched_shapes():
    x, y = _data()
    m = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"mse_loss.*\(32, 1\).*\(32,\)"):
        mse_loss(m, (x, y[:, 0]))
    with pytest.raises(ValueError, match=r"mse_loss.*\(16, 1\).*\(16,\)"):
        fit(m, (x, y[:, 0]), config=_cfg(), loss_fn=mse_loss)
    with pytest.raises(ValueError, match=r"labels of shape \(4, 1\).*logits of shape \(4, 3\)"):
        cross_entropy(jnp.zeros((4, 3)), jnp.zeros((4, 1), jnp.int32))
    with pytest.raises(ValueError, match=r"labels of shape \(2,\).*logits of shape \(4, 3\)"):
        cross_entropy_loss(lambda v: v, (jnp.zeros((4, 3)), jnp.zeros(2, jnp.int32)))
    # matching shapes still agree with a float64 reference
    loss, _ = mse_loss(m, (x, y[:, :1]))
    ref = np.mean((np.asarray(m(x), np.float64) - y[:, :1]) ** 2)
    assert float(loss) == pytest.approx(ref, rel=1e-6)


# ----------------------------------------------------------------------------- aux


@pytest.mark.parametrize(
    "name, value, match",
    [
        ("loss", 123.0, "'loss'"),
        ("regularization", 0.0, "'regularization'"),
        ("finite", True, "'finite'"),
        ("none", None, r"aux\['none'\]"),
        ("nested", {"a": 1.0}, r"aux\['nested'\]"),
        ("cplx", 1 + 2j, r"aux\['cplx'\].*real"),
        ("text", "hi", r"aux\['text'\]"),
        ("pair", (1.0, 2.0), r"aux\['pair'\]"),
    ],
)
def test_aux_is_checked_at_the_first_step(name, value, match):
    x, y = _data()
    calls = []

    def loss_fn(model, batch):
        loss, _ = mse_loss(model, batch)
        return loss, {name: value}

    with pytest.raises(ValueError, match=match):
        fit(
            nnx.Linear(3, 2, rngs=nnx.Rngs(0)),
            (x, y),
            config=_cfg(),
            loss_fn=loss_fn,
            on_step=lambda s, m: calls.append(s),
        )
    assert calls == []


# ----------------------------------------------------------------------------- arguments


@dataclasses.dataclass
class _ScaledMSE:
    """A callable dataclass: unhashable (eq=True without frozen)."""

    scale: float

    def __call__(self, model, batch):
        loss, aux = mse_loss(model, batch)
        return self.scale * loss, aux


@dataclasses.dataclass
class _SGDFactory:
    momentum: float

    def __call__(self, schedule):
        return optax.sgd(schedule, momentum=self.momentum)


def test_unhashable_callable_dataclasses_as_loss_and_factory():
    x, y = _data()
    cfg = _cfg(learning_rate=0.05, schedule="constant")
    m = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    r = fit(m, (x, y), config=cfg, loss_fn=_ScaledMSE(2.0), optimizer=_SGDFactory(0.5))
    assert r.final["step"] == 2 and np.isfinite(r.final["train_loss"])
    # same result as the equivalent plain function and optax object
    m2 = nnx.Linear(3, 2, rngs=nnx.Rngs(0))

    def scaled(model, batch):
        loss, aux = mse_loss(model, batch)
        return 2.0 * loss, aux

    fit(m2, (x, y), config=cfg, loss_fn=scaled, optimizer=optax.sgd(0.05, momentum=0.5))
    for a, b in zip(jax.tree.leaves(nnx.state(m)), jax.tree.leaves(nnx.state(m2))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_lbfgs_trains_like_plain_optax_lbfgs():
    """fit passes value/grad/value_fn to a line-search optimizer: full-batch L-BFGS in fit
    follows optax's own loop (optax.value_and_grad_from_state)."""
    x, y = _data()
    steps = 4
    m = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    g, p0, rest = nnx.split(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), nnx.Param, ...)

    def f(p):
        return jnp.mean((nnx.merge(g, p, rest)(x) - y) ** 2)

    opt = optax.lbfgs()
    vg = optax.value_and_grad_from_state(f)

    @jax.jit
    def ref_step(params, state):
        value, grad = vg(params, state=state)
        upd, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(params, upd), state

    params, state = p0, opt.init(p0)
    for _ in range(steps):
        params, state = ref_step(params, state)
    r = fit(m, (x, y), config=_cfg(steps=steps, batch_size=len(x)), loss_fn=mse_loss,
            optimizer=optax.lbfgs())  # fmt: skip
    assert r.final["step"] == steps
    assert float(f(params)) < 1e-2 * float(f(p0))  # L-BFGS did converge
    for a, b in zip(jax.tree.leaves(nnx.state(m, nnx.Param)), jax.tree.leaves(params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_arguments_checked_before_training(tmp_path):
    x, y = _data()
    m = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    calls = []

    def on_step(s, met):
        calls.append(s)

    with pytest.raises(ValueError, match="seed"):
        fit(m, (x, y), config=_cfg(seed=-1), loss_fn=mse_loss, on_step=on_step)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    bad = str(blocker / "metrics.json")  # its parent is a file: cannot be created
    with pytest.raises(ValueError, match=r"metrics_path=.*a_file/metrics\.json"):
        fit(m, (x, y), config=_cfg(metrics_path=bad), loss_fn=mse_loss, on_step=on_step)
    with pytest.raises(ValueError, match="extra_meta"):
        fit(m, (x, y), config=_cfg(), loss_fn=mse_loss, on_step=on_step,
            extra_meta={"f": object()})  # fmt: skip
    assert calls == []
    # NumPy scalars in extra_meta are converted at the call and land in the checkpoint
    d = str(tmp_path / "ck")
    meta = {"a": np.float32(0.5), "b": np.int64(3), "c": np.array([1.0, 2.0])}
    fit(m, (x, y), config=_cfg(checkpoint_dir=d, checkpoint_every=2, metrics_path=str(
        tmp_path / "m.json")), loss_fn=mse_loss, extra_meta=meta)  # fmt: skip
    ck = Checkpointer(d)
    _, _, ck_meta = ck.restore(2, nnx.state(m))
    ck.close()
    saved = json.loads((tmp_path / "m.json").read_text())["meta"]
    assert saved == ck_meta["extra_meta"] == {"a": 0.5, "b": 3, "c": [1.0, 2.0]}


# ----------------------------------------------------------------------------- write_json


def test_write_json_concurrent_writers_never_lose_or_tear(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"writer": -1, "i": -1, "pad": "x" * 20000})
    errors, seen = [], []
    stop = threading.Event()

    def writer(w):
        for i in range(40):
            try:
                write_json(path, {"writer": w, "i": i, "pad": "x" * 20000})
            except Exception as e:  # the old shared path.tmp: FileNotFoundError
                errors.append(repr(e))

    def reader():
        while not stop.is_set():
            try:
                seen.append(json.loads(path.read_text())["writer"])
            except Exception as e:  # a half-written file
                errors.append(repr(e))

    rd = threading.Thread(target=reader)
    rd.start()
    ws = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in ws:
        t.start()
    for t in ws:
        t.join()
    stop.set()
    rd.join()
    assert errors == []
    assert json.loads(path.read_text())["i"] == 39
    assert not [p for p in os.listdir(tmp_path) if p != "m.json"]  # no temp files left


def test_write_json_circular_and_colliding_keys(tmp_path):
    rec: dict = {"a": [1]}
    rec["a"].append(rec)
    with pytest.raises(ValueError, match="circular"):
        write_json(tmp_path / "c.json", rec)
    with pytest.raises(ValueError, match=r"keys 1 and '1'"):
        write_json(tmp_path / "k.json", {"outer": {1: "a", "1": "b"}})
    assert not os.listdir(tmp_path)  # nothing written
    shared = [1, 2]  # the same object twice is not a cycle
    write_json(tmp_path / "ok.json", {"a": shared, "b": shared})
    assert json.loads((tmp_path / "ok.json").read_text()) == {"a": [1, 2], "b": [1, 2]}


def test_describe_has_no_depth_limit():
    deep_a, deep_b = 1.0, 2.0
    for _ in range(20):
        deep_a, deep_b = [deep_a], [deep_b]
    assert describe(deep_a) != describe(deep_b)


# ----------------------------------------------------------------------------- devices

_TWO_DEVICES = textwrap.dedent(
    """
    import json
    import jax
    jax.config.update("jax_num_cpu_devices", 2)
    import numpy as np
    import optax
    from flax import nnx
    from actfx.data import load_digits
    from actfx.nn.models import MLP, SmallCNN
    from actfx.train import TrainConfig, evaluate, fit

    ds = load_digits(seed=0)
    x, y = ds.x_test.reshape(len(ds.x_test), -1), ds.y_test
    out = {"devices": jax.device_count()}
    m = MLP(64, 10, hidden=(32,), rngs=nnx.Rngs(0))
    for bs in (64, 50):  # 359 examples: full blocks, leftover blocks, a short tail
        out[f"eval{bs}"] = [evaluate(m, (x, y), batch_size=bs, num_devices=n) for n in (1, 2)]

    xt, yt = ds.x_train.reshape(len(ds.x_train), -1), ds.y_train
    def run(num_devices, sharding):
        m = MLP(64, 10, hidden=(32,), rngs=nnx.Rngs(0))
        cfg = TrainConfig(steps=6, batch_size=32, eval_every=2, num_devices=num_devices,
                          sharding=sharding, progress=False)
        r = fit(m, (xt, yt), (x, y), config=cfg, optimizer=optax.adam(1e-2))
        return [h["train_loss"] for h in r.history], [h["test_loss"] for h in r.history]
    out["auto1"] = run(1, "auto")
    out["explicit2"] = run(2, "explicit")
    out["auto2"] = run(2, "auto")

    def run_cnn(num_devices, sharding):  # BatchNorm + on-device augmentation
        m = SmallCNN(widths=(4,), rngs=nnx.Rngs(0))
        cfg = TrainConfig(steps=2, batch_size=32, learning_rate=0.05, augment=True, pad=1,
                          num_devices=num_devices, sharding=sharding, progress=False)
        return [fit(m, ds, config=cfg).final[k] for k in ("train_loss", "test_loss")]
    out["cnn_auto1"] = run_cnn(1, "auto")
    out["cnn_explicit2"] = run_cnn(2, "explicit")
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def two_devices():
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT") :])


def test_evaluate_is_exact_across_device_counts(two_devices):
    assert two_devices["devices"] == 2
    for bs in (64, 50):
        one, two = two_devices[f"eval{bs}"]
        assert one == two, (bs, one, two)  # bitwise the same floats


def test_explicit_sharding_mesh_trains_like_one_device(two_devices):
    train1, test1 = two_devices["auto1"]
    train_e, test_e = two_devices["explicit2"]
    train_a, test_a = two_devices["auto2"]
    assert len(train1) == len(train_e) == 3
    np.testing.assert_allclose(train_e, train1, rtol=1e-5)
    np.testing.assert_allclose(test_e, test1, rtol=1e-5)
    np.testing.assert_allclose(train_a, train1, rtol=1e-5)
    assert train1[-1] < train1[0]  # it did train
    np.testing.assert_allclose(two_devices["cnn_explicit2"], two_devices["cnn_auto1"], rtol=1e-5)
