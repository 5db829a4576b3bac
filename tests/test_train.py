"""Tests for actfx.train: schedules, optimisers, fit/evaluate, determinism, metrics JSON."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from actfx.data import load_digits
from actfx.nn.models import MLP, SmallCNN
from actfx.train import (
    TrainConfig,
    batch_indices,
    evaluate,
    fit,
    make_optimizer,
    make_schedule,
    piecewise_schedule,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def test_piecewise_schedule_matches_paper_recipe():
    s = piecewise_schedule(0.1, 64000)
    for t in [0, 1, 31999, 32000, 40000, 47999, 48000, 63999]:
        expected = 0.1 * (0.1 ** ((t >= 32000) + (t >= 48000)))
        assert float(s(t)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"base_lr": 0.0}, "base_lr"),
        ({"total_steps": 0}, "total_steps"),
        ({"boundaries": (0.7, 0.5)}, "boundaries"),
        ({"boundaries": (1.0,)}, "boundaries"),
        ({"factor": -1.0}, "factor"),
    ],
)
def test_piecewise_schedule_errors(kw, match):
    args = {"base_lr": 0.1, "total_steps": 100, **kw}
    with pytest.raises(ValueError, match=match):
        piecewise_schedule(args.pop("base_lr"), args.pop("total_steps"), **args)


def test_make_schedule_and_optimizer_errors():
    with pytest.raises(ValueError, match="schedule"):
        make_schedule("linear", 0.1, 10)
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("rmsprop", 0.1)
    with pytest.raises(ValueError, match="momentum"):
        make_optimizer("sgd", 0.1, momentum=1.0)


def test_sgd_matches_pytorch_update_rule():
    """PyTorch SGD: d = g + wd*w; buf = m*buf + d; w -= lr*buf (first step buf = d)."""
    lr, m, wd = 0.1, 0.9, 1e-2
    tx = make_optimizer("sgd", lr, momentum=m, weight_decay=wd)
    w = jnp.array([1.0, -2.0, 3.0])
    state = tx.init(w)
    w_ref, buf = np.array([1.0, -2.0, 3.0]), None
    rng = np.random.default_rng(0)
    for _ in range(4):
        g = rng.normal(size=3).astype(np.float32)
        upd, state = tx.update(jnp.asarray(g), state, w)
        w = optax.apply_updates(w, upd)
        d = g + wd * w_ref
        buf = d if buf is None else m * buf + d
        w_ref = w_ref - lr * buf
    np.testing.assert_allclose(w, w_ref, rtol=1e-5)


def test_batch_indices_cover_each_epoch_once():
    n, b = 50, 8  # 6 batches per epoch, 2 examples dropped
    for epoch in range(3):
        idx = np.concatenate([batch_indices(n, b, 0, epoch * 6 + i) for i in range(6)])
        assert len(set(idx.tolist())) == 48 and idx.max() < n
    assert not np.array_equal(batch_indices(n, b, 0, 0), batch_indices(n, b, 0, 6))
    np.testing.assert_array_equal(batch_indices(n, b, 3, 7), batch_indices(n, b, 3, 7))
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(5, 8, 0, 0)


def test_evaluate_matches_numpy_with_padded_last_batch(digits):
    m = MLP(64, 10, hidden=(16,), rngs=nnx.Rngs(0))
    m.eval()
    x, y = digits.x_test[:37], digits.y_test[:37]
    r = evaluate(m, (x, y), batch_size=10)
    logits = np.asarray(m(x), np.float64)
    logp = (
        logits
        - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
        - logits.max(1, keepdims=True)
    )
    assert r["loss"] == pytest.approx(-np.mean(logp[np.arange(37), y]), rel=1e-5)
    assert r["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))


def test_fit_learns_digits_and_writes_metrics(digits, tmp_path):
    m = SmallCNN(act=lambda: jax.nn.relu, widths=(16, 32), rngs=nnx.Rngs(0))
    path = tmp_path / "metrics.json"
    cfg = TrainConfig(
        epochs=4,
        batch_size=64,
        learning_rate=0.1,
        schedule="constant",
        metrics_path=str(path),
        progress=False,
    )
    r = fit(m, digits, config=cfg, extra_meta={"act": "relu"})
    assert r.final["step"] == 4 * (len(digits.x_train) // 64)
    assert r.final["test_accuracy"] > 0.85
    # fit updated the model in place: evaluating it reproduces the final record
    ev = evaluate(m, (digits.x_test, digits.y_test))
    assert ev["accuracy"] == pytest.approx(r.final["test_accuracy"])
    rec = json.loads(path.read_text())
    assert rec["meta"] == {"act": "relu"} and len(rec["history"]) == 4
    assert rec["config"]["batch_size"] == 64
    assert rec["history"][-1]["test_accuracy"] == r.final["test_accuracy"]


def test_fit_is_deterministic_and_seed_matters(digits):
    def run(seed):
        m = MLP(64, 10, hidden=(32,), rngs=nnx.Rngs(0))
        fit(
            m,
            digits,
            config=TrainConfig(
                steps=15, batch_size=32, augment=False, seed=seed, progress=False, eval_every=100
            ),
        )
        return nnx.state(m, nnx.Param)

    a, b, c = run(0), run(0), run(1)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(c)))


def test_fit_argument_errors(digits):
    m = MLP(64, 10, hidden=(8,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="batch_size"):
        fit(m, digits, config=TrainConfig(batch_size=10_000, progress=False))
    with pytest.raises(ValueError, match="equal length"):
        fit(m, (digits.x_train, digits.y_train[:3]), config=TrainConfig(progress=False))
    with pytest.raises(ValueError, match="augment"):
        fit(
            m,
            (digits.x_train.reshape(-1, 64), digits.y_train),
            config=TrainConfig(augment=True, progress=False),
        )
