"""``labelemb cache`` (labelemb.data.caches): every kind of cache labelemb writes, listed with its
folder, files and size as the writers themselves leave them, and cleared a kind or all at once,
deleting only what labelemb made (a user's file in the same folder stays), after a yes. Every test
writes into a cache root and an XDG cache folder of its own, never the user's."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.repo_paths import DOCS

from labelemb.analysis.wordnet_corpus import BASE_FILES, SENSE_INDEX_FILES, prepare_wordnet
from labelemb.cli import main
from labelemb.data import load as load_data
from labelemb.data.caches import KINDS, cache_places, cache_usage, clear_cache, format_size
from labelemb.data.cifar.spec import CIFAR10
from labelemb.data.corruptions.suites import Condition, conditions
from labelemb.data.feature_cache import cached_features
from labelemb.data.files.paths import cache_root
from labelemb.data.image_cache import cached_images
from labelemb.data.mnist import MNIST, cache_dir
from labelemb.evaluation.corrupted import corrupted_images


@pytest.fixture
def roots(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """This test's cache root ($LABELEMB_CACHE) and XDG cache folder (downloads, WordNet)."""
    monkeypatch.setenv("LABELEMB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "cache", tmp_path / "xdg" / "labelemb"


def _write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


@pytest.fixture
def filled(roots, tmp_path) -> dict[str, Path]:
    """Every kind filled as its writer fills it (the downloads and the Arrow tables by their names:
    nothing is downloaded here), and a file of someone else's beside several of them."""
    root, xdg = roots
    corrupted_images(load_data("digits").test.inputs[:10], Condition("rotate", 2), 0)
    cached_features(root / "features", "ab" * 32, 3, lambda: torch.ones(3, 2), progress=False)
    image = np.zeros((4, 4), dtype=np.uint8)
    cached_images(
        [image, image], names=["a", "b"], channels=1, size=(4, 4), cache_dir=root / "images", progress=False
    )
    _write(root / "hf" / "0123456789abcdef01234567" / "rows.arrow", 500)
    _write(cache_dir(MNIST.name) / f"{MNIST.files[0].name}.gz", 700)
    _write(cache_dir(CIFAR10.name) / CIFAR10.folder / CIFAR10.files[0], 900)
    prepare_wordnet(source=_wordnet_source(tmp_path))
    return {
        "corrupted": _write(root / "corrupted" / "mine.txt", 3),
        "downloads": _write(xdg / "mnist" / "notes.txt", 3),
        "wordnet": _write(xdg / "nltk_data" / "corpora" / "stopwords" / "english", 3),
        "root": _write(root / "README", 3),
    }


def _wordnet_source(tmp_path: Path) -> Path:
    """A stand-in for /usr/share/wordnet: every file WordNet's copy needs, tiny."""
    for name in (*BASE_FILES, *SENSE_INDEX_FILES):
        _write(tmp_path / "wordnet-source" / name, 10)
    return tmp_path / "wordnet-source"


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and not path.name.endswith(".lock")]


def test_each_kind_counts_what_its_writer_left_and_nothing_of_anyone_else(filled, roots):
    root, xdg = roots
    uses = {use.kind.name: use for use in cache_usage()}
    assert list(uses) == list(KINDS)
    mine = set(filled.values())
    for name, folder in [
        ("corrupted", root / "corrupted"),
        ("features", root / "features"),
        ("images", root / "images"),
        ("tables", root / "hf"),
        ("wordnet", xdg / "nltk_data" / "corpora" / "wordnet"),
    ]:
        made = [path for path in _files(folder) if path not in mine]
        assert made, f"the writer of {name} left nothing in {folder}"
        assert uses[name].files == len(made) and uses[name].size == sum(p.stat().st_size for p in made), name
    assert uses["downloads"].files == 2 and uses["downloads"].size == 700 + 900
    assert all(path not in uses[name].entries for name in uses for path in mine)


def test_the_listing_says_each_kinds_folder_files_size_and_what_makes_it_again(filled, roots, capsys):
    root, xdg = roots
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    corrupted = next(use for use in cache_usage(["corrupted"]))
    assert (
        f"corrupted: {corrupted.files} file(s), {format_size(corrupted.size)} in {root / 'corrupted'}\n"
        in out
    )
    assert f"downloads: 2 file(s), 1.6 kB in {xdg / '<data set>'}\n" in out
    for kind in KINDS.values():
        assert f"    {kind.what}; {kind.remade}\n" in out
    total = sum(use.size for use in cache_usage())
    assert out.endswith(f"{format_size(total)}; delete a kind with: labelemb cache clear KIND\n")
    assert main(["cache", "list"]) == 0 and capsys.readouterr().out == out


