"""Griffe extension: turn the reStructuredText bits of actfx's docstrings into Markdown.

actfx docstrings are Google style with a few Sphinx constructs (``.. math::`` blocks,
``:math:`...``` and ``:func:`...``` roles). mkdocstrings renders docstrings as Markdown, so
math becomes ``$$ ... $$`` / ``$...$`` (rendered by pymdownx.arithmatex + the bundled
MathJax) and cross-reference roles become inline code.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(
    r":(?:func|class|meth|attr|mod|data|obj|exc|py:\w+):`~?\.?([^`<]+?)(?:\s*<[^>]+>)?`"
)
_MATH_ROLE = re.compile(r":math:`([^`]+)`")


def _short(target: str, tilde: bool) -> str:
    return target.rsplit(".", 1)[-1] if tilde else target


def _fence_doctests(lines: list[str]) -> list[str]:
    """Wrap each doctest run (``>>>`` lines, their ``...`` continuations and the expected
    output up to a blank line) in a ```pycon fence, so Markdown shows it as code."""
    out, i, inside_fence = [], 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            inside_fence = not inside_fence
        if inside_fence or not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        out += [indent + "```pycon"] + [indent + b for b in block] + [indent + "```"]
    return out


def rst_to_markdown(text: str) -> str:
    out: list[str] = []
    lines = _fence_doctests(text.splitlines())
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)\.\. math::\s*(.*)$", line)
        if not m:
            out.append(line)
            i += 1
            continue
        indent, first = m.group(1), m.group(2).strip()
        body = [first] if first else []
        i += 1
        # the directive's body: blank lines and lines indented deeper than the directive
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
        ):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        strip = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
        out += ["", indent + "$$"] + [indent + b[strip:] for b in body if b.strip()]
        out += [indent + "$$", ""]
    text = "\n".join(out)
    text = _MATH_ROLE.sub(lambda mm: "$" + mm.group(1).strip() + "$", text)

    def role(mm):
        tilde = mm.group(0).split("`", 1)[1].startswith("~")
        return "`" + _short(mm.group(1).strip(), tilde) + "`"

    return _ROLE.sub(role, text)


class RstToMarkdown(griffe.Extension):
    def _fix(self, obj) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)

    def on_instance(self, *, obj, **kwargs) -> None:  # every module/class/function/attribute
        self._fix(obj)
