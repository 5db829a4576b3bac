"""MkDocs hooks for the actfx site (run by `mkdocs build`, so `make docs` needs no extra step).

- ``on_config``: CPU JAX, Agg matplotlib; drop nav entries of namespaces that do not exist.
- ``on_files``: generate (never stored in git) the API pages from each namespace's
  ``__all__``, the notebook pages from the jupytext sources, the user-guide figures
  (``docs/_tools/plots.py``), and add the MathJax copy shipped by ``jupyter-server-mathjax``.
- ``on_page_markdown``: execute every ```python block of the hand-written pages, top to
  bottom in one namespace per page, and show what it printed. A failing snippet fails the
  build, so a stale example cannot survive. A block whose first line starts with
  ``# not run`` is shown but not executed (it says why). ``ACTFX_DOCS_SKIP_SNIPPETS=1``
  skips them all, for quick rebuilds while editing (never in `make docs` or the tests).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import os
import pathlib
import re
import sys
import tempfile
import time
import traceback
import types

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

TOOLS = pathlib.Path(__file__).resolve().parent
ROOT = TOOLS.parent.parent
sys.path.insert(0, str(TOOLS))
sys.path.insert(0, str(ROOT))
log = logging.getLogger("mkdocs.hooks.actfx")

# (namespace, page) -- the API reference, one page per namespace.
NAMESPACES = [
    ("actfx", "api/actfx.md"),
    ("actfx.cpab", "api/cpab.md"),
    ("actfx.nn", "api/nn.md"),
    ("actfx.nn.linen", "api/linen.md"),
    ("actfx.nn.models", "api/models.md"),
    ("actfx.bayes", "api/bayes.md"),
    ("actfx.train", "api/train.md"),
    ("actfx.data", "api/data.md"),
    ("actfx.metrics", "api/metrics.md"),
]
NOTEBOOKS = ["quickstart", "colab_tpu_training", "bayes_mcmc"]
GENERATED: set[str] = set()
STATS = {"snippets_run": 0, "snippets_skipped": 0, "plots": [], "plot_seconds": 0.0}


def public_names(module) -> list[str]:
    """The namespace's public API: ``__all__``, or (without one) the public names defined in
    the package."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return sorted(
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", "").startswith(module.__name__)
    )


def _available(ns: str) -> bool:
    try:
        importlib.import_module(ns)
    except ModuleNotFoundError as e:
        if e.name == ns:
            return False
        raise
    return True


def on_config(config, **kwargs):
    missing = {page for ns, page in NAMESPACES if not _available(ns)}
    if missing:
        log.info("namespaces not present, left out of the API reference: %s", sorted(missing))

        def prune(items):
            out = []
            for it in items:
                if isinstance(it, dict):
                    ((k, v),) = it.items()
                    if isinstance(v, list):
                        out.append({k: prune(v)})
                    elif v not in missing:
                        out.append(it)
                elif it not in missing:
                    out.append(it)
            return out

        config["nav"] = prune(config["nav"])
    return config


def api_page(ns: str) -> str:
    module = importlib.import_module(ns)
    pages = {n: p for n, p in NAMESPACES}
    lines = [
        f"# `{ns}`",
        "",
        f"::: {ns}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "      show_root_toc_entry: false",
        "",
    ]
    for name in public_names(module):
        obj = getattr(module, name)
        full = f"{ns}.{name}"
        if isinstance(obj, types.ModuleType):
            target = pages.get(obj.__name__)
            link = (
                f"[`{obj.__name__}`]({pathlib.PurePosixPath(target).name})"
                if target
                else f"`{obj.__name__}`"
            )
            lines += [f"## `{full}` {{ #{full} }}", "", f"The sub-package {link}.", ""]
        elif not callable(obj) and not isinstance(obj, type):
            # constants (tuples/dicts of names): their value is their documentation
            value = repr(obj)
            value = value if len(value) <= 400 else value[:400] + " ..."
            lines += [f"## `{full}` {{ #{full} }}", "", "```python", f"{full} = {value}", "```", ""]
        else:
            canonical = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            ours = getattr(obj, "__module__", "").startswith("actfx")
            if ours and getattr(obj, "__name__", name) != name:
                # an alias (`actfx.cpab_transform`, `actfx.topk_num_kept`): document the object
                # itself under its canonical path, with an anchor for the public name.
                lines += [
                    f'<a id="{full}"></a>',
                    "",
                    f"::: {canonical}",
                    "    options:",
                    f'      heading: "{full}"',
                    f'      toc_label: "{name}"',
                    "",
                ]
            else:
                lines += [f"::: {full}", ""]
    return "\n".join(lines)


