"""benchmarks/accelerator.py: its baselines compute what they stand for; a --quick smoke run."""

import json

import jax
import numpy as np
import pytest

import actfx
from benchmarks import accelerator


def test_lax_top_k_baseline_is_the_topk_activation():
    # the baseline must be the same function as actfx.topk (pools = (n, c), by |x|), or the
    # ratio compares different work; continuous draws, so there are no ties
    x = np.random.default_rng(0).standard_normal((2, 5, 3, 4)).astype(np.float32)
    both = jax.jit(
        lambda v: [(accelerator.lax_topk_mask(v, k), actfx.topk(v, k)) for k in (0.1, 0.5)]
    )
    for ours, ref in both(x):
        np.testing.assert_array_equal(ours, ref)


def test_unknown_section_or_activation_is_an_argparse_error(capsys):
    for argv in (["--only", "act,gpu"], ["--acts", "relu,swish"]):
        with pytest.raises(SystemExit) as e:
            accelerator.main(["--quick", *argv])
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown section(s) ['gpu']" in err and "unknown activation(s) ['swish']" in err


@pytest.mark.slow  # ~1 min of CPU (about 30 XLA compiles); `make bench` runs the script
def test_accelerator_quick_runs(tmp_path, capsys):
    out = tmp_path / "acc.json"
    rec = accelerator.main(
        ["--quick", "--acts", "relu,la_silu", "--rounds", "1", "--out", str(out)]
    )
    text = capsys.readouterr().out
    for needle in ("/proc/loadavg", "jax ", "[1] activations", "[2] ResNet-8", "[3] Top-K"):
        assert needle in text
    assert "[4] CPAB" in text and "points/s" in text
    assert all(r["ms"] > 0 and np.isfinite(r["ratio"]) for r in rec["activations"])
    resnet = {r["activation"]: r for r in rec["resnet"]}
    assert list(resnet) == ["relu", "la_silu"] and resnet["relu"]["ratio_vs_relu"] == 1.0
    assert all(r["loss_finite"] and r["images_per_s"] > 0 for r in resnet.values())
    recalls = [r["recall"] for r in rec["topk"] if "recall" in r]
    assert len(recalls) == 2 and all(0.0 <= v <= 1.0 for v in recalls)
    if jax.default_backend() == "cpu":  # approx_max_k falls back to the exact top-k off TPU
        assert recalls == [1.0, 1.0]
    assert all(r["points_per_s"] > 0 for r in rec["cpab"])
    assert json.loads(out.read_text())["env"]["jax"] == jax.__version__
