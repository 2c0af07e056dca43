"""Ready-made 1-Lipschitz architectures (GroupSort2 activations, Björck-orthonormalized layers).

Each builder returns a :class:`lipot.nn.Sequential`, so :func:`lipot.certify.lipschitz_bound`
can bound it layer by layer and :func:`lipot.vanilla_export` can export it. ``ARCHITECTURES``
maps the names used by the CLI and by checkpoints to the builders.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from . import _checks
from .nn import (
    AOLConv2d,
    Flatten,
    FrobeniusLinear,
    GroupSort2,
    GroupSortNorm,
    OrthoConv2d,
    ScaledL2NormPool2d,
    Sequential,
    SpectralConv2d,
    SpectralLinear,
)

__all__ = [
    "dense_classifier",
    "dense_critic",
    "DENSE_CRITIC_HIDDEN",
    "conv_classifier",
    "conv_critic",
    "CONV_LAYERS",
    "DEFAULT_CONV",
    "DOWNSAMPLING",
    "HEADS",
    "cnn_4c3f",
    "ARCHITECTURES",
    "build",
]

CONV_LAYERS = {"ortho": OrthoConv2d, "aol": AOLConv2d, "spectral": SpectralConv2d}
"""Convolutions the conv builders can use: ``"ortho"`` (exactly orthogonal, gradient-norm
preserving), ``"aol"`` (closed-form rescaling, cheapest), ``"spectral"`` (deel-torchlip's
reshaped-kernel scheme: 1-Lipschitz but contracting, ~1/3 for a 3×3 kernel)."""

DEFAULT_CONV = "ortho"

DOWNSAMPLING = ("pool", "stride")
"""How the conv builders halve the resolution after each block: a 2×2 ``ScaledL2NormPool2d``,
or a 4×4 stride-2 convolution (+ GroupSort2), as in the 4C3F network of the certified-robustness
records."""


HEADS = ("spectral", "lln")
r"""Last layers of the classifiers: ``"spectral"`` (``SpectralLinear``, orthonormal rows: the
whole logit map is 1-Lipschitz) or ``"lln"`` (last-layer normalization: each row scaled to
unit norm, ``FrobeniusLinear(disjoint_neurons=True)``; certified per pair with
:math:`\lVert w_i - w_j\rVert`, the head of the certified-robustness records)."""


def _head(features: int, num_classes: int, head: str) -> nn.Module:
    if head == "spectral":
        return SpectralLinear(features, num_classes)
    if head == "lln":
        return FrobeniusLinear(features, num_classes, disjoint_neurons=True)
    raise ValueError(f"head must be one of {HEADS}, got {head!r}")


def dense_classifier(
    in_features: int, hidden: Sequence[int] = (32, 16), num_classes: int = 1, head: str = "spectral"
) -> Sequential:
    """``Flatten -> [SpectralLinear -> GroupSort2] * len(hidden) -> SpectralLinear(num_classes)``.

    The MNIST 0-vs-8 network of deel-lip's first demo is ``dense_classifier(784, (32, 16), 1)``.
    With the default ``head`` the whole logit map is 1-Lipschitz, so its certificates may use the
    sqrt(2) or per-pair form; ``head="lln"``: see :data:`HEADS`.
    """
    _checks.positive_int("num_classes", num_classes)
    layers, width = _dense_body(in_features, hidden, GroupSort2, 2, lambda h: h)
    layers.append(_head(width, num_classes, head))
    return Sequential(*layers)


def _dense_body(in_features: int, hidden: Sequence[int], activation, multiple: int, out_width):
    """``[Flatten, (SpectralLinear(h), activation()) for h in hidden]`` and the last width."""
    _checks.positive_int("in_features", in_features)
    layers: list[nn.Module] = [Flatten()]
    width = in_features
    for h in hidden:
        _checks.positive_int("hidden", h)
        if h % multiple:
            raise ValueError(f"hidden widths must be divisible by {multiple} for {activation.__name__}, got {h}")
        layers += [SpectralLinear(width, h), activation(dim=-1)]
        width = out_width(h)
    return layers, width


DENSE_CRITIC_HIDDEN = (128, 128, 128)
"""Hidden widths of :func:`dense_critic` (the default critic of :func:`lipot.estimate_w1`)."""


def dense_critic(in_features: int, hidden: Sequence[int] = DENSE_CRITIC_HIDDEN) -> Sequential:
    """A GNP KR critic for vectors: ``Flatten -> [SpectralLinear(h) -> GroupSortNorm] *
    len(hidden) -> SpectralLinear(1, bias=False)`` (widths divisible by 4; ``GroupSortNorm`` maps ``h``
    features to ``3h/4``: GroupSort2 on half of them, pair norms on the other half, so the
    critic represents both piecewise-linear and radial functions). The default critic of
    :func:`lipot.estimate_w1`."""
    layers, width = _dense_body(in_features, hidden, GroupSortNorm, 4, GroupSortNorm.out_features)
    layers.append(SpectralLinear(width, 1, bias=False))  # KR values ignore constants
    return Sequential(*layers)


def _conv_layer(conv: str):
    if conv not in CONV_LAYERS:
        raise ValueError(f"conv must be one of {sorted(CONV_LAYERS)}, got {conv!r}")
    return CONV_LAYERS[conv]


def conv_classifier(
    in_channels: int = 1,
    input_size: int = 28,
    channels: Sequence[int] = (16, 32),
    dense: Sequence[int] = (64,),
    num_classes: int = 10,
    convs_per_block: int = 1,
    conv: str = DEFAULT_CONV,
    downsample: str = "pool",
    head: str = "spectral",
) -> Sequential:
    """Conv GNP classifier: per entry of ``channels``, ``convs_per_block`` 3×3 convolutions
    (``padding=1``) + ``GroupSort2``, then a halving of the resolution (``downsample="pool"``:
    2×2 ``ScaledL2NormPool2d``; ``"stride"``: a 4×4 stride-2 convolution + ``GroupSort2``);
    then ``Flatten``, dense ``SpectralLinear`` + ``GroupSort2`` layers and a
    ``SpectralLinear(num_classes)``.

    ``head`` picks the last layer (:data:`HEADS`).
    ``conv`` picks the convolution (:data:`CONV_LAYERS`); the default ``"ortho"``
    (:class:`lipot.OrthoConv2d`) keeps the gradient norm through the conv stack, which
    ``"spectral"`` cannot. ``conv_classifier(1, 28, (16, 32), (64,), 10, conv="spectral")`` is
    deel-torchlip's Fashion-MNIST notebook network; ``conv_classifier(1, 28, (32, 64),
    (512, 512), 10, downsample="stride")`` the 4C3F network of the MNIST records.
    """
    _checks.positive_int("in_channels", in_channels)
    size = _checks.positive_int("input_size", input_size)
    _checks.positive_int("convs_per_block", convs_per_block)
    layer = _conv_layer(conv)
    if downsample not in DOWNSAMPLING:
        raise ValueError(f"downsample must be one of {DOWNSAMPLING}, got {downsample!r}")
    layers: list[nn.Module] = []
    width = in_channels
    for c in channels:
        _checks.positive_int("channels", c)
        if c % 2:
            raise ValueError(f"channels must be even for GroupSort2, got {c}")
        for _ in range(convs_per_block):
            layers += [layer(width, c, 3, padding=1), GroupSort2(dim=-3)]
            width = c
        if size % 2:
            raise ValueError(f"input_size {input_size} must stay even through the 2x2 poolings")
        if downsample == "pool":
            layers.append(ScaledL2NormPool2d(2))
        else:
            layers += [layer(c, c, 4, stride=2, padding=1), GroupSort2(dim=-3)]
        size //= 2
    layers.append(nn.Flatten(-3))  # (N, C, H, W) and one unbatched (C, H, W) sample alike
    features = width * size * size
    for h in dense:
        _checks.positive_int("dense", h)
        layers += [SpectralLinear(features, h), GroupSort2(dim=-1)]
        features = h
    layers.append(_head(features, num_classes, head))
    return Sequential(*layers)


def cnn_4c3f(in_channels: int = 1, input_size: int = 28, num_classes: int = 10, conv: str = DEFAULT_CONV,
             head: str = "lln", width: int = 1, convs_per_block: int = 1) -> Sequential:
    """The 4C3F network of the MNIST certified-robustness records (GloRo, Leino et al.,
    arXiv:2102.08452; BCOP, Li et al., arXiv:1911.00937): conv 32 3×3 → conv 32 4×4 stride 2 →
    conv 64 3×3 → conv 64 4×4 stride 2 → dense 512 → dense 512 → ``num_classes``, GroupSort2
    (MaxMin) activations, built from lipot's gradient-norm-preserving layers, with an LLN head
    by default (certified per pair). ``width`` multiplies the channels of the convolutions
    (``width=2``: 64 and 128); ``convs_per_block`` is the number of 3×3 convolutions before each
    strided one (``2``: a 6C3F, two more 3×3 layers)."""
    _checks.positive_int("width", width)
    return conv_classifier(in_channels, input_size, (32 * width, 64 * width), (512, 512), num_classes, conv=conv,
                           downsample="stride", head=head, convs_per_block=convs_per_block)


def conv_critic(in_channels: int, input_size: int, conv: str = DEFAULT_CONV) -> Sequential:
    """The conv KR critic of :func:`lipot.estimate_w1` for square images: the 16-32 conv,
    dense 64 network of :func:`conv_classifier` with one output (``input_size`` divisible
    by 4)."""
    return conv_classifier(in_channels, input_size, (16, 32), (64,), 1, conv=conv)


ARCHITECTURES = {"dense": dense_classifier, "conv": conv_classifier, "4c3f": cnn_4c3f}


def build(arch: str, **kwargs) -> Sequential:
    """``ARCHITECTURES[arch](**kwargs)`` with a clear error for an unknown name."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)
