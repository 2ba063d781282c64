"""The documentation: README.md, CONTRIBUTING.md, CHANGELOG.md and the pages of docs/ (built as a site
by mkdocs.yml).

Every ``labelemb ...`` command in their shell code blocks must parse with the CLI's own parser, every
relative link must point to a file that exists, every page must be in the site's navigation, the
API page must name objects that exist, and the README stays a front door of at most 250 lines.
``mkdocs build --strict`` (run by .ci/run) checks the pages' links, anchors and docstrings too; these
tests need no MkDocs.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers.repo_paths import DOCS, ROOT

from labelemb.cli import build_parser

README = ROOT / "README.md"
PAGES = [README, ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted(DOCS.rglob("*.md"))]

#: Code blocks whose lines are shell commands (a fence with no language is a shell transcript here).
SHELL_LANGUAGES = {"", "bash", "console", "sh", "shell", "shell-session", "zsh"}
#: Tokens that end one shell command and start the next.
SEPARATORS = {"&&", "||", ";", "|", "&"}
#: Words a command may be run through before ``labelemb`` or ``python -m labelemb``.
LAUNCHERS = {"python", "python3", "torchrun", "time", "nohup", "exec", "env"}
#: The fewest commands the pages hold today (so that these tests cannot pass by finding none).
MIN_COMMANDS = 40
MIN_README_COMMANDS = 8
MAX_README_LINES = 250
#: Commands only train and compare take extra ``key=value`` words (config overrides) for.
OVERRIDE_COMMANDS = ("train", "compare")

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class Command:
    path: Path
    line: int
    text: str
    argv: tuple[str, ...]

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[tuple[str, list[tuple[int, str]]]]:
    """(language, [(line number, text), ...]) of every fenced code block of a Markdown file."""
    blocks: list[tuple[str, list[tuple[int, str]]]] = []
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, language, body = match.group(1), match.group(2).lower(), []
                blocks.append((language, body))
        elif match and match.group(1).startswith(fence[0]) and len(match.group(1)) >= len(fence):
            if not match.group(2):
                fence = None
        else:
            body.append((number, line))
    return blocks


def logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Join lines continued with a trailing backslash; each keeps the number of its first line."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, text in lines:
        if pending is not None:
            number, text = pending[0], pending[1] + " " + text.lstrip()
            pending = None
        if text.rstrip().endswith("\\"):
            pending = (number, text.rstrip()[:-1])
        else:
            joined.append((number, text))
    if pending is not None:
        joined.append(pending)
    return joined


def split_commands(text: str) -> list[list[str]]:
    """The simple commands of one shell line: comments dropped, split at ``&&``, ``|``, ``;`` ..."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: prose, not a command
        return []
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def labelemb_argv(words: list[str]) -> list[str] | None:
    """The arguments after ``labelemb`` (or ``python -m labelemb``, ``torchrun ... -m labelemb``),
    None when the command runs something else."""
    while words and _ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]  # LABELEMB_DATA=DIR labelemb ...
    if not words:
        return None
    if words[0] == "labelemb":
        return words[1:]
    if words[0] in LAUNCHERS:
        for position, word in enumerate(words[:-1]):
            if word == "-m" and words[position + 1] == "labelemb":
                return words[position + 2 :]
            if word == "labelemb" and position > 0 and words[position - 1] != "-m":
                return words[position + 1 :]
    return None


def commands_in(path: Path) -> list[Command]:
    found = []
    for language, lines in fenced_blocks(path):
        if language not in SHELL_LANGUAGES:
            continue
        for number, text in logical_lines(lines):
            stripped = text.strip()
            if stripped.startswith("$ "):
                stripped = stripped[2:]
            for words in split_commands(stripped):
                argv = labelemb_argv(words)
                if argv is not None:
                    found.append(Command(path, number, stripped, tuple(argv)))
    return found


COMMANDS = [command for page in PAGES for command in commands_in(page)]


def parse_problem(argv: tuple[str, ...]) -> str | None:
    """What the CLI would reject in ``argv`` before running anything, or None if it parses.

    As ``labelemb.cli.main``: argparse's errors (it exits), and words it does not know, which only
    ``train`` and ``compare`` take, as ``key=value`` config overrides.
    """
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args, extra = build_parser().parse_known_args(list(argv))
    except SystemExit as exit_:
        return stderr.getvalue().strip() or f"argparse exited with {exit_.code}"
    if extra:
        misplaced = [word for word in extra if word.startswith("-") or "=" not in word]
        if args.command not in OVERRIDE_COMMANDS or misplaced:
            return f"labelemb {args.command}: unrecognized arguments: {' '.join(misplaced or extra)}"
    return None


@pytest.mark.parametrize("command", COMMANDS, ids=[command.where() for command in COMMANDS])
def test_documented_command_parses(command: Command) -> None:
    problem = parse_problem(command.argv)
    assert problem is None, f"{command.where()}: `{command.text}` does not parse: {problem}"


