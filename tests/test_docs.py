"""The documentation site (`make docs`, MkDocs + Material + mkdocstrings).

Default (cheap): the nav lists every page and every listed page exists or is generated; the
generated API pages name every public name of each namespace; the reST-to-Markdown docstring
conversion. Slow: a full strict build (executes every snippet, computes the figures) and
checks the built HTML: an anchor for every public name, the figures, the bundled MathJax and
no script, style or font from another host.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("mkdocs")

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REQUIRED_NAMESPACES = {
    "actfx",
    "actfx.cpab",
    "actfx.nn",
    "actfx.nn.linen",
    "actfx.nn.models",
    "actfx.bayes",
    "actfx.train",
    "actfx.data",
}


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f"actfx_docs_test_{name}", DOCS / "_tools" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def hooks():
    return _tool("hooks")


def _nav_files(items):
    for it in items:
        if isinstance(it, dict):
            (v,) = it.values()
            yield from (_nav_files(v) if isinstance(v, list) else [v])
        else:
            yield it


def test_nav_lists_every_page_and_every_page_exists(hooks):
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = set(_nav_files(config["nav"]))
    generated = {page for _, page in hooks.NAMESPACES} | {
        f"notebooks/{n}.md" for n in hooks.NOTEBOOKS
    }
    written = {
        p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "_tools" not in p.parts
    }
    assert written <= nav, f"pages missing from the nav: {sorted(written - nav)}"
    assert nav <= written | generated, (
        f"nav entries with no page: {sorted(nav - written - generated)}"
    )
    assert REQUIRED_NAMESPACES <= {ns for ns, _ in hooks.NAMESPACES}
    for name in hooks.NOTEBOOKS:
        assert (ROOT / "notebooks" / f"{name}.py").exists()


@pytest.mark.parametrize("ns", sorted(REQUIRED_NAMESPACES | {"actfx.metrics"}))
def test_api_page_names_every_public_name(hooks, ns):
    if ns == "actfx.metrics" and importlib.util.find_spec("actfx.metrics") is None:
        pytest.skip("actfx.metrics does not exist")
    module = importlib.import_module(ns)
    page = hooks.api_page(ns)
    names = hooks.public_names(module)
    assert names, f"{ns} has no public names"
    for name in names:
        full = f"{ns}.{name}"
        assert (
            f"::: {full}\n" in page or f"{{ #{full} }}" in page or f'<a id="{full}"></a>' in page
        ), f"{full} not in its API page"


def test_rst_math_and_roles_become_markdown():
    conv = _tool("griffe_rst").rst_to_markdown
    src = (
        "Top.\n\n.. math::\n    a = b \\\\\n      c\n\nwhere :math:`T_\\theta` is "
        ":func:`actfx.cpab.transform` (:class:`~actfx.cpab.Tessellation`).\n\nArgs:\n  x: y"
    )
    out = conv(src)
    assert "$$\na = b \\\\\n  c\n$$" in out
    assert "$T_\\theta$" in out and "`actfx.cpab.transform`" in out and "`Tessellation`" in out
    assert ":math:" not in out and ".. math::" not in out and "Args:\n  x: y" in out


@pytest.mark.slow
def test_site_builds_strict_with_api_figures_and_local_mathjax(tmp_path, hooks):
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1", "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]
    for ns, page in hooks.NAMESPACES:
        if importlib.util.find_spec(ns) is None:
            continue
        html = (site / page.replace(".md", "") / "index.html").read_text()
        ids = set(re.findall(r'id="([^"]+)"', html))
        missing = [
            n for n in hooks.public_names(importlib.import_module(ns)) if f"{ns}.{n}" not in ids
        ]
        assert not missing, f"{page}: no anchor for {missing}"
    for name in _tool("plots").FILES:
        png = site / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert (site / "assets" / "mathjax" / "MathJax.js").exists()
    html = (site / "guide" / "ditac" / "index.html").read_text()
    assert 'class="arithmatex"' in html and "../plots/ditac_prior_draws.png" in html
    for page in site.rglob("*.html"):
        text = page.read_text()
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not remote, f"{page.relative_to(site)} loads {remote}"
        assert "fonts.googleapis" not in text


# Training loops of many steps (the README trains a DiTAC CNN twice for 200 steps: ~60 s of
# CPU) run as printed under -m slow; by default with 2 steps (every call, every argument and
# every line still runs; only the loop counts differ).
_LONG_LOOPS = [
    (re.compile(r"\brange\((\d{3,})\)"), "range(2)"),
    (re.compile(r"\bsteps=(\d{3,})\b"), "steps=2"),
]


def _run_readme_blocks(shorten: bool):
    """Every ```python block of the README runs, top to bottom in one namespace (a block
    whose first line starts with `# not run` is skipped)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", text, re.S | re.M)
    assert blocks, "the README has no python block"
    ns: dict = {"__name__": "readme"}
    for i, code in enumerate(blocks):
        if code.lstrip().startswith("# not run"):
            continue
        if shorten:
            for pattern, short in _LONG_LOOPS:
                code = pattern.sub(short, code)
        exec(compile(code, f"README.md[python block {i + 1}]", "exec"), ns)


def test_readme_python_blocks_run_with_short_loops():
    _run_readme_blocks(shorten=True)


@pytest.mark.slow
def test_readme_python_blocks_run_as_printed():
    _run_readme_blocks(shorten=False)
