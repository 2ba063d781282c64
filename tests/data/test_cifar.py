"""Tests of labelemb.data.cifar.loader on small files in the official pickle format, written here.

The real CIFAR archives are not on these machines (DESIGN.md, "Data on these machines"), so the
fixtures imitate them byte for byte where it matters: Python 2 protocol-2 pickles whose strings
are py2 ``str`` (read back as bytes with ``encoding="bytes"``) and whose arrays name
``numpy.core.multiarray._reconstruct``, in the official file and folder names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import struct
import tarfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from labelemb.data import DataError, available_datasets, load_dataset
from labelemb.data.cifar import loader as cifar_mod
from labelemb.data.cifar.archive import extract_archive, load_cifar_archive
from labelemb.data.cifar.batches import load_cifar_folder, unpickle_cifar
from labelemb.data.cifar.loader import find_cifar, load_cifar10, load_cifar100, load_cifar_spec
from labelemb.data.cifar.spec import CIFAR10, CIFAR100, CifarSpec

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------- fixture writers


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickles str and bytes as Python 2's ``str`` opcodes, as cPickle wrote the CIFAR files."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_pickle(obj: Any) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1 (and so the real files) name the reconstructor numpy.core.multiarray.
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def images_for(n: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, size=(n, 3072)).astype(np.uint8)


def write_cifar10(folder: Path, counts: tuple[int, ...] = (20, 20), n_test: int = 10) -> dict[str, Any]:
    """Batches data_batch_1..5 (counts cycled), test_batch and batches.meta; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {}
    for i in range(1, 6):
        n = counts[(i - 1) % len(counts)]
        batch = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": [int(v) for v in np.random.RandomState(i).randint(0, 10, n)],
            b"data": images_for(n, i),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        }
        (folder / f"data_batch_{i}").write_bytes(py2_pickle(batch))
        written[f"data_batch_{i}"] = batch
    test = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [j % 10 for j in range(n_test)],
        b"data": images_for(n_test, 99),
        b"filenames": [f"test_{j}.png".encode() for j in range(n_test)],
    }
    (folder / "test_batch").write_bytes(py2_pickle(test))
    written["test_batch"] = test
    meta = {
        b"num_cases_per_batch": 10000,
        b"label_names": [n.encode() for n in CIFAR10_NAMES],
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return written


def write_cifar100(folder: Path, n_train: int = 30, n_test: int = 10, protocol: int | None = None) -> dict:
    """train, test and meta with fine and coarse labels; ``protocol`` set: written by Python 3's pickle."""
    folder.mkdir(parents=True, exist_ok=True)
    dump = py2_pickle if protocol is None else (lambda obj: pickle.dumps(obj, protocol=protocol))
    written = {}
    for name, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        fine = [int(v) for v in np.random.RandomState(seed).randint(0, 100, n)]
        obj = {
            b"filenames": [f"{name}_{j}.png".encode() for j in range(n)],
            b"batch_label": f"{name}ing batch 1 of 1".encode(),
            b"fine_labels": fine,
            b"coarse_labels": [v // 5 for v in fine],
            b"data": images_for(n, seed + 10),
        }
        (folder / name).write_bytes(dump(obj))
        written[name] = obj
    meta = {
        b"fine_label_names": [f"fine_{i:02d}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse_{i:02d}".encode() for i in range(20)],
    }
    (folder / "meta").write_bytes(dump(meta))
    return written


def make_archive(folder: Path, archive: Path, inner: str, extra: list[tarfile.TarInfo] | None = None) -> str:
    """tar.gz ``folder`` under the name ``inner``; returns the archive's md5."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=inner)
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size))
    return hashlib.md5(archive.read_bytes()).hexdigest()


def loads(fn, *args, **kwargs):
    """Call a loader on a fixture (not the official counts): it must warn, and say why."""
    with pytest.warns(UserWarning, match="other image counts than the official set"):
        return fn(*args, **kwargs)


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $LABELEMB_DATA and an empty cache, so only what a test sets up can be found."""
    monkeypatch.delenv("LABELEMB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path


# ---------------------------------------------------------------- parsing


def test_cifar10_folder_shapes_labels_names_pixels(isolated_env: Path) -> None:
    folder = isolated_env / "data" / "cifar-10-batches-py"
    written = write_cifar10(folder, counts=(20, 20), n_test=10)
    ds = loads(load_cifar10, isolated_env / "data", download=False)
    assert ds.name == "cifar10" and ds.dev is None and ds.class_names == CIFAR10_NAMES
    assert ds.train.images.shape == (100, 3, 32, 32) and ds.test.images.shape == (10, 3, 32, 32)
    assert ds.train.images.dtype == torch.float32 and ds.train.labels.dtype == torch.int64
    assert 0.0 <= float(ds.train.images.min()) and float(ds.train.images.max()) <= 1.0
    # Batches concatenate in order data_batch_1..5.
    expect_labels = sum((written[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert ds.train.labels.tolist() == expect_labels
    assert ds.test.labels.tolist() == written["test_batch"][b"labels"]
    # Pixel layout: 1024 R values, then G, then B, each 32 x 32 row-major.
    row = written["data_batch_2"][b"data"][3]  # 4th image of the 2nd batch = training image 23
    image = ds.train.images[23]
    for channel, y, x in ((0, 0, 0), (1, 5, 7), (2, 31, 30), (0, 17, 2)):
        assert image[channel, y, x].item() == pytest.approx(row[channel * 1024 + y * 32 + x] / 255.0)
    torch.testing.assert_close(image * 255, torch.from_numpy(row.reshape(3, 32, 32)).float())


@pytest.mark.parametrize("protocol", [None, 2, 4])
def test_cifar100_folder(isolated_env: Path, protocol: int | None) -> None:
    """Python 2 files as released, and Python 3 re-pickles (protocol 2 uses _codecs.encode)."""
    written = write_cifar100(isolated_env / "c100" / "cifar-100-python", protocol=protocol)
    ds = loads(load_cifar100, isolated_env / "c100", download=False)
    assert ds.name == "cifar100" and ds.num_classes == 100 and ds.dev is None
    assert ds.class_names[:2] == ["fine_00", "fine_01"] and ds.class_names[-1] == "fine_99"
    assert (len(ds.train), len(ds.test)) == (30, 10) and ds.input_shape == (3, 32, 32)
    assert ds.train.labels.tolist() == written["train"][b"fine_labels"]  # fine, not coarse
    row = written["test"][b"data"][4]
    torch.testing.assert_close(ds.test.images[4] * 255, torch.from_numpy(row.reshape(3, 32, 32)).float())


def test_truncated_pickle(isolated_env: Path) -> None:
    folder = isolated_env / "cifar-10-batches-py"
    write_cifar10(folder)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="truncated or damaged") as info:
        load_cifar_folder(folder, CIFAR10)
    assert str(path) in str(info.value) and "cifar-10-python.tar.gz" in str(info.value)


def test_label_out_of_range(isolated_env: Path) -> None:
    folder = isolated_env / "cifar-100-python"
    write_cifar100(folder)
    obj = pickle.loads((folder / "test").read_bytes(), encoding="bytes")
    obj[b"fine_labels"][7] = 100
    (folder / "test").write_bytes(py2_pickle(obj))
    with pytest.raises(DataError, match=r"outside \[0, 100\)") as info:
        load_cifar_folder(folder, CIFAR100)
    assert str(folder / "test") in str(info.value)


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda b: b.update({b"labels": b[b"labels"][:-1]}), "images but 19 labels"),
        (lambda b: b.update({b"data": b[b"data"][:, :3000]}), r"expected uint8 of shape \(N, 3072\)"),
        (lambda b: b.update({b"data": b[b"data"].astype(np.int16)}), "int16"),
        (lambda b: b.pop(b"labels"), "no 'labels' entry"),
        (lambda b: b.update({b"labels": [0.5] * 20}), "not a list of integers"),
    ],
)
def test_structural_errors(isolated_env: Path, change, needle: str) -> None:
    folder = isolated_env / "cifar-10-batches-py"
    written = write_cifar10(folder)
    batch = dict(written["data_batch_1"])
    change(batch)
    (folder / "data_batch_1").write_bytes(py2_pickle(batch))
    with pytest.raises(DataError, match=needle) as info:
        load_cifar_folder(folder, CIFAR10)
    assert str(folder / "data_batch_1") in str(info.value)


def test_meta_with_wrong_class_count(isolated_env: Path) -> None:
    folder = isolated_env / "cifar-10-batches-py"
    write_cifar10(folder)
    (folder / "batches.meta").write_bytes(py2_pickle({b"label_names": [b"a", b"b"]}))
    with pytest.raises(DataError, match="names 2 classes, CIFAR-10 has 10"):
        load_cifar_folder(folder, CIFAR10)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("payload", [{b"data": _Evil()}, {b"f": eval}, {b"x": io.BytesIO}])
def test_malicious_pickle_is_refused(payload: Any) -> None:
    with pytest.raises(DataError, match="is not allowed") as info:
        unpickle_cifar(pickle.dumps(payload, protocol=2), "evil.pkl")
    assert "evil.pkl" in str(info.value)


def test_malicious_file_is_refused_by_the_loader(isolated_env: Path) -> None:
    marker = isolated_env / "it-ran"

    class Touch:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = isolated_env / "cifar-10-batches-py"
    write_cifar10(folder)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Touch(), b"labels": []}, protocol=4))
    with pytest.raises(DataError, match=r"(posix|os)\.system is not allowed") as info:
        load_cifar_folder(folder, CIFAR10)
    assert str(folder / "test_batch") in str(info.value) and not marker.exists()


