"""The public surface: chosen re-exports over a private ``actfx._src``, documented in the README.

The public namespaces are the package ``__init__`` files (plus ``actfx/nn/linen.py``); they
hold re-exports only. Everything else lives in ``actfx._src`` and may change without notice.
"""

import ast
import importlib
import importlib.util
import pathlib
import re
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "actfx"

NAMESPACES = {
    "actfx": "actfx/__init__.py",
    "actfx.cpab": "actfx/cpab/__init__.py",
    "actfx.nn": "actfx/nn/__init__.py",
    "actfx.nn.linen": "actfx/nn/linen.py",
    "actfx.nn.models": "actfx/nn/models/__init__.py",
    "actfx.train": "actfx/train/__init__.py",
    "actfx.data": "actfx/data/__init__.py",
    "actfx.bayes": "actfx/bayes/__init__.py",
    "actfx.metrics": "actfx/metrics/__init__.py",
}


def test_every_file_outside_src_is_a_public_namespace():
    files = {
        p.relative_to(ROOT).as_posix()
        for p in PKG.rglob("*.py")
        if "_src" not in p.relative_to(PKG).parts
    }
    assert files == set(NAMESPACES.values())


@pytest.mark.parametrize("ns", sorted(NAMESPACES))
def test_namespace_file_only_re_exports(ns):
    tree = ast.parse((ROOT / NAMESPACES[ns]).read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            assert mod in NAMESPACES or mod.startswith("actfx._src."), (
                f"{ns} imports from {node.module}"
            )
            continue
        if isinstance(node, ast.Assign):  # __all__, __version__, a documented alias
            continue
        raise AssertionError(f"{ns} defines {type(node).__name__} at line {node.lineno}")


@pytest.mark.parametrize("ns", sorted(NAMESPACES))
def test_all_lists_exist_and_come_from_src(ns):
    module = importlib.import_module(ns)
    names = module.__all__
    assert len(set(names)) == len(names)
    for name in names:
        obj = getattr(module, name)  # AttributeError = a stale __all__ entry
        if isinstance(obj, types.ModuleType):
            assert obj.__name__ in NAMESPACES, f"{ns}.{name} is the private module {obj.__name__}"
        elif isinstance(obj, (types.FunctionType, type)):
            assert obj.__module__.startswith("actfx._src."), (ns, name, obj.__module__)
    public_attrs = {n for n in vars(module) if not n.startswith("_")}
    stray = public_attrs - set(names) - {"_src"} - {n.split(".")[-1] for n in NAMESPACES}
    assert not stray, f"{ns} has public names missing from __all__: {sorted(stray)}"


@pytest.mark.parametrize("name", ["topk", "nelu", "ditac", "layeract", "mmelu"])
def test_core_functions_are_not_shadowed_by_modules(name):
    import actfx

    assert isinstance(getattr(actfx, name), types.FunctionType)
    assert importlib.util.find_spec(f"actfx.{name}") is None
    assert importlib.util.find_spec(f"actfx._src.{name}") is not None


def test_cpab_namespace_and_functions_coexist():
    import actfx

    assert isinstance(actfx.cpab, types.ModuleType)
    assert actfx.cpab_transform is actfx.cpab.transform
    assert callable(actfx.topk) and callable(actfx.cpab.transform)


def test_readme_table_lists_exactly_the_public_names():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Public API") : text.index("## Layout")]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `(actfx[\w.]*)` \| [^|]* \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = re.findall(r"`([^`]+)`", m.group(2))
    assert set(rows) == set(NAMESPACES)
    for ns, names in rows.items():
        assert names == sorted(importlib.import_module(ns).__all__), ns


def test_our_scripts_use_only_the_public_api():
    offenders = []
    for sub in ("experiments", "benchmarks", "notebooks", "docs"):
        for p in (ROOT / sub).rglob("*"):
            if p.suffix in {".py", ".md", ".ipynb"} and "actfx._src" in p.read_text():
                offenders.append(p.relative_to(ROOT).as_posix())
    readme = (ROOT / "README.md").read_text()
    code_blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    offenders += ["README.md"] * any("actfx._src" in b for b in code_blocks)
    assert not offenders, offenders
