"""label-issues.html, the page beside a list of likely wrong labels (issue 101, part 1's page): it
shows every flagged row up to its cap and no other, each image as an embedded PNG of that row's own
image, each text escaped and cut, the counts, noise matrix and judged figures in its header, and
makes no network reference; find_label_issues writes it and says where; labelemb report links it."""

from __future__ import annotations

import base64
import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from helpers.report_checks import Page
from PIL import Image

import labelemb
from labelemb.analysis.report import build_report
from labelemb.analysis.report_noise import (
    NOISY_SECTION,
    NoisyLabels,
    label_issues_links,
    noisy_labels_section,
)
from labelemb.cli import main
from labelemb.data import Dataset
from labelemb.data.base import Split
from labelemb.label_issues.listing import LIST_CSV, LabelIssues
from labelemb.label_issues.page import CONFUSIONS, PAGE_ROWS, TEXT_CHARS, THUMBNAIL, image_png, page_html

pytestmark = pytest.mark.usefixtures("one_thread")

DATA_PNG = "data:image/png;base64,"


class Figures(HTMLParser):
    """The page's thumbnails: each figure's rank, its image's ``src`` and its caption's text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.figures: list[dict[str, Any]] = []
        self._caption: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.figures.append({"rank": int(attrs["data-rank"]), "src": None, "caption": ""})
        elif tag == "img" and self.figures:
            self.figures[-1]["src"] = attrs["src"]
        elif tag == "figcaption":
            self._caption = []
        elif tag == "br" and self._caption is not None:
            self._caption.append("\n")

    def handle_endtag(self, tag):
        if tag == "figcaption" and self._caption is not None:
            self.figures[-1]["caption"] = "".join(self._caption)
            self._caption = None

    def handle_data(self, data):
        if self._caption is not None:
            self._caption.append(data)


def decoded(uri: str) -> np.ndarray:
    """The pixels of an embedded PNG."""
    assert uri.startswith(DATA_PNG), uri[:40]
    with Image.open(io.BytesIO(base64.b64decode(uri[len(DATA_PNG) :], validate=True))) as image:
        return np.asarray(image)


def assert_offline(text: str) -> None:
    """Nothing on the page is fetched: every src and href a data URI or an anchor, no script, no
    style sheet or font from elsewhere."""
    page = Page(text)
    assert all(url.startswith((DATA_PNG, "#")) for url in page.urls), page.urls[:5]
    lowered = text.lower()
    for tag in ("<script", "<link", "<iframe", "<object", "<embed", "@import", "url("):
        assert tag not in lowered, tag


def listed(order: list[int], flagged: int, *, truth: bool = False) -> list[dict[str, Any]]:
    """List rows ranked as ``order`` (training indices), the first ``flagged`` flagged; each
    training index i is row i + 3 of ``train.csv``."""
    rows = []
    for rank, i in enumerate(order, start=1):
        row = {"rank": rank, "file": "data/train.csv", "row": i + 3, "given_label": f"g{i % 3}"}
        row |= {"suggested_label": f"s{i % 2}", "score": rank / 100, "flagged": rank <= flagged, "fold": 1}
        rows.append(row | ({"true_label": f"t{i}", "wrong": True} if truth else {}))
    return rows


def issues_of(rows: list[dict[str, Any]], classes: int = 3, judged: dict | None = None) -> LabelIssues:
    names = [f"class {k}" for k in range(classes)]
    summary = {"data": "toy", "method": "onehot", "folds": 2, "seed": 0, "rank_by": "self_confidence"}
    matrix = np.full((classes, classes), 0.1 / max(classes - 1, 1)) + np.eye(classes) * 0.9
    flagged = sum(row["flagged"] for row in rows)
    return LabelIssues(rows, flagged, 7, matrix, names, Path("unused"), summary | {"filter": "both"}, judged)


def image_data(count: int, channels: int, dtype: torch.dtype, side: int = 8) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, channels, side, side, generator=generator)
    if dtype == torch.uint8:
        images = (images * 255).round().to(torch.uint8)
    labels = torch.arange(count) % 3
    test = Split(images[:3], labels[:3])
    return Dataset("toy", Split(images, labels), None, test, ["class 0", "class 1", "class 2"])


@pytest.mark.parametrize(("channels", "dtype"), [(1, torch.float32), (3, torch.uint8)])
def test_each_flagged_row_is_its_own_image_ranked_and_captioned_up_to_the_cap(channels, dtype):
    dataset = image_data(30, channels, dtype)
    order = [int(i) for i in np.random.default_rng(1).permutation(30)]
    rows = listed(order, flagged=12)
    text = page_html(issues_of(rows), order, dataset, shown=5)
    figures = Figures(text).figures
    assert [f["rank"] for f in figures] == [1, 2, 3, 4, 5]
    assert text.count(DATA_PNG) == 5  # one embedded picture a shown row, nothing else
    for figure, i in zip(figures, order):
        image = dataset.train.inputs[i]
        expected = image.numpy()
        if dtype != torch.uint8:  # a float image in [0, 1] is stored as 8-bit grey levels, rounded
            expected = np.round(expected.astype(np.float64) * 255).astype(np.uint8)
        assert np.array_equal(
            decoded(figure["src"]), expected[0] if channels == 1 else expected.transpose(1, 2, 0)
        )
        assert figure["caption"].split("\n")[:3] == [
            f"#{figure['rank']} · row {i + 3}",
            f"g{i % 3} → s{i % 2}",
            f"score {figure['rank'] / 100:.3f}",
        ]
    assert "The first 5 of the 12 flagged rows" in text and "at most 5" in text
    assert_offline(text)


def test_all_flagged_rows_and_no_other_are_shown_under_the_default_cap():
    dataset = image_data(30, 1, torch.float32)
    order = list(range(29, -1, -1))
    text = page_html(issues_of(listed(order, flagged=12)), order, dataset)
    figures = Figures(text).figures
    assert [f["rank"] for f in figures] == list(range(1, 13))
    shown = {int(f["caption"].split("\n")[0].rsplit(" ", 1)[1]) for f in figures}
    assert shown == {i + 3 for i in order[:12]}  # the flagged rows' numbers in their file, no other
    assert text.count(DATA_PNG) == 12 and "All 12 flagged rows" in text
    assert PAGE_ROWS == 100


def test_an_image_folder_s_rows_are_captioned_by_their_file_and_several_files_name_theirs():
    dataset = image_data(4, 3, torch.uint8)
    rows = listed([2, 0, 1, 3], flagged=4)
    for row in rows[:2]:
        row["file"], row["row"] = f"photos/cat/img{row['rank']}.png", None
    rows[2]["file"] = "data/extra.csv"
    figures = Figures(page_html(issues_of(rows), [2, 0, 1, 3], dataset)).figures
    captions = [figure["caption"].split("\n")[0] for figure in figures]
    assert captions == ["#1 · img1.png", "#2 · img2.png", "extra.csv#3 · row 4", "train.csv#4 · row 6"]


def test_a_large_image_is_shrunk_to_a_thumbnail_and_a_grey_one_stays_grey():
    big = torch.rand(3, 300, 150)
    with Image.open(io.BytesIO(image_png(big))) as image:
        assert image.mode == "RGB" and max(image.size) == THUMBNAIL and image.size == (48, 96)
    with Image.open(io.BytesIO(image_png(torch.rand(1, 28, 28)))) as image:
        assert image.mode == "L" and image.size == (28, 28)


def texts_data(texts: list[str]) -> Any:
    """What the page reads of a text data set: its name, what it yields, its training texts."""
    train = SimpleNamespace(inputs=torch.zeros(len(texts), 4, dtype=torch.int64))
    return SimpleNamespace(name="texts", yields="texts", train=train, texts={"train": texts})


def test_texts_are_escaped_cut_and_shown_beside_their_labels():
    texts = [f"plain text {i}" for i in range(6)]
    texts[4] = '<script>alert("x")</script> & <b>bold</b>'
    texts[1] = "word " * 200
    order = [4, 1, 0, 2, 3, 5]
    text = page_html(issues_of(listed(order, flagged=3, truth=True)), order, texts_data(texts))
    assert "<script" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    [table] = Page(text).tables_in("flagged")
    assert table[0] == ["rank", "row", "text", "given", "suggested", "score", "true label"]
    body = table[1:]
    assert [int(cells[1]) for cells in body] == [7, 4, 3]  # the three flagged rows, numbered in the file
    assert body[0][2] == texts[4] and body[2][2] == texts[0]
    assert body[1][2].endswith("…") and len(body[1][2]) <= TEXT_CHARS + 1
    assert body[0][3:] == ["g1", "s0", "0.010", "t4"]
    assert_offline(text)


def test_the_header_has_the_counts_the_noise_matrix_and_the_judged_figures():
    judged = {
        "wrong": 9,
        "rows": 30,
        "flagged": {"filter": "both", "count": 12, "precision": 75.0, "recall": 100.0, "f1": 85.71},
        "detectors": {"self_confidence": {"auroc": 91.25, "auprc": None, "precision_at_true_count": 66.67}},
    }
    order = list(range(30))
    text = page_html(
        issues_of(listed(order, flagged=12), judged=judged), order, image_data(30, 1, torch.uint8)
    )
    page = Page(text)
    assert "30 training rows; 12 flagged; about 7 wrong by cleanlab's estimate." in page.text[None]
    [matrix] = page.tables_in("noise-matrix")
    assert matrix[0] == ["true \\ given", "class 0", "class 1", "class 2"]
    assert matrix[1] == ["class 0", "0.950", "0.050", "0.050"]
    assert "9 of the 30 training labels are wrong" in page.text["judged"]
    assert "precision 75.0 %, recall 100.0 %, F1 85.7 %" in page.text["judged"]
    [figures] = page.tables_in("judged")
    assert figures[1] == ["self_confidence", "91.2 %", "-", "66.7 %"]
    without = page_html(issues_of(listed(order, flagged=12)), order, image_data(30, 1, torch.uint8))
    assert "judged" not in Page(without).sections


def test_many_classes_show_their_largest_confusions_not_the_whole_matrix():
    issues = issues_of(listed(list(range(30)), flagged=0), classes=40)
    issues.noise_matrix[5, 7] = 0.4
    text = page_html(issues, list(range(30)), image_data(30, 1, torch.uint8))
    [table] = Page(text).tables_in("noise-matrix")
    assert len(table) == 1 + CONFUSIONS and table[1] == ["class 5", "class 7", "0.400"]
    assert "No row is flagged." in text and DATA_PNG not in text


@pytest.mark.parametrize("shown", [0, -1, 2.5, True])
def test_a_cap_that_is_not_a_positive_count_is_refused_in_one_line(shown):
    with pytest.raises(ValueError, match="positive number of rows") as error:
        page_html(issues_of(listed([0, 1], 1)), [0, 1], image_data(2, 1, torch.uint8), shown=shown)
    assert "\n" not in str(error.value)


ROWS = 60
WORDS = {"animal": ["cat", "dog", "cow"], "vehicle": ["car", "bus", "tram"]}


def write_table(path: Path, count: int, seed: int, flips: int) -> list[dict[str, str]]:
    """A CSV of texts of :data:`WORDS`' two classes, a few with markup, ``flips`` labels swapped."""
    generator = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        label = list(WORDS)[int(generator.integers(2))]
        text = " ".join(generator.choice(WORDS[label], 4))
        rows.append(
            {"text": f"<script>{text}</script>" if i % 7 == 0 else text, "label": label, "clean": label}
        )
    for i in generator.choice(count, flips, replace=False):
        rows[i]["label"] = "vehicle" if rows[i]["clean"] == "animal" else "animal"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label", "clean"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture(scope="module")
