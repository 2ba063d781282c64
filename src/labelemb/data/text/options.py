"""The options of a text data set (``data.text``): how a corpus or a table of texts becomes tokens."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ...options import Options
from ..registry import DataRequest


class TextOptions(Options):
    """How text becomes training data (the paper's Section 3.3 settings): corpora and your texts."""

    section: ClassVar[str] = "text"

    #: Training pairs with more source / target tokens are dropped (released: 50; dev and test never).
    max_source_tokens: int | None = Field(50, ge=1)
    max_target_tokens: int | None = Field(50, ge=1)
    #: Cut every source sentence of every split to its first this many tokens (what the model reads).
    truncate_source: int | None = Field(None, ge=1)
    #: Vocabulary entries at most, specials included (released: 50,000), built from the training data.
    vocabulary_size: int = Field(50_000, ge=5)
    #: One vocabulary for source and target (the release's LCSTS setting).
    shared_vocabulary: bool = False
    #: One-token-per-line vocabulary files instead (the Stanford IWSLT'15 vocab.en / vocab.vi).
    source_vocabulary: str | None = None
    target_vocabulary: str | None = None
    #: words, whitespace or characters; None: the corpus's own (see labelemb.data.text.corpus.LAYOUTS).
    tokenizer: Literal["words", "whitespace", "characters"] | None = None
    #: Text classification: each text is cut to its first this many tokens (null: no cut).
    max_text_tokens: int | None = Field(512, ge=1)


def corpus_arguments(request: DataRequest) -> dict[str, Any]:
    """The keyword arguments of :func:`~labelemb.data.text.sequences.load_text_dataset` a request gives."""
    text = request.options(TextOptions)
    return {
        "max_source_tokens": text.max_source_tokens,
        "max_target_tokens": text.max_target_tokens,
        "truncate_source": text.truncate_source,
        "vocabulary_size": text.vocabulary_size,
        "shared_vocabulary": text.shared_vocabulary,
        "source_vocabulary_file": text.source_vocabulary,
        "target_vocabulary_file": text.target_vocabulary,
        "tokenizer": text.tokenizer,
        "max_eval_source_tokens": request.eval_source_limit,
    }
