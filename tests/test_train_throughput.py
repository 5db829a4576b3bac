"""Smoke test of benchmarks/train_throughput.py on a tiny ResNet-8."""

import json

import pytest

from benchmarks.train_throughput import main


@pytest.mark.slow  # `make bench` runs the benchmark itself
def test_train_throughput_benchmark_runs(tmp_path, capsys):
    out = tmp_path / "tp.json"
    rec = main(
        [
            "--acts",
            "relu,la_silu",
            "--depth",
            "8",
            "--size",
            "8",
            "--batch",
            "4",
            "--steps",
            "1",
            "--repeats",
            "3",
            "--out",
            str(out),
        ]
    )
    rows = {r["activation"]: r for r in rec["rows"]}
    assert list(rows) == ["relu", "la_silu"]
    assert all(r["images_per_s"] > 0 and r["loss_finite"] for r in rows.values())
    # the baseline against itself, round by round, is exactly 1
    assert rows["relu"]["ratio_vs_relu"] == 1.0 and rows["relu"]["ratio_iqr"] == [1.0, 1.0]
    lo, hi = rows["la_silu"]["ratio_iqr"]
    assert 0 < lo <= rows["la_silu"]["ratio_vs_relu"] <= hi
    saved = json.loads(out.read_text())
    assert saved["depth"] == 8 and saved["baseline"] == "relu" and len(saved["load_before"]) == 3
    text = capsys.readouterr().out
    assert "images/s" in text and "ratio IQR" in text and "load average" in text
