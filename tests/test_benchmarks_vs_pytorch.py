"""benchmarks/vs_pytorch.py: skips cleanly without torch; its PyTorch references are right."""

import numpy as np
import pytest

import actfx
from benchmarks import vs_pytorch


def test_skips_with_a_message_without_torch(monkeypatch, capsys):
    monkeypatch.setattr(vs_pytorch, "load_torch", lambda: (None, "ModuleNotFoundError: torch"))
    assert vs_pytorch.main(["--skip-train", "--skip-cpab"]) == {
        "skipped": "ModuleNotFoundError: torch"
    }
    out = capsys.readouterr().out
    assert "skipped" in out and "compare" in out


def _nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def test_pytorch_references_match_actfx():
    torch = pytest.importorskip("torch")
    import jax
    import jax.numpy as jnp

    ops = vs_pytorch.torch_ops(torch)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 10, 10, 3)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    xt, gt = torch.from_numpy(_nchw(x)), torch.from_numpy(_nchw(g))
    # Top-K: same count (k=0.29 at 10x10 keeps 29: the reference's left-to-right product)
    got = ops["topk"](xt, 0.29).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(got, np.asarray(actfx.topk(x, 0.29)))
    # LA-SiLU forward, and the reference's hand-written backward == actfx grad="paper"
    v = xt.clone().requires_grad_(True)
    y = ops["la_silu"](v)
    y.backward(gt)
    np.testing.assert_allclose(
        y.detach().numpy().transpose(0, 2, 3, 1), actfx.layeract_silu(x), rtol=2e-5, atol=1e-6
    )
    _, vjp = jax.vjp(lambda a: actfx.layeract_silu(a, grad="paper"), jnp.asarray(x))
    np.testing.assert_allclose(
        v.grad.numpy().transpose(0, 2, 3, 1), vjp(jnp.asarray(g))[0], rtol=1e-4, atol=1e-5
    )


# a 2x4x4x2 tensor, one k, one round: the whole table machinery in a second
TINY = ["--shape", "2", "4", "4", "2", "--k", "0.5", "--rounds", "1", "--repeats", "1"]


def test_tiny_run_prints_tables(capsys):
    pytest.importorskip("torch")
    out = vs_pytorch.main([*TINY, "--skip-train", "--skip-cpab"])
    want = {"ReLU", "SiLU", "LA-SiLU (true gradient)", "Top-K k=0.5 exact", "Top-K k=0.5 approx"}
    assert set(out["ops"]["fwd+bwd"]) >= want
    assert all(r["actfx_ms"] > 0 and r["torch_ms"] > 0 for r in out["ops"]["fwd"].values())
    text = capsys.readouterr().out
    assert "load average" in text and "actfx/PyTorch" in text
    assert "Top-K k=0.5 approx / ReLU" in text


def test_topk_only_times_relu_and_the_topk_rows(capsys):
    pytest.importorskip("torch")
    out = vs_pytorch.main([*TINY, "--topk-only", "--skip-train", "--skip-cpab"])
    rows = out["ops"]["fwd+bwd"]
    assert list(rows) == ["ReLU", "Top-K k=0.5 exact", "Top-K k=0.5 approx"]
    # the approx row shares the PyTorch time of the exact row at the same k
    assert rows["Top-K k=0.5 approx"]["torch_ms"] == rows["Top-K k=0.5 exact"]["torch_ms"]
    assert out["ops"]["topk_0.5_over_relu"] > 0 and out["ops"]["topk_0.5_approx_over_relu"] > 0


@pytest.mark.slow
def test_torch_resnet20_trains():
    torch = pytest.importorskip("torch")
    import jax
    from flax import nnx

    from actfx.nn.models import ResNet

    model = vs_pytorch.torch_resnet20(torch, "la_silu", topk=0.1)
    ours = ResNet(20, num_classes=10, in_channels=3, rngs=nnx.Rngs(0))
    n_ours = sum(v.size for v in jax.tree_util.tree_leaves(nnx.state(ours, nnx.Param)))
    assert sum(p.numel() for p in model.parameters()) == n_ours  # the same architecture
    x = torch.rand(4, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert np.isfinite(loss.item())
