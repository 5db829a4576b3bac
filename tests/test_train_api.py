"""fit's open API: any loss and target, optax objects and schedule factories, model
regularisers in the loss, evaluate/predict, and the argument/label/config checks."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import actfx.nn
from actfx.train import (
    TrainConfig,
    cross_entropy_loss,
    evaluate,
    fit,
    make_schedule,
    mse_loss,
    predict,
)

CFG = TrainConfig(progress=False)


def _regression_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    w = np.array([[1.0, -2.0], [0.5, 0.0], [0.0, 3.0]], np.float32)
    return x, (x @ w + 0.1).astype(np.float32)


def _class_data(n=64, seed=0, d=4, k=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (np.abs(x[:, 0] * 2).astype(np.int32) % k)


def test_regression_targets_with_mse_loss_and_adam():
    x, y = _regression_data()
    m = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    before = evaluate(m, (x, y), loss_fn=mse_loss)["loss"]
    cfg = TrainConfig(steps=150, batch_size=32, eval_every=50, progress=False)
    r = fit(m, (x, y), (x[:40], y[:40]), config=cfg, loss_fn=mse_loss, optimizer=optax.adam(0.05))
    assert [h["step"] for h in r.history] == [50, 100, 150]
    assert {"train_loss", "train_rmse", "train_regularization", "test_loss", "test_rmse"} <= set(
        r.final
    )
    assert r.final["test_loss"] < 1e-3 * before, (before, r.final)
    # the model was updated in place: evaluate/predict reproduce the final record
    ev = evaluate(m, (x[:40], y[:40]), loss_fn=mse_loss, batch_size=16)
    assert ev["loss"] == pytest.approx(r.final["test_loss"], rel=1e-5)
    np.testing.assert_allclose(predict(m, x, batch_size=7), np.asarray(m(x)), rtol=1e-6, atol=1e-6)


@functools.lru_cache
def _objective_grad(graphdef, loss_fn):
    def objective(p, rest, x, y, w):
        m = nnx.merge(graphdef, p, rest)
        loss, _ = loss_fn(m, (x, y))
        return loss + w * actfx.nn.regularization(m)

    return jax.jit(jax.grad(objective))


def _manual_full_batch(model, x, y, tx, steps, loss_fn, reg_weight):
    """Reference loop: plain optax on the full batch (what fit does when batch = N)."""
    g, params, rest = nnx.split(model, nnx.Param, ...)

    s = tx.init(params)
    grad = _objective_grad(g, loss_fn)
    for _ in range(steps):
        grads = grad(params, rest, x, y, reg_weight)
        upd, s = tx.update(grads, s, params)
        params = optax.apply_updates(params, upd)
    return params


def _params(model):
    return [np.asarray(v) for v in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_optax_object_and_factory_follow_plain_optax():
    x, y = _class_data()
    cfg = TrainConfig(
        steps=4,
        batch_size=len(x),
        schedule="piecewise",
        lr_boundaries=(0.5,),
        learning_rate=0.5,
        progress=False,
    )
    # a GradientTransformation object
    m = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    ref = _manual_full_batch(
        nnx.Linear(4, 3, rngs=nnx.Rngs(0)), x, y, optax.sgd(0.3), 4, cross_entropy_loss, 0.0
    )
    r = fit(m, (x, y), config=cfg, optimizer=optax.sgd(0.3))
    for a, b in zip(_params(m), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    assert r.final["lr"] is None  # fit cannot see inside an opaque transformation
    # a factory gets the schedule the config describes (0.5 then 0.05 from step 2)
    seen = []

    def factory(schedule):
        seen.append([float(schedule(t)) for t in range(4)])
        return optax.sgd(schedule, momentum=0.9)

    m = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    r = fit(m, (x, y), config=cfg, optimizer=factory)
    assert len(seen) == 1 and seen[0] == pytest.approx([0.5, 0.5, 0.05, 0.05], rel=1e-6)
    sched = make_schedule("piecewise", 0.5, 4, boundaries=(0.5,))
    ref = _manual_full_batch(
        nnx.Linear(4, 3, rngs=nnx.Rngs(0)),
        x,
        y,
        optax.sgd(sched, momentum=0.9),
        4,
        cross_entropy_loss,
        0.0,
    )
    for a, b in zip(_params(m), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    assert r.final["lr"] == pytest.approx(0.05)


class _DiTACNet(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(4, 6, rngs=rngs)
        self.act = actfx.nn.DiTAC(rngs=rngs)
        self.l2 = nnx.Linear(6, 3, rngs=rngs)

    def __call__(self, x):
        return self.l2(self.act(self.l1(x)))


def test_model_regularizer_enters_the_loss_by_default():
    x, y = _class_data()
    reg0 = float(actfx.nn.regularization(_DiTACNet(nnx.Rngs(0))))
    assert reg0 > 0
    seen = {}
    cfg = TrainConfig(steps=3, batch_size=len(x), progress=False)
    m = _DiTACNet(nnx.Rngs(0))
    r = fit(
        m,
        (x, y),
        config=cfg,
        optimizer=optax.sgd(0.5),
        on_step=lambda s, met: seen.setdefault(s, float(met["regularization"])),
    )
    # reported: the penalty at the parameters each step started from
    assert seen[1] == pytest.approx(reg0, rel=1e-5)
    # one epoch per step here, so each record holds one step's penalty
    assert [h["train_regularization"] for h in r.history] == pytest.approx(
        [seen[1], seen[2], seen[3]], rel=1e-6
    )
    # optimised: fit's parameters follow plain optax on CE + regularization(model) ...
    ref = _manual_full_batch(
        _DiTACNet(nnx.Rngs(0)), x, y, optax.sgd(0.5), 3, cross_entropy_loss, 1.0
    )
    for a, b in zip(_params(m), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # ... and not plain optax on CE alone (the same compiled gradient with weight 0)
    ref0 = _manual_full_batch(
        _DiTACNet(nnx.Rngs(0)), x, y, optax.sgd(0.5), 3, cross_entropy_loss, 0.0
    )
    theta, theta0 = np.asarray(m.act.theta[...]), np.asarray(ref0["act"]["theta"][...])
    assert np.max(np.abs(theta - theta0)) > 1e-4  # 20x the tolerance above


class _DecayedLinear(nnx.Module):
    """Any module with ``regularizer()`` (the ``actfx.nn.HasRegularizer`` protocol) counts."""

    def __init__(self, rngs):
        self.lin = nnx.Linear(4, 3, rngs=rngs)

    def regularizer(self):
        return 0.5 * jnp.sum(self.lin.kernel[...] ** 2)

    def __call__(self, x):
        return self.lin(x)


@pytest.mark.parametrize("weight", [0.0, 0.3])
def test_regularization_weight_scales_any_module_regularizer(weight):
    x, y = _class_data()
    m = _DecayedLinear(nnx.Rngs(0))
    fit(
        m,
        (x, y),
        config=TrainConfig(
            steps=3, batch_size=len(x), regularization_weight=weight, progress=False
        ),
        optimizer=optax.sgd(0.5),
    )
    ref = _manual_full_batch(
        _DecayedLinear(nnx.Rngs(0)), x, y, optax.sgd(0.5), 3, cross_entropy_loss, weight
    )
    for a, b in zip(_params(m), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    other = _manual_full_batch(
        _DecayedLinear(nnx.Rngs(0)), x, y, optax.sgd(0.5), 3, cross_entropy_loss, 0.3 - weight
    )
    assert max(np.max(np.abs(a - b)) for a, b in zip(_params(m), jax.tree.leaves(other))) > 1e-3


def test_evaluate_custom_loss_is_an_exact_mean_over_uneven_batches():
    x, y = _regression_data(n=37)
    m = nnx.Linear(3, 2, rngs=nnx.Rngs(1))
    full = float(jnp.mean((m(x) - y) ** 2))
    for bs in (5, 10, 37, 100):
        assert evaluate(m, (x, y), loss_fn=mse_loss, batch_size=bs)["loss"] == pytest.approx(
            full, rel=1e-5
        )


def test_predict_pads_the_last_batch_and_keeps_the_mode():
    from actfx.nn.models import SmallCNN

    m = SmallCNN(widths=(4,), num_classes=3, in_channels=1, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(11, 8, 8, 1)).astype(np.float32)
    m.train()
    p = predict(m, x, batch_size=4)  # eval mode: BatchNorm running statistics
    m.eval()
    np.testing.assert_allclose(p, np.asarray(m(x)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="x"):
        predict(m, x[:0])
    with pytest.raises(ValueError, match="batch_size"):
        predict(m, x, batch_size=0)


@pytest.mark.parametrize(
    "labels,match",
    [
        (np.full(64, -1, np.int32), r"\[0, 3\).*label -1"),
        (np.full(64, 3, np.int32), r"\[0, 3\).*label 3"),
        (np.zeros(64, np.float32), "integer"),
    ],
)
def test_default_loss_checks_labels(labels, match):
    x, _ = _class_data()
    m = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="y") as e:
        fit(m, (x, labels), config=TrainConfig(steps=1, batch_size=8, progress=False))
    assert e.match(match)
    with pytest.raises(ValueError, match=match):
        evaluate(m, (x, labels))


def test_bad_arguments_are_named_before_training(tmp_path):
    x, y = _class_data()
    m = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    ok = dict(steps=2, batch_size=8, progress=False)
    cases = [
        (dict(batch_size=0), "batch_size"),
        (dict(steps=-1), "steps"),
        (dict(learning_rate=float("nan")), "learning_rate"),
        (dict(learning_rate=float("inf")), "learning_rate"),
        (dict(eval_every=0), "eval_every"),
        (dict(checkpoint_every=0), "checkpoint_every"),
        (dict(regularization_weight=-1.0), "regularization_weight"),
        (dict(schedule="linear"), "schedule"),
        (dict(resume_mismatch="maybe"), "resume_mismatch"),
    ]
    for kw, match in cases:
        with pytest.raises(ValueError, match=match):
            fit(m, (x, y), config=TrainConfig(**{**ok, **kw}))
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(ValueError, match="checkpoint_dir"):
        fit(m, (x, y), config=TrainConfig(**ok, checkpoint_dir=str(f)))
    with pytest.raises(ValueError, match="test is empty"):
        fit(m, (x, y), (x[:0], y[:0]), config=TrainConfig(**ok))
    with pytest.raises(TypeError, match="config"):
        fit(m, (x, y), TrainConfig(**ok))
    with pytest.raises(TypeError, match="optimizer"):
        fit(m, (x, y), config=TrainConfig(**ok), optimizer="adam")
    with pytest.raises(TypeError, match="loss_fn"):
        fit(m, (x, y), config=TrainConfig(**ok), loss_fn="mse")
    with pytest.raises(TypeError, match="train"):
        fit(m, (x, y, x, y), config=TrainConfig(**ok))
    bad = x.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="train inputs.*NaN.*example 5"):
        fit(m, (bad, y), config=TrainConfig(**ok))
    with pytest.raises(ValueError, match="test targets"):
        fit(
            m,
            (x, y),
            (x, y.astype(np.float32) * np.nan),
            config=TrainConfig(**ok),
            loss_fn=mse_loss,
        )


class _Scalar(nnx.Module):
    def __init__(self):
        self.w = nnx.Param(jnp.zeros(()))

    def __call__(self, x):
        return x * self.w[...]


def _blows_up_above_4(model, batch):
    x, y = batch
    w = model.w[...]
    loss = jnp.mean((model(x) - y) ** 2) + (w - 10.0) ** 2
    return jnp.where(w > 4.0, jnp.nan, loss), {}


def test_non_finite_loss_stops_before_a_nan_checkpoint(tmp_path):
    """w: 0 -> 2 -> 3.6 -> 4.88 (sgd 0.1 on (w - 10)^2): the 4th step's loss is NaN."""
    from actfx.train import Checkpointer, restore

    x = np.zeros((8, 1), np.float32)
    d = str(tmp_path / "ck")
    cfg = TrainConfig(
        steps=10, batch_size=8, eval_every=1, checkpoint_every=1, checkpoint_dir=d, progress=False
    )
    m = _Scalar()
    with pytest.raises(FloatingPointError, match="step 4"):
        fit(m, (x, x), config=cfg, loss_fn=_blows_up_above_4, optimizer=optax.sgd(0.1))
    assert float(m.w[...]) == 0.0  # the model was not updated
    ck = Checkpointer(d)
    assert ck.steps() == [2, 3]
    ck.close()
    fresh = _Scalar()
    assert restore(fresh, d) == 3
    assert float(fresh.w[...]) == pytest.approx(4.88, rel=1e-5)
    # a rerun resumes the last finite state and stops at the same step again
    with pytest.raises(FloatingPointError, match="step 4"):
        fit(_Scalar(), (x, x), config=cfg, loss_fn=_blows_up_above_4, optimizer=optax.sgd(0.1))


