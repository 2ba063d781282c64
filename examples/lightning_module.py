"""labelemb.LabelEmbedding as the head of a Lightning module: ``training_step`` returns ``out.loss``.

A small MLP backbone reads scikit-learn's bundled 8x8 digits (no download). The head is a
submodule, so ``self.parameters()`` in ``configure_optimizers`` includes the label embedding
``E`` (``head.embedding``, identity at the start), and ``lightning.Trainer`` does the rest.
``LabelembCallback`` runs each labelemb head's epoch-end update (``on_epoch_end``) on every rank:
label_embedding has none, but online label smoothing (``labelemb.methods.build("ols", ...)``)
and LWR swap their label state there, and under ``strategy="ddp"`` combine it across ranks; under
``accumulate_grad_batches`` it makes each step's gradients those of one batch of its micro-batches.

Needs the examples extra (``pip install -e ".[examples]"``). Run it (seconds on a CPU)::

    python examples/lightning_module.py --steps 300
"""

from __future__ import annotations

import argparse
import logging
import warnings

import lightning
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import labelemb
from labelemb.integrations.lightning import LabelembCallback


class DigitsClassifier(lightning.LightningModule):
    def __init__(self, lr: float = 1e-2) -> None:
        super().__init__()
        self.lr = lr
        self.backbone = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.head = labelemb.LabelEmbedding(in_features=64, num_classes=10)  # replaces nn.Linear(64, 10)
        self.losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.logits(self.backbone(x))  # o1's scores; argmax is the class

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.head(self.backbone(x), y)  # out.loss, out.logits, out.terms
        self.losses.append(out.loss.item())
        return out.loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)  # backbone and head, E included


def main(steps: int = 300, seed: int = 0, batch_size: int = 64, verbose: bool = True) -> dict[str, float]:
    """Train for ``steps`` steps; returns first/last loss, how far E moved and test accuracy."""
    lightning.seed_everything(seed, verbose=False)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (1797, 64), pixels in [0, 1]
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y))
    train, test = order[:1400], order[1400:]
    loader = DataLoader(TensorDataset(x[train], y[train]), batch_size=batch_size, shuffle=True)

    model = DigitsClassifier()
    initial_embedding = model.head.embedding.detach().clone()
    trainer = lightning.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[LabelembCallback()],  # finds model.head, runs its on_epoch_end after every epoch
    )
    with warnings.catch_warnings():
        # Lightning suggests worker processes for the DataLoader; this one is a tensor in memory.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        # Lightning 2.6 still uses torch.utils._pytree.LeafSpec, which newer torch deprecates.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        trainer.fit(model, loader)

    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(-1) == y[test]).float().mean().item()
    losses = model.losses
    k = max(1, min(20, len(losses) // 4))  # average a few steps: one batch's loss is noisy
    result = {
        "first_loss": sum(losses[:k]) / k,
        "last_loss": sum(losses[-k:]) / k,
        "embedding_change": (model.head.embedding.detach() - initial_embedding).abs().max().item(),
        "accuracy": accuracy,
    }
    if verbose:
        print(f"loss {result['first_loss']:.3f} (first {k} steps) -> {result['last_loss']:.3f} (last {k})")
        print(f"E moved by up to {result['embedding_change']:.3f} per entry; test accuracy {accuracy:.3f}")
        soft = model.head.label_representation()[3]  # softmax(E): row y is class y's soft label
        print("soft label of digit 3:", " ".join(f"{p:.2f}" for p in soft.tolist()))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # Lightning's start-up notes ("GPU available: False, ...") are INFO messages; keep warnings.
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    main(args.steps, args.seed)
