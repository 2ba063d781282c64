"""Tests of labelemb.data: IDX parsing, verification, search order, downloads, splits.

Tests on the real datasets fail (never skip) when the data is missing: MNIST is looked for under
$LABELEMB_DATA (CI sets it to ../shared/data), Fashion-MNIST in Debian's package folder.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from labelemb.data import (
    DataError,
    Dataset,
    Split,
    available_datasets,
    check_labels,
    load_dataset,
    read_idx,
)
from labelemb.data import mnist as mnist_mod
from labelemb.data.digits import load_digits
from labelemb.data.download import download_file
from labelemb.data.mnist import (
    FASHION_MNIST,
    MNIST,
    IdxDatasetSpec,
    IdxFile,
    load_fashion_mnist,
    load_idx_dataset,
    load_idx_spec,
    load_mnist,
)

FILE_NAMES = [f.name for f in MNIST.files]
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

# sha256 of the raw uint8 bytes of the first training / first test image, taken from the
# verified files; they pin down that the pixels and their order are read correctly.
MNIST_FIRST_TRAIN_SHA256 = "23ceaef5eb61f0e70d64ac18fdf0f60df3d5971cf30bbadac7b6ebf07f782d2c"
MNIST_FIRST_TEST_SHA256 = "8f6a418c9a639f9e14e96feca47a97df2a35a0a68ae2875431c5c80e05536941"
FASHION_FIRST_TRAIN_SHA256 = "5bd44e331a6d6998daf675700cd0c13dcd7af8ab954b7585124124da61459e7b"
FASHION_FIRST_TEST_SHA256 = "ffc7351ed0f8bae542820866086177fa4e0b366b97bf9d998dffdb8dbe138787"


# ---------------------------------------------------------------- helpers for synthetic files


def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    """Serialise a uint8 array in IDX format."""
    header = bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def write_idx(path: Path, content: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def make_set(
    folder: Path,
    *,
    n_train: int = 6,
    n_test: int = 3,
    gz: bool = True,
    train_labels: np.ndarray | None = None,
) -> tuple[list[Path], IdxDatasetSpec]:
    """Write a tiny MNIST-like set (4x4 images) and a spec whose md5s match its content."""
    rng = np.random.RandomState(0)
    arrays = [
        rng.randint(0, 256, size=(n_train, 4, 4)).astype(np.uint8),
        train_labels if train_labels is not None else (np.arange(n_train) % 10).astype(np.uint8),
        rng.randint(0, 256, size=(n_test, 4, 4)).astype(np.uint8),
        (np.arange(n_test) % 10).astype(np.uint8),
    ]
    paths, files = [], []
    for name, arr in zip(FILE_NAMES, arrays, strict=True):
        content = idx_bytes(arr)
        path = write_idx(folder / (name + (".gz" if gz else "")), content, gz)
        paths.append(path)
        gz_md5 = hashlib.md5(path.read_bytes()).hexdigest()
        files.append(IdxFile(name, hashlib.md5(content).hexdigest(), gz_md5, None))
    spec = dataclasses.replace(
        MNIST,
        name="tiny",
        train_images=files[0],
        train_labels=files[1],
        test_images=files[2],
        test_labels=files[3],
        mirrors=(),
        dev_size=2,
    )
    return paths, spec


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $LABELEMB_DATA and an empty cache, so only what a test sets up can be found."""
    monkeypatch.delenv("LABELEMB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path


# ---------------------------------------------------------------- read_idx


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    arr = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / "a.idx", idx_bytes(arr), gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 5)
    np.testing.assert_array_equal(out, arr)


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path: Path) -> None:
    arr = np.arange(7, dtype=np.uint8)
    raw_named_gz = write_idx(tmp_path / "raw.gz", idx_bytes(arr), gz=False)
    gz_named_raw = write_idx(tmp_path / "compressed-ubyte", idx_bytes(arr), gz=True)
    np.testing.assert_array_equal(read_idx(raw_named_gz), arr)
    np.testing.assert_array_equal(read_idx(gz_named_raw), arr)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated_payload(tmp_path: Path, gz: bool) -> None:
    content = idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8))[:-5]
    path = write_idx(tmp_path / "train-images-idx3-ubyte", content, gz)
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    msg = str(info.value)
    assert str(path) in msg and "48 bytes" in msg and "got 43" in msg
    assert "re-download" in msg


