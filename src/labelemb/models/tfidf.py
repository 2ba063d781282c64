"""TF-IDF as a text representation: ``model.name: tfidf`` (always with ``model.freeze: true``).

A text becomes scikit-learn's TF-IDF of its words and word pairs (``TfidfVectorizer``, fitted on
the training texts alone; its options are ``model.vectorizer``, checked against
:class:`~labelemb.data.text.options.TfidfOptions`), computed once per data set and cached. Then,
by ``projection``:

- ``learned`` (the default): a learned projection of each text's TF-IDF entries (its
  ``max_terms`` heaviest terms), ``ReLU(sum_j x_j E[j] + b)`` of ``width`` units
  (:class:`~labelemb.models.term_bag.TermBag`), trained with the method's head; its table's
  gradient is sparse, so a step costs in proportion to the batch's terms;
- ``svd``: the ``components`` leading directions of a truncated SVD of the training matrix
  (scikit-learn's ``TruncatedSVD``, seeded), dense float32 features kept in the feature cache,
  on which only the head trains (``model.dense`` adds a hidden layer).

Either way every method and seed trains on the same cached TF-IDF, seeds side by side.

This class is the representation's name, options and traits; the fitting, the cache and the
module that turns new texts into features are :mod:`labelemb.assembly.tfidf`'s (they read the
data set's texts, which a model never imports).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from .features import FeatureHead
from .registry import register
from .term_bag import TermBag

#: How a text's TF-IDF reaches the head: ``learned`` (a trained projection) or ``svd`` (fixed).
PROJECTIONS = ("learned", "svd")


@register("tfidf", inputs="texts")
class Tfidf(nn.Module):
    """TF-IDF of raw texts, then a learned projection or a truncated SVD (see the module's docstring).

    ``vectorizer``: ``TfidfVectorizer`` options (words and word pairs, sublinear tf, ``min_df``
    2 unless set). ``projection``: ``learned`` or ``svd``. ``width``, ``dropout``: the learned
    projection's units and the dropout after it. ``max_terms``: the entries a text keeps for it,
    its heaviest (256 covers every term of 99 % of debian-sections' texts). ``components``: the
    SVD's width, the features' (at most the number of terms).
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
        projection: Literal["learned", "svd"] = "learned",
        width: int = 256,
        dropout: float = 0.5,
        max_terms: int = 256,
        components: int = 512,
        svd_iterations: int = 2,
    ) -> None:
        super().__init__()
        if projection not in PROJECTIONS:
            raise ValueError(
                f"model tfidf: projection must be one of {', '.join(PROJECTIONS)}, got {projection!r}"
            )
        if components < 1 or svd_iterations < 0 or max_terms < 1:
            raise ValueError(
                "model tfidf: components and max_terms must be >= 1 and svd_iterations >= 0, "
                f"got {components}, {max_terms}, {svd_iterations}"
            )
        self.projection = projection
        self.width = int(width)
        self.dropout = float(dropout)
        self.max_terms = int(max_terms)
        self.vectorizer = dict(vectorizer or {})
        self.components = int(components)
        self.svd_iterations = int(svd_iterations)
        self.out_features = self.components

    @staticmethod
    def sparse_gradients(options: dict[str, Any]) -> bool:
        """Whether a run with these options trains a table with sparse gradients (learned)."""
        return options.get("projection", "learned") == "learned"

    @staticmethod
    def feature_head(input_shape: tuple[int, ...], dense: int | None = None, **options: Any) -> nn.Module:
        """What trains on this representation's cached features: the learned projection of TF-IDF
        entries (``input_shape`` ``(terms, max_terms, 2)``), or the frozen-feature head on the SVD's
        features ``(components,)``."""
        if options["projection"] != "learned":
            return FeatureHead(input_shape, dense=dense)
        if len(input_shape) != 3 or input_shape[2] != 2:
            raise ValueError(
                f"model tfidf (learned) reads TF-IDF entries (terms, L, 2), got {tuple(input_shape)}"
            )
        if dense is not None:
            raise ValueError(
                "model tfidf (learned): its projection is the hidden layer; set model.width, not model.dense"
            )
        return TermBag(int(input_shape[0]), int(options["width"]), float(options["dropout"]))

    def forward(self, *inputs: Tensor) -> Tensor:
        raise TypeError(
            "model tfidf computes its features once per data set from the raw texts; set model.freeze: true"
        )
