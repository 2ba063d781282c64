"""Shared fixtures: the embedded digits, small run configs, and the real datasets' folders.

Tests on MNIST read it from ``$LABELEMB_DATA`` (CI sets it to ../shared/data) and Fashion-MNIST
from Debian's ``dataset-fashion-mnist`` folder; when either is missing the test FAILS (never
skips) with a message that names what is missing and how to get it.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from labelemb.training.threads import same_numbers_at_any_thread_count

# The command line asks MKL for matrix products that do not depend on the thread count; the tests'
# own process does the same before its first product, so that what a test trains here and what a
# command trains in a subprocess or worker round alike.
same_numbers_at_any_thread_count()

# The test files share helper modules at tests/ (``from run_checks import read_metrics``; pytest puts
# tests/ on the path for this file), never another test file. The checks' asserts are rewritten as a
# test file's are, so that a failure shows its values.
pytest.register_assert_rewrite("helpers.batched_checks", "helpers.report_checks", "helpers.run_checks")

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: A digits run that trains in well under a second: MLP 64-32, two epochs of 12 batches.
SMALL_RUN: dict[str, Any] = {
    "experiment": "small",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [32]},
    "method": {"name": "label_embedding"},
    "train": {"epochs": 2, "batch_size": 100, "progress": False},
}


def _missing_idx_files(folder: Path) -> list[str]:
    """The IDX files (gzip'd or raw) that ``folder`` lacks."""
    return [
        name + ".gz"
        for name in IDX_FILES
        if not (folder / (name + ".gz")).is_file() and not (folder / name).is_file()
    ]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder with the four MNIST files, from ``$LABELEMB_DATA/mnist``; fails if absent."""
    root = os.environ.get("LABELEMB_DATA")
    if not root:
        pytest.fail(
            "MNIST is missing: the environment variable LABELEMB_DATA is not set. Set it to the "
            "folder that holds mnist/ with the four MNIST .gz files (in CI: ../shared/data).",
            pytrace=False,
        )
    folder = Path(root) / "mnist"
    missing = _missing_idx_files(folder)
    if missing:
        pytest.fail(
            f"MNIST is missing: {folder} (from LABELEMB_DATA={root}) lacks {', '.join(missing)}. "
            "Point LABELEMB_DATA at the folder holding mnist/ with the original MNIST files.",
            pytrace=False,
        )
    return folder


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """Debian's Fashion-MNIST folder; fails if the package is not installed."""
    missing = _missing_idx_files(FASHION_MNIST_DIR)
    if missing:
        pytest.fail(
            f"Fashion-MNIST is missing: {FASHION_MNIST_DIR} lacks {', '.join(missing)}. "
            "Install it with `apt-get install dataset-fashion-mnist`.",
            pytrace=False,
        )
    return FASHION_MNIST_DIR


@pytest.fixture(scope="session")
def ddtp_dir() -> Path:
    """``$LABELEMB_DATA/debian-ddtp`` (the DDTP summarisation and en-it corpora); fails if absent."""
    root = os.environ.get("LABELEMB_DATA")
    if not root:
        pytest.fail(
            "DDTP text is missing: LABELEMB_DATA is not set. Set it to the folder that holds "
            "debian-ddtp/ (in CI: ../shared/data).",
            pytrace=False,
        )
    folder = Path(root) / "debian-ddtp"
    needed = [folder / "summarize" / "train.src.gz", folder / "translate-en-it" / "train.en.gz"]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        pytest.fail(
            f"DDTP text is missing: {', '.join(missing)} (from LABELEMB_DATA={root}). Point "
            "LABELEMB_DATA at the folder holding debian-ddtp/.",
            pytrace=False,
        )
    return folder


@pytest.fixture(scope="session")
def noisy_labels_dir() -> Path:
    """``$LABELEMB_DATA/noisy-labels`` (Wei & Liu's fixed noisy labels, NoisyAG-News, cleanlab's
    disputed MNIST test labels); fails if absent."""
    root = os.environ.get("LABELEMB_DATA")
    if not root:
        pytest.fail(
            "the noisy-label files are missing: LABELEMB_DATA is not set. Set it to the folder that "
            "holds noisy-labels/ (in CI: ../shared/data).",
            pytrace=False,
        )
    folder = Path(root) / "noisy-labels"
    needed = [
        folder / "wei-liu-2021" / "fashion-mnist-uniform-low.npy",
        folder / "wei-liu-2021" / "mnist-sparse-high.npy",
    ]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        pytest.fail(
            f"the noisy-label files are missing: {', '.join(missing)} (from LABELEMB_DATA={root}). "
            "Point LABELEMB_DATA at the folder holding noisy-labels/.",
            pytrace=False,
        )
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Run torch on one thread: these tiny models only lose from a second, contended, thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's bundled digits, loaded once (1,197 train / 300 dev / 300 test)."""
    from labelemb.data import load_digits

    return load_digits()


@pytest.fixture
def small_config(tmp_path):
    """``small_config(*overrides, output_dir=None, **top_level)`` -> a validated small RunConfig."""
    from labelemb.training import build_config

    def make(*overrides: str, output_dir: str | Path | None = None, **top_level: Any):
        raw = copy.deepcopy(SMALL_RUN)
        raw["output_dir"] = str(output_dir if output_dir is not None else tmp_path / "runs")
        raw.update(top_level)
        return build_config(raw, list(overrides))

    return make
