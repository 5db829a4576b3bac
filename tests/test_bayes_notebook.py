"""Execute notebooks/bayes_mcmc.py on CPU with its tiny configuration (ACTFX_NOTEBOOK_QUICK=1)."""

import pathlib

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parent.parent


# A kernel start plus MCMC (~100 s of CPU): under -m slow (`make test-all`). By default the
# notebook machinery runs on the quickstart (test_notebooks.py), every actfx.bayes function
# the notebook calls is tested in test_bayes_*.py, and the pairing check below runs.
@pytest.mark.slow
def test_bayes_notebook_executes_quick_config(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTFX_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = jupytext.read(ROOT / "notebooks" / "bayes_mcmc.py")
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert "layer0/act/c" in outputs and "r_hat" in outputs and "test accuracy" in outputs
    assert "quadrature" in outputs


def test_bayes_ipynb_is_paired_with_py():
    ipynb = ROOT / "notebooks" / "bayes_mcmc.ipynb"
    if not ipynb.exists():
        pytest.skip("no paired .ipynb committed")
    src = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]
    assert src(jupytext.read(ROOT / "notebooks" / "bayes_mcmc.py")) == src(jupytext.read(ipynb)), (
        "notebooks/bayes_mcmc.ipynb is out of date: run `jupytext --sync notebooks/bayes_mcmc.py`"
    )