def _zero_loss(model, batch):
    loss, aux = mse_loss(model, batch)
    return 0.0 * loss, aux


def test_compiled_step_cache_keys_on_loss_and_optimizer():
    from actfx._src.train.loop import _compiled_train_step

    x, y = _regression_data(n=32)
    tx = optax.sgd(0.1)
    cfg = TrainConfig(steps=2, batch_size=16, progress=False)

    def run(loss_fn, opt, seed=0):
        m = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
        before = _compiled_train_step.cache_info()
        fit(m, (x, y), config=dataclasses.replace(cfg, seed=seed), loss_fn=loss_fn, optimizer=opt)
        after = _compiled_train_step.cache_info()
        return _params(m), after.misses - before.misses

    p1, miss1 = run(mse_loss, tx)
    p2, miss2 = run(mse_loss, tx, seed=1)  # another seed reuses the compiled step
    assert miss2 == 0
    p3, miss3 = run(_zero_loss, tx)  # another loss is another step: nothing moves
    assert miss3 == 1
    for a, b in zip(p3, _params(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))):
        np.testing.assert_array_equal(a, b)
    p4, miss4 = run(mse_loss, optax.sgd(0.0))  # another optimizer object: recompiled, no update
    assert miss4 == 1
    for a, b in zip(p4, _params(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(p1, p4))


def test_loss_fn_output_is_checked():
    x, y = _regression_data(n=32)
    cfg = TrainConfig(steps=1, batch_size=16, progress=False)
    m = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="loss_fn must return"):
        fit(m, (x, y), config=cfg, loss_fn=lambda mod, b: jnp.mean(mod(b[0])))
    with pytest.raises(TypeError, match="scalar loss"):
        fit(m, (x, y), config=cfg, loss_fn=lambda mod, b: (mod(b[0]), {}))
    with pytest.raises(TypeError, match="aux"):
        fit(m, (x, y), config=cfg, loss_fn=lambda mod, b: (jnp.mean(mod(b[0])), {"out": mod(b[0])}))
