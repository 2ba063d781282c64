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
    #: What the input column holds: text (one label, or with tags_column a tag set, per text) or
    #: images; null: images for imagefolder and npz, token pairs for parallel, text otherwise.
    inputs: Literal["text", "images"] | None = None
    #: Column names; null: text / image / x for the input, label / y for the label.
    input_column: str | None = None
    label_column: str | None = None
    #: A column of tag sets in place of label_column (multi-label texts): each cell a list of tags
    #: (JSON lines, Parquet, a saved or hub data set) or a string of tags split as tag_separator says.
    tags_column: str | None = None
    #: What separates the tags of a tags_column cell written as a string; null: any run of
    #: whitespace or commas. A string: exactly that separator (spaces around it, and around each
    #: tag, are dropped: a tag may hold a space).
    tag_separator: str | None = None
    #: A second label column holding each row's true label where the label column's may be wrong
    #: (e.g. ``clean_label``): the run trains (and selects, on dev) on the label column, judges test
    #: on this one where test's files carry it, and measures the noise as a ``noise:`` section does.
    #: Train's files must carry it; null: the labels are taken as right.
    clean_label_column: str | None = None
    #: The class (or tag) names in id order; null: a ClassLabel's names, else train's labels (or
    #: tags) sorted.
    class_names: list[str] | None = None
    #: With no dev split, this fraction of train (seeded by dev_seed, stratified by class; tag sets:
    #: drawn at random) is the dev split; 0: no dev split (selection falls back to the final check).
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

    @field_validator("tag_separator")
    @classmethod
    def _a_separator(cls, separator: str | None) -> str | None:
        if separator is not None and not separator:
            raise ValueError("tag_separator is the text between two tags, e.g. '|'; null: spaces or commas")
        return separator

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
        self._check_tags()

    def _check_tags(self) -> None:
        if self.tags_column is None:
            if self.tag_separator is not None:
                raise OptionsError(
                    "data.files.tag_separator splits the cells of data.files.tags_column, which is not "
                    "given: name the tags column, or drop data.files.tag_separator"
                )
            return
        if self.label_column is not None:
            raise OptionsError(
                "data.files.label_column and data.files.tags_column are both given: a column holds one "
                "label a row (label_column) or a tag set a row (tags_column); keep one of them"
            )
        if self.clean_label_column is not None:
            raise OptionsError(
                "data.files.clean_label_column gives each row one true label, which tag sets "
                "(data.files.tags_column) do not have: drop data.files.clean_label_column"
            )
        if self.format == "parallel":
            raise OptionsError("data.files.format parallel has no tags column: drop data.files.tags_column")
        if self._input_kind() == "images":
            raise OptionsError(
                "data.files.tags_column: tag sets are read for text inputs only (these files hold "
                "images); drop data.files.tags_column, or set data.files.inputs: text"
            )

    def _input_kind(self) -> str:
        if self.inputs is not None:
            return self.inputs
        return "images" if self.format in ("imagefolder", "npz") else "text"

    def yields(self) -> str:
        """What these files hold: images, texts (one label each), tagged texts (a tag set each,
        ``tags_column``) or token pairs."""
        if self.format == "parallel":
            return "token_pairs"
        if self._input_kind() == "images":
            return "images"
        return "tagged texts" if self.tags_column is not None else "texts"


def files_yields(sections: dict[str, Options]) -> str:
    """What the ``data.files`` section among ``sections`` describes (its defaults: a csv of texts)."""
    files = sections.get(FilesOptions.section)
    return (files if isinstance(files, FilesOptions) else FilesOptions()).yields()
