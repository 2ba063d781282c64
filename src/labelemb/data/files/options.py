"""The options of your own data (``data.files``): the format, each split's files, the columns."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from ...options import Options, OptionsError


class FilesOptions(Options):
    """Your own data (``data.name: files``), read through Hugging Face ``datasets``.

    Paths are relative to the config file's folder, then ``data.dir``, then ``$LABELEMB_DATA``.
    """

    section: ClassVar[str] = "files"

    #: csv, json (JSON lines), parquet, imagefolder (one sub-folder per class, or a metadata.csv),
    #: disk (a folder written by Dataset.save_to_disk), npz (x_train / y_train arrays), hub (a data
    #: set name on the Hugging Face hub) or parallel (two line-aligned text files per split).
    format: Literal["csv", "json", "parquet", "imagefolder", "disk", "npz", "hub", "parallel"] = "csv"
    #: The file(s) of each split (gzip allowed); for parallel, [source file, target file]. For disk
    #: and hub, the split's name inside the data set (default train / validation / test).
    train: str | list[str] | None = None
    dev: str | list[str] | None = None
    test: str | list[str] | None = None
    #: For disk: the saved folder; for hub: the data set's name (e.g. ag_news); for npz: the .npz file.
    path: str | None = None
    #: What the input column holds: text (one label per text) or images; null: images for
    #: imagefolder and npz, token pairs for parallel, text otherwise.
    inputs: Literal["text", "images"] | None = None
    #: Column names; null: text / image / x for the input, label / y for the label.
    input_column: str | None = None
    label_column: str | None = None
    #: A second label column holding each row's true label where the label column's may be wrong
    #: (e.g. ``clean_label``): the run trains (and selects, on dev) on the label column, judges test
    #: on this one where test's files carry it, and measures the noise as a ``noise:`` section does.
    #: Train's files must carry it; null: the labels are taken as right.
    clean_label_column: str | None = None
    #: The class names in id order; null: a ClassLabel's names, else the labels of train sorted.
    class_names: list[str] | None = None
    #: With no dev split, this fraction of train (seeded by dev_seed, stratified by class) is
    #: the dev split; 0: no dev split (selection falls back to the final check).
    dev_fraction: float = Field(0.1, ge=0, lt=1)
    dev_seed: int = 0
    #: Images: channels (1 grayscale, 3 RGB) and [height, width]; null: the first training image's.
    channels: Literal[1, 3] | None = None
    image_size: list[int] | None = None
    #: Where decoded images and Hugging Face's Arrow files are kept; null: $LABELEMB_CACHE, else
    #: ~/.cache/labelemb (XDG_CACHE_HOME).
    cache_dir: str | None = None
    #: parallel only: the score judging it.
    metric: Literal["bleu", "rouge"] = "bleu"

    @field_validator("image_size")
    @classmethod
    def _two_sides(cls, size: list[int] | None) -> list[int] | None:
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError("image_size is [height, width], two positive whole numbers, e.g. [28, 28]")
        return size

    def check(self) -> None:
        """The format has what it needs: the files of train and test, or a path."""
        if self.format in ("disk", "hub") and not self.path:
            raise OptionsError(
                f"data.files.format {self.format} needs data.files.path (the folder or hub name)"
            )
        if self.format == "npz" and not (self.path or self.train):
            raise OptionsError("data.files.format npz needs data.files.path: the .npz file")
        if self.format not in ("disk", "hub", "npz") and (self.train is None or self.test is None):
            example = "[train.en, train.de]" if self.format == "parallel" else "train.csv"
            raise OptionsError(
                f"data.files.format {self.format} needs data.files.train and data.files.test "
                f"(e.g. data.files.train: {example}); dev is optional"
            )

        if self.clean_label_column is not None:
            if self.format in ("npz", "parallel"):
                raise OptionsError(
                    f"data.files.clean_label_column names a table column; format {self.format} has none: "
                    "drop it (or keep the true labels in a table: csv, json, parquet)"
                )
            if self.clean_label_column == (self.label_column or "label"):
                raise OptionsError(
                    f"data.files.clean_label_column is {self.clean_label_column!r}, the label column itself; "
                    "name the column of the true labels (e.g. clean_label)"
                )

    def yields(self) -> str:
        """What these files hold: images, texts (one label each) or token pairs."""
        if self.format == "parallel":
            return "token_pairs"
        kind = self.inputs
        if kind is None:
            kind = "images" if self.format in ("imagefolder", "npz") else "text"
        return "images" if kind == "images" else "texts"


def files_yields(sections: dict[str, Options]) -> str:
    """What the ``data.files`` section among ``sections`` describes (its defaults: a csv of texts)."""
    files = sections.get(FilesOptions.section)
    return (files if isinstance(files, FilesOptions) else FilesOptions()).yields()
