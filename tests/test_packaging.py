"""Packaging: every third-party import is declared in pyproject.toml where it is needed.

Default (cheap, AST only):
- every third-party package imported anywhere in ``actfx/`` is a base dependency or in an
  extra; one imported at module level (so on ``import actfx.<x>``) is a base dependency;
- ``experiments/`` imports are covered by the ``experiments`` extra, ``tests/`` imports by
  ``dev``; nothing is declared that nothing imports (the old ``chex`` case).

Slow: build the wheel, install it *without extras* into a fresh venv (from the package
registry), import every namespace, run a tiny ``fit``, and check that a loader needing the
``data`` extra raises an ImportError naming it.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# import name -> distribution name, for packages whose names differ (used when the package is
# not installed here, so importlib.metadata cannot tell).
KNOWN = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "PIL": "pillow",
    "orbax": "orbax-checkpoint",
    "yaml": "pyyaml",
    "mkdocs": "mkdocs",
    "material": "mkdocs-material",
}
# Installed with a declared package (no separate requirement needed).
IMPLIED = {"jaxlib": "jax", "mpl_toolkits": "matplotlib", "_pytest": "pytest"}
# Optional comparisons guarded by a skip (benchmarks/ and tests/ that use the `compare` extra).
FIRST_PARTY = {"actfx", "experiments", "benchmarks", "tests", "conftest"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(req: str) -> tuple[str, list[str]]:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", req)
    assert m, f"unparseable requirement {req!r}"
    extras = [e.strip() for e in (m.group(2) or "").split(",") if e.strip()]
    return _norm(m.group(1)), extras


def declared(extra: str | None) -> set[str]:
    """Distribution names installed by `pip install .` (extra=None) or `.[extra]`, closed over
    self-references such as "actfx[data,bayes]"."""
    project = PYPROJECT["project"]
    out: set[str] = set()
    todo = [None] if extra is None else [None, extra]
    seen: set = set()
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.add(e)
        reqs = project["dependencies"] if e is None else project["optional-dependencies"][e]
        for r in reqs:
            name, extras = _req_name(r)
            if name == "actfx":
                todo.extend(extras)
            else:
                out.add(name)
    return out


@functools.cache
def _installed() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _dists_of(mod: str) -> set[str]:
    if mod in IMPLIED:
        return {_norm(IMPLIED[mod])}
    found = _installed().get(mod)
    if found:
        return {_norm(d) for d in found}
    return {_norm(KNOWN.get(mod, mod))}


def _is_import_guard(handler: ast.ExceptHandler) -> bool:
    names = []
    t = handler.type
    for n in (t.elts if isinstance(t, ast.Tuple) else [t]) if t is not None else []:
        if isinstance(n, ast.Name):
            names.append(n.id)
    return bool({"ImportError", "ModuleNotFoundError"} & set(names))


def third_party_imports(path: pathlib.Path) -> list[tuple[str, int, bool]]:
    """(top-level module, line, at_module_level) for each third-party import in a file.
    Imports inside functions, `if TYPE_CHECKING:` and `try/except ImportError` are not
    module-level (they do not run, or cannot fail, on `import`)."""
    tree = ast.parse(path.read_text(), str(path))
    out = []

    def visit(node, module_level):
        for child in ast.iter_child_nodes(node):
            lvl = module_level
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                lvl = False
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                lvl = False
            elif isinstance(child, ast.Try) and any(_is_import_guard(h) for h in child.handlers):
                lvl = False
            if isinstance(child, ast.Import):
                for a in child.names:
                    out.append((a.name.split(".")[0], child.lineno, lvl))
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                out.append((child.module.split(".")[0], child.lineno, lvl))
            visit(child, lvl)

    visit(tree, True)
    return [
        (m, ln, lvl)
        for m, ln, lvl in out
        if m not in sys.stdlib_module_names
        and m not in FIRST_PARTY
        and m != "__future__"
        # a sibling module (e.g. a shared test helper next to the test) is first-party
        and not (path.parent / f"{m}.py").exists()
    ]


def _files(sub: str):
    return sorted((ROOT / sub).rglob("*.py"))


def test_extras_exist_and_parse():
    extras = PYPROJECT["project"]["optional-dependencies"]
    for name in ("data", "bayes", "experiments", "notebooks", "docs", "dev"):
        assert name in extras, f"pyproject.toml lacks the [{name}] extra"
    for e in extras:
        declared(e)  # every self-reference resolves


def test_every_actfx_import_is_declared_and_module_level_ones_are_base():
    base = declared(None)
    anywhere = set().union(*(declared(e) for e in PYPROJECT["project"]["optional-dependencies"]))
    problems = []
    for f in _files("actfx"):
        for mod, line, module_level in third_party_imports(f):
            dists = _dists_of(mod)
            where = f"{f.relative_to(ROOT)}:{line} imports {mod} ({'/'.join(sorted(dists))})"
            if module_level and not dists & base:
                problems.append(
                    f"{where} at module level, but it is not a base dependency "
                    "(declare it in [project] dependencies or import it lazily)"
                )
            elif not dists & (base | anywhere):
                problems.append(f"{where}, declared nowhere in pyproject.toml")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("sub,extra", [("experiments", "experiments"), ("tests", "dev")])
def test_experiment_and_test_imports_are_declared(sub, extra):
    have = declared(extra) | declared("compare")  # compare: optional, skipped when absent
    problems = [
        f"{f.relative_to(ROOT)}:{line} imports {mod}, not installed by .[{extra}]"
        for f in _files(sub)
        for mod, line, _ in third_party_imports(f)
        if not _dists_of(mod) & have
    ]
    assert not problems, "\n".join(problems)


def test_no_declared_base_dependency_is_unused():
    used = set()
    for sub in ("actfx", "tests"):
        for f in _files(sub):
            for mod, _, _ in third_party_imports(f):
                used |= _dists_of(mod)
    # jaxlib is the backend of jax: required, never imported by name.
    unused = declared(None) - used - {"jaxlib"}
    assert not unused, f"base dependencies nothing imports: {sorted(unused)}"


def test_typed_license_citation():
    assert (ROOT / "actfx" / "py.typed").exists()
    lic = (ROOT / "LICENSE").read_text()
    assert "Apache License" in lic and "Version 2.0" in lic
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    cff = (ROOT / "CITATION.cff").read_text()
    for arxiv in ("2306.04940", "2310.18894", "2406.16052", "2407.07564", "2304.04455"):
        assert arxiv in cff, f"CITATION.cff lacks arXiv:{arxiv}"
    assert "cff-version:" in cff and "title: actfx" in cff


SMOKE = textwrap.dedent(
    """
    import importlib, sys
    import numpy as np
    import actfx, actfx.nn, actfx.nn.linen, actfx.nn.models, actfx.bayes, actfx.train
    import actfx.cpab, actfx.data
    try:
        import actfx.metrics
    except ModuleNotFoundError as e:
        if e.name != "actfx.metrics":
            raise
    for mod in ("sklearn", "skimage", "mlxtend", "matplotlib", "arviz"):
        assert importlib.util.find_spec(mod) is None, f"{mod} is installed in the base venv"
    from flax import nnx
    from actfx.train import TrainConfig, fit
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = actfx.nn.models.MLP(8, 2, hidden=(16,), rngs=nnx.Rngs(0))
    r = fit(model, (x, y), (x, y), TrainConfig(epochs=1, batch_size=16, progress=False))
    print("fit ok", r.final["test_accuracy"])
    try:
        actfx.data.load_digits()
    except ImportError as e:
        assert "actfx[data]" in str(e), f"the ImportError does not name the extra: {e}"
        print("data extra named:", e)
    else:
        raise AssertionError("load_digits worked without scikit-learn")
    # the LayerAct kernel builds from the source inside the installed wheel (or says why not)
    import shutil
    ok, detail = actfx.layeract_native_status()
    assert ok or shutil.which("c++") is None, detail
    y = actfx.layeract(x[None])
    assert np.allclose(y, actfx.layeract(x[None], implementation="xla"), rtol=1e-5, atol=1e-6)
    print("layeract kernel:", ok, detail)
    """
)


@pytest.mark.slow
def test_wheel_installs_without_extras_in_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
    )
    (wheel,) = dist.glob("actfx-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["JAX_PLATFORMS"] = "cpu"
    env["ACTFX_CACHE_DIR"] = str(tmp_path / "kernel-cache")  # build from the wheel's source
    env["ACTFX_NATIVE"] = "1"
    out = subprocess.run(
        [str(py), "-c", SMOKE], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "fit ok" in out.stdout and "data extra named" in out.stdout
    assert "layeract kernel:" in out.stdout
