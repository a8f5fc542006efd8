"""Reference models: the architectures of the residual story, their plain twins, a registry.

CIFAR-style ResNets (basic and bottleneck blocks), pre-activation ResNets, DenseNet-BC, Li et
al.'s VGG-9/16, a residual MLP, and small transformers (a ViT for 8x8 digits, a GPT for
modular addition). Every model with a skip connection takes ``shortcut: bool`` (``residual``
for the transformers); ``False`` builds the plain (no-skip) twin with the same ``state_dict``
keys and shapes, so checkpoints and seeded directions carry over between the two. Models are
built by name with :func:`build` (or from a stored :class:`ModelSpec`); user architectures are
named ``"package.module:factory"``. :func:`adapt_to_data` fills in the input channels, image
size, vocabulary and classes from a data set.
"""

from __future__ import annotations

from .densenet import DenseNet, densenet_bc40, densenet_bc100
from .highway import HighwayConv, HighwayConvLayer, HighwayLayer, HighwayMLP
from .mlp import MLP, MLPBlock
from .preresnet import (
    PreActBlock,
    PreActBottleneck,
    PreResNet,
    preresnet20,
    preresnet56,
    preresnet110,
    preresnet164,
)
from .registry import (
    MODELS,
    ModelSpec,
    adapt_to_data,
    available_models,
    build,
    data_kwargs,
    parse_model_kwargs,
    skip_switch,
)
from .resnet import BasicBlock, Bottleneck, ResNet, resnet20, resnet56, resnet110, resnet164
from .resnext import ResNeXt, ResNeXtBlock, resnext29_8x64d, resnext29_16x64d
from .transformer import GPT, ViT
from .unet import UNet
from .vgg import VGG, vgg9, vgg16

__all__ = [
    "MODELS",
    "MLP",
    "MLPBlock",
    "BasicBlock",
    "Bottleneck",
    "DenseNet",
    "GPT",
    "HighwayConv",
    "HighwayConvLayer",
    "HighwayLayer",
    "HighwayMLP",
    "ModelSpec",
    "PreActBlock",
    "PreActBottleneck",
    "PreResNet",
    "ResNet",
    "ResNeXt",
    "ResNeXtBlock",
    "UNet",
    "VGG",
    "ViT",
    "adapt_to_data",
    "available_models",
    "build",
    "data_kwargs",
    "densenet_bc40",
    "densenet_bc100",
    "parse_model_kwargs",
    "preresnet20",
    "preresnet56",
    "preresnet110",
    "preresnet164",
    "skip_switch",
    "resnet20",
    "resnet56",
    "resnet110",
    "resnet164",
    "resnext29_8x64d",
    "resnext29_16x64d",
    "vgg9",
    "vgg16",
]