def test_codecs_only_for_latin1() -> None:
    """_codecs.encode is allowed for protocol-2 bytes, but not with other codecs."""
    evil = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x04\x00\x00\x00zlibq\x00\x86R."
    with pytest.raises(DataError, match="'zlib' is not allowed"):
        unpickle_cifar(evil, "codec.pkl")


def test_official_counts_require_official_md5(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A set with the official counts is checked file by file against the official md5s."""
    folder = isolated_env / "cifar-10-batches-py"
    write_cifar10(folder, counts=(3,), n_test=2)
    counts = {**{f"data_batch_{i}": 3 for i in range(1, 6)}, "test_batch": 2}
    md5s = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in CIFAR10.files}
    spec = dataclasses.replace(CIFAR10, file_counts=counts, file_md5=md5s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # official counts: no warning
        ds = load_cifar_folder(folder, spec)
    assert (len(ds.train), len(ds.test)) == (15, 2)
    bad = dataclasses.replace(spec, file_md5={**md5s, "data_batch_4": "0" * 32})
    with pytest.raises(DataError, match="md5 is") as info:
        load_cifar_folder(folder, bad)
    assert str(folder / "data_batch_4") in str(info.value) and "0" * 32 in str(info.value)


# ---------------------------------------------------------------- archives


def tiny_archive(root: Path, spec: CifarSpec = CIFAR10) -> tuple[Path, CifarSpec]:
    """A fixture archive at root/<official name> and the spec whose checksum and size match it."""
    src = root / "src" / spec.folder
    (write_cifar10 if spec is CIFAR10 else write_cifar100)(src)
    archive = root / spec.archive
    md5 = make_archive(src, archive, spec.folder)
    return archive, dataclasses.replace(spec, archive_md5=md5, archive_size=archive.stat().st_size)


def test_archive_in_data_dir_is_read_in_memory(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, spec = tiny_archive(isolated_env / "user", CIFAR100)
    monkeypatch.setattr(cifar_mod, "CIFAR100", spec)
    hit, _ = find_cifar(spec, isolated_env / "user")
    assert hit == ("archive", archive)
    ds = loads(load_cifar100, isolated_env / "user", download=False)
    assert (len(ds.train), len(ds.test)) == (30, 10)
    # The user's folder is left as it was: no extraction next to the archive, nothing in the cache.
    assert sorted(p.name for p in archive.parent.iterdir()) == ["cifar-100-python.tar.gz", "src"]
    assert not (isolated_env / "xdg-cache").exists()
    # Same content as the extracted folder.
    direct = loads(load_cifar_folder, isolated_env / "user" / "src" / "cifar-100-python", spec)
    torch.testing.assert_close(ds.train.images, direct.train.images)


def test_archive_with_other_md5_is_refused(isolated_env: Path) -> None:
    archive, tiny = tiny_archive(isolated_env / "user")
    # Right size, wrong content: the md5 check names the file and the expected md5.
    spec = dataclasses.replace(tiny, archive_md5=CIFAR10.archive_md5)
    with pytest.raises(DataError, match="md5 is") as info:
        load_cifar_archive(archive, spec)
    assert str(archive) in str(info.value) and CIFAR10.archive_md5 in str(info.value)
    # The official spec stops at the size already, before hashing 170 MB.
    with pytest.raises(DataError, match="170,498,071 bytes") as info:
        load_cifar10(isolated_env / "user", download=False)
    assert str(archive) in str(info.value) and CIFAR10.archive_md5 in str(info.value)


def test_archive_with_unsafe_member_is_refused(isolated_env: Path) -> None:
    src = isolated_env / "src" / "cifar-10-batches-py"
    write_cifar10(src)
    evil = tarfile.TarInfo("../escape.txt")
    evil.size = 3
    archive = isolated_env / "cifar-10-python.tar.gz"
    md5 = make_archive(src, archive, "cifar-10-batches-py", extra=[evil])
    spec = dataclasses.replace(CIFAR10, archive_md5=md5, archive_size=None)
    for call in (
        lambda: load_cifar_archive(archive, spec),
        lambda: extract_archive(archive, isolated_env / "x", spec),
    ):
        with pytest.raises(DataError, match="unsafe member '../escape.txt'"):
            call()
    assert not (isolated_env / "escape.txt").exists()
    assert not (isolated_env / "x").exists() or list((isolated_env / "x").iterdir()) == []


def test_archive_missing_member(isolated_env: Path) -> None:
    src = isolated_env / "src" / "cifar-10-batches-py"
    write_cifar10(src)
    (src / "data_batch_5").unlink()
    archive = isolated_env / "a.tar.gz"
    spec = dataclasses.replace(CIFAR10, archive_md5=make_archive(src, archive, src.name), archive_size=None)
    with pytest.raises(DataError, match="lacks cifar-10-batches-py/data_batch_5"):
        load_cifar_archive(archive, spec)


def test_download_extracts_into_cache_then_reuses_it(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, spec = tiny_archive(isolated_env / "mirror")
    mirrors = ((isolated_env / "dead").as_uri() + "/", (isolated_env / "mirror").as_uri() + "/")
    spec = dataclasses.replace(spec, mirrors=mirrors)
    ds = loads(load_cifar_spec, spec, None, True)
    assert (len(ds.train), len(ds.test)) == (100, 10)
    cache = isolated_env / "xdg-cache" / "labelemb" / "cifar10"
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert sorted(p.name for p in (cache / "cifar-10-batches-py").iterdir()) == sorted(CIFAR10.files)
    # The second load finds the extracted folder and needs no mirror.
    archive.unlink()
    again = loads(load_cifar_spec, dataclasses.replace(spec, mirrors=()), None, False)
    torch.testing.assert_close(again.train.images, ds.train.images)


def test_cached_archive_is_extracted(isolated_env: Path) -> None:
    cache = isolated_env / "xdg-cache" / "labelemb" / "cifar10"
    _, spec = tiny_archive(cache)
    (cache / "cifar-10-batches-py").mkdir()  # a leftover partial folder of ours is replaced
    ds = loads(load_cifar_spec, spec, None, False)
    assert len(ds.test) == 10 and (cache / "cifar-10-batches-py" / "batches.meta").is_file()


def test_download_with_wrong_md5_leaves_nothing(isolated_env: Path) -> None:
    _, spec = tiny_archive(isolated_env / "mirror")
    spec = dataclasses.replace(
        spec, archive_md5="f" * 32, mirrors=((isolated_env / "mirror").as_uri() + "/",)
    )
    with pytest.raises(DataError, match="Download into") as info:
        load_cifar_spec(spec, None, True)
    assert "f" * 32 in str(info.value) and "cifar-10-python.tar.gz" in str(info.value)
    cache = isolated_env / "xdg-cache" / "labelemb" / "cifar10"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


# ---------------------------------------------------------------- search order and registry


def test_search_order(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_root = isolated_env / "env"
    write_cifar10(env_root / "cifar10" / "cifar-10-batches-py")
    monkeypatch.setenv("LABELEMB_DATA", str(env_root))
    assert find_cifar(CIFAR10, None)[0] == ("folder", env_root / "cifar10" / "cifar-10-batches-py")
    # data_dir comes first; a folder holding the files directly counts too.
    write_cifar10(isolated_env / "mine")
    assert find_cifar(CIFAR10, isolated_env / "mine")[0] == ("folder", isolated_env / "mine")
    # An incomplete folder is passed over, and reported.
    (isolated_env / "mine" / "test_batch").unlink()
    hit, looked = find_cifar(CIFAR10, isolated_env / "mine")
    assert hit == ("folder", env_root / "cifar10" / "cifar-10-batches-py")
    assert any("missing test_batch" in line for line in looked)


def test_nothing_found_lists_places(isolated_env: Path) -> None:
    with pytest.raises(DataError, match="CIFAR-100 files not found") as info:
        load_cifar100(isolated_env / "nowhere", download=False)
    msg = str(info.value)
    assert str(isolated_env / "nowhere" / "cifar100" / "cifar-100-python.tar.gz") in msg
    assert "download=False" in msg and CIFAR100.archive_md5 in msg and "LABELEMB_DATA" in msg


def test_registry(isolated_env: Path) -> None:
    assert {"cifar10", "cifar100"} <= set(available_datasets())
    write_cifar100(isolated_env / "cifar-100-python")
    ds = loads(load_dataset, "CIFAR-100", isolated_env, download=False)
    assert ds.num_classes == 100
    with pytest.raises(DataError, match="CIFAR-10 files not found"):
        load_dataset("cifar10", isolated_env / "empty", download=False)


def test_truncated_archive(isolated_env: Path) -> None:
    archive, spec = tiny_archive(isolated_env / "user")
    cut = archive.read_bytes()[: archive.stat().st_size // 2]
    archive.write_bytes(cut)
    spec = dataclasses.replace(spec, archive_md5=hashlib.md5(cut).hexdigest(), archive_size=len(cut))
    with pytest.raises(DataError, match="cannot read the archive") as info:
        load_cifar_archive(archive, spec)
    assert str(archive) in str(info.value)
