"""A small backbone under labelemb heads as a LightningModule, its data (five Gaussian clusters),
and a quiet CPU ``lightning.Trainer`` to fit it; for the tests of labelemb.integrations.lightning
and of methods the Trainer refuses.

Needs lightning (the ``examples`` extra); the test files share it (``from lightning_models import
fit``): tests/ is on the path.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import lightning
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from labelemb import methods

FEATURES, CLASSES, EXAMPLES, BATCH = 8, 5, 192, 32
EPOCHS = 2


def dataset() -> TensorDataset:
    """Five Gaussian clusters, near enough to overlap: some examples are misclassified every epoch."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(EXAMPLES) % CLASSES
    centres = torch.randn(CLASSES, FEATURES, generator=generator)
    x = centres[y] + 0.8 * torch.randn(EXAMPLES, FEATURES, generator=generator)
    return TensorDataset(x, y, torch.arange(EXAMPLES))


def dev_split() -> tuple[torch.Tensor, torch.Tensor]:
    """64 examples of the same clusters, drawn apart from the training ones: a dev split."""
    centres = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(0))
    y = torch.arange(64) % CLASSES
    return centres[y] + 0.8 * torch.randn(64, FEATURES, generator=torch.Generator().manual_seed(1)), y


def dev_predictions_of(model: Heads) -> Callable[[methods.Method], tuple[torch.Tensor, torch.Tensor]]:
    """What LabelembCallback's ``dev_predictions`` is for a head that reads them: the head's logits of
    the backbone's features of :func:`dev_split`, and its labels."""
    x, y = dev_split()

    def predict(method: methods.Method) -> tuple[torch.Tensor, torch.Tensor]:
        return method.logits(model.backbone(x.to(model.backbone[0].weight.dtype))), y

    return predict


def loader(batch_size: int, shuffled: bool = False) -> DataLoader:
    """The examples in order, or, ``shuffled``, in the order Lightning's DDP sampler draws them.

    Lightning gives every training DataLoader of a DDP run a ``DistributedSampler(shuffle=True)``
    seeded with ``PL_GLOBAL_SEED``: each epoch one permutation, of which rank r takes the entries
    r, r + 2, ... The same sampler for one process yields that permutation whole, so a one-process
    step of ``2b`` examples is the union of the two ranks' steps of ``b``.
    """
    data = dataset()
    sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=0) if shuffled else None
    return DataLoader(
        data, batch_size=batch_size, sampler=sampler, shuffle=False if sampler is None else None
    )


class Heads(lightning.LightningModule):
    """A small backbone under several labelemb heads, each trained on the same features (losses summed)."""

    def __init__(self, heads: dict[str, dict[str, Any]], seed: int = 0, outside: str | None = None) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # the same weights for a seed, other tests' RNG untouched
            torch.manual_seed(seed)
            self.backbone = nn.Sequential(nn.Linear(FEATURES, 16), nn.Tanh())
            self.heads = nn.ModuleDict(
                {
                    name: methods.build(name, in_features=16, num_classes=CLASSES, **opts)
                    for name, opts in heads.items()
                }
            )
            # A head kept out of the module tree: its state is not in the model's state_dict.
            self.outside = None
            if outside is not None:
                head = methods.build(outside, in_features=16, num_classes=CLASSES)
                object.__setattr__(self, "outside", head)

    def all_heads(self) -> list[methods.Method]:
        return [*self.heads.values(), *([] if self.outside is None else [self.outside])]

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y, index = batch
        h = self.backbone(x)
        return sum(head(h, y, index=index).loss for head in self.all_heads())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Plain SGD: float rounding between one and two processes stays at the rounding level.
        extra = [] if self.outside is None else list(self.outside.parameters())
        return torch.optim.SGD([*self.parameters(), *extra], lr=0.5)

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        x, y, _ = batch
        error = (self.heads["ols"].logits(self.backbone(x)).argmax(-1) != y).float().mean()
        self.log("val_error", error)


def fit(model: Heads, batch_size: int = BATCH, shuffled: bool = False, **options: Any) -> lightning.Trainer:
    """Train ``model`` under a CPU Trainer (``options`` override the quiet one-device defaults)."""
    ckpt_path = options.pop("ckpt_path", None)
    val = options.pop("val", False)
    settings: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": EPOCHS,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    run = lightning.Trainer(**{**settings, **options})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
        warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint.*")
        run.fit(model, loader(batch_size, shuffled), loader(BATCH) if val else None, ckpt_path=ckpt_path)
    return run
