"""What a newcomer reads first agrees with what runs (issue 79): the install text with .ci/run and
pyproject.toml, the README's test command with the data the tests read, the demo's time said once,
every page reachable from the README's and the site's page tables, and the README's "which method
for what" table with the results overview's."""

from __future__ import annotations

import re

import yaml
from helpers.repo_paths import DOCS, ROOT
from packaging.specifiers import SpecifierSet
from setuptools.config.pyprojecttoml import read_configuration

README = ROOT / "README.md"
GETTING_STARTED = DOCS / "getting-started.md"
CI = ROOT / ".ci" / "run"
CPU_INDEX = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"


def text(path) -> str:
    return path.read_text(encoding="utf-8")


def flat(path) -> str:
    """The page with its lines joined: a sentence wrapped over lines reads as one."""
    return " ".join(text(path).split())


def torch_pins(path) -> set[str]:
    return set(re.findall(r"pip install (?:--quiet )?torch==([0-9.]+)", text(path)))


def test_the_torch_pin_is_the_same_everywhere_and_within_pyprojects_range():
    pins = {path.name: torch_pins(path) for path in (README, GETTING_STARTED, CI)}
    assert all(len(found) == 1 for found in pins.values()), pins
    assert len(set.union(*pins.values())) == 1, pins
    dependencies = read_configuration(ROOT / "pyproject.toml", expand=False)["project"]["dependencies"]
    torch_range = next(d for d in dependencies if d.startswith("torch")).removeprefix("torch")
    assert next(iter(pins["run"])) in SpecifierSet(torch_range)
    assert f"torch{torch_range}" in flat(README).replace("`", "")


def test_both_pages_say_which_torch_a_cpu_and_a_gpu_machine_take_and_why_it_is_pinned():
    for page in (README, GETTING_STARTED):
        said = flat(page)
        assert CPU_INDEX in said, page.name
        assert "CUDA one" in said and "GPU machine needs" in said, page.name
        assert "same numbers only under the same torch" in said, page.name
        assert "unpinned torch would pull" not in said, page.name  # the pin does not avoid CUDA


def apt_packages(command: str) -> set[str]:
    words = command.split()
    packages = set()
    for start in (i for i, w in enumerate(words) if w == "install" and words[i - 1] == "apt-get"):
        for word in words[start + 1 :]:
            if word in ("&&", ";") or word.startswith("#"):
                break
            if not word.startswith("-"):
                packages.add(word)
    return packages


def test_the_readmes_test_command_installs_what_ci_installs_and_names_a_placeholder_data_folder():
    command = next(line for line in text(README).splitlines() if line.endswith("python3 -m pytest -q"))
    assert apt_packages(command) == apt_packages(text(CI).replace("\n", " && ")), command
    assert "LABELEMB_DATA=DATA_DIR python3 -m pytest -q" in command
    assert 'export LABELEMB_DATA="$shared_data"' in text(CI)  # CI points it at its own copy


def test_the_data_folders_the_pages_name_are_those_the_tests_read():
    fixtures = text(ROOT / "tests" / "conftest.py")
    read = set(re.findall(r'Path\(root\) / "([a-z-]+)"', fixtures))
    assert read == {"mnist", "debian-ddtp", "noisy-labels"}, read
    for page in (README, GETTING_STARTED):
        named = set(re.findall(r"`([a-z-]+)/`", flat(page).split("Run the tests", 1)[1].split("```", 1)[0]))
        assert named == read, (page.name, named)
    table = flat(DOCS / "data.md").split("## The data the tests read", 1)[1].split("## ", 1)[0]
    assert {f"`{name}/`" for name in read} <= set(re.findall(r"`[a-z-]+/`", table))


def test_the_demos_time_is_said_once():
    pages = [README, GETTING_STARTED, DOCS / "index.md"]
    times = [t for page in pages for t in re.findall(r"(\d+) s wall", flat(page))]
    assert len(set(times)) == 1, times  # one measurement (the README's block and the guide's)
    for page in pages:
        assert not re.search(r"about \d+ s on", flat(page)), page.name


def nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [f for value in node.values() for f in nav_files(value)]
    return [f for item in node for f in nav_files(item)]


def test_every_page_is_in_the_readmes_and_the_sites_page_tables():
    nav = nav_files(yaml.safe_load(text(ROOT / "mkdocs.yml"))["nav"])
    pages = {page for page in nav if not page.startswith("results/") or page == "results/index.md"}
    pages -= {"index.md", "changelog.md", "contributing.md"}
    readme_links = set(re.findall(r"^\| \[[^\]]+\]\(docs/([^)#]+)\)", text(README), re.M))
    site_links = set(re.findall(r"^\| \[[^\]]+\]\(([^)#]+)\)", text(DOCS / "index.md"), re.M))
    assert pages <= readme_links, sorted(pages - readme_links)
    assert pages <= site_links, sorted(pages - site_links)


def which_method_rows(page_text: str) -> list[str]:
    table = page_text.split("| you want | use | measured |", 1)[1].split("\n\n", 1)[0]
    return table.strip().splitlines()


def test_the_readmes_which_method_table_is_the_results_overviews():
    # The README links from the root, the overview from docs/results/: the same pages otherwise.
    readme = [
        row.replace("](docs/results/", "](").replace("](docs/", "](../")
        for row in which_method_rows(text(README))
    ]
    overview = which_method_rows(text(DOCS / "results" / "index.md"))
    assert len(readme) >= 8 and readme == overview


#: The longest a README paragraph may be (issue 99): past it, a newcomer skims; the rest goes on a docs page.
MAX_PARAGRAPH = 800
#: The longest a "which method for what" answer may be: the answer and a figure, the rest on the
#: page it links.
MAX_ANSWER = 260


def prose_paragraphs(page_text: str) -> list[str]:
    """The page's paragraphs of prose: blocks between blank lines, outside code fences, that are not
    tables, headings, pictures or lists, each with its lines joined."""
    unfenced = re.sub(r"^```.*?^```", "", page_text, flags=re.M | re.S)
    blocks = (" ".join(block.split()) for block in unfenced.split("\n\n"))
    return [block for block in blocks if block and not block.startswith(("|", "#", "!", "- ", "* "))]


def test_no_readme_paragraph_is_longer_than_a_newcomer_reads():
    long = {p[:60]: len(p) for p in prose_paragraphs(text(README)) if len(p) > MAX_PARAGRAPH}
    assert not long, f"split these README paragraphs (at most {MAX_PARAGRAPH} characters each): {long}"


def test_each_which_method_answer_is_its_answer_and_a_figure():
    cells = [row.split(" | ") for row in which_method_rows(text(README))[2:]]
    long = {cell[0][2:]: len(cell[2]) for cell in cells if len(cell[2]) > MAX_ANSWER}
    assert not long, f"keep each to its answer and a figure ({MAX_ANSWER} characters): {long}"