def text_search(tmp_path_factory):
    """A CSV of texts with flips, its dev carved from train, searched with 2 folds."""
    folder = tmp_path_factory.mktemp("page")
    table = write_table(folder / "train.csv", ROWS, 0, 8)
    write_table(folder / "test.csv", 20, 1, 0)
    config = {
        "experiment": "flips",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": {"train": "train.csv", "test": "test.csv"}},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "onehot"},
        "train": {"epochs": 3, "batch_size": 10, "lr": 0.05, "progress": False},
    }
    return table, labelemb.find_label_issues(config, folds=2, progress=False)


def test_the_search_writes_the_page_of_its_flagged_rows_named_as_the_file_numbers_them(text_search):
    table, issues = text_search
    page = issues.folder / "label-issues.html"
    assert any(line == f"-> {page} (the flagged rows to look at)" for line in issues.lines())
    text = page.read_text(encoding="utf-8")
    with (issues.folder / LIST_CSV).open(newline="", encoding="utf-8") as handle:
        flagged = [row for row in csv.DictReader(handle) if row["flagged"] == "True"]
    assert flagged, "the flips should flag some rows"
    [shown] = Page(text).tables_in("flagged")
    assert shown[0][:3] == ["rank", "row", "text"]
    assert [int(cells[1]) for cells in shown[1:]] == [int(row["row"]) for row in flagged][:PAGE_ROWS]
    for cells in shown[1:]:
        number = int(cells[1])
        assert 1 <= number <= ROWS and cells[2] == table[number - 1]["text"]  # the file's own row
        assert cells[3] == table[number - 1]["label"]
    assert "<script" not in text and "&lt;script&gt;" in text
    assert_offline(text)


