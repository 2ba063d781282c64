"""The Label Embedding Network (Sun et al. 2017): soft labels learned during training.

- :mod:`~labelemb.methods.label_embedding.loss`: the loss as the paper's Eq. 6-14 read, and the
  normalisation of its terms that every path below shares;
- :mod:`~labelemb.methods.label_embedding.method`: the method, :class:`LabelEmbedding`;
- :mod:`~labelemb.methods.label_embedding.fast`: one model's step with closed-form gradients;
- :mod:`~labelemb.methods.label_embedding.chunked`: the same, chunk by chunk of rows, for vocabularies;
- :mod:`~labelemb.methods.label_embedding.heads`: the layer holding o1 and o2;
- :mod:`~labelemb.methods.label_embedding.fixed`: a pre-trained embedding, frozen (Appendix C).
"""

from __future__ import annotations

from .fixed import LabelEmbeddingFixed, load_embedding
from .loss import TERMS, label_embedding_loss
from .method import LabelEmbedding

__all__ = ["TERMS", "LabelEmbedding", "LabelEmbeddingFixed", "label_embedding_loss", "load_embedding"]
