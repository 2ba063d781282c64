"""labelemb.LabelEmbedding in a Hugging Face ``Trainer``: ``compute_loss`` returns ``out.loss``.

A tiny ``PreTrainedModel`` (an MLP backbone and the head, built from its own config: nothing is
downloaded) reads scikit-learn's bundled 8x8 digits. Its ``forward`` returns the head's output
when given labels; a ``Trainer`` subclass returns ``out.loss`` from ``compute_loss``. The
Trainer's optimiser covers every parameter of the model, so the label embedding ``E``
(``model.head.embedding``, identity at the start) learns too. Checkpoints are off and the
Trainer's output folder is a temporary one.

Needs the examples extra (``pip install -e ".[examples]"``). Run it (seconds on a CPU)::

    python examples/hf_trainer.py --steps 300
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from sklearn.datasets import load_digits
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainingArguments, set_seed

import labelemb


class DigitsConfig(PretrainedConfig):
    model_type = "labelemb-digits-mlp"

    def __init__(self, in_features: int = 64, hidden: int = 64, num_classes: int = 10, **kwargs) -> None:
        self.in_features, self.hidden, self.num_classes = in_features, hidden, num_classes
        super().__init__(**kwargs)


class DigitsModel(PreTrainedModel):
    config_class = DigitsConfig

    def __init__(self, config: DigitsConfig) -> None:
        super().__init__(config)
        self.backbone = nn.Sequential(nn.Linear(config.in_features, config.hidden), nn.ReLU())
        self.head = labelemb.LabelEmbedding(config.hidden, config.num_classes)  # replaces the classifier
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # post_init() would re-draw every nn.Linear with std 0.02, the head's o1 and o2 included;
        # keep PyTorch's and labelemb's own initialisation instead.
        pass

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None):
        features = self.backbone(pixel_values)
        if labels is None:
            return self.head.logits(features)  # o1's scores; argmax is the class
        return self.head(features, labels)  # out.loss, out.logits, out.terms


class LabelEmbeddingTrainer(Trainer):
    """Returns the head's loss (and records it, for the summary at the end)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.losses: list[float] = []

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        out = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"])
        if model.training:
            self.losses.append(out.loss.item())
        return (out.loss, out) if return_outputs else out.loss


class DigitsDataset(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def main(steps: int = 300, seed: int = 0, batch_size: int = 64, verbose: bool = True) -> dict[str, float]:
    """Train for ``steps`` steps; returns first/last loss, how far E moved and test accuracy."""
    set_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (1797, 64), pixels in [0, 1]
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y))
    train, test = order[:1400], order[1400:]

    model = DigitsModel(DigitsConfig())
    initial_embedding = model.head.embedding.detach().clone()
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            max_steps=steps,
            per_device_train_batch_size=batch_size,
            learning_rate=1e-2,
            lr_scheduler_type="constant",
            seed=seed,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = LabelEmbeddingTrainer(
            model=model, args=args, train_dataset=DigitsDataset(x[train], y[train])
        )
        trainer.train()

    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(-1) == y[test]).float().mean().item()
    losses = trainer.losses
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
    main(args.steps, args.seed)