def test_the_report_links_each_label_issues_page(tmp_path):
    experiment = tmp_path / "exp"
    for name, flagged in (("onehot-k5-seed0", 4), ("elr-k3-seed1", 2)):
        folder = experiment / "label-issues" / name
        folder.mkdir(parents=True)
        (folder / "label-issues.html").write_text("<html></html>", encoding="utf-8")
        summary = {"rows": 1200, "flagged": flagged, "estimated_wrong": 5}
        (folder / "label_issues.json").write_text(json.dumps(summary), encoding="utf-8")
    (experiment / "label-issues" / "no-page").mkdir()
    elsewhere = tmp_path / "reports" / "deep"
    links = label_issues_links(experiment, elsewhere)
    assert [text for _, text in links] == [
        "elr-k3-seed1: 1,200 training rows, 2 flagged, about 5 wrong",
        "onehot-k5-seed0: 1,200 training rows, 4 flagged, about 5 wrong",
    ]
    for href, text in links:  # each relative to where the report is written, and leads to the page
        assert (elsewhere / href).resolve() == (
            experiment / "label-issues" / text.split(":")[0] / "label-issues.html"
        )
    html = "\n".join(noisy_labels_section(NoisyLabels([], None, links)))
    assert f'<section id="{NOISY_SECTION}">' in html and html.count("<a href=") == 2
    assert "The runs trained on labels that are wrong in places" not in html  # no such runs here
    assert label_issues_links(tmp_path / "nothing", tmp_path) == []


