"""Smoke test of benchmarks/train_throughput.py on a tiny ResNet-8."""

import json

import pytest

from benchmarks.train_throughput import main


@pytest.mark.slow  # `make bench` runs the benchmark itself
def test_train_throughput_benchmark_runs(tmp_path, capsys):
    out = tmp_path / "tp.json"
    rec = main(["--acts", "relu", "--depth", "8", "--size", "8", "--batch", "4",
                "--steps", "1", "--repeats", "1", "--out", str(out)])
    assert [r["activation"] for r in rec["rows"]] == ["relu"]
    assert all(r["images_per_s"] > 0 and r["loss_finite"] for r in rec["rows"])
    assert rec["rows"][0]["ratio_vs_relu"] == 1.0
    assert json.loads(out.read_text())["depth"] == 8
    assert "images/s" in capsys.readouterr().out
