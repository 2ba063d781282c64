"""What tells CIFAR-10 and CIFAR-100 apart: :class:`CifarSpec` and the two official specs,
:data:`CIFAR10` and :data:`CIFAR100` (file names, pickle keys, image counts, checksums, mirrors).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..mnist import ENV_VAR


@dataclass(frozen=True)
class CifarSpec:
    """What tells CIFAR-10 and CIFAR-100 apart: file names, pickle keys, counts and checksums.

    ``file_md5`` maps a file of the extracted folder to its official md5, enforced only when the
    set holds the official counts (see :mod:`labelemb.data.cifar.batches`).
    """

    name: str
    title: str
    folder: str
    archive: str
    archive_md5: str
    archive_size: int | None
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    file_counts: dict[str, int]
    file_md5: dict[str, str]
    mirrors: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/",)

    @property
    def files(self) -> tuple[str, ...]:
        """Every file the extracted folder must hold: data files, then the meta file."""
        return (*self.train_files, *self.test_files, self.meta_file)

    @property
    def subdirs(self) -> tuple[str, ...]:
        """Subfolders of data_dir / $LABELEMB_DATA that are searched too."""
        return (self.name,)

    @property
    def hint(self) -> str:
        """How to get a good copy, appended to every error about one of this dataset's files."""
        return (
            "Delete it and run again with download enabled to re-download it, or pass --data-dir "
            f"(or set {ENV_VAR}) to a folder with the original {self.archive} from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html (or its extracted {self.folder}/)."
        )


CIFAR10 = CifarSpec(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    archive_size=170_498_071,
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key=b"labels",
    names_key=b"label_names",
    num_classes=10,
    file_counts={**{f"data_batch_{i}": 10_000 for i in range(1, 6)}, "test_batch": 10_000},
    # Batch md5s: the datasets-mila mirror's records of the official files; batches.meta: torchvision's.
    file_md5={
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
)

CIFAR100 = CifarSpec(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    archive_size=169_001_437,
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key=b"fine_labels",
    names_key=b"fine_label_names",
    num_classes=100,
    file_counts={"train": 50_000, "test": 10_000},
    # torchvision's checksums of the extracted files.
    file_md5={
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
)
