"""Griffe extension for the documentation site: the reST of the docstrings, rewritten as Markdown.

The docstrings of ``src/`` are Sphinx-style reST, and mkdocstrings renders a docstring's text as
Markdown, so two reST constructs would reach the reader raw. Before any docstring is parsed, this
extension rewrites them (mkdocs.yml loads it through the python handler's ``extensions`` option):

* A cross-reference role (``:func:``, ``:class:``, ``:meth:``, ``:mod:``, ``:data:``, ``:attr:``,
  ``:exc:``, ``:obj:``, ``:const:``, with or without the ``py:`` domain) becomes an *optional*
  autorefs reference to the object's full path: a link where the site documents that object, and
  plain inline code (with the full path as its tooltip) where it does not, so an undocumented
  target never fails ``mkdocs build --strict``. A relative name is resolved in the scope of the
  docstring's object (its class, its module, what the module imports); ``~`` shows the last
  component, ``!`` never links, and ``title <target>`` shows the title.
* A paragraph ending in ``::`` followed by an indented literal block becomes the paragraph ending
  in ``:`` (nothing, for a bare ``::`` line; ``text ::`` loses the `` ::``) followed by the block
  as a fenced code block.

Roles inside a literal block or an inline code span are left as they are.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

import griffe

#: The Python-domain roles that name an object.
ROLES = ("func", "class", "meth", "mod", "data", "attr", "exc", "obj", "const")
ROLE = re.compile(r":(?:py:)?(?P<role>" + "|".join(ROLES) + r"):`(?P<content>[^`]+)`")
#: Inline code (double backticks in reST, kept by Markdown as code): no role inside is rewritten.
INLINE_CODE = re.compile(r"``.+?``")
_TITLED = re.compile(r"(?P<title>.*?)\s*<(?P<target>[^<>]+)>\s*$", re.DOTALL)
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def literal_blocks_to_fences(text: str) -> str:
    """Every reST literal block (a paragraph ending in ``::``, then an indented block) of ``text``,
    as the paragraph ending in ``:`` and a fenced code block at the paragraph's indentation."""
    lines = text.split("\n")
    out: list[str] = []
    fence: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        opener = _FENCE.match(line)
        if fence is not None:
            out.append(line)
            if opener and opener.group(1).startswith(fence):
                fence = None
            i += 1
            continue
        if opener:
            fence = opener.group(1)
            out.append(line)
            i += 1
            continue
        stripped = line.rstrip()
        if not stripped.endswith("::"):
            out.append(line)
            i += 1
            continue
        indent = _indent(line)
        # The block: the lines after the paragraph indented deeper than it (blank lines inside kept).
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j == len(lines):
            out.append(line)  # "::" with no literal block after it: not ours to change
            i += 1
            continue
        if _indent(lines[j]) <= indent:
            if i != 0:
                out.append(line)
                i += 1
                continue
            # The docstring's first line: Python's cleaning dedents the lines after it by their
            # common indentation, so a block that is all the rest ("Example::" then the block
            # only) comes out unindented. reST wants a literal block after "::": it is all the rest.
            end = len(lines)
        else:
            end = j
            while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
                end += 1
        while end > j and not lines[end - 1].strip():
            end -= 1
        block = lines[j:end]
        depth = min(_indent(text_line) for text_line in block if text_line.strip())
        head = stripped[:-2]
        if head.strip():
            out.append(head.rstrip() if head.endswith(" ") else head + ":")
            out.append("")
        pad = " " * indent
        out.append(pad + "```")
        out.extend(pad + text_line[depth:] if text_line.strip() else "" for text_line in block)
        out.append(pad + "```")
        if end < len(lines) and lines[end].strip():
            out.append("")
        i = end
    return "\n".join(out)


def _resolve(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as written in ``obj``'s docstring, or ``name`` if it is unknown."""
    first, _, rest = name.partition(".")
    try:
        path = obj.resolve(first)
    except (griffe.NameResolutionError, AttributeError):
        return name
    return f"{path}.{rest}" if rest else path


def _reference(obj: griffe.Object, match: re.Match[str]) -> str:
    content = match.group("content").strip()
    titled = _TITLED.match(content)
    if titled and titled.group("title"):
        title, target = titled.group("title"), titled.group("target").strip()
    else:
        title, target = None, content
    link = not target.startswith("!")
    target = target.lstrip("!")
    short = target.startswith("~")
    target = target.lstrip("~").lstrip(".").removesuffix("()")
    if title is None:
        title = target.rsplit(".", 1)[-1] if short else target
    code = f"`{title}`"  # Markdown inline code: a title such as __init__ stays literal
    if not link:
        return code
    identifier = _resolve(obj, target)
    return f'<autoref optional identifier="{escape(identifier)}">{code}</autoref>'


def roles_to_references(text: str, obj: griffe.Object) -> str:
    """Every cross-reference role of ``text`` (outside code) as an optional autorefs reference,
    resolved in the scope of ``obj``."""
    lines = text.split("\n")
    fence: str | None = None
    for number, line in enumerate(lines):
        opener = _FENCE.match(line)
        if fence is not None:
            if opener and opener.group(1).startswith(fence):
                fence = None
            continue
        if opener:
            fence = opener.group(1)
            continue
        parts = INLINE_CODE.split(line)
        codes = INLINE_CODE.findall(line)
        rewritten = [ROLE.sub(lambda match: _reference(obj, match), part) for part in parts]
        lines[number] = "".join(piece for pair in zip(rewritten, [*codes, ""], strict=True) for piece in pair)
    return "\n".join(lines)


def rest_to_markdown(text: str, obj: griffe.Object) -> str:
    """A docstring's reST literal blocks and roles as Markdown (see the module's docstring)."""
    return roles_to_references(literal_blocks_to_fences(text), obj)


class RestDocstrings(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module's docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        self._rewrite(pkg)

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rest_to_markdown(obj.docstring.value, obj)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member)
