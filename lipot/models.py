"""Ready-made 1-Lipschitz architectures (GroupSort2 activations, Björck-orthonormalized layers).

Each builder returns a :class:`lipot.nn.Sequential`, so :func:`lipot.certify.lipschitz_bound`
can bound it layer by layer and :func:`lipot.vanilla_export` can export it. ``ARCHITECTURES``
maps the names used by the CLI and by checkpoints to the builders.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from . import _checks
from .nn import GroupSort2, ScaledL2NormPool2d, Sequential, SpectralConv2d, SpectralLinear

__all__ = ["dense_classifier", "dense_critic", "conv_classifier", "ARCHITECTURES", "build"]


def dense_classifier(
    in_features: int, hidden: Sequence[int] = (32, 16), num_classes: int = 1
) -> Sequential:
    """``Flatten -> [SpectralLinear -> GroupSort2] * len(hidden) -> SpectralLinear(num_classes)``.

    The MNIST 0-vs-8 network of deel-lip's first demo is ``dense_classifier(784, (32, 16), 1)``.
    1-Lipschitz (the whole logit map), so its certificates may use the sqrt(2) or per-pair form.
    """
    _checks.positive_int("in_features", in_features)
    _checks.positive_int("num_classes", num_classes)
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        _checks.positive_int("hidden", h)
        if h % 2:
            raise ValueError(f"hidden widths must be even for GroupSort2, got {h}")
        layers += [SpectralLinear(width, h), GroupSort2()]
        width = h
    layers.append(SpectralLinear(width, num_classes))
    return Sequential(*layers)


def dense_critic(in_features: int, hidden: Sequence[int] = (256, 256, 256)) -> Sequential:
    """A GNP KR critic for vectors: ``dense_classifier(in_features, hidden, 1)`` (one output,
    1-Lipschitz), the default critic of :func:`lipot.estimate_w1`."""
    return dense_classifier(in_features, hidden, 1)


def conv_classifier(
    in_channels: int = 1,
    input_size: int = 28,
    channels: Sequence[int] = (16, 32),
    dense: Sequence[int] = (64,),
    num_classes: int = 10,
    convs_per_block: int = 1,
) -> Sequential:
    """Conv GNP classifier: per entry of ``channels``, ``convs_per_block`` 3×3 ``SpectralConv2d``
    + ``GroupSort2``, then a 2×2 ``ScaledL2NormPool2d``; then ``Flatten``, dense
    ``SpectralLinear`` + ``GroupSort2`` layers and a ``SpectralLinear(num_classes)``.

    ``conv_classifier(1, 28, (16, 32), (64,), 10)`` is deel-torchlip's Fashion-MNIST notebook
    network.
    """
    _checks.positive_int("in_channels", in_channels)
    size = _checks.positive_int("input_size", input_size)
    _checks.positive_int("convs_per_block", convs_per_block)
    layers: list[nn.Module] = []
    width = in_channels
    for c in channels:
        _checks.positive_int("channels", c)
        if c % 2:
            raise ValueError(f"channels must be even for GroupSort2, got {c}")
        for _ in range(convs_per_block):
            layers += [SpectralConv2d(width, c, 3, padding=1), GroupSort2()]
            width = c
        if size % 2:
            raise ValueError(f"input_size {input_size} must stay even through the 2x2 poolings")
        layers.append(ScaledL2NormPool2d(2))
        size //= 2
    layers.append(nn.Flatten())
    features = width * size * size
    for h in dense:
        _checks.positive_int("dense", h)
        layers += [SpectralLinear(features, h), GroupSort2()]
        features = h
    layers.append(SpectralLinear(features, num_classes))
    return Sequential(*layers)


ARCHITECTURES = {"dense": dense_classifier, "conv": conv_classifier}


def build(arch: str, **kwargs) -> Sequential:
    """``ARCHITECTURES[arch](**kwargs)`` with a clear error for an unknown name."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)
