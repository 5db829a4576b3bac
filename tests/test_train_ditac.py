"""The integration check of issue 11: a ResNet with per-channel DiTAC trained through ``fit``
with a custom optax optimizer and a custom loss; the DiTAC prior penalty enters the loss
(reported value, and a different trajectory from ``regularization_weight=0``); the run is
checkpointed, restored into a fresh model for inference, and predicts identically."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import actfx.nn
from actfx.nn.models import ResNet, SmallCNN
from actfx.train import TrainConfig, fit, predict, restore


def smoothed_cross_entropy(model, batch):
    """A custom loss: cross-entropy against labels smoothed by 0.1."""
    x, y = batch
    logits = model(x)
    target = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1]), 0.1)
    loss = optax.softmax_cross_entropy(logits.astype(jnp.float32), target).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}


def _model(depth, seed=0):
    if depth == 0:  # the cheap default: SmallCNN, two conv-BN-DiTAC blocks
        return SmallCNN(
            act=actfx.nn.DiTAC, num_classes=3, in_channels=1, widths=(4, 4), rngs=nnx.Rngs(seed)
        )
    return ResNet(
        depth,
        act=actfx.nn.DiTAC,
        num_classes=3,
        in_channels=1,
        widths=(4, 4, 4),
        rngs=nnx.Rngs(seed),
    )


def _num_sites(depth):
    return 2 if depth == 0 else 1 + 2 * 3 * ((depth - 2) // 6)


def _theta(model):
    return np.concatenate(
        [
            np.asarray(m.theta[...]).ravel()
            for _, m in nnx.iter_graph(model)
            if isinstance(m, actfx.nn.DiTAC)
        ]
    )


# one optimizer object: the two runs below share a compiled step per regularization weight
OPTIMIZER = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-2))


@pytest.mark.parametrize(
    "depth,control",
    [
        (0, False),
        pytest.param(8, False, marks=pytest.mark.slow),
        pytest.param(20, True, marks=pytest.mark.slow),
    ],
)
def test_resnet_with_per_channel_ditac_trains_checkpoints_and_restores(depth, control, tmp_path):
    """``depth=20``: ResNet-20 (19 per-channel DiTAC sites) plus the
    ``regularization_weight=0`` control run, ~50 s CPU, slow; ``depth=8``: ResNet-8 (7
    sites, ~22 s CPU), slow; default ``depth=0``: the same checks on a two-block SmallCNN
    (tests/test_train_api.py checks the weighted penalty against a plain optax loop on a
    small DiTAC net by default)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 3, 48).astype(np.int32)
    model = _model(depth)
    acts = [m for _, m in nnx.iter_graph(model) if isinstance(m, actfx.nn.DiTAC)]
    assert len(acts) == _num_sites(depth)
    assert all(a.theta[...].ndim == 2 and a.theta[...].shape[0] == 4 for a in acts)  # per channel
    reg0 = float(actfx.nn.regularization(model))
    assert reg0 > 0 and reg0 == pytest.approx(float(actfx.nn.ditac_penalty(model)), rel=1e-6)

    seen = {}
    ck = str(tmp_path / "ck")
    cfg = TrainConfig(steps=3, batch_size=16, checkpoint_dir=ck, progress=False)
    r = fit(
        model,
        (x, y),
        config=cfg,
        loss_fn=smoothed_cross_entropy,
        optimizer=OPTIMIZER,
        on_step=lambda s, m: seen.setdefault(s, float(m["regularization"])),
    )
    assert r.final["step"] == 3 and np.isfinite(r.final["train_loss"])
    assert {"train_accuracy", "train_regularization"} <= set(r.final)
    # the penalty fit added is the model's own DiTAC prior penalty, at each step's start
    assert seen[1] == pytest.approx(reg0, rel=1e-5)
    assert seen[3] != seen[1]
    if control:  # without the penalty the same run moves theta differently
        ctl = _model(depth)
        fit(
            ctl,
            (x, y),
            config=TrainConfig(steps=3, batch_size=16, regularization_weight=0.0, progress=False),
            loss_fn=smoothed_cross_entropy,
            optimizer=OPTIMIZER,
        )
        assert np.max(np.abs(_theta(model) - _theta(ctl))) > 1e-4

    # inference from the checkpoint: a fresh model (other seed) predicts identically
    fresh = _model(depth, seed=1)
    expected = predict(model, x, batch_size=16)
    assert not np.array_equal(predict(fresh, x, batch_size=16), expected)
    assert restore(fresh, ck) == 3
    np.testing.assert_array_equal(predict(fresh, x, batch_size=16), expected)
