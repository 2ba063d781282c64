"""What the harness puts between a backbone and the method's head: a dense layer
(``model.dense``), and the head-side network of a frozen backbone (``model.freeze``)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from .stacked_layers import grouped_forward


def dense_layer(in_features: int, width: int) -> list[nn.Module]:
    """``ReLU(W h + b)``: one dense layer of ``width`` units (PyTorch's default initialisation)."""
    return [nn.Linear(in_features, width), nn.ReLU()]


class WithDense(nn.Module):
    """A trained backbone followed by one dense layer: ``ReLU(W f(x) + b)``.

    The LwAL paper's text protocol (Yu & Verma 2022, Section 4, Table 3) reads sentence features
    through Dense(768) before the classifier. The layer is part of the head: it trains at
    ``train.lr`` even when the backbone has a learning rate of its own.
    """

    def __init__(self, backbone: nn.Module, width: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.dense = nn.Sequential(*dense_layer(backbone.out_features, width))
        self.out_features = width
        self.output_init_std = getattr(backbone, "output_init_std", None)

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.dense(self.backbone(*inputs))


class FeatureHead(nn.Module):
    """What trains on a frozen backbone's cached features ``(N, d)``: nothing (the features pass
    unchanged) or one dense layer ``ReLU(W f + b)`` when ``dense`` is given.

    Its layers are a Sequential of Flatten / Linear / ReLU, so the batched trainer stacks many
    seeds of it as it stacks an MLP (:meth:`stacked_forward`).
    """

    output_init_std = None

    def __init__(self, input_shape: tuple[int, ...], dense: int | None = None) -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise ValueError(f"a feature head reads features (N, d), not inputs of shape {input_shape}")
        (width,) = input_shape
        layers: list[nn.Module] = [nn.Flatten()]
        if dense is not None:
            layers += dense_layer(width, dense)
            width = dense
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features)

    def stacked_forward(self, params: Mapping[str, Tensor], features: Tensor) -> Tensor:
        """``(S, B, d)`` from cached features ``(S, B, d_in)``: row ``s`` through seed ``s``'s stacked
        parameters (the batched trainer's hook, :mod:`.stacked_layers`)."""
        return grouped_forward(self.layers, params, features)