def notebook_page(name: str) -> str:
    import jupytext

    src = ROOT / "notebooks" / f"{name}.py"
    nb = jupytext.read(src)
    out = [
        '!!! note "Source"',
        f"    `notebooks/{name}.py` (a jupytext pair of `notebooks/{name}.ipynb`). Shown here",
        "    as source, without outputs: `tests/test_notebooks.py` executes the notebooks",
        "    (quick configuration) so what you read runs.",
        "",
    ]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            out += [cell.source, ""]
        elif cell.cell_type == "code":
            out += ["```python", cell.source, "```", ""]
    return "\n".join(out)


def _load_tool(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"actfx_docs_{name}", TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _add(files, config, uri, *, content=None, path=None):
    f = File.generated(config, uri, content=content, abs_src_path=path)
    if files.get_file_from_path(uri) is not None:
        files.remove(files.get_file_from_path(uri))
    files.append(f)
    GENERATED.add(uri)


def on_files(files, config, **kwargs):
    for ns, page in NAMESPACES:
        if _available(ns):
            _add(files, config, page, content=api_page(ns))
    for name in NOTEBOOKS:
        if (ROOT / "notebooks" / f"{name}.py").exists():
            _add(files, config, f"notebooks/{name}.md", content=notebook_page(name))
    plots = _load_tool("plots")
    t0 = time.perf_counter()
    # ACTFX_DOCS_PLOT_DIR=<dir>: keep the figures there and reuse them when present (for
    # quick rebuilds while editing pages); by default they are computed afresh every build.
    keep = os.environ.get("ACTFX_DOCS_PLOT_DIR")
    out = pathlib.Path(keep or tempfile.mkdtemp(prefix="actfx-docs-plots-"))
    if keep and all((out / f"{n}").exists() for n in plots.FILES):
        STATS["plots"] = list(plots.FILES)
    else:
        STATS["plots"] = plots.make_all(out)
    STATS["plot_seconds"] = time.perf_counter() - t0
    for name in STATS["plots"]:
        _add(files, config, f"plots/{name}", path=str(out / name))
    log.info("generated %d figures in %.1f s", len(STATS["plots"]), STATS["plot_seconds"])
    import jupyter_server_mathjax

    mj = pathlib.Path(jupyter_server_mathjax.__file__).parent / "static"
    for p in sorted(mj.rglob("*")):
        if p.is_file():
            _add(files, config, f"assets/mathjax/{p.relative_to(mj).as_posix()}", path=str(p))
    return files


_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.src_uri in GENERATED:
        return markdown
    namespace: dict = {"__name__": f"docs_{page.file.src_uri}"}
    pieces, last = [], 0
    for i, m in enumerate(_FENCE.finditer(markdown)):
        code = m.group(1)
        pieces.append(markdown[last : m.end()])
        last = m.end()
        if code.lstrip().startswith("# not run") or os.environ.get("ACTFX_DOCS_SKIP_SNIPPETS"):
            STATS["snippets_skipped"] += 1
            continue
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"{page.file.src_uri}[snippet {i + 1}]", "exec"), namespace)
        except Exception as e:
            raise PluginError(
                f"docs/{page.file.src_uri}: python snippet {i + 1} failed:\n{code}\n"
                + "".join(traceback.format_exception(e))
            ) from e
        STATS["snippets_run"] += 1
        printed = buf.getvalue().rstrip()
        if printed:
            pieces.append(f'\n\n```text title="output"\n{printed}\n```')
    pieces.append(markdown[last:])
    return "".join(pieces)


def on_post_build(config, **kwargs):
    log.info(
        "executed %d python snippets (%d marked '# not run'); figures: %s",
        STATS["snippets_run"],
        STATS["snippets_skipped"],
        ", ".join(STATS["plots"]),
    )
