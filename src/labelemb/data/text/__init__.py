"""Text: parallel corpora for sequence-to-sequence and texts with classes, as token ids.

:mod:`~labelemb.data.text.corpus` reads and tokenises text and holds vocabularies and batching;
:mod:`~labelemb.data.text.sequences` encodes a parallel corpus (:func:`load_text_dataset`),
:mod:`~labelemb.data.text.corpora` registers the named corpora (DDTP, IWSLT'15, LCSTS) with the
``data.text`` options of :mod:`~labelemb.data.text.options`; :mod:`~labelemb.data.text.classes`
holds texts with classes.
"""

from __future__ import annotations

# An exported bundle names its tokeniser ``labelemb.data.text.<name>`` (predict/export.py).
from .corpus import TOKENIZERS as TOKENIZERS
from .corpus import characters as characters
from .corpus import whitespace as whitespace
from .corpus import words as words
