"""The pages that show the demo agree with each other and with the command: the README's block and
Getting started's are the same output, the seeds they show are the demo's default, and no page
gives the demo another number of seeds without saying it asked for them."""

from __future__ import annotations

import re

from helpers.repo_paths import DOCS, ROOT

from labelemb.cli import build_parser

README = ROOT / "README.md"
GETTING_STARTED = DOCS / "getting-started.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]


def demo_block(text: str) -> str:
    """The code block that starts with ``$ labelemb demo``: what the demo printed."""
    match = re.search(r"```\n(\$ labelemb demo\n.*?)```", text, re.S)
    assert match, "no block starting with '$ labelemb demo'"
    return match.group(1)


def demo_seeds_default() -> int:
    """How many seeds the demo trains by default (its ``--seeds`` default is a list, 0 to n - 1)."""
    demo = next(a for a in build_parser()._actions if a.dest == "command").choices["demo"]
    seeds = next(a for a in demo._actions if a.dest == "seeds").default
    assert seeds == list(range(len(seeds)))
    return len(seeds)


def test_the_readme_and_getting_started_show_the_same_demo_output():
    readme, guide = README.read_text(encoding="utf-8"), GETTING_STARTED.read_text(encoding="utf-8")
    assert demo_block(readme) == demo_block(guide)
    # Said of the same machine and commit, in the same words.
    said = [re.search(r"What `labelemb demo` printed (on [^:]+):", text) for text in (readme, guide)]
    assert all(said) and said[0].group(1) == said[1].group(1)


def test_the_demo_output_shown_is_of_its_default_seeds():
    seeds = demo_seeds_default()
    block = demo_block(README.read_text(encoding="utf-8"))
    assert f"on the bundled digits, seeds 0-{seeds - 1} ..." in block
    assert re.search(rf"\| onehot \| {seeds} \|", block)


def test_no_page_gives_the_demo_other_seeds_than_its_default_unless_asked():
    seeds = demo_seeds_default()
    for page in PAGES:
        text = " ".join(page.read_text(encoding="utf-8").split())
        for claim in re.finditer(r"[Tt]he demo \((\d+) seeds? per method\)", text):
            assert int(claim.group(1)) == seeds, (page.name, claim.group(0))
        for row in re.finditer(r"`--seeds SEEDS` \| the seeds of each method.*?\(default `0-(\d+)`\)", text):
            assert int(row.group(1)) == seeds - 1, (page.name, row.group(0))
