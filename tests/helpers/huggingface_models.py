"""A tiny BERT (one layer, sixteen wide, built from its config: nothing is downloaded) under a
labelemb method, the 32 random padded sequences it reads, and a Hugging Face ``Trainer`` that trains
it on them; for the tests of labelemb.integrations.huggingface and of methods the Trainer refuses.

Needs transformers (the ``examples`` extra); the test files share it (``from huggingface_models
import trainer_for``): tests/ is on the path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from transformers import BertConfig, BertModel, PreTrainedModel, Trainer, TrainingArguments

import labelemb
from labelemb.integrations.huggingface import EpochEndCallback, LabelembLoss, LabelembOutput
from labelemb.methods import Method

NUM_EXAMPLES, LENGTH, NUM_CLASSES, NUM_TAGS = 32, 12, 5, 7


class TinyBertConfig(BertConfig):
    model_type = "labelemb-tiny-bert"
    keys_to_ignore_at_inference = ["features", "index"]  # predictions are the logits alone

    def __init__(self, method: str = "onehot", options: dict | None = None, tokens: bool = False, **kwargs):
        self.method, self.options, self.tokens = method, options or {}, tokens
        kwargs = {
            "vocab_size": 32,
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": LENGTH,
            "hidden_dropout_prob": 0.0,  # the two runs must see the same function
            "attention_probs_dropout_prob": 0.0,
            **kwargs,
        }
        super().__init__(**kwargs)


class TinyBertWithMethod(PreTrainedModel):
    """BERT features, one row per sequence (the first token's) or per token, and a labelemb head."""

    config_class = TinyBertConfig

    def __init__(self, config: TinyBertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        classes = NUM_TAGS if config.tokens else NUM_CLASSES
        self.head = labelemb.methods.build(
            config.method, in_features=config.hidden_size, num_classes=classes, **config.options
        )
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        pass  # BertModel initialised itself; the head keeps labelemb's initialisation

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, index: Tensor | None = None
    ) -> LabelembOutput:
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if not self.config.tokens:
            h = h[:, 0]
        return LabelembOutput(logits=self.head.logits(h), features=h, index=index)


class Sequences(torch.utils.data.Dataset):
    """Random sequences of 2..12 tokens padded to 12; a class per sequence or a tag per token."""

    def __init__(self, tokens: bool, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(2, LENGTH + 1, (NUM_EXAMPLES,), generator=g)
        self.mask = (torch.arange(LENGTH) < lengths[:, None]).long()
        self.ids = torch.randint(1, 32, (NUM_EXAMPLES, LENGTH), generator=g) * self.mask
        if tokens:
            tags = self.ids % NUM_TAGS  # learnable: the tag is the token's
            self.labels = tags.masked_fill(self.mask == 0, -100)
        else:
            self.labels = self.ids[:, 1] % NUM_CLASSES

    def __len__(self) -> int:
        return NUM_EXAMPLES

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": self.mask[i],
            "labels": self.labels[i],
            "index": torch.tensor(i),
        }


class RecordingLoss(LabelembLoss):
    """LabelembLoss that records each micro-batch's number of counted labels; ``use_num_items=False``
    drops ``num_items_in_batch``, as a ``compute_loss`` that does not pass it on would."""

    def __init__(self, method, use_num_items: bool = True) -> None:
        super().__init__(method)
        self.use_num_items = use_num_items
        self.counted: list[int] = []

    def __call__(self, outputs, labels, num_items_in_batch=None):
        self.counted.append(int((labels != -100).sum()))
        return super().__call__(outputs, labels, num_items_in_batch if self.use_num_items else None)


class MeanOfMicroBatchMeans(Trainer):
    loss_is_scaled_for_ga = False  # training_step divides each micro-batch's mean by the accumulation steps


def dev_predictions_of(model: TinyBertWithMethod) -> Callable[[Method], tuple[Tensor, Tensor]]:
    """What EpochEndCallback's ``dev_predictions`` is for a method that reads them: the model's
    logits on sequences of another draw (the dev split) and their labels, one row a sequence or a
    token."""
    dev = Sequences(model.config.tokens, seed=1)

    def predict(method: Method) -> tuple[Tensor, Tensor]:
        logits = model(dev.ids, dev.mask).logits
        return logits.reshape(-1, logits.shape[-1]), dev.labels.reshape(-1)

    return predict


def trainer_for(
    model: TinyBertWithMethod,
    output_dir: Path,
    callbacks=(),
    mean_of_means: bool = False,
    dev_predictions: Callable[[Method], tuple[Tensor, Tensor]] | None = None,
    **arguments,
) -> Trainer:
    """A quiet CPU Trainer of ``model`` on its sequences, with a RecordingLoss and the epoch-end
    callback (given ``dev_predictions``, or :func:`dev_predictions_of` the model for a method that
    reads them); ``mean_of_means``: a compute_loss that drops ``num_items_in_batch``; ``arguments``
    go to TrainingArguments."""
    if dev_predictions is None and model.head.reads_dev:
        dev_predictions = dev_predictions_of(model)
    args = TrainingArguments(
        output_dir=str(output_dir),
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        label_names=["labels"],
        seed=0,
        **arguments,
    )
    return (MeanOfMicroBatchMeans if mean_of_means else Trainer)(
        model=model,
        args=args,
        train_dataset=Sequences(model.config.tokens),
        compute_loss_func=RecordingLoss(model.head, use_num_items=not mean_of_means),
        callbacks=[EpochEndCallback(model.head, dev_predictions=dev_predictions), *callbacks],
    )


def build_tiny_bert(
    name: str, options: dict, tokens: bool, dtype: torch.dtype = torch.float32
) -> TinyBertWithMethod:
    """The tiny BERT under method ``name`` with ``options``, the same weights at every call (a name
    ``label_embedding_<setting>`` builds label_embedding: the tests' tables name their settings so)."""
    torch.manual_seed(0)
    method = "label_embedding" if name.startswith("label_embedding") else name
    return TinyBertWithMethod(TinyBertConfig(method=method, options=options, tokens=tokens)).to(dtype)