def test_labelemb_report_over_an_experiment_with_a_search_links_its_page(tmp_path, capsys):
    config = {
        "experiment": "noisy",
        "output_dir": str(tmp_path),
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 1, "progress": False},
        "noise": {"kind": "symmetric", "rate": 0.4},
    }
    (tmp_path / "noisy.yaml").write_text(json.dumps(config), encoding="utf-8")
    args = ["--config", str(tmp_path / "noisy.yaml"), "--no-progress"]
    assert main(["compare", *args, "--methods", "onehot", "--seeds", "0"]) == 0
    assert main(["label-issues", *args, "--method", "onehot", "--folds", "2"]) == 0
    page = tmp_path / "noisy" / "label-issues" / "onehot-k2-seed0" / "label-issues.html"
    assert f"-> {page}" in capsys.readouterr().out
    text = page.read_text(encoding="utf-8")
    with (page.parent / LIST_CSV).open(newline="", encoding="utf-8") as handle:
        flagged = sum(row["flagged"] == "True" for row in csv.DictReader(handle))
    assert flagged > PAGE_ROWS  # 40 % of the digits' labels are wrong: the cap shows
    assert text.count(DATA_PNG) == len(Figures(text).figures) == PAGE_ROWS
    assert f"The first {PAGE_ROWS} of the {flagged:,} flagged rows" in text
    assert_offline(text)
    report = build_report(tmp_path / "noisy", tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert '<a href="../noisy/label-issues/onehot-k2-seed0/label-issues.html">onehot-k2-seed0: ' in report