def test_clear_deletes_only_what_labelemb_made_in_the_kinds_named(filled, roots, capsys):
    root, _ = roots
    corrupted, features = cache_usage(["corrupted", "features"])
    assert main(["cache", "clear", "corrupted", "--yes"]) == 0
    assert (
        capsys.readouterr().out
        == f"deleting {corrupted.line()}\ndeleted 1 file(s), {format_size(corrupted.size)}\n"
    )
    assert _files(root / "corrupted") == [filled["corrupted"]]  # the user's file stays
    assert cache_usage(["features"])[0] == features  # another kind is untouched
    every = clear_cache()
    assert sum(use.size for use in every) > 0
    assert all(use.files == 0 and use.size == 0 for use in cache_usage())
    assert all(path.is_file() for path in filled.values())  # nobody else's file went
    assert not (root / "features").exists() and not (root / "images").exists()  # empty: gone too


def test_clear_all_on_a_terminal_asks_and_a_no_deletes_nothing(filled, capsys, monkeypatch):
    before = cache_usage()
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert main(["cache", "clear", "--all"]) == 1
    out = capsys.readouterr().out
    files, size = sum(u.files for u in before), sum(u.size for u in before)
    assert f"delete {files} file(s), {format_size(size)}? [y/N] nothing was deleted" in out
    assert cache_usage() == before
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert main(["cache", "clear", "--all"]) == 0
    assert all(use.size == 0 for use in cache_usage())


def test_off_a_terminal_clear_wants_yes_and_a_dry_run_deletes_nothing(filled, capsys, monkeypatch):
    before = cache_usage()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["cache", "clear", "images"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "labelemb cache: error: deleting needs a yes: give --yes (no terminal to ask on), or --dry-run "
        "to see what goes\n"
    )
    assert main(["cache", "clear", "images", "features", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("would delete images: ") and out[1].startswith("would delete features: ")
    assert out[2].endswith("nothing was deleted (--dry-run)")
    assert cache_usage() == before


def test_a_mistaken_clear_is_one_line(roots, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["cache", "clear", "corupted"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "unknown cache kind 'corupted'; did you mean 'corrupted'?" in err and len(err.splitlines()) == 1
    assert main(["cache", "clear"]) == 2
    assert capsys.readouterr().err == (
        "labelemb cache: error: name the kinds to clear (labelemb cache clear corrupted) or give --all\n"
    )
    with pytest.raises(ValueError, match="unknown cache kind 'image'; did you mean 'images'"):
        cache_usage(["image"])


def test_cache_dir_lists_and_clears_that_root(roots, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    _write(other / "corrupted" / ("features-" + "0" * 32 + ".safetensors"), 1234)
    assert main(["cache", "list", "--cache-dir", str(other)]) == 0
    assert f"corrupted: 1 file(s), 1.2 kB in {other / 'corrupted'}" in capsys.readouterr().out
    assert main(["cache", "clear", "corrupted", "--cache-dir", str(other), "--yes"]) == 0
    assert not (other / "corrupted").exists()


def test_the_folders_are_those_the_writers_use(roots, tmp_path):
    root, _ = roots
    assert {folder for folder, _ in cache_places("downloads")} >= {
        cache_dir(MNIST.name),
        cache_dir(CIFAR10.name),
    }
    assert cache_places("wordnet")[0][0] == prepare_wordnet(source=_wordnet_source(tmp_path)) / "corpora"
    assert cache_places("corrupted")[0][0] == cache_root(None) / "corrupted" == root / "corrupted"


def test_the_size_the_docs_give_is_that_of_mnists_34_corrupted_copies():
    """MNIST's (and Fashion-MNIST's) test split, 10,000 images of 28 x 28, as float32 per condition."""
    count = len(conditions(["mnist-c", "severities"], "images"))
    size = format_size(count * 10_000 * 28 * 28 * 4)
    assert f"MNIST's {count}: {size}" in KINDS["corrupted"].remade
    for page in ("cli.md", "results/shift.md"):
        text = " ".join((DOCS / page).read_text(encoding="utf-8").split())
        assert re.search(rf"{count} corrupted copies[^.]*{re.escape(size)}", text), page


def test_the_features_kind_counts_and_clears_a_tfidfs_matrices_and_svd(roots):
    from labelemb.assembly.tfidf import _cached_directions
    from labelemb.data.text.classes import text_class_dataset
    from labelemb.data.text.options import TfidfOptions
    from labelemb.data.text.tfidf import tfidf_matrices

    root, _ = roots
    texts = {"train": ["alpha beta", "gamma delta", "alpha gamma"], "dev": None, "test": ["beta delta"]}
    labels = {"train": np.array([0, 1, 0]), "dev": None, "test": np.array([1])}
    data = text_class_dataset("t", texts, labels, ["a", "b"])
    matrices = tfidf_matrices(data, TfidfOptions(min_df=1), str(root), progress=False)
    svd = matrices.path.with_name("tfidf-svd-" + "c" * 32 + ".safetensors")
    _cached_directions(svd, "c" * 64, 2, matrices.vectorizer.width, matrices, 1, False)
    made = _files(root / "features")
    assert {p.name for p in made} == {matrices.path.name, svd.name}
    use = cache_usage(["features"])[0]
    assert use.files == 2 and use.size == sum(p.stat().st_size for p in made)
    clear_cache(["features"])
    assert not matrices.path.exists() and not svd.exists()
