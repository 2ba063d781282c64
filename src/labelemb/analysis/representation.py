"""The label representation of any run, so that every method can be compared on one footing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..rundir import RunDir


@dataclass
class LabelRepresentation:
    """An (m x d) matrix with one row per label, the run's class names and where it came from."""

    matrix: Tensor
    class_names: list[str]
    method: str
    source: str  # "learned" (the method's own) or "mean softmax on <split>"
    dataset: str
    seed: int


@torch.inference_mode()
def mean_softmax_representation(run_dir: Path, data_dir: str | None = None) -> tuple[Tensor, str]:
    """Per-class mean of the saved model's softmax output on the dev split (test if none).

    This gives methods that learn no label representation (onehot, the smoothing methods) a
    matrix comparable to the soft-label tables of label_embedding and OLS: row c is what the
    trained network predicts, on average, for examples of class c.
    """
    from ..data import load_dataset
    from ..train import RunConfig, build_network

    folder = RunDir(run_dir)
    config = RunConfig.model_validate(folder.read_config())
    data_dir = data_dir or config.data.dir
    dataset = load_dataset(config.data.name, data_dir=data_dir, download=config.data.download)
    model, method = build_network(config, dataset)
    network = torch.nn.ModuleDict({"model": model, "method": method})
    network.load_state_dict(folder.read_weights())
    network.eval()
    split, split_name = (dataset.dev, "dev") if dataset.dev is not None else (dataset.test, "test")
    sums = torch.zeros(dataset.num_classes, dataset.num_classes)
    counts = torch.zeros(dataset.num_classes)
    for start in range(0, len(split), 1000):
        probs = torch.softmax(method.logits(model(split.images[start : start + 1000])), dim=-1)
        labels = split.labels[start : start + 1000]
        sums.index_add_(0, labels, probs)
        counts.index_add_(0, labels, torch.ones_like(labels, dtype=counts.dtype))
    return sums / counts.clamp(min=1)[:, None], f"mean softmax on {split_name}"


def run_representation(run_dir: str | Path, data_dir: str | None = None) -> LabelRepresentation:
    """The run's learned representation, or the mean softmax of its model for methods without one."""
    run_dir = Path(run_dir)
    folder = RunDir(run_dir)
    summary = folder.read_summary()
    tensors = folder.read_tensors()
    if "representation" in tensors:
        matrix, source = tensors["representation"], "learned"
    else:
        matrix, source = mean_softmax_representation(run_dir, data_dir)
    return LabelRepresentation(
        matrix=matrix.float(),
        class_names=list(summary["class_names"]),
        method=summary["method"],
        source=source,
        dataset=summary.get("dataset", ""),
        seed=summary.get("seed", 0),
    )
