"""The README's "Scale out" snippets run as written, on 4 fake CPU devices (in a subprocess:
the device count is fixed when JAX's backend starts)."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_scale_out_snippets_run_on_four_devices(tmp_path):
    section = _section((ROOT / "README.md").read_text(), "Scale out")
    snippets = FENCE.findall(section)
    assert len(snippets) == 4, "data parallel, shard_map, explicit sharding, multi-host"
    script = tmp_path / "scale_out.py"
    # each snippet in its own namespace, as a reader would run it
    script.write_text(
        "import jax\n"
        "jax.config.update('jax_num_cpu_devices', 4)\n"
        "assert jax.device_count() == 4\n"
        + "".join(
            f"print('--- snippet {i}')\nexec(compile({code!r}, 'snippet {i}', 'exec'), {{}})\n"
            for i, code in enumerate(snippets)
        )
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("ACTFX_MULTIHOST", None)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    out = proc.stdout
    for i in range(4):
        assert f"--- snippet {i}" in out
    # data parallel: auto and explicit meshes train to the same loss (4 decimals printed)
    losses = dict(re.findall(r"^(auto|explicit) (\S+)$", out, re.M))
    assert set(losses) == {"auto", "explicit"}, out
    assert abs(float(losses["auto"]) - float(losses["explicit"])) < 1e-3, losses
    assert "(8, 8, 8, 4)" in out  # the shard_map gradient has the global shape
    explicit = out.split("--- snippet 2")[1].split("--- snippet 3")[0]
    assert "@data" in explicit, explicit  # the gradient's type keeps the batch sharding
    assert "(32, 28, 28, 1) 1" in out  # one process assembles the whole batch
