"""Execute the jupytext notebooks on CPU with their tiny configuration, and check that each
committed .ipynb is in sync with its .py source."""

import pathlib

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
