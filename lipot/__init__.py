"""lipot: 1-Lipschitz, gradient-norm-preserving networks for Wasserstein-1 estimation,
certified robustness and Lipschitz audits.

Layers live in :mod:`lipot.nn` and are re-exported here (``lipot.SpectralLinear`` ...).
"""

import importlib as _importlib
import sys as _sys

from . import (  # the subpackages and modules, as attributes (``lipot.ot.exact_w1``); none is star-exported
    audit,
    certify,
    data,
    distributed,
    functional,
    linalg,
    losses,
    models,
    ot,
    training,
    wasserstein,
)
from ._migration import TOP_LEVEL as _DEEL_ONLY
from ._migration import resolve as _resolve
from .audit import attack_radius, audit_certificates, lipschitz_lower_bound
from .certify import certified_accuracy, certified_radius, lipschitz_bound
from .losses.margin import EMMALoss, GloroTradesLoss, LogitAnnealingLoss, MarginCrossEntropyLoss, OffsetCrossEntropyLoss
from .losses.modules import *  # noqa: F401,F403  (the loss modules at the top, as in deel-torchlip)
from .losses.modules import __all__ as _hkr_losses
from . import nn as _nn
from .nn import *  # noqa: F401,F403
from .nn import __all__ as _layers
from .nn.export import vanilla_export, vanilla_model
from .wasserstein import W1Estimator, W1Result, estimate_w1

__version__ = "0.1.0"

_margin_losses = ["OffsetCrossEntropyLoss", "MarginCrossEntropyLoss", "GloroTradesLoss", "EMMALoss", "LogitAnnealingLoss"]

__all__ = [
    # W1 estimation
    "estimate_w1",
    "W1Estimator",
    "W1Result",
    # certificates
    "lipschitz_bound",
    "certified_radius",
    "certified_accuracy",
    # audit
    "lipschitz_lower_bound",
    "attack_radius",
    "audit_certificates",
    # export
    "vanilla_export",
    "vanilla_model",
    # losses
    *_hkr_losses,
    *_margin_losses,
    # layers
    *_layers,
]


# Former paths of the modules that moved into subpackages: ``import lipot.normalizers`` and
# ``lipot.toys.two_moons`` still work (the same module objects); the documented paths are the new ones.
_MOVED = {
    "bjorck": "linalg.bjorck",
    "normalizers": "linalg.normalizers",
    "conv_coefficients": "linalg.conv_coefficients",
    "operator_norms": "linalg.operator_norms",
    "plain_call": "linalg.plain_call",
    "schedules": "training.schedules",
    "checkpoints": "training.checkpoints",
    "recipes": "training.recipes",
    "toys": "data.toys",
    "funnels": "data.funnels",
    "network_pairs": "data.network_pairs",
    "leaf_bounds": "certify.leaf_bounds",
}
for _old, _new in _MOVED.items():
    _sys.modules[f"{__name__}.{_old}"] = _importlib.import_module(f"{__name__}.{_new}")


def __getattr__(name: str):
    if name in _MOVED:  # lipot.normalizers as an attribute
        return _sys.modules[f"{__name__}.{_MOVED[name]}"]
    return _resolve("lipot", name, vars(_nn), _DEEL_ONLY)
