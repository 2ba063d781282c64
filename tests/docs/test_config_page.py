"""docs/config.md documents every key of the config (issue 101, part 6): each top-level key has a
row of its "Top level" table, and each dotted key of :func:`labelemb.config.config_keys` is named on
the page (`train.epochs`), or bare in the section of the page that holds it (the `ood` and `noise`
tables name `kind`, `rate` ...), so that a new key cannot be added without its row."""

from __future__ import annotations

import re

from helpers.repo_paths import DOCS

from labelemb.config import config_keys, top_level_keys

PAGE = DOCS / "config.md"


def sections(text: str) -> dict[str, str]:
    """The page's sections by the key their heading names (``## `noise` `` -> ``noise``)."""
    parts = re.split(r"^#{2,3} `([^`]+)`[^\n]*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def documented(key: str, text: str, by_section: dict[str, str]) -> bool:
    """Whether ``key`` is named on the page, or its last part in the section of its nearest parent."""
    if f"`{key}`" in text:
        return True
    parents = [key.rsplit(".", depth)[0] for depth in range(1, key.count(".") + 1)]
    section = next((by_section[parent] for parent in parents if parent in by_section), "")
    leaf = key.rsplit(".", 1)[1]
    return f"`{leaf}`" in section or f"{leaf}:" in section


def test_every_top_level_key_has_its_row():
    top = PAGE.read_text(encoding="utf-8").split("## Top level", 1)[1].split("\n## ", 1)[0]
    assert [key for key in top_level_keys() if f"| `{key}` |" not in top] == []


def test_every_key_is_documented():
    text = PAGE.read_text(encoding="utf-8")
    by_section = sections(text)
    assert [key for key in config_keys() if not documented(key, text, by_section)] == []


def test_an_undocumented_key_is_found():
    text = "## `clean`\n\n| `clean.folds` | 5 | K |\n"
    assert documented("clean.folds", text, sections(text))
    assert not documented("clean.action", text, sections(text))
    assert documented("noise.rate", "## `noise`\n| `rate` | |\n", sections("## `noise`\n| `rate` | |\n"))