def test_read_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.arange(4000, dtype=np.uint8).reshape(40, 100) % 7))
    path = tmp_path / "cut.gz"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_header(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "hdr", bytes([0, 0, 8, 3, 0, 0]), gz=False)
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_trailing_bytes(tmp_path: Path) -> None:
    content = idx_bytes(np.zeros(5, dtype=np.uint8)) + b"\x00\x00"
    path = write_idx(tmp_path / "long", content, gz=False)
    with pytest.raises(DataError, match="trailing") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    good = bytearray(gzip.compress(idx_bytes(np.arange(3000, dtype=np.uint8) % 251)))
    good[20:40] = b"\xff" * 20
    path = tmp_path / "corrupt-ubyte.gz"
    path.write_bytes(bytes(good))
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (bytes([1, 2, 8, 1]), "not an IDX file"),
        (bytes([0, 0, 0x0C, 1]), "type code 0x0c (int32)"),
        (bytes([0, 0, 0x42, 1]), "type code 0x42"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
        (bytes([0, 0, 8, 5]), "5 dimensions"),
    ],
)
def test_read_idx_bad_magic(tmp_path: Path, header: bytes, needle: str) -> None:
    path = write_idx(tmp_path / "bad-magic", header + bytes(40), gz=True)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert needle in str(info.value) and str(path) in str(info.value)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_idx(tmp_path / "nope")
    assert "nope" in str(info.value)


# ---------------------------------------------------------------- loading a verified set


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_dataset_splits(tmp_path: Path, gz: bool) -> None:
    paths, spec = make_set(tmp_path, gz=gz)
    ds = load_idx_dataset(paths, spec)
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (4, 2, 3)
    assert ds.input_shape == (1, 4, 4) and ds.num_classes == 10
    raw = read_idx(paths[0])
    # dev is the *first* dev_size training images, train the rest, in file order.
    torch.testing.assert_close(ds.dev.images[:, 0], torch.from_numpy(raw[:2].copy()) / 255.0)
    torch.testing.assert_close(ds.train.images[:, 0], torch.from_numpy(raw[2:].copy()) / 255.0)
    assert ds.dev.labels.tolist() == [0, 1] and ds.train.labels.tolist() == [2, 3, 4, 5]
    assert ds.train.images.dtype == torch.float32 and ds.train.labels.dtype == torch.int64
    # Each row is named as its file numbers it (issue 99): dev is the training file's rows 1-2,
    # train its rows 3-6, test the test file's rows 1-3.
    assert [ds.dev.origins.place(i) for i in range(2)] == [f"{paths[0].name}, row {n}" for n in (1, 2)]
    assert ds.train.origins.rows.tolist() == [3, 4, 5, 6] and ds.test.origins.rows.tolist() == [1, 2, 3]
    assert ds.test.origins.file(0) == paths[2].name


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    paths, spec = make_set(tmp_path, train_labels=np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="6 images but") as info:
        load_idx_dataset(paths, spec)
    assert str(paths[0]) in str(info.value) and str(paths[1]) in str(info.value)


def test_decompressed_md5_mismatch(tmp_path: Path) -> None:
    paths, spec = make_set(tmp_path)
    wrong = "0" * 32
    spec = dataclasses.replace(spec, test_images=dataclasses.replace(spec.test_images, md5=wrong))
    with pytest.raises(DataError, match="md5") as info:
        load_idx_dataset(paths, spec)
    msg = str(info.value)
    actual = hashlib.md5(gzip.decompress(paths[2].read_bytes())).hexdigest()
    assert str(paths[2]) in msg and wrong in msg and actual in msg
    assert "--data-dir" in msg


def test_md5_is_of_decompressed_content(tmp_path: Path) -> None:
    """A re-gzipped copy with another header (as Debian ships) still verifies."""
    paths, spec = make_set(tmp_path)
    content = gzip.decompress(paths[0].read_bytes())
    paths[0].write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))
    assert load_idx_dataset(paths, spec).train.images.shape == (4, 1, 4, 4)


def test_label_out_of_range(tmp_path: Path) -> None:
    labels = np.array([0, 1, 2, 10, 4, 5], dtype=np.uint8)
    paths, spec = make_set(tmp_path, train_labels=labels)
    with pytest.raises(DataError, match=r"outside \[0, 10\)") as info:
        load_idx_dataset(paths, spec)
    assert str(paths[1]) in str(info.value)


def test_truncated_file_in_set_is_reported(tmp_path: Path) -> None:
    paths, spec = make_set(tmp_path, gz=False)
    paths[2].write_bytes(paths[2].read_bytes()[:-1])
    with pytest.raises(DataError, match="truncated") as info:
        load_idx_dataset(paths, spec)
    assert str(paths[2]) in str(info.value)


@pytest.mark.parametrize("layout", ["", "mnist", "MNIST/raw"])
def test_search_data_dir_and_subfolders(isolated_env: Path, layout: str) -> None:
    root = isolated_env / "data"
    _, spec = make_set(root / layout if layout else root)
    ds = load_idx_spec(spec, data_dir=root, download=False)
    assert len(ds.test) == 3


