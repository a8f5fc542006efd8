"""Reference models: CIFAR-style ResNets, a residual MLP, their plain twins, and a registry.

Every model takes ``shortcut: bool``; ``shortcut=False`` builds the plain (no-skip) twin with
the same ``state_dict`` keys and shapes, so checkpoints and seeded directions carry over between
the two. Models are built by name with :func:`build` (or from a stored :class:`ModelSpec`);
user architectures are named ``"package.module:factory"``.
"""

from __future__ import annotations

from .mlp import MLP, MLPBlock
from .registry import MODELS, ModelSpec, available_models, build, parse_model_kwargs
from .resnet import BasicBlock, ResNet, resnet20, resnet56, resnet110

__all__ = [
    "MODELS",
    "MLP",
    "MLPBlock",
    "BasicBlock",
    "ModelSpec",
    "ResNet",
    "available_models",
    "build",
    "parse_model_kwargs",
    "resnet20",
    "resnet56",
    "resnet110",
]