def test_commands_are_found() -> None:
    """The extraction finds the commands the pages hold (so the test above cannot pass vacuously)."""
    in_readme = [command for command in COMMANDS if command.path == README]
    assert len(COMMANDS) >= MIN_COMMANDS, f"only {len(COMMANDS)} labelemb commands found in {PAGES}"
    assert len(in_readme) >= MIN_README_COMMANDS, f"only {len(in_readme)} labelemb commands in README.md"
    subcommands = {command.argv[0] for command in COMMANDS if command.argv}
    assert {"train", "compare", "demo", "analyze", "similar", "report"} <= subcommands, subcommands
    assert any(command.text.startswith("torchrun") for command in COMMANDS), "no torchrun ... -m labelemb"


def test_extraction_handles_shell_forms() -> None:
    lines = [
        (1, "$ LABELEMB_DATA=DIR labelemb compare --config c.yaml \\"),
        (2, "    --seeds 0-2 tau=4  # x"),
    ]
    ((number, text),) = logical_lines(lines)
    assert number == 1
    words = split_commands(text.removeprefix("$ "))
    assert [labelemb_argv(w) for w in words] == [["compare", "--config", "c.yaml", "--seeds", "0-2", "tau=4"]]
    chained = split_commands("pip install -e . && labelemb demo && python -m labelemb similar RUN_DIR")
    assert [labelemb_argv(w) for w in chained] == [None, ["demo"], ["similar", "RUN_DIR"]]
    torchrun = split_commands("torchrun --nproc_per_node 2 -m labelemb train --method onehot")
    assert labelemb_argv(torchrun[0]) == ["train", "--method", "onehot"]
    assert parse_problem(("train", "--method", "onehot", "train.epochs=3")) is None
    assert parse_problem(("similar", "RUN_DIR", "tau=4")) is not None  # only train / compare take overrides
    assert parse_problem(("compare", "--seeds", "3-1")) is not None  # a reversed seed range
    assert parse_problem(("train", "--no-such-option")) is not None


def test_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_no_private_paths() -> None:
    """Users have neither DESIGN.md nor ../shared: the pages never send them there (the README's
    test command names its data folder DATA_DIR, a placeholder; .ci/run points it at CI's copy)."""
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{page.relative_to(ROOT)}:{number}"
            assert "DESIGN.md" not in line, f"{where} mentions DESIGN.md: say what is meant instead"
            assert "../shared" not in line, f"{where} mentions ../shared"


_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, with inline code removed."""
    inside = {number for _, lines in fenced_blocks(path) for number, _ in lines}
    text_lines = path.read_text(encoding="utf-8").splitlines()
    return [
        (number, _INLINE_CODE.sub("", line))
        for number, line in enumerate(text_lines, start=1)
        if number not in inside and not _FENCE.match(line)
    ]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = _INLINE_CODE.sub(lambda match: match.group(0).strip("`"), heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def relative_links(path: Path) -> list[tuple[int, str]]:
    links = []
    for number, line in prose_lines(path):
        targets = _LINK.findall(line) + [m.group(1) for m in [_REFERENCE.match(line)] if m]
        for target in targets:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto: ...
                continue
            links.append((number, target))
    return links


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    lines = page.read_text(encoding="utf-8").splitlines()
    anchors = {github_slug(line.lstrip("#")) for line in lines if re.match(r"#{1,6} ", line)}
    for number, target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        where = f"{page.relative_to(ROOT)}:{number}"
        if not file_part:
            if page == README:  # the pages' own anchors are checked by mkdocs build --strict
                assert anchor in anchors, f"{where}: link to #{anchor}, but no heading has that anchor"
            continue
        resolved = (page.parent / file_part).resolve()
        assert resolved.is_relative_to(ROOT), f"{where}: link to {target} leaves the repository"
        assert resolved.exists(), f"{where}: link to {target}, but {resolved.relative_to(ROOT)} is missing"


def test_links_are_found() -> None:
    readme_links = relative_links(README)
    assert any(target.startswith("docs/") and target.endswith(".png") for _, target in readme_links)
    assert sum(target.startswith("docs/") for _, target in readme_links) >= 10
    assert sum(len(relative_links(page)) for page in PAGES) >= 40


def nav_pages(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [page for value in node.values() for page in nav_pages(value)]
    if isinstance(node, list):
        return [page for item in node for page in nav_pages(item)]
    return []


def test_every_page_is_in_the_site() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = nav_pages(config["nav"])
    assert sorted(listed) == sorted(page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")), listed
    assert config.get("strict") is True


def test_api_page_names_objects_that_exist() -> None:
    names = re.findall(r"^:::\s*(\S+)", (DOCS / "api.md").read_text(encoding="utf-8"), flags=re.M)
    assert len(names) >= 10, names
    for name in names:
        module_name, _, attribute = name.rpartition(".")
        assert hasattr(importlib.import_module(module_name), attribute), f"docs/api.md: {name} does not exist"
