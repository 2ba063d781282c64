"""Write Fashion-MNIST as PNG files in the Hugging Face ``imagefolder`` layout, to train through the
files data path (``data.name: files``) what the named ``fashion-mnist`` set trains from memory.

    python examples/fashion_mnist_pngs.py --out fashion-mnist-png
    python examples/fashion_mnist_pngs.py --out fashion-mnist-png --data-dir DIR   # IDX files in DIR

Layout (70,000 PNGs, 28 x 28 grayscale, the exact bytes of the IDX files)::

    fashion-mnist-png/
      train/00000.png ... 54999.png, metadata.csv   training images 5,000..59,999
      dev/00000.png ... 04999.png, metadata.csv     the first 5,000 training images (the named set's dev)
      test/00000.png ... 09999.png, metadata.csv    the 10,000 test images

Each ``metadata.csv`` has the columns ``file_name,label`` with the class name as the label
(``T-shirt/top``, ``Trouser``, ...). Files are named by their zero-padded index in the split, so
their sorted order is the named set's order. To train on them, a config such as::

    data:
      name: files
      files:
        format: imagefolder
        train: fashion-mnist-png/train
        dev: fashion-mnist-png/dev
        test: fashion-mnist-png/test
        # the named set's class order; without it class ids follow the sorted class names
        class_names: [T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot]
    model: {name: mlp, hidden: [500, 500]}
    method: {name: label_embedding}

and ``labelemb train --config that.yaml`` (paths are looked for beside the config, then in
``data.dir`` and ``$LABELEMB_DATA``); ``configs/fashion-mnist-files.yaml`` is this config with the
paper's protocol: ``labelemb train --config configs/fashion-mnist-files.yaml --data-dir DIR`` after
writing the PNGs to ``DIR/fashion-mnist-png``. The first run decodes the PNGs once into a uint8 cache
(``data.files.cache_dir``, default ``$LABELEMB_CACHE`` or ``~/.cache/labelemb``); later runs read
the cache and decode nothing.

Fashion-MNIST's IDX files are found as for ``labelemb train`` on ``fashion-mnist``: ``--data-dir``,
``$LABELEMB_DATA``, Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install
dataset-fashion-mnist``), or downloaded into ``~/.cache/labelemb``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from labelemb.data import Split, load_fashion_mnist


def split_bytes(split: Split) -> np.ndarray:
    """The split's images as the uint8 (N, 28, 28) they were read from (the loader divided by 255)."""
    return (split.inputs[:, 0] * 255).round().to(torch.uint8).numpy()


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str]) -> None:
    """PNGs named by zero-padded index, and a metadata.csv of file name and class name per image."""
    folder.mkdir(parents=True, exist_ok=True)
    digits = len(str(len(images) - 1))
    rows = []
    for index in tqdm(range(len(images)), desc=f"writing {folder.name}", unit="img"):
        file_name = f"{index:0{digits}d}.png"
        Image.fromarray(images[index]).save(folder / file_name)
        rows.append((file_name, class_names[labels[index]]))
    with open(folder / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("file_name", "label"))
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("fashion-mnist-png"), help="folder to write into")
    parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST IDX files (default: searched)")
    args = parser.parse_args()
    start = time.perf_counter()
    dataset = load_fashion_mnist(args.data_dir)
    for name in ("train", "dev", "test"):
        split = getattr(dataset, name)
        write_split(args.out / name, split_bytes(split), split.labels.numpy(), dataset.class_names)
    total = len(dataset.train) + len(dataset.dev) + len(dataset.test)
    print(f"wrote {total:,} PNGs to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
