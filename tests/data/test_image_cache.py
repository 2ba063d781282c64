"""The image cache of the files data path (labelemb.data.image_cache), on small images written here.

Conversion of every common mode, resizing, a huge image, damaged files, the content key and a
second run that decodes nothing, atomic writes (leftovers, truncation, a killed build), two
builders at once (threads and processes), the memory map and a cache folder that cannot be written.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from filelock import FileLock, Timeout
from PIL import Image

from labelemb.cli import main
from labelemb.data import DataError, image_cache
from labelemb.data import cache_files as cache_file_helpers
from labelemb.data.image_cache import cached_images, image_cache_key
from labelemb.data.image_decode import decode_image

RNG = np.random.default_rng(0)


def write_png(path: Path, pixels: np.ndarray, mode: str | None = None) -> str:
    """Save ``pixels`` as a PNG (Pillow picks the mode from the array unless ``mode`` is given)."""
    image = Image.fromarray(pixels) if mode is None else Image.fromarray(pixels).convert(mode)
    image.save(path)
    return str(path)


def random_pngs(folder: Path, count: int, shape: tuple[int, ...] = (6, 5, 3)) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_png(folder / f"{i:03d}.png", RNG.integers(0, 256, shape, dtype=np.uint8)) for i in range(count)
    ]


def build(sources, cache_dir: Path, channels=None, size=None, **options) -> torch.Tensor:
    names = [str(s) if isinstance(s, str) else f"row {i}" for i, s in enumerate(sources)]
    options.setdefault("progress", False)
    return cached_images(sources, names=names, channels=channels, size=size, cache_dir=cache_dir, **options)


@pytest.fixture
def count_decodes(monkeypatch):
    """Wrap decode_image with a call counter; returns the list of decoded names."""
    decoded: list[str] = []

    def counting(source, channels, size, name="image"):
        decoded.append(name)
        return decode_image(source, channels, size, name)

    monkeypatch.setattr(image_cache, "decode_image", counting)
    return decoded


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("images-*.u8"))


# --- conversion ----------------------------------------------------------------------------------


def test_mixed_modes_are_converted_not_refused(tmp_path):
    rgb = RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    gray = RNG.integers(0, 256, (4, 5), dtype=np.uint8)
    rgba = RNG.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    sixteen = RNG.integers(0, 65536, (4, 5), dtype=np.uint16)
    sources = [
        write_png(tmp_path / "gray.png", gray),
        write_png(tmp_path / "rgb.png", rgb),
        write_png(tmp_path / "rgba.png", rgba),
        write_png(tmp_path / "palette.png", rgb, mode="P"),
        write_png(tmp_path / "sixteen.png", sixteen),
        write_png(tmp_path / "bits.png", gray > 127, mode="1"),
    ]
    assert Image.open(sources[4]).mode == "I;16"
    images = build(sources, tmp_path / "cache", channels=3)
    assert images.shape == (6, 3, 4, 5) and images.dtype == torch.uint8
    as_hwc = images.permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(as_hwc[0], np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(as_hwc[1], rgb)
    on_black = (rgba[..., :3].astype(np.uint16) * rgba[..., 3:] + 127) // 255
    np.testing.assert_array_equal(as_hwc[2], on_black)
    np.testing.assert_array_equal(as_hwc[3], np.asarray(Image.open(sources[3]).convert("RGB")))
    scaled = np.rint(sixteen / 65535 * 255).astype(np.uint8)  # scaled, where Pillow's convert clips
    np.testing.assert_array_equal(as_hwc[4, ..., 0], scaled)
    np.testing.assert_array_equal(as_hwc[5, ..., 0], np.where(gray > 127, 255, 0))


def test_channels_follow_the_first_image(tmp_path):
    gray, rgb = RNG.integers(0, 256, (4, 5), dtype=np.uint8), RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    gray_first = [write_png(tmp_path / "a.png", gray), write_png(tmp_path / "b.png", rgb)]
    images = build(gray_first, tmp_path / "cache")
    assert images.shape == (2, 1, 4, 5)
    np.testing.assert_array_equal(images[0, 0].numpy(), gray)
    np.testing.assert_array_equal(images[1, 0].numpy(), np.asarray(Image.fromarray(rgb).convert("L")))
    sixteen_first = [write_png(tmp_path / "c.png", RNG.integers(0, 65536, (4, 5), dtype=np.uint16))]
    assert build(sixteen_first + gray_first, tmp_path / "cache").shape[1] == 1
    assert build(gray_first[::-1], tmp_path / "cache").shape == (2, 3, 4, 5)


def test_alpha_on_one_channel_is_composited_on_black(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = 200  # an opaque and a transparent pixel of the same grey
    rgba[0, :, 3] = 255
    images = build([write_png(tmp_path / "a.png", rgba)], tmp_path / "cache", channels=1)
    np.testing.assert_array_equal(images[0, 0].numpy(), [[200, 200], [0, 0]])


def test_a_palette_with_a_transparent_entry_is_composited_on_black(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([250, 200, 150] * 2)  # two entries of the same colour...
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "p.png", transparency=1)  # ...the second one transparent
    images = build([str(tmp_path / "p.png")], tmp_path / "cache", channels=3)
    np.testing.assert_array_equal(images[0, :, 0].numpy(), [[250, 0], [200, 0], [150, 0]])


def test_resize_is_bilinear_and_a_sized_image_keeps_its_bytes(tmp_path):
    sized = RNG.integers(0, 256, (8, 12, 3), dtype=np.uint8)
    larger = RNG.integers(0, 256, (30, 17, 3), dtype=np.uint8)
    sources = [write_png(tmp_path / "a.png", sized), write_png(tmp_path / "b.png", larger)]
    images = build(sources, tmp_path / "cache", size=(8, 12))
    np.testing.assert_array_equal(images[0].permute(1, 2, 0).numpy(), sized)
    expected = Image.fromarray(larger).resize((12, 8), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(images[1].permute(1, 2, 0).numpy(), np.asarray(expected))


def test_a_huge_image_is_resized(tmp_path):
    pixels = np.zeros((6000, 6000), dtype=np.uint8)
    pixels[:3000] = 200  # top half light, bottom half dark: a constant image would hide a wrong resize
    huge = write_png(tmp_path / "huge.png", pixels)
    photo = tmp_path / "photo.jpg"  # a big JPEG goes through Pillow's reduced-scale decoding
    Image.new("RGB", (2400, 1600), (10, 120, 230)).save(photo, quality=95)
    images = build([huge, str(photo)], tmp_path / "cache", channels=3, size=(28, 28))
    assert images.shape == (2, 3, 28, 28)
    # Rows 13 and 14 straddle the edge, which the filter's support blurs.
    assert (images[0, :, :13] == 200).all() and (images[0, :, 15:] == 0).all()
    assert (images[1].float().mean(dim=(1, 2)) - torch.tensor([10.0, 120.0, 230.0])).abs().max() < 3


def test_an_image_above_the_bomb_limit_is_refused_by_name(tmp_path, monkeypatch):
    path = write_png(tmp_path / "vast.png", np.zeros((100, 100), dtype=np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels is above twice this
    with pytest.raises(DataError, match=r"vast\.png: too large to decode safely.*downscale"):
        build([path], tmp_path / "cache", channels=1, size=(10, 10))
    assert cache_files(tmp_path / "cache") == []


def test_arrays_of_any_dtype(tmp_path):
    values = RNG.integers(0, 256, (3, 4), dtype=np.uint8)
    sixteen = RNG.integers(0, 65536, (3, 4), dtype=np.uint16)
    rows = [
        values,
        values.astype(np.int64),
        values[..., None],
        values.astype(np.float32) / 255,
        sixteen,
        values > 100,
    ]
    images = build(rows, tmp_path / "cache")
    assert images.shape == (6, 1, 3, 4)
    for index in range(4):
        np.testing.assert_array_equal(images[index, 0].numpy(), values)
    np.testing.assert_array_equal(images[4, 0].numpy(), np.rint(sixteen / 65535 * 255).astype(np.uint8))
    np.testing.assert_array_equal(images[5, 0].numpy(), np.where(values > 100, 255, 0))


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.full((3, 4), 300, dtype=np.int32), "integer pixel values must lie in 0..255, found 300..300"),
        (np.full((3, 4), 2.0, dtype=np.float32), r"float pixel values must lie in \[0, 1\]"),
        (np.full((3, 4), np.nan), r"float pixel values must lie in \[0, 1\]"),
        (
            np.zeros((3, 4, 5), dtype=np.uint8),
            "an image array must be .height, width. or .height, width, channels.",
        ),
        (np.zeros((3, 4), dtype=np.complex64), "an image array must hold integers or floats, not complex64"),
    ],
)
def test_a_bad_array_names_its_row(tmp_path, array, words):
    good = np.zeros((3, 4), dtype=np.uint8)
    with pytest.raises(DataError, match=f"row 1: {words}"):
        build([good, array], tmp_path / "cache")


# --- damaged files -------------------------------------------------------------------------------


def test_an_image_that_does_not_decode_is_named(tmp_path):
    good = random_pngs(tmp_path / "good", 2)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(good[0]).read_bytes()[:-30])
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    for bad in (truncated, text):
        with pytest.raises(
            DataError, match=rf"{bad.name}: not a readable image \(.+\); remove it or replace it"
        ):
            build([*good, str(bad)], tmp_path / "cache")
    with pytest.raises(DataError, match=r"^train\.csv row 17: not a readable image"):
        cached_images(
            [b"\x89PNG garbage"],
            names=["train.csv row 17"],
            channels=1,
            size=(2, 2),
            cache_dir=tmp_path,
            progress=False,
        )
    assert cache_files(tmp_path / "cache") == [] and list((tmp_path / "cache").glob("*.tmp")) == []


def test_a_missing_file_is_named_before_anything_is_decoded(tmp_path, count_decodes):
    sources = [*random_pngs(tmp_path, 2), str(tmp_path / "gone.png")]
    with pytest.raises(DataError, match=r"gone\.png: cannot be read \(No such file or directory\)"):
        build(sources, tmp_path / "cache")
    assert count_decodes == []


def test_a_bad_first_image_is_named_when_it_sets_the_size(tmp_path):
    text = tmp_path / "first.png"
    text.write_text("not an image\n")
    with pytest.raises(DataError, match=r"first\.png: not a readable image"):
        build([str(text), *random_pngs(tmp_path, 1)], tmp_path / "cache")


# --- the key and the second run ------------------------------------------------------------------


def test_the_second_run_decodes_nothing(tmp_path, count_decodes):
    sources = random_pngs(tmp_path / "images", 5)
    first = build(sources, tmp_path / "cache", size=(4, 4)).clone()
    assert len(count_decodes) == 5
    second = build(sources, tmp_path / "cache", size=(4, 4))
    assert len(count_decodes) == 5
    assert torch.equal(first, second)
    build(sources, tmp_path / "cache", size=[4, 4])  # a config's list is the same setting
    assert len(count_decodes) == 5
    build(sources, tmp_path / "cache", size=(3, 4))  # other preprocessing: another cache
    assert len(count_decodes) == 10 and len(cache_files(tmp_path / "cache")) == 2


def test_the_key_follows_content_order_and_preprocessing(tmp_path):
    sources = random_pngs(tmp_path, 3)

    def key(these=sources, channels=None, size=None):
        return image_cache_key(these, names=[str(s) for s in these], channels=channels, size=size)

    base = key()
    assert key([Path(s).read_bytes() for s in sources]) == base  # a file and its bytes decode the same
    assert key(sources[::-1]) != base
    assert key(channels=1) != base and key(size=(5, 5)) != base
    write_png(Path(sources[1]), RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8))  # same name, new content
    assert key() != base
    array = np.zeros((2, 3), dtype=np.uint8)
    assert key([array], 1, (2, 3)) != key([array.astype(np.uint16)], 1, (2, 3))


def test_changed_content_is_decoded_again(tmp_path, count_decodes):
    sources = random_pngs(tmp_path / "images", 3)
    build(sources, tmp_path / "cache")
    replacement = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    write_png(Path(sources[2]), replacement)
    images = build(sources, tmp_path / "cache")
    assert len(count_decodes) == 6
    np.testing.assert_array_equal(images[2].permute(1, 2, 0).numpy(), replacement)


# --- atomic writes -------------------------------------------------------------------------------


def only_cache(cache_dir: Path) -> Path:
    (path,) = cache_files(cache_dir)
    return path


def test_a_leftover_temporary_file_is_never_read_and_is_removed(tmp_path, count_decodes):
    sources = random_pngs(tmp_path / "images", 4)
    key = image_cache_key(sources, names=sources, channels=None, size=None)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    leftover = cache_dir / f".images-{key[:32]}.u8.4242.deadbeef.tmp"  # a build killed half-way
    leftover.write_bytes(b"\0" * 1000)
    images = build(sources, cache_dir)
    assert len(count_decodes) == 4 and not leftover.exists()
    np.testing.assert_array_equal(images[0].permute(1, 2, 0).numpy(), np.asarray(Image.open(sources[0])))


def flipped(content: bytes, at: int) -> bytes:
    return content[:at] + bytes([content[at] ^ 0xFF]) + content[at + 1 :]


@pytest.mark.parametrize("damage", ["truncate", "header", "empty", "flipped pixel", "flipped last byte"])
def test_a_damaged_cache_file_is_rebuilt_with_a_warning(tmp_path, count_decodes, damage, caplog):
    sources = random_pngs(tmp_path / "images", 4)
    expected = build(sources, tmp_path / "cache").clone()
    path = only_cache(tmp_path / "cache")
    content = path.read_bytes()
    damaged = {
        "truncate": content[:-7],
        "header": b"x" * 16 + content[16:],
        "empty": b"",
        # Same length, same header: only the pixels' digest can tell.
        "flipped pixel": flipped(content, image_cache.HEADER_BYTES + 5),
        "flipped last byte": flipped(content, len(content) - 1),
    }[damage]
    path.write_bytes(damaged)
    with caplog.at_level("WARNING", logger="labelemb"):
        images = build(sources, tmp_path / "cache")
    assert len(count_decodes) == 8
    assert torch.equal(images, expected) and path.read_bytes() == content
    warnings = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0], warnings


def test_a_failed_build_leaves_no_cache_and_no_temporary_file(tmp_path, monkeypatch):
    sources = random_pngs(tmp_path / "images", 6)
    calls = []

    def killed_on_the_fourth(source, channels, size, name="image"):
        calls.append(name)
        if len(calls) == 4:
            raise KeyboardInterrupt  # what Ctrl-C raises mid-build
        return decode_image(source, channels, size, name)

    monkeypatch.setattr(image_cache, "decode_image", killed_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        build(sources, tmp_path / "cache")
    assert cache_files(tmp_path / "cache") == [] and list((tmp_path / "cache").glob("*.tmp")) == []
    monkeypatch.setattr(image_cache, "decode_image", decode_image)
    assert build(sources, tmp_path / "cache").shape == (6, 3, 6, 5)


# --- two builders --------------------------------------------------------------------------------


def test_two_threads_build_the_cache_once(tmp_path, monkeypatch):
    sources = random_pngs(tmp_path / "images", 5)
    first_decode, second_waits = threading.Event(), threading.Event()
    decoded = []

    def slow_decode(source, channels, size, name="image"):
        decoded.append(name)
        first_decode.set()
        second_waits.wait(timeout=30)  # keep building until the other thread waits on the lock
        return decode_image(source, channels, size, name)

    class RecordingLock(FileLock):
        def acquire(self, timeout=None, *args, **kwargs):
            try:
                return super().acquire(timeout, *args, **kwargs)
            except Timeout:
                second_waits.set()
                raise

    monkeypatch.setattr(image_cache, "decode_image", slow_decode)
    monkeypatch.setattr(cache_file_helpers, "FileLock", RecordingLock)
    results: dict[str, torch.Tensor] = {}

    def builder(label):
        results[label] = build(sources, tmp_path / "cache")

    first = threading.Thread(target=builder, args=("first",))
    first.start()
    assert first_decode.wait(timeout=30)
    second = threading.Thread(target=builder, args=("second",))
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)
    assert second_waits.is_set(), "the second builder never met the first one's lock"
    assert len(decoded) == 5
    assert torch.equal(results["first"], results["second"])


def _build_in_a_process(image_dir: str, cache_dir: str) -> tuple[int, str]:
    """Child of the two-process test: build the cache, counting decodes (each one slowed down)."""
    import time

    from labelemb.data import image_cache as module

    decoded = []
    original = module.decode_image

    def slow_decode(source, channels, size, name="image"):
        decoded.append(name)
        time.sleep(0.05)
        return original(source, channels, size, name)

    module.decode_image = slow_decode
    sources = sorted(str(path) for path in Path(image_dir).glob("*.png"))
    images = build(sources, Path(cache_dir))
    return len(decoded), hashlib.sha256(images.numpy().tobytes()).hexdigest()


def test_two_processes_build_the_cache_once(tmp_path):
    random_pngs(tmp_path / "images", 20)
    arguments = [(str(tmp_path / "images"), str(tmp_path / "cache"))] * 2
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        (decoded_a, digest_a), (decoded_b, digest_b) = pool.starmap(_build_in_a_process, arguments)
    assert sorted([decoded_a, decoded_b]) == [0, 20]
    assert digest_a == digest_b
    assert len(cache_files(tmp_path / "cache")) == 1 and list((tmp_path / "cache").glob("*.tmp")) == []


# --- the memory map ------------------------------------------------------------------------------


def mapped_files(tensor: torch.Tensor) -> list[str]:
    """The files whose mappings in this process hold the tensor's first byte (/proc/self/maps)."""
    address = tensor.data_ptr()
    found = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, end = (int(bound, 16) for bound in fields[0].split("-"))
        if start <= address < end and len(fields) == 6:
            found.append(fields[5])
    return found


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the memory maps of Linux's /proc")
def test_the_tensor_maps_the_cache_file_and_holds_exactly_the_decoded_values(tmp_path):
    sources = random_pngs(tmp_path / "images", 7, shape=(9, 11, 3))
    images = build(sources, tmp_path / "cache", channels=1, size=(5, 6))
    path = only_cache(tmp_path / "cache")
    assert mapped_files(images) == [str(path)]
    for index, source in enumerate(sources):
        np.testing.assert_array_equal(images[index].numpy(), decode_image(source, 1, (5, 6)))
    content = path.read_bytes()
    images.zero_()  # a private copy of the pages: the file keeps its bytes
    assert path.read_bytes() == content


