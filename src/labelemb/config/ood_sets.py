"""The config's ``ood:`` entries: the out-of-distribution sets a finished classifier is scored on."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class OodSetConfig(BaseModel):
    """An out-of-distribution set, scored once at the end of a run on its selected weights (never at
    a check): a data set by name (``data: mnist``, its ``split``), or your own inputs (``path``:
    anything ``labelemb predict --input`` reads; for a text run also one text a line). A relative
    path is looked for as a data file is: beside the config, in ``data.dir``, in $LABELEMB_DATA."""

    model_config = ConfigDict(extra="forbid")

    data: str | None = None
    path: str | None = None
    split: Literal["train", "dev", "test"] = "test"
    #: What the tables call it; null: the data set's name, or the file's.
    name: str | None = None
    #: Only the first this many inputs.
    limit: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> OodSetConfig:
        if (self.data is None) == (self.path is None):
            raise ValueError("an ood set names a data set (data: mnist) or a file (path: ...): one of them")
        return self

    @property
    def label(self) -> str:
        """The set's name in tables and records."""
        return self.name or self.data or Path(str(self.path)).name


__all__ = ["OodSetConfig"]
