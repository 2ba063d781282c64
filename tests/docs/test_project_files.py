"""The files a project that others carry on keeps beside its code (issue 61): the licence
pyproject.toml names, the py.typed marker the wheel ships, a changelog in Keep a Changelog's form
(newest first) and a contributing guide; the docs site includes the last two."""

from __future__ import annotations

import re

import yaml
from helpers.repo_paths import DOCS, ROOT, SOURCE
from setuptools.config.pyprojecttoml import read_configuration

#: The sections Keep a Changelog names, and ours for a public path that moved.
CHANGE_KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security", "Moved"}
RELEASE = re.compile(r"^## \[(\d+)\.(\d+)\.(\d+)\] - (\d{4}-\d{2}-\d{2})$")


def pyproject() -> dict:
    """pyproject.toml as the build backend reads it."""
    return read_configuration(ROOT / "pyproject.toml", expand=False)


def test_the_licence_is_the_one_pyproject_names():
    assert pyproject()["project"]["license"] == "MIT"
    lines = (ROOT / "LICENSE").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "MIT License"
    assert "Copyright (c) 2026 labelemb contributors" in lines
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in lines


def test_the_wheel_ships_the_typing_marker():
    assert (SOURCE / "py.typed").is_file()
    assert "py.typed" in pyproject()["tool"]["setuptools"]["package-data"]["labelemb"]


def changelog_sections(text: str) -> list[tuple[str, list[str]]]:
    """The changelog's ``## `` sections in order, each with its ``### `` headings."""
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("## "):
            sections.append((line, []))
        elif line.startswith("### "):
            assert sections, f"CHANGELOG.md: {line!r} comes before any release"
            sections[-1][1].append(line.removeprefix("### "))
    return sections


def test_the_changelog_keeps_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n")
    sections = changelog_sections(text)
    assert sections and sections[0][0] == "## [Unreleased]", "the newest section comes first: ## [Unreleased]"
    releases = [RELEASE.match(heading) for heading, _ in sections[1:]]
    assert all(releases), f"a release heading reads '## [1.2.3] - YYYY-MM-DD': {[h for h, _ in sections]}"
    versions = [(tuple(int(part) for part in match.groups()[:3]), match.group(4)) for match in releases]
    assert versions == sorted(versions, reverse=True), "releases newest first"
    for heading, kinds in sections:
        assert kinds and set(kinds) <= CHANGE_KINDS, (
            f"{heading}: sections {kinds}, not of {sorted(CHANGE_KINDS)}"
        )
        assert len(kinds) == len(set(kinds)), f"{heading}: a section twice in {kinds}"


def test_the_checker_refuses_an_out_of_order_changelog():
    text = "# Changelog\n\n## [0.1.0] - 2026-01-01\n\n### Added\n\n## [Unreleased]\n\n### Fixes\n"
    sections = changelog_sections(text)
    assert sections[0][0] != "## [Unreleased]" and not set(sections[1][1]) <= CHANGE_KINDS


def test_the_contributing_guide_says_how_to_work():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    for step in (
        "python3 -m pytest -q",
        "mkdocs build --strict",
        "ruff check .",
        "bench/overhead.py",
        "CHANGELOG.md",
    ):
        assert step in text, f"CONTRIBUTING.md does not say {step!r}"


def test_the_site_includes_the_guide_and_the_changelog():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    snippets = [item for item in config["markdown_extensions"] if "pymdownx.snippets" in item]
    assert snippets, "mkdocs.yml: no pymdownx.snippets among the markdown_extensions"
    assert snippets[0]["pymdownx.snippets"]["check_paths"] is True  # a missing file fails the build
    for page, included in (("contributing.md", "CONTRIBUTING.md"), ("changelog.md", "CHANGELOG.md")):
        assert f'--8<-- "{included}"' in (DOCS / page).read_text(encoding="utf-8").splitlines()
        assert (ROOT / included).is_file()


def test_the_readme_the_getting_started_page_and_ci_install_every_extra_alike():
    """The contributor's command (README, Getting started) and .ci/run install the same extras:
    every one pyproject.toml declares (a new tracker's extra included)."""
    pattern = re.compile(r'pip install (?:--quiet )?-e "\.\[([a-z0-9,-]+)\]"')
    found = {}
    for path in (ROOT / "README.md", DOCS / "getting-started.md", ROOT / ".ci" / "run"):
        lists = [found for found in pattern.findall(path.read_text(encoding="utf-8")) if "," in found]
        assert len(lists) == 1, (path, lists)  # the one that installs them all
        found[path.name] = lists[0]
    assert len(set(found.values())) == 1, found
    extras = set(pyproject()["project"]["optional-dependencies"])
    assert set(next(iter(found.values())).split(",")) == extras
    assert "wandb" in extras
