"""The peers' layers for the side-by-side benchmarks (the ``[bench]`` extra: deel-torchlip and
orthogonium); a peer that is not installed is left out."""

from __future__ import annotations

from typing import Callable

from torch import nn


def dense_peers() -> dict[str, Callable[[int], nn.Module]]:
    """``name -> (n -> a square GNP dense layer)`` for each installed peer."""
    makers: dict[str, Callable[[int], nn.Module]] = {}
    try:
        from deel import torchlip
        makers["deel-torchlip"] = lambda n: torchlip.SpectralLinear(n, n)
    except ImportError:
        pass
    try:
        from orthogonium.layers.linear import OrthoLinear
        makers["orthogonium"] = lambda n: OrthoLinear(n, n)
    except ImportError:
        pass
    return makers


def orthogonium_conv():
    """orthogonium 0.0.4's AOC convolution class (``AdaptiveOrthoConv2d``), or ``None``."""
    try:
        from orthogonium.layers.conv.AOC import AdaptiveOrthoConv2d
    except ImportError:
        return None
    return AdaptiveOrthoConv2d
