"""TF-IDF as a text representation: ``model.name: tfidf`` (always with ``model.freeze: true``).

A text becomes scikit-learn's TF-IDF of its words and word pairs (``TfidfVectorizer``, fitted on
the training texts alone; its options are ``model.vectorizer``, checked against
:class:`~labelemb.data.text.options.TfidfOptions`), projected onto the ``components`` leading
directions of a truncated SVD of the training matrix (scikit-learn's ``TruncatedSVD``, seeded):
dense float32 features ``(N, components)``. They are computed once per data set and kept in the
feature cache, so every method and seed trains only the head on them (``model.dense`` adds a
hidden layer), seeds side by side as on any frozen backbone.

This class is the representation's name, options and traits; the fitting, the cache and the
module that turns new texts into features are :mod:`labelemb.assembly.tfidf`'s (they read the
data set's texts, which a model never imports).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from .registry import register


@register("tfidf", inputs="texts")
class Tfidf(nn.Module):
    """TF-IDF features of raw texts through a truncated SVD (see the module's docstring).

    ``vectorizer``: ``TfidfVectorizer`` options (words and word pairs, sublinear tf, ``min_df``
    2 unless set). ``components``: the SVD's width, the features' (at most the number of terms).
    ``svd_iterations``: the randomised SVD's power iterations (scikit-learn's ``n_iter``; 2, not
    scikit-learn's 5: from 3 on each is normalised by an LU step over a terms x components matrix,
    which costs minutes on a large vocabulary).
    """

    output_init_std = None
    #: Its features are fitted to the training texts and computed once: it needs ``model.freeze``.
    fitted_on_texts: ClassVar[bool] = True
    #: Options that are a section of options of their own, checked against that schema by name.
    option_sections: ClassVar[dict[str, str]] = {"vectorizer": "vectorizer"}

    def __init__(
        self,
        input_shape: tuple[int, ...],
        vectorizer: dict[str, Any] | None = None,
        components: int = 512,
        svd_iterations: int = 2,
    ) -> None:
        super().__init__()
        if components < 1 or svd_iterations < 0:
            raise ValueError(
                "model tfidf: components must be >= 1 and svd_iterations >= 0, "
                f"got {components}, {svd_iterations}"
            )
        self.vectorizer = dict(vectorizer or {})
        self.components = int(components)
        self.svd_iterations = int(svd_iterations)
        self.out_features = self.components

    def forward(self, *inputs: Tensor) -> Tensor:
        raise TypeError(
            "model tfidf computes its features once per data set from the raw texts; set model.freeze: true"
        )
