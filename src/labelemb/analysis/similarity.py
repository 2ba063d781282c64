"""Which labels a learned representation treats as alike (Sun et al. 2017, Table 5)."""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import Tensor

from ..data.text.corpus import SPECIALS
from .representation import LabelRepresentation, run_representation, soft_label_rows


def load_run_representation(run_dir: str | Path) -> tuple[Tensor, list[str]]:
    """The label representation and class names of a finished run (see :func:`run_representation`)."""
    representation = run_representation(run_dir)
    return representation.matrix, representation.class_names


def label_similarity(representation: Tensor) -> Tensor:
    """An m x m similarity between labels.

    A square, non-negative representation whose rows sum to 1 is a table of soft labels: entry
    (i, j) is how much of label i's target mass goes to j, exactly what the paper's heatmaps
    and Table 5 read. Any other representation (m x d label vectors) is compared by cosine.
    """
    return label_similarity_rows(representation)


def label_similarity_rows(representation: Tensor, labels: list[int] | None = None) -> Tensor:
    """Rows ``labels`` (None: all) of :func:`label_similarity`: (len(labels), m), no m x m for a few."""
    rep = representation.float()
    m = rep.shape[0]
    is_distribution = (
        rep.shape == (m, m)
        and bool((rep >= 0).all())
        and torch.allclose(rep.sum(1), torch.ones(m), atol=1e-3)
    )
    if is_distribution:
        return rep if labels is None else rep[labels]
    unit = torch.nn.functional.normalize(rep, dim=1)
    return (unit if labels is None else unit[labels]) @ unit.T


def most_similar(
    similarity: Tensor, class_names: list[str], top: int = 5
) -> dict[str, list[tuple[str, float]]]:
    """For each class, its ``top`` most similar other classes with their similarity."""
    m = similarity.shape[0]
    if len(class_names) != m:
        raise ValueError(f"{len(class_names)} class names for a {m}-label representation")
    return most_similar_to(similarity, list(range(m)), class_names, top)


def most_similar_to(
    similarity_rows: Tensor, labels: list[int], class_names: list[str], top: int = 5
) -> dict[str, list[tuple[str, float]]]:
    """Like :func:`most_similar`, for the ``labels`` only: ``similarity_rows`` holds their rows."""
    rows = similarity_rows.float().clone()
    rows[torch.arange(len(labels)), torch.tensor(labels)] = float("-inf")  # a label is not its own neighbour
    values, indices = rows.topk(min(top, rows.shape[1] - 1), dim=1)
    return {
        class_names[label]: [
            (class_names[j], float(v)) for v, j in zip(values[i].tolist(), indices[i].tolist())
        ]
        for i, label in enumerate(labels)
    }


def nearest_labels(
    run_dir: str | Path, rep: LabelRepresentation, labels: list[int], top: int = 5
) -> dict[str, list[tuple[str, float]]]:
    """The ``top`` nearest labels of ``labels`` in a run, from their rows only (``similar --labels``).

    With a compressed embedding the rows are ``softmax(e)`` of these labels (never the m x m table);
    otherwise they are the rows of :func:`label_similarity` of the saved representation.
    """
    rows = soft_label_rows(run_dir, labels)
    if rows is None:
        rows = label_similarity_rows(rep.matrix, labels)
    return most_similar_to(rows, labels, rep.class_names, top=top)


def frequent_words(class_names: list[str], count: int = 10) -> list[str]:
    """The ``count`` most frequent real words of a text run's target vocabulary.

    ``class_names`` is the vocabulary, most frequent first after the specials (<pad> <unk> <s>
    </s>); the specials, tokens without a letter or digit (punctuation) and any with a comma (which
    ``similar --labels`` could not name) are left out.
    """

    real = [w for w in class_names if w not in SPECIALS and any(c.isalnum() for c in w) and "," not in w]
    return real[:count]


def label_indices(names: list[str], class_names: list[str]) -> list[int]:
    """The positions of ``names`` among the run's labels, with a did-you-mean for a name it lacks."""
    position = {name: i for i, name in enumerate(class_names)}
    indices = []
    for name in names:
        if name not in position:
            close = difflib.get_close_matches(name, class_names, n=3)
            hint = (
                f"; did you mean {', '.join(close)}?" if close else f" (its labels: {_sample(class_names)})"
            )
            raise ValueError(f"the run has no label {name!r}{hint}")
        indices.append(position[name])
    return indices


def _sample(class_names: list[str]) -> str:
    shown = ", ".join(class_names[:8])
    return shown if len(class_names) <= 8 else f"{shown}, ... {len(class_names)} in all"


def similar_table(neighbours: dict[str, list[tuple[str, float]]], first: str = "label") -> str:
    """The top-k neighbours as a Markdown table, one row per class; ``first`` heads the first column."""
    top = max((len(v) for v in neighbours.values()), default=0)
    header = f"| {first} | " + " | ".join(f"#{k + 1}" for k in range(top)) + " |"
    rule = "| --- " * (top + 1) + "|"
    rows = [
        f"| {name} | " + " | ".join(f"{other} ({value:.3f})" for other, value in row) + " |"
        for name, row in neighbours.items()
    ]
    return "\n".join([header, rule, *rows])


def write_nearest(similarity: Tensor, names: list[str], top: int, path: Path) -> dict[str, list[list]]:
    """Each label's ``top`` nearest labels written to ``path`` (:func:`similar_table`), returned as
    an analysis records them: ``{label: [[other, similarity], ...]}``."""
    neighbours = most_similar(similarity, names, top=top)
    path.write_text(similar_table(neighbours) + "\n")
    return {name: [[other, value] for other, value in row] for name, row in neighbours.items()}
