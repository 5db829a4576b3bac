"""Execute the jupytext notebooks on CPU with their tiny configuration, and check that each
committed .ipynb is in sync with its .py source."""

import importlib.metadata
import os
import pathlib
import subprocess
import sys

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = ["quickstart", "colab_tpu_training"]


def _sources(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_ipynb_is_paired_with_py(name):
    py = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    ipynb = jupytext.read(ROOT / "notebooks" / f"{name}.ipynb")
    assert _sources(py) == _sources(ipynb), (
        f"notebooks/{name}.ipynb is out of date: run `jupytext --sync notebooks/{name}.py`"
    )


# Each execution starts a kernel (JAX import + compiles, ~20 s of CPU): the quickstart runs by
# default, the Colab notebook (ResNet + the same fit/plot code) with `make test-all`.
@pytest.mark.parametrize(
    "name", ["quickstart", pytest.param("colab_tpu_training", marks=pytest.mark.slow)]
)
def test_notebook_executes_quick_config(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ACTFX_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("ACTFX_CKPT_DIR", str(tmp_path / "ckpt"))
    nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "test accuracy" in outputs
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


# --- the install cell (same code in every notebook) -------------------------------------

ALL_NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.py"))


def _install_cell(name):
    nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "ACTFX_SOURCE" in c.source]
    assert cells, f"notebooks/{name}.py has no install cell (a code cell reading ACTFX_SOURCE)"
    return cells[0]


def test_every_notebook_has_the_same_install_cell():
    cells = {name: _install_cell(name) for name in ALL_NOTEBOOKS}
    reference = cells["quickstart"]
    assert "--no-deps" in reference and "-c" in reference
    for name, src in cells.items():
        assert src == reference, f"notebooks/{name}.py's install cell differs from quickstart's"


def test_install_cell_without_actfx_or_source_prints_instructions(tmp_path):
    # `python -S`: no site-packages, so actfx is not importable (cwd has no actfx/ either).
    env = {k: v for k, v in os.environ.items() if k not in ("ACTFX_SOURCE", "PYTHONPATH")}
    out = subprocess.run(
        [sys.executable, "-S", "-c", _install_cell("quickstart")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "ACTFX_SOURCE is not set" in out.stdout and "git+https://" in out.stdout
    assert "RuntimeError: actfx is not installed" in out.stderr


def test_install_cell_skips_when_installed_and_finds_missing_requirements(monkeypatch, capsys):
    ns: dict = {}
    exec(_install_cell("quickstart"), ns)  # actfx is installed here: prints, installs nothing
    assert "already installed" in capsys.readouterr().out
    assert ns["_missing_requirements"](("data",)) == []
    real = importlib.metadata.version

    def fake_version(name):  # pretend tqdm (base) and mlxtend (data extra) are absent
        if name in ("tqdm", "mlxtend"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    missing = ns["_missing_requirements"](("data",))
    assert [m.split(">")[0].split("=")[0] for m in missing] == ["mlxtend", "tqdm"], missing
    assert not any(m.startswith("jax") for m in ns["_missing_requirements"](("experiments",)))


def test_colab_notebook_asks_for_a_tpu_runtime():
    for path in (
        ROOT / "notebooks" / "colab_tpu_training.ipynb",
        ROOT / "notebooks" / "colab_tpu_training.py",
    ):
        meta = jupytext.read(path).metadata
        assert meta.get("accelerator") == "TPU", path
        assert meta.get("colab", {}).get("gpuType"), path
    src = (ROOT / "notebooks" / "colab_tpu_training.py").read_text()
    assert "no TPU found" in src
