"""labelemb report of a text comparison (BLEU, a vocabulary of labels): its own score on its 0-100
scale, the nearest words of frequent target words, no WordNet section; checked as a file and in a
real headless Chromium (which needs Debian's ``chromium`` and ``fonts-liberation``; without them the
browser test FAILS, never skips).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers.browser import run_chromium
from helpers.repo_paths import CONFIGS
from helpers.report_checks import (
    METHODS,
    PROBE,
    Page,
    assert_fits,
    comparison_widths,
    markdown_rows,
    png_bytes,
)

from labelemb.analysis.report import build_report
from labelemb.analysis.report_sources import SOURCES_FILE
from labelemb.cli import main

#: A translation comparison in under a minute: a tiny seq2seq, 4 updates, short greedy decodes;
#: 1,500 training pairs give a target vocabulary of more than 4,096 words, where a method that
#: learns no label representation saves none, and label_embedding saves its codes A (m x k).
TEXT_QUICK = [
    "data.max_train_pairs=1500",
    "data.text.vocabulary_size=5000",
    "model.embedding=16",
    "model.hidden=16",
    "model.layers=1",
    "train.max_steps=4",
    "train.batch_size=16",
    "train.eval_every=32",
    "decode.max_length=4",
    "decode.length_ratio=0",
    "decode.beam=1",
]
TEXT_SECTIONS = ["comparison", "curves", "method-onehot", "method-label_embedding"]


@pytest.fixture(scope="module")
def text_experiment(tmp_path_factory, ddtp_dir, one_thread):
    """onehot and label_embedding (variant nlp, compressed) on DDTP en-it, made by `labelemb compare`."""
    root = tmp_path_factory.mktemp("text")
    args = ["--methods", ",".join(METHODS), "--output-dir", str(root), "--data-dir", str(ddtp_dir)]
    config = str(CONFIGS / "ddtp-en-it.yaml")
    assert main(["compare", "--config", config, *args, "--no-progress", *TEXT_QUICK]) == 0
    return root / "ddtp-en-it"


@pytest.fixture(scope="module")
def text_report(text_experiment, one_thread) -> Path:
    return build_report(text_experiment)


@pytest.fixture(scope="module")
def text_page(text_report) -> Page:
    return Page(text_report.read_text(encoding="utf-8"))


def frequent_target_words(run: Path, count: int = 10) -> list[str]:
    """By hand: the run's target vocabulary after <pad> <unk> <s> </s>, punctuation left out."""
    vocabulary = (run / "vocabulary.target.txt").read_text(encoding="utf-8").splitlines()
    assert vocabulary[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    return [word for word in vocabulary[4:] if any(c.isalnum() for c in word)][:count]


def test_similar_and_analyze_say_what_a_text_run_without_a_representation_has(
    text_experiment, tmp_path, capsys
):
    run = text_experiment / "onehot" / "seed0"
    labels = len(json.loads((run / "summary.json").read_text())["class_names"])
    assert labels > 4096  # the case at hand: nothing saved in place of a representation
    for argv in (
        ["similar", str(run), "--labels", "di"],
        ["analyze", str(run), "--output-dir", str(tmp_path)],
    ):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert "unknown dataset" not in error and "ddtp-en-it" in error
        assert (
            f"onehot learns no label representation, and above 4,096 labels (this run has {labels:,}) "
            "no mean softmax of its predictions is saved in its place" in error
        )
        assert "--method label_embedding" in error and "data.text.vocabulary_size=4096 or less" in error
    # A run that saved one but lost the file says so, rather than that its method learns none.
    learned = tmp_path / "learned"
    shutil.copytree(text_experiment / "label_embedding" / "seed0", learned)
    (learned / "label_representation.safetensors").unlink()
    assert main(["similar", str(learned), "--labels", "di"]) == 2
    error = capsys.readouterr().err
    assert "the label representation this run saved (learned) is missing" in error
    assert "unknown dataset" not in error


def test_text_report_has_no_wordnet_section_and_no_picture_but_the_curves(text_page):
    assert text_page.sections == TEXT_SECTIONS
    assert [url for url in text_page.urls if url.startswith("#")] == [f"#{s}" for s in TEXT_SECTIONS]
    assert [section for section, _ in text_page.images] == ["curves"]
    png_bytes(text_page.images[0][1]["src"])


def test_text_report_speaks_of_bleu_on_its_0_to_100_scale(text_experiment, text_page):
    whole = " ".join(text_page.text.values())
    for wrong in ("Test error", "test error", "test-accuracy", "WordNet", "Error curves", "--no-analysis"):
        assert wrong not in whole, wrong
    assert "Test BLEU (0-100, higher is better)" in text_page.text["comparison"]
    assert "AUAC is the area under the test-BLEU curve" in text_page.text["comparison"]
    assert "Dev BLEU (0-100, higher is better" in text_page.text["curves"]
    (table,) = text_page.tables_in("comparison")
    header, *rows = table
    assert header[2] == "test BLEU (selected)" and header[6] == "best dev at epoch (stopped early)"
    assert header[8] == "time to onehot's best dev BLEU" and header[9] == "test BLEU at onehot's compute"
    assert header[10] == "AUAC (test BLEU, 0-100)"
    assert [row[0] for row in rows] == list(METHODS)
    for row in rows:  # AUAC by hand: BLEU 0-100 at each check, 0 at epoch 0, over the epochs
        records = [json.loads(line) for line in (text_experiment / row[0] / "seed0" / "metrics.jsonl").open()]
        epochs = [0.0] + [r["epoch"] for r in records]
        bleu = [0.0] + [r["test_bleu"] for r in records]
        area = sum((epochs[i + 1] - epochs[i]) * (bleu[i] + bleu[i + 1]) / 2 for i in range(len(records)))
        assert row[10] == f"{area / epochs[-1]:.2f}"
    assert markdown_rows((text_experiment / "comparison.md").read_text())[2:] == rows


def test_text_report_shows_the_nearest_words_of_frequent_words(text_experiment, text_page, capsys):
    run = text_experiment / "label_embedding" / "seed0"
    words = frequent_target_words(run)
    (table,) = text_page.tables_in("method-label_embedding")
    header, *rows = table
    assert header == ["word", "#1", "#2", "#3", "#4", "#5"]
    assert [row[0] for row in rows] == words and len(words) == 10
    # The cells `labelemb similar --labels` prints for those words, which the page names.
    assert main(["similar", str(run), "--labels", ",".join(words)]) == 0
    assert markdown_rows(capsys.readouterr().out)[2:] == rows
    assert f"labelemb similar {run} --labels {','.join(words)}" in text_page.text["method-label_embedding"]
    # By hand: the compressed embedding's softmax(ReLU(A[y] B + c)) row of the first word.
    weights = torch.load(run / "model.pt", weights_only=True)
    names = json.loads((run / "summary.json").read_text())["class_names"]
    first = names.index(words[0])
    codes, expand, bias = (weights[f"method.{k}"] for k in ("codes", "expand.weight", "expand.bias"))
    soft = torch.softmax(torch.relu(codes[first] @ expand.T + bias), -1)
    soft[first] = -1.0
    top = soft.topk(5)
    assert rows[0][1:] == [f"{names[j]} ({v:.3f})" for v, j in zip(top.values.tolist(), top.indices.tolist())]
    assert "Seed 0, label representation: learned." in text_page.text["method-label_embedding"]


def test_text_report_forms_no_vocabulary_square(text_experiment, tmp_path, monkeypatch):
    """With a compressed embedding only the rows of the shown words are formed."""
    from labelemb.analysis import similarity

    copy = tmp_path / "ddtp-en-it"
    shutil.copytree(text_experiment, copy, ignore=shutil.ignore_patterns("analysis", "report.html"))

    def square(*args, **kwargs):
        raise AssertionError("an m x m similarity was formed")

    monkeypatch.setattr(similarity, "label_similarity_rows", square)
    monkeypatch.setattr(similarity, "label_similarity", square)
    page = Page(build_report(copy).read_text(encoding="utf-8"))
    assert len(page.tables_in("method-label_embedding")[0]) == 11


def test_a_text_method_without_a_representation_says_so_in_one_line(text_experiment, text_page):
    labels = len(
        json.loads((text_experiment / "onehot" / "seed0" / "summary.json").read_text())["class_names"]
    )
    assert not text_page.tables_in("method-onehot")
    lines = [line.strip() for line in text_page.text["method-onehot"].splitlines() if line.strip()]
    assert lines == [
        "onehot",
        f"Seed 0: onehot learns no label representation, and above 4,096 labels (this run has {labels:,}) "
        "no mean softmax of its predictions is saved in its place.",
    ]


def test_text_report_command_with_and_without_analysis(text_experiment, text_report, tmp_path, capsys):
    out = tmp_path / "cli.html"
    analysed = json.loads((text_experiment / "analysis" / SOURCES_FILE).read_text())
    assert sorted(analysed) == sorted(f"{method}/seed0" for method in METHODS)  # what it analysed
    assert main(["report", str(text_experiment), "--output", str(out), "--top", "2", "--no-analysis"]) == 0
    page = Page(out.read_text(encoding="utf-8"))
    assert page.sections == TEXT_SECTIONS
    assert page.tables_in("method-label_embedding")[0][0] == ["word", "#1", "#2"]  # cut from the saved top 5
    assert "--top 2" in page.text["method-label_embedding"]
    assert "no mean softmax" in page.text["method-onehot"]
    # The whole report of a text comparison is made, not refused (it was above 200 labels).
    bare = tmp_path / "bare"
    shutil.copytree(text_experiment, bare, ignore=shutil.ignore_patterns("analysis", "report.html"))
    assert main(["report", str(bare), "--no-analysis"]) == 0
    assert (
        "has not been analysed"
        in Page((bare / "report.html").read_text(encoding="utf-8")).text["method-onehot"]
    )
    assert main(["report", str(bare)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(bare / "report.html")
    page = Page((bare / "report.html").read_text(encoding="utf-8"))
    assert len(page.tables_in("method-label_embedding")[0]) == 11


def test_chromium_renders_the_text_report(chromium, text_report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(
        text_report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8"
    )
    page = Page(run_chromium(chromium, tmp_path, probe, "--dump-dom").stdout.decode("utf-8"))
    assert page.sections == TEXT_SECTIONS
    assert len(page.tables_in("method-label_embedding")[0]) == 11  # header + 10 words
    assert "no mean softmax" in page.text["method-onehot"]
    ((section, attrs),) = page.images
    assert section == "curves" and re.fullmatch(r"[1-9]\d*x[1-9]\d*", attrs.get("data-decoded", ""))
    widths = comparison_widths(chromium, text_report.read_text(encoding="utf-8"), tmp_path)
    assert_fits(widths, "a text report")
