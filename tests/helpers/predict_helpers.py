"""What the predict tests share: the command, its output read back, and the small runs they train
(digits, a CSV of texts, an image folder)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from labelemb.cli import main
from labelemb.training import build_config, train

WORDS = {
    "animal": ["cat", "dog", "horse", "cow", "sheep", "goat"],
    "vehicle": ["car", "bus", "train", "bike", "truck", "tram"],
    "food": ["bread", "cheese", "apple", "rice", "soup", "pear"],
}


def read_output(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def error_of(rows: list[dict[str, str]]) -> float:
    """The error (%) of an output's predictions against its inputs' own labels, as the trainer counts."""
    wrong = sum(row["prediction"] != row["label"] for row in rows)
    return 100.0 * wrong / len(rows)


def predict(*args: Any) -> int:
    return main(["predict", *map(str, args), "--no-progress"])


def refused(capsys: Any, *args: Any) -> str:
    """The one error line of a predict that must fail; nothing else on stderr."""
    assert predict(*args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("labelemb predict: error: ")
    return err


def train_digits_run(small_config: Any) -> tuple[Path, dict[str, Any]]:
    """A digits run checked 12 times, so that its selected check is (here) not its last."""
    config = small_config("train.eval_every=200", "method.name=onehot", "train.lr=0.003")
    return config.run_dir(), train(config)


def text_table(path: Path, count: int, seed: int) -> None:
    """A CSV (text, label) of ``count`` short texts of the classes of :data:`WORDS`."""
    generator = np.random.default_rng(seed)
    lines = ["text,label"]
    for i in range(count):
        label = list(WORDS)[i % 3]
        # Mostly the class's words, and one word of another class to leave something to learn.
        words = list(generator.choice(WORDS[label], 3)) + [generator.choice(WORDS[list(WORDS)[(i + 1) % 3]])]
        lines.append(f'"{" ".join(words)} {i % 5}",{label}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def train_text_run(folder: Path, **files: Any) -> tuple[Path, dict[str, Any]]:
    """A bag-of-words run on ``folder``'s train.csv and test.csv (written here): its folder, summary.
    ``files``: more of the data's ``files:`` options (``dev_fraction=0``: no dev split)."""
    text_table(folder / "train.csv", 90, 0)
    text_table(folder / "test.csv", 30, 1)
    files = {"train": "train.csv", "test": "test.csv", **files}
    raw = {
        "experiment": "texts",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "bag_of_words", "embedding_dim": 8, "bigram_buckets": 16},
        "method": {"name": "label_embedding"},
        "train": {"epochs": 3, "batch_size": 10, "lr": 0.05, "progress": False},
    }
    config = build_config(raw)
    return config.run_dir(), train(config)


def image_folder(root: Path, counts: dict[str, int], seed: int) -> None:
    """Grey images, a class sub-folder each: ``dark`` ones and ``light`` ones."""
    from PIL import Image

    generator = np.random.default_rng(seed)
    for c, name in enumerate(("dark", "light")):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(counts[name]):
            base = 60 + 120 * c
            pixels = np.clip(generator.normal(base, 50, (10, 12)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(folder / f"{i}.png")


def train_folder_run(folder: Path) -> tuple[Path, dict[str, Any]]:
    """An MLP run on image folders ``folder``/train and ``folder``/test (written here)."""
    image_folder(folder / "train", {"dark": 20, "light": 20}, 0)
    image_folder(folder / "test", {"dark": 8, "light": 8}, 1)
    files = {"format": "imagefolder", "train": "train", "test": "test", "image_size": [8, 8]}
    files["cache_dir"] = str(folder / "cache")
    raw = {
        "experiment": "folder",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "mlp", "hidden": [8]},
        "method": {"name": "label_embedding"},
        "train": {"epochs": 3, "batch_size": 6, "progress": False},
    }
    config = build_config(raw)
    return config.run_dir(), train(config)


def train_pair_run(folder: Path) -> tuple[Path, dict[str, Any]]:
    """A sequence-to-sequence run on tiny parallel files in ``folder`` (written here): its folder, summary."""
    pairs = [
        ("the cat", "die katze"),
        ("a dog", "ein hund"),
        ("the house", "das haus"),
        ("good tea", "guter tee"),
    ]
    for split, chosen in (
        ("train", pairs * 8),
        ("dev", pairs[:2]),
        ("test", [("the dog", "der hund"), *pairs[2:]]),
    ):
        (folder / f"{split}.en").write_text("\n".join(s for s, _ in chosen) + "\n")
        (folder / f"{split}.de").write_text("\n".join(t for _, t in chosen) + "\n")
    files = {"format": "parallel", **{s: [f"{s}.en", f"{s}.de"] for s in ("train", "dev", "test")}}
    raw = {
        "experiment": "pairs",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "seq2seq", "embedding": 8, "hidden": 8, "layers": 1, "dropout": 0.0},
        "method": {"name": "onehot"},
        "decode": {"beam": 2, "max_length": 4},
        "train": {"epochs": 3, "batch_size": 4, "lr": 0.01, "progress": False},
    }
    config = build_config(raw)
    return config.run_dir(), train(config)


def train_npz_run(folder: Path, seed: int) -> tuple[Any, dict[str, Any], dict[str, np.ndarray]]:
    """(config, summary, arrays) of an MLP run on an ``.npz`` of two classes of 6x6 grey images,
    dark and light, 60 train and 20 test, written in ``folder`` from ``seed``."""
    generator = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 60), ("test", 20)):
        labels = generator.integers(0, 2, n)
        pixels = generator.normal(80 + 100 * labels[:, None, None], 40, (n, 6, 6))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = np.clip(pixels, 0, 255).astype(np.uint8), labels
    np.savez(folder / "set.npz", **arrays)
    files = {"format": "npz", "path": "set.npz", "cache_dir": str(folder / "cache")}
    raw = {
        "experiment": "arrays",
        "output_dir": str(folder / "runs"),
        "data": {"name": "files", "dir": str(folder), "files": files},
        "model": {"name": "mlp", "hidden": [8]},
        "method": {"name": "onehot"},
        "train": {"epochs": 3, "batch_size": 6, "progress": False},
    }
    config = build_config(raw)
    return config, train(config), arrays