def test_search_env_var(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = isolated_env / "envdata"
    _, spec = make_set(root / "mnist")
    monkeypatch.setenv("LABELEMB_DATA", str(root))
    ds = load_idx_spec(spec, data_dir=isolated_env / "empty", download=False)
    assert len(ds.train) == 4


def test_nothing_found_lists_places(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_root = isolated_env / "env-root"
    env_root.mkdir()
    monkeypatch.setenv("LABELEMB_DATA", str(env_root))
    data_dir = isolated_env / "nowhere"
    with pytest.raises(DataError, match="MNIST files not found") as info:
        load_mnist(data_dir=data_dir, download=False)
    msg = str(info.value)
    for place in (
        data_dir,
        data_dir / "mnist",
        data_dir / "MNIST" / "raw",
        env_root,
        env_root / "mnist",
        isolated_env / "xdg-cache" / "labelemb" / "mnist",
    ):
        assert str(place) in msg, f"{place} not listed in:\n{msg}"
    assert "download=False" in msg and "--data-dir" in msg and "LABELEMB_DATA" in msg


def test_partial_folder_says_what_is_missing(isolated_env: Path) -> None:
    paths, _ = make_set(isolated_env / "part")
    paths[3].unlink()
    with pytest.raises(DataError) as info:
        load_mnist(data_dir=isolated_env / "part", download=False)
    assert "missing t10k-labels-idx1-ubyte" in str(info.value)


def test_fashion_nothing_found_mentions_apt(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_debian = isolated_env / "no-debian"
    spec = dataclasses.replace(FASHION_MNIST, system_dirs=(str(no_debian),))
    monkeypatch.setattr(mnist_mod, "FASHION_MNIST", spec)
    with pytest.raises(DataError) as info:
        load_fashion_mnist(data_dir=isolated_env / "x", download=False)
    msg = str(info.value)
    assert str(no_debian) in msg and str(isolated_env / "x" / "fashion-mnist") in msg
    assert "apt-get install dataset-fashion-mnist" in msg


def test_download_failure_is_reported(isolated_env: Path) -> None:
    _, spec = make_set(isolated_env / "unused")
    dead = (isolated_env / "dead-mirror").as_uri() + "/"
    spec = dataclasses.replace(spec, mirrors=(dead,))
    with pytest.raises(DataError, match="Download into") as info:
        load_idx_spec(spec, data_dir=None, download=True)
    assert "dead-mirror" in str(info.value)
    cache = isolated_env / "xdg-cache" / "labelemb" / "tiny"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_download_fills_cache_then_loads(isolated_env: Path) -> None:
    _, spec = make_set(isolated_env / "mirror")
    # The first mirror is dead: the loader must fall through to the second.
    mirrors = (
        (isolated_env / "no-such-mirror").as_uri() + "/",
        (isolated_env / "mirror").as_uri() + "/",
    )
    spec = dataclasses.replace(spec, mirrors=mirrors)
    ds = load_idx_spec(spec, data_dir=None, download=True)
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (4, 2, 3)
    cache = isolated_env / "xdg-cache" / "labelemb" / "tiny"
    assert sorted(p.name for p in cache.iterdir()) == sorted(n + ".gz" for n in FILE_NAMES)
    # Second call finds the cache and needs no mirror.
    again = load_idx_spec(dataclasses.replace(spec, mirrors=()), data_dir=None, download=False)
    torch.testing.assert_close(again.test.images, ds.test.images)


# ---------------------------------------------------------------- download_file


def test_download_file_md5(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"labelemb" * 1000)
    good_md5 = hashlib.md5(src.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "file.gz"

    with pytest.raises(DataError, match="md5") as info:
        download_file(src.as_uri(), dest, "f" * 32, progress=False)
    assert good_md5 in str(info.value)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temp file left behind

    with pytest.raises(DataError, match="bytes, expected"):
        download_file(src.as_uri(), dest, good_md5, expected_size=7, progress=False)
    assert list(dest.parent.iterdir()) == []

    assert download_file(src.as_uri(), dest, good_md5, 8000, progress=False) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert list(dest.parent.iterdir()) == [dest]


def test_download_file_unreachable(tmp_path: Path) -> None:
    dest = tmp_path / "d" / "x.gz"
    with pytest.raises(DataError, match="failed"):
        download_file((tmp_path / "missing").as_uri(), dest, "0" * 32, progress=False)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


# ---------------------------------------------------------------- digits, registry, containers


def test_digits_splits_and_values() -> None:
    ds = load_digits()
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (1197, 300, 300)
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10 and ds.name == "digits"
    assert ds.class_names[0] == "zero" and ds.class_names[9] == "nine"
    for split in (ds.train, ds.dev, ds.test):
        assert split.images.dtype == torch.float32 and split.labels.dtype == torch.int64
        assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0
    assert float(ds.train.images.max()) == 1.0
    all_labels = torch.cat([ds.train.labels, ds.dev.labels, ds.test.labels])
    assert sorted(set(all_labels.tolist())) == list(range(10))


def test_digits_deterministic() -> None:
    a, b, c = load_digits(), load_digits(0), load_digits(seed=1)
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.dev.labels, b.dev.labels)
    assert not torch.equal(a.test.images, c.test.images)


def test_registry() -> None:
    assert available_datasets() == ["digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "patches"]
    assert len(load_dataset("digits").test) == 300
    with pytest.raises(ValueError, match="digits, mnist, fashion-mnist"):
        load_dataset("cifar-11")


def test_containers_and_check_labels() -> None:
    split = Split(torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 2]))
    assert len(split) == 3
    ds = Dataset("x", split, None, split, ["a", "b", "c"])
    assert ds.num_classes == 3 and ds.input_shape == (1, 2, 2)
    with pytest.raises(ValueError):
        Split(torch.zeros(3, 1, 2, 2), torch.tensor([0, 1]))
    check_labels(torch.tensor([0, 2]), 3, "ok")
    with pytest.raises(DataError, match="somefile"):
        check_labels(np.array([0, -1]), 3, "somefile")
    assert issubclass(DataError, ValueError)


# ---------------------------------------------------------------- the real datasets


def _need_files(folder: Path, what: str) -> None:
    missing = [n + ".gz" for n in FILE_NAMES if not (folder / (n + ".gz")).is_file()]
    if missing:
        pytest.fail(f"{what}: missing {', '.join(missing)} in {folder}")


def mnist_root() -> Path:
    root = os.environ.get("LABELEMB_DATA")
    if not root:
        pytest.fail(
            "LABELEMB_DATA is not set: set it to the folder holding mnist/ with the four MNIST "
            ".gz files (in CI: ../shared/data)"
        )
    _need_files(Path(root) / "mnist", "MNIST (from $LABELEMB_DATA)")
    return Path(root)


def fashion_root() -> Path:
    _need_files(DEBIAN_FASHION_DIR, "Fashion-MNIST (apt-get install dataset-fashion-mnist to get them)")
    return DEBIAN_FASHION_DIR


def _check_real(folder: Path, ds: Dataset, first_train: str, first_test: str) -> None:
    train_x = read_idx(folder / "train-images-idx3-ubyte.gz")
    train_y = read_idx(folder / "train-labels-idx1-ubyte.gz")
    test_x = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_y.shape == (60000,) and test_y.shape == (10000,)
    for y in (train_y, test_y):
        assert int(y.min()) == 0 and int(y.max()) == 9
    assert hashlib.sha256(train_x[0].tobytes()).hexdigest() == first_train
    assert hashlib.sha256(test_x[0].tobytes()).hexdigest() == first_test

    assert (len(ds.train), len(ds.dev), len(ds.test)) == (55000, 5000, 10000)
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.dev is not None
    # dev is exactly the first 5,000 training images, train the other 55,000, in order.
    assert torch.equal(ds.dev.labels, torch.from_numpy(train_y[:5000].astype(np.int64)))
    assert torch.equal(ds.train.labels, torch.from_numpy(train_y[5000:].astype(np.int64)))
    assert torch.equal(ds.test.labels, torch.from_numpy(test_y.astype(np.int64)))
    assert torch.equal(
        (ds.dev.images[0, 0] * 255).round().to(torch.uint8), torch.from_numpy(train_x[0].copy())
    )
    assert torch.equal(
        (ds.train.images[0, 0] * 255).round().to(torch.uint8),
        torch.from_numpy(train_x[5000].copy()),
    )
    assert float(ds.train.images.min()) == 0.0 and float(ds.train.images.max()) == 1.0


def test_real_mnist() -> None:
    root = mnist_root()
    ds = load_dataset("mnist", data_dir=root, download=False)
    _check_real(root / "mnist", ds, MNIST_FIRST_TRAIN_SHA256, MNIST_FIRST_TEST_SHA256)
    assert ds.name == "mnist" and ds.class_names[:3] == ["zero", "one", "two"]
    assert ds.dev.labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_real_fashion_mnist_debian() -> None:
    root = fashion_root()
    ds = load_dataset("fashion-mnist", data_dir=root, download=False)
    _check_real(root, ds, FASHION_FIRST_TRAIN_SHA256, FASHION_FIRST_TEST_SHA256)
    assert ds.name == "fashion-mnist"
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.dev.labels[:4].tolist() == [9, 0, 0, 3]


def test_real_mnist_found_through_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    mnist_root()
    ds = load_mnist(data_dir=None, download=False)
    assert len(ds.test) == 10000
