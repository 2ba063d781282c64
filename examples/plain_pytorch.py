"""labelemb.LabelEmbedding as the last layer of a model trained in a plain PyTorch loop.

A small MLP backbone reads scikit-learn's bundled 8x8 digits (no download); the head replaces
its final ``nn.Linear``. Each step calls ``out = head(features, target)`` and
``out.loss.backward()``; the optimiser holds the backbone's and the head's parameters, so the
label embedding ``E`` (``head.embedding``, identity at the start) learns as the model trains.

Run it (a few seconds on a CPU)::

    python examples/plain_pytorch.py --steps 300
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import labelemb


def main(steps: int = 300, seed: int = 0, batch_size: int = 64, verbose: bool = True) -> dict[str, float]:
    """Train for ``steps`` steps; returns first/last loss, how far E moved and test accuracy."""
    torch.manual_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (1797, 64), pixels in [0, 1]
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y))
    train, test = order[:1400], order[1400:]

    backbone = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
    head = labelemb.LabelEmbedding(in_features=64, num_classes=10)  # replaces nn.Linear(64, 10)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=1e-2)
    initial_embedding = head.embedding.detach().clone()

    losses = []
    for _ in range(steps):
        batch = train[torch.randint(len(train), (batch_size,))]
        out = head(backbone(x[batch]), y[batch])  # out.loss, out.logits, out.terms
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())

    with torch.no_grad():
        predictions = head.logits(backbone(x[test])).argmax(-1)  # o1 predicts
    accuracy = (predictions == y[test]).float().mean().item()
    k = max(1, min(20, len(losses) // 4))  # average a few steps: one batch's loss is noisy
    result = {
        "first_loss": sum(losses[:k]) / k,
        "last_loss": sum(losses[-k:]) / k,
        "embedding_change": (head.embedding.detach() - initial_embedding).abs().max().item(),
        "accuracy": accuracy,
    }
    if verbose:
        print(f"loss {result['first_loss']:.3f} (first {k} steps) -> {result['last_loss']:.3f} (last {k})")
        print(f"E moved by up to {result['embedding_change']:.3f} per entry; test accuracy {accuracy:.3f}")
        soft = head.label_representation()[3]  # softmax(E): row y is class y's soft label
        print("soft label of digit 3:", " ".join(f"{p:.2f}" for p in soft.tolist()))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.steps, args.seed)
