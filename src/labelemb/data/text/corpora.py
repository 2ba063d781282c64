"""The parallel corpora known by name: each is one :class:`~labelemb.data.text.corpus.Layout`, registered.

A corpus registered here loads as a :class:`~labelemb.data.text.sequences.TextDataset` (it yields
``token_pairs``), found in ``data.dir`` or ``$LABELEMB_DATA`` (each itself or its home folder).
"""

from __future__ import annotations

from ..registry import DataRequest, register
from .corpus import Layout
from .options import TextOptions, corpus_arguments
from .sequences import TextDataset, load_text_dataset

_DDTP_SPLITS = {"train": "train", "dev": "valid", "test": "test"}
_DDTP_WHERE = "Debian's package descriptions (DDTP)"


def register_corpus(name: str, layout: Layout) -> Layout:
    """Make corpus ``name`` loadable by name (``data.name``), read as ``layout`` says."""

    @register(name, yields="token_pairs", options=(TextOptions,), layout=layout)
    def load(request: DataRequest) -> TextDataset:
        return load_text_dataset(
            name, request.dir, max_train_pairs=request.max_train_pairs, **corpus_arguments(request)
        )

    return layout


DDTP_SUMMARIZE = register_corpus(
    "ddtp-summarize",
    Layout(
        "summarize", "src.gz", "tgt.gz", _DDTP_SPLITS, "words", "rouge", "debian-ddtp",
        f"{_DDTP_WHERE}, as summarize/{{train,valid,test}}.{{src,tgt}}.gz",
    ),
)  # fmt: skip
DDTP_EN_IT = register_corpus(
    "ddtp-en-it",
    Layout(
        "translate-en-it", "en.gz", "it.gz", _DDTP_SPLITS, "words", "bleu", "debian-ddtp",
        f"{_DDTP_WHERE}, as translate-en-it/{{train,valid,test}}.{{en,it}}.gz",
    ),
)  # fmt: skip
IWSLT15_EN_VI = register_corpus(
    "iwslt15-en-vi",
    Layout(
        ".", "en", "vi", {"train": "train", "dev": "tst2012", "test": "tst2013"}, "whitespace", "bleu",
        "iwslt15-en-vi", "https://nlp.stanford.edu/projects/nmt/ (train.en/.vi, tst2012.*, tst2013.*)",
    ),
)  # fmt: skip
LCSTS = register_corpus(
    "lcsts",
    Layout(
        ".", "src", "tgt", _DDTP_SPLITS, "characters", "rouge", "lcsts",
        "its authors (Hu et al. 2015; it needs an agreement with them), as {train,valid,test}.{src,tgt}",
    ),
)  # fmt: skip
