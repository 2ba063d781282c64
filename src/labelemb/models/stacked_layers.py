"""The grouped forward pass of a Sequential over S seeds' stacked parameters.

A backbone stacks (trains S seeds side by side in the batched trainer) when its class defines

    stacked_forward(self, params, inputs) -> features (S, B, d)

where ``inputs`` is ``(S, B, ...)`` and ``params[name]`` is every parameter of the model stacked
over seeds, ``(S, *shape)``, under its name in ``named_parameters()``: row ``s`` goes through seed
``s``'s parameters. The MLP, the CNN, the feature head and the bag of words's hidden layers are a
Sequential of Flatten / Linear / ReLU / Conv2d / MaxPool2d, run here as grouped layers: a linear
layer is one batched matrix product ``y[s] = x[s] W[s]^T + b[s]``, a convolution one grouped
convolution (``groups=S``, each seed's channels a group).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from ..stacking import linear

#: The layer types :func:`grouped_forward` runs.
GROUPED_LAYERS = (nn.Flatten, nn.Linear, nn.ReLU, nn.Conv2d, nn.MaxPool2d)


def check_grouped_layers(layers: Iterable[nn.Module]) -> None:
    """Raise ValueError unless :func:`grouped_forward` runs ``layers``: the types above, Flatten
    from dim 1, ungrouped zero-padded convolutions, a Linear only on ``(N, features)``, and
    ``(N, features)`` at the end."""
    flat = True  # whether activations are (N, features) at this point, as a Linear needs
    for layer in layers:
        if not isinstance(layer, GROUPED_LAYERS):
            raise ValueError(f"the batched trainer cannot stack a {type(layer).__name__} layer")
        if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) != (1, -1):
            raise ValueError("the batched trainer stacks only Flatten(start_dim=1)")
        if isinstance(layer, nn.Conv2d) and (layer.groups != 1 or layer.padding_mode != "zeros"):
            raise ValueError("the batched trainer stacks only ungrouped, zero-padded convolutions")
        if isinstance(layer, nn.Linear) and not flat:
            raise ValueError("the batched trainer needs a Flatten before a Linear layer")
        flat = isinstance(layer, (nn.Flatten, nn.Linear)) or (flat and isinstance(layer, nn.ReLU))
    if not flat:
        raise ValueError("the batched trainer needs a backbone that ends in (N, features)")


def grouped_forward(
    layers: Iterable[nn.Module], params: Mapping[str, Tensor], inputs: Tensor, prefix: str = "layers."
) -> Tensor:
    """Features ``(S, B, d)`` of inputs ``(S, B, ...)`` through ``layers``, row ``s`` with seed ``s``'s
    weights: ``params[f"{prefix}{i}.weight"]`` / ``.bias`` of layer ``i``, stacked ``(S, ...)``."""
    layers = list(layers)
    check_grouped_layers(layers)
    num_seeds, batch = inputs.shape[:2]
    x = inputs
    # Convolutions run on (B, S*C, H, W), each seed's channels a group; the rest on (S, B, ...).
    grouped = False
    for i, layer in enumerate(layers):
        weight = params.get(f"{prefix}{i}.weight")
        bias = params.get(f"{prefix}{i}.bias")
        if isinstance(layer, nn.Conv2d):
            if not grouped:
                x = x.transpose(0, 1).reshape(batch, -1, *x.shape[3:])
                grouped = True
            x = F.conv2d(
                x,
                weight.flatten(0, 1),
                None if bias is None else bias.flatten(),
                layer.stride,
                layer.padding,
                layer.dilation,
                groups=num_seeds,
            )
        elif isinstance(layer, nn.MaxPool2d):
            x = layer(x) if grouped else layer(x.flatten(0, 1)).unflatten(0, (num_seeds, batch))
        elif isinstance(layer, nn.ReLU):
            x = F.relu(x)
        elif isinstance(layer, nn.Flatten):
            x = x.reshape(batch, num_seeds, -1).transpose(0, 1) if grouped else x.flatten(2)
            grouped = False
        else:  # nn.Linear, on (S, B, in)
            x = linear(x, weight, bias)
    return x
