"""Any labelemb method in a Hugging Face ``Trainer``: ``compute_loss_func=LabelembLoss(model.head)``.

A tiny ``PreTrainedModel`` (an MLP backbone and a labelemb method as its head, built from its own
config: nothing is downloaded) reads scikit-learn's bundled 8x8 digits. Its ``forward`` returns
the backbone's features and the head's logits (``LabelembOutput``); the Trainer's loss,
``LabelembLoss(model.head)``, applies the method to the features and the labels and divides by
the Trainer's ``num_items_in_batch``, so that gradient accumulation (``--accumulate``) gives the
gradients of the whole batch. ``EpochEndCallback(model.head)`` runs the method's epoch-end update
(``ols``, ``lwr``). The head is a submodule of the model, so the Trainer's optimiser
trains its parameters too: for label_embedding, the label embedding ``E`` (identity at the
start). Checkpoints are off and the Trainer's output folder is a temporary one.

Needs the examples extra (``pip install -e ".[examples]"``). Run it (seconds on a CPU)::

    python examples/hf_trainer.py --steps 300
    python examples/hf_trainer.py --steps 300 --method ols --accumulate 4
"""

from __future__ import annotations

import argparse
import inspect
import math
import tempfile

import torch
from sklearn.datasets import load_digits
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback

import labelemb
from labelemb.integrations.huggingface import EpochEndCallback, LabelembLoss, LabelembOutput

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


class DigitsConfig(PretrainedConfig):
    model_type = "labelemb-digits-mlp"
    keys_to_ignore_at_inference = ["features", "index"]  # predictions are the logits alone

    def __init__(
        self,
        in_features: int = 64,
        hidden: int = 64,
        num_classes: int = 10,
        method: str = "label_embedding",
        method_options: dict | None = None,
        **kwargs,
    ) -> None:
        self.in_features, self.hidden, self.num_classes = in_features, hidden, num_classes
        self.method, self.method_options = method, method_options or {}
        super().__init__(**kwargs)


class DigitsModel(PreTrainedModel):
    config_class = DigitsConfig

    def __init__(self, config: DigitsConfig) -> None:
        super().__init__(config)
        self.backbone = nn.Sequential(nn.Linear(config.in_features, config.hidden), nn.ReLU())
        # Replaces the classifier; a submodule, so the Trainer's optimiser and checkpoints hold it.
        self.head = labelemb.methods.build(
            config.method, in_features=config.hidden, num_classes=config.num_classes, **config.method_options
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # post_init() would re-draw every nn.Linear with std 0.02, the head's layers included;
        # keep PyTorch's and labelemb's own initialisation instead.
        pass

    def forward(self, pixel_values: torch.Tensor, index: torch.Tensor | None = None) -> LabelembOutput:
        features = self.backbone(pixel_values)
        # The Trainer gives the labels to the loss, not to the model: the loss applies the head.
        return LabelembOutput(logits=self.head.logits(features), features=features, index=index)


class DigitsDataset(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        # index: the example's position, for a method that keeps per-example state (lwr)
        return {"pixel_values": self.x[i], "labels": self.y[i], "index": torch.tensor(i)}


def main(
    steps: int = 300,
    seed: int = 0,
    batch_size: int = 64,
    accumulate: int = 1,
    method: str = "label_embedding",
    verbose: bool = True,
) -> dict[str, float]:
    """Train for ``steps`` optimiser steps of ``batch_size`` examples (in ``accumulate`` micro-batches);
    returns first/last loss, how far the label representation moved and test accuracy."""
    set_seed(seed)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0  # (1797, 64), pixels in [0, 1]
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y))
    train, test = order[:1400], order[1400:]

    # lwr keeps a soft label per training example, updated every few epochs
    run = {"num_examples": len(train), "epochs": math.ceil(steps * batch_size / len(train))}
    options = {option: value for option, value in run.items() if option in labelemb.methods.options(method)}
    model = DigitsModel(DigitsConfig(method=method, method_options=options))
    initial = model.head.label_representation()
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            max_steps=steps,
            per_device_train_batch_size=batch_size // accumulate,
            gradient_accumulation_steps=accumulate,
            learning_rate=1e-2,
            lr_scheduler_type="constant",
            seed=seed,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=1,  # each step's loss lands in trainer.state.log_history
            label_names=["labels"],  # forward takes no labels: name the column for the Trainer
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=DigitsDataset(x[train], y[train]),
            compute_loss_func=LabelembLoss(model.head),
            callbacks=[EpochEndCallback(model.head)],
        )
        trainer.remove_callback(PrinterCallback)  # it would print every step's log
        trainer.train()

    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).logits.argmax(-1) == y[test]).float().mean().item()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    k = max(1, min(20, len(losses) // 4))  # average a few steps: one batch's loss is noisy
    final = model.head.label_representation()
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
        if (
            final is not None and final.shape[-1] <= 10
        ):  # label_embedding: softmax(E), row y is y's soft label
            print("digit 3's label representation:", " ".join(f"{v:.2f}" for v in final[3].tolist()))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accumulate", type=int, default=1, help="micro-batches per step of 64 examples")
    parser.add_argument("--method", default="label_embedding", choices=METHODS)
    args = parser.parse_args()
    main(args.steps, args.seed, accumulate=args.accumulate, method=args.method)
