"""Text perturbations: character noise and word dropout at a rate, each example with its own generator.

Both are functions of one text, a rate and a :class:`numpy.random.Generator` (the contract of
:mod:`.base`); :func:`~.base.perturb_texts` applies them to a list. At rate 0 a text comes back
unchanged, and a text without letters, digits or words (the empty string included) too.
"""

from __future__ import annotations

import re
import string

import numpy as np

from .base import Corruption, register

_LOWERCASE = string.ascii_lowercase
_SWAP, _DROP, _INSERT = 0, 1, 2
_WORDS = re.compile(r"\S+")


def _noisable(character: str) -> bool:
    """A letter or a digit (any script): the characters character noise may change."""
    return character.isalnum()


def char_noise(text: str, rate: float, rng: np.random.Generator) -> str:
    """``text`` with character-level noise at ``rate``, in the manner of Belinkov & Bisk (2018),
    "Synthetic and Natural Noise Both Break Neural Machine Translation" (swaps, drops, insertions).

    One pass left to right over the characters. Each letter or digit (``str.isalnum``; whitespace,
    punctuation and symbols are never changed) is, with probability ``rate`` and independently
    of the others, hit by one of three edits chosen uniformly:

    - swap: it trades places with its right neighbour when that neighbour is a letter or digit too
      (so within a word); the neighbour, now placed, is not itself considered again. With no such
      neighbour (the end of a word or of the text) the character stays as it is;
    - drop: it is removed;
    - insert: it is kept and followed by a random lowercase ASCII letter (a to z).

    The draws are made for every position up front (a uniform number, an edit and a letter each),
    so the result depends on the text, the rate and the generator only.
    """
    characters = list(text)
    count = len(characters)
    hits = rng.random(count) < rate
    edits = rng.integers(3, size=count)
    letters = rng.integers(len(_LOWERCASE), size=count)
    out: list[str] = []
    index = 0
    while index < count:
        character = characters[index]
        if not (hits[index] and _noisable(character)):
            out.append(character)
        elif edits[index] == _SWAP:
            if index + 1 < count and _noisable(characters[index + 1]):
                out += [characters[index + 1], character]
                index += 1  # the neighbour was placed by the swap
            else:
                out.append(character)
        elif edits[index] == _INSERT:
            out += [character, _LOWERCASE[letters[index]]]
        # a drop appends nothing
        index += 1
    return "".join(out)


def word_dropout(text: str, rate: float, rng: np.random.Generator) -> str:
    """``text`` with each whitespace-separated word dropped, independently, with probability
    ``rate``: word dropout as in Iyyer et al. (2015), "Deep Unordered Composition Rivals Syntactic
    Methods for Text Classification", used as a perturbation in the robustness literature.

    A text never loses all its words: when every word would be dropped, one word chosen uniformly
    by ``rng`` is kept. The whitespace of the text is kept as it was: the leading and trailing
    whitespace stays, and each kept word but the last is followed by the whitespace that followed
    it in the text (so a dropped word takes the whitespace after it along). A text with no words
    (empty or whitespace only) is returned unchanged.
    """
    words = list(_WORDS.finditer(text))
    if not words:
        return text
    keep = rng.random(len(words)) >= rate
    if not keep.any():
        keep[rng.integers(len(words))] = True
    kept = np.flatnonzero(keep)
    # each kept word but the last carries the whitespace that followed it (never the last word's)
    body = "".join(words[i].group() + text[words[i].end() : words[i + 1].start()] for i in kept[:-1])
    return text[: words[0].start()] + body + words[kept[-1]].group() + text[words[-1].end() :]


register(
    Corruption(
        name="char_noise",
        transform=char_noise,
        levels=(0.02, 0.05, 0.1, 0.15, 0.2),
        source="Belinkov & Bisk 2018, Synthetic and Natural Noise Both Break Neural Machine Translation "
        "(character swaps, drops, insertions)",
        reads="texts",
        scaled=True,
    )
)

register(
    Corruption(
        name="word_dropout",
        transform=word_dropout,
        levels=(0.1, 0.2, 0.3, 0.4, 0.5),
        source="Iyyer et al. 2015, Deep Unordered Composition Rivals Syntactic Methods for Text "
        "Classification (word dropout)",
        reads="texts",
        scaled=True,
    )
)