# --- the cache folder ----------------------------------------------------------------------------


def test_a_cache_folder_under_a_file_is_refused_with_the_setting_to_change(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    cache_dir = blocker / "cache"
    with pytest.raises(DataError, match=rf"{cache_dir}.*set data\.files\.cache_dir \(or \$LABELEMB_CACHE\)"):
        build(random_pngs(tmp_path / "images", 2), cache_dir)


def deny_writes_under(monkeypatch, folder: Path) -> None:
    """Make os.open refuse to create or write files in ``folder``, as a read-only folder would."""
    real_open = os.open

    def guarded_open(path, flags, *args, **kwargs):
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writes and Path(path).parent == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)


def test_a_read_only_cache_folder_is_refused_with_the_setting_to_change(tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    deny_writes_under(monkeypatch, cache_dir)
    with pytest.raises(
        DataError, match=rf"cannot write to the image cache folder {cache_dir} .*data\.files\.cache_dir"
    ):
        build(random_pngs(tmp_path / "images", 2), cache_dir)


def test_an_existing_cache_is_read_from_a_read_only_folder(tmp_path, monkeypatch, count_decodes):
    sources = random_pngs(tmp_path / "images", 3)
    expected = build(sources, tmp_path / "cache").clone()
    deny_writes_under(monkeypatch, tmp_path / "cache")
    assert torch.equal(build(sources, tmp_path / "cache"), expected)
    assert len(count_decodes) == 3


# --- progress and edge cases ---------------------------------------------------------------------


def test_the_progress_bar_shows_the_label_on_a_terminal_and_can_be_turned_off(tmp_path, capsys, monkeypatch):
    sources = random_pngs(tmp_path / "images", 3)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # capsys's stderr, posing as a terminal
    build(sources, tmp_path / "cache", label="decoding train images", progress=True)
    assert "decoding train images" in capsys.readouterr().err
    build(sources, tmp_path / "other", label="decoding train images", progress=False)
    assert capsys.readouterr().err == ""


def test_an_image_folder_run_off_a_terminal_draws_no_bar(tmp_path, capfd, one_thread):
    """docs/cli.md: off a terminal no progress bar is drawn, the image cache's included (it wrote
    its `decoding train images` bar, carriage returns and all, into log files)."""
    for split, count in (("train", 6), ("test", 2)):
        for name in ("cat", "dog"):
            random_pngs(tmp_path / split / name, count)
    files = {"format": "imagefolder", "train": "train", "test": "test", "cache_dir": str(tmp_path / "cache")}
    raw = {
        "experiment": "folder",
        "data": {"name": "files", "dir": str(tmp_path), "files": files},
        "model": {"name": "mlp", "hidden": [8]},
        "method": {"name": "onehot"},
        "train": {"epochs": 1, "batch_size": 2},
    }
    config = tmp_path / "folder.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "runs")]) == 0
    err = capfd.readouterr().err
    assert "\r" not in err and "decoding" not in err and "hashing" not in err, err
    assert "onehot seed 0: step" in err  # progress is on: the lines that stand in for the bar


def test_no_sources(tmp_path):
    assert build([], tmp_path / "cache", channels=3, size=(4, 5)).shape == (0, 3, 4, 5)
    with pytest.raises(DataError, match="no images"):
        build([], tmp_path / "cache")
