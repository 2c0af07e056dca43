"""Lipschitz layers with torch.nn names and signatures, plus ``k_coef_lip``.

See the "which layers are safe" table of the documentation (``docs/layers.md``).
"""

from .._migration import resolve as _resolve
from .aol import AOLConv2d, AOLLinear
from .activation import FullSort, GroupSort, GroupSort2, GroupSortNorm, HouseHolder, LPReLU, MaxMin
from .base import LipschitzModule, nominal_lipschitz
from .cones import ConeEnvelope, ConePotential
from .containers import Sequential
from .flatten import Flatten
from .conv import FrobeniusConv2d, SpectralConv1d, SpectralConv2d, SpectralConvTranspose2d
from .linear import FrobeniusLinear, SpectralLinear
from .normalization import BatchCentering, LayerCentering
from .ortho_conv import OrthoConv2d, OrthoConvTranspose2d
from .parametrization import LipschitzWeight
from .pooling import (
    ScaledAdaptiveAvgPool2d,
    ScaledAdaptiveL2NormPool2d,
    ScaledAvgPool2d,
    ScaledL2NormPool2d,
)
from .residual import LipResidual
from .sampling import InvertibleDownSampling, InvertibleUpSampling
from .stacked import StackedSpectralLinear

__all__ = [
    "SpectralLinear",
    "FrobeniusLinear",
    "StackedSpectralLinear",
    "SpectralConv1d",
    "SpectralConv2d",
    "FrobeniusConv2d",
    "SpectralConvTranspose2d",
    "OrthoConv2d",
    "OrthoConvTranspose2d",
    "AOLLinear",
    "AOLConv2d",
    "ScaledAvgPool2d",
    "ScaledAdaptiveAvgPool2d",
    "ScaledL2NormPool2d",
    "ScaledAdaptiveL2NormPool2d",
    "InvertibleDownSampling",
    "InvertibleUpSampling",
    "GroupSort",
    "GroupSort2",
    "FullSort",
    "GroupSortNorm",
    "MaxMin",
    "HouseHolder",
    "ConePotential",
    "ConeEnvelope",
    "LPReLU",
    "LipResidual",
    "LayerCentering",
    "BatchCentering",
    "Sequential",
    "Flatten",
    "LipschitzModule",
    "LipschitzWeight",
    "nominal_lipschitz",
]


def __getattr__(name: str):
    return _resolve("lipot.nn", name, globals())
