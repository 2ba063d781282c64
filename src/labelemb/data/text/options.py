"""The options of a text data set (``data.text``): how a corpus or a table of texts becomes tokens."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from ...options import Options, OptionsError
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


class TfidfOptions(Options):
    """scikit-learn's ``TfidfVectorizer`` options a config may set (``model.vectorizer`` of the
    ``tfidf`` model), each with scikit-learn's meaning. The defaults differ from scikit-learn's in
    three places, the strong text baseline's settings: word pairs as well as words
    (``ngram_range [1, 2]``), ``sublinear_tf`` (1 + log tf) and ``min_df 2`` (a term in one training
    text only is left out). Options that take code (a preprocessor, a tokenizer, an analyzer
    function) are not offered: a config is data."""

    section: ClassVar[str] = "vectorizer"

    lowercase: bool = True
    strip_accents: Literal["ascii", "unicode"] | None = None
    analyzer: Literal["word", "char", "char_wb"] = "word"
    #: The words of a text (analyzer word): scikit-learn's pattern, words of two or more characters.
    token_pattern: str = r"(?u)\b\w\w+\b"
    ngram_range: tuple[int, int] = (1, 2)
    #: ``english`` (scikit-learn's list) or your own list of words to leave out.
    stop_words: Literal["english"] | list[str] | None = None
    #: A share of the training texts (a float in (0, 1]) or a count of them (a whole number).
    max_df: float | int = 1.0
    min_df: float | int = 2
    max_features: int | None = Field(None, ge=1)
    binary: bool = False
    norm: Literal["l1", "l2"] | None = "l2"
    use_idf: bool = True
    smooth_idf: bool = True
    sublinear_tf: bool = True

    def check(self) -> None:
        low, high = self.ngram_range
        if not 1 <= low <= high:
            raise OptionsError(
                f"config key 'model.vectorizer.ngram_range': {list(self.ngram_range)} is not [low, high] "
                "with 1 <= low <= high; e.g. [1, 2] for words and word pairs"
            )
        for key, value in (("min_df", self.min_df), ("max_df", self.max_df)):
            share = isinstance(value, float)
            if (share and not 0.0 < value <= 1.0) or (not share and value < 1):
                raise OptionsError(
                    f"config key 'model.vectorizer.{key}': {value!r} is neither a share of the training "
                    "texts (a number in (0, 1], e.g. 0.5) nor a count of them (a whole number >= 1)"
                )

    def vectorizer_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``sklearn.feature_extraction.text.TfidfVectorizer`` (float32)."""
        arguments = self.model_dump()
        arguments["ngram_range"] = tuple(arguments["ngram_range"])
        return arguments
