"""labelemb.LabelEmbedding as the last layer of a model trained in a plain PyTorch loop.

A small MLP backbone reads scikit-learn's bundled 8x8 digits (no download); the head replaces
its final ``nn.Linear``. Each step calls ``out = head(features, target)`` and
``out.loss.backward()``; the optimiser holds the backbone's and the head's parameters, so the
label embedding ``E`` (``head.embedding``, identity at the start) learns as the model trains.
After every epoch the loop calls ``head.on_epoch_end()``: online label smoothing (``--method
ols``) and LWR (``lwr``) make their soft labels there; for label_embedding and the others the
call does nothing, so the loop is the same for every method.

Run it (a few seconds on a CPU)::

    python examples/plain_pytorch.py --steps 300
    python examples/plain_pytorch.py --steps 300 --method ols
"""

from __future__ import annotations

import argparse
import inspect
import math

import torch
from sklearn.datasets import load_digits
from torch import nn

import labelemb

#: lwr's required options come from the run (below); a method that needs other options is left out.
RUN_OPTIONS = {"num_examples", "epochs"}
METHODS = [
    name
    for name in labelemb.methods.serving("class")
    if all(
        default is not inspect.Parameter.empty or option in RUN_OPTIONS
        for option, default in labelemb.methods.options(name).items()
    )
]


def main(
    steps: int = 300,
    seed: int = 0,
    batch_size: int = 64,
    method: str = "label_embedding",
    verbose: bool = True,
) -> dict[str, float]:
    """Train for ``steps`` steps; returns first/last loss, how far the label representation
    (label_embedding's ``softmax(E)``, ols's soft labels) moved and test accuracy."""
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (1797, 64), pixels in [0, 1]
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y))
    train, test = order[:1400], order[1400:]
    steps_per_epoch = math.ceil(len(train) / batch_size)
    epochs = math.ceil(steps / steps_per_epoch)

    backbone = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
    # lwr keeps a soft label per training example, recorded every few epochs
    run = {"num_examples": len(train), "epochs": epochs}
    options = {option: value for option, value in run.items() if option in labelemb.methods.options(method)}
    # label_embedding is labelemb.LabelEmbedding(in_features=64, num_classes=10): replaces nn.Linear(64, 10)
    head = labelemb.methods.build(method, in_features=64, num_classes=10, **options)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-2)
    initial = head.label_representation()

    losses: list[float] = []
    for _ in range(epochs):
        for index in torch.randperm(len(train)).split(batch_size):
            if len(losses) == steps:
                break
            batch = train[index]
            # index: each example's position in the training set, for a method that keeps
            # per-example state (lwr); the others ignore it
            out = head(backbone(x[batch]), y[batch], index=index)  # out.loss, out.logits, out.terms
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            losses.append(out.loss.item())
        head.on_epoch_end()  # ols and lwr swap in the epoch's soft labels; a no-op for the others

    with torch.no_grad():
        predictions = head.logits(backbone(x[test])).argmax(-1)  # label_embedding: o1 predicts
    accuracy = (predictions == y[test]).float().mean().item()
    k = max(1, min(20, len(losses) // 4))  # average a few steps: one batch's loss is noisy
    final = head.label_representation()
    result = {
        "first_loss": sum(losses[:k]) / k,
        "last_loss": sum(losses[-k:]) / k,
        "embedding_change": 0.0 if initial is None else (final - initial).abs().max().item(),
        "accuracy": accuracy,
    }
    if verbose:
        print(f"loss {result['first_loss']:.3f} (first {k} steps) -> {result['last_loss']:.3f} (last {k})")
        print(f"label representation moved by up to {result['embedding_change']:.3f} per entry")
        print(f"test accuracy {accuracy:.3f}")
        if final is not None and final.shape[-1] <= 10:  # softmax(E): row y is y's soft label
            print("digit 3's label representation:", " ".join(f"{v:.2f}" for v in final[3].tolist()))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="label_embedding", choices=METHODS)
    args = parser.parse_args()
    main(args.steps, args.seed, method=args.method)
