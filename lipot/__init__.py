"""lipot: 1-Lipschitz, gradient-norm-preserving networks for Wasserstein-1 estimation,
certified robustness and Lipschitz audits.

Layers live in :mod:`lipot.nn` and are re-exported here (``lipot.SpectralLinear`` ...).
"""

from . import (
    audit,
    certify,
    conv_coefficients,
    data,
    distributed,
    functional,
    losses,
    models,
    normalizers,
    operator_norms,
    ot,
    schedules,
    training,
    wasserstein,
)
from .audit import attack_radius, audit_certificates, lipschitz_lower_bound
from .certify import certified_accuracy, certified_radius, lipschitz_bound
from ._migration import TOP_LEVEL as _DEEL_ONLY
from ._migration import missing as _missing
from .export import vanilla_export, vanilla_model
from .losses.modules import *  # noqa: F401,F403  (the loss modules at the top, as in deel-torchlip)
from .losses.modules import __all__ as _loss_all
from .wasserstein import W1Estimator, W1Result, estimate_w1
from .nn import *  # noqa: F401,F403
from .nn import __all__ as _nn_all

__version__ = "0.1.0"

__all__ = [
    "audit",
    "attack_radius",
    "audit_certificates",
    "lipschitz_lower_bound",
    "certify",
    "conv_coefficients",
    "data",
    "distributed",
    "functional",
    "losses",
    "models",
    "normalizers",
    "operator_norms",
    "schedules",
    "training",
    "ot",
    "wasserstein",
    "estimate_w1",
    "W1Estimator",
    "W1Result",
    "certified_accuracy",
    "certified_radius",
    "lipschitz_bound",
    "vanilla_export",
    "vanilla_model",
    *_loss_all,
    *_nn_all,
]


def __getattr__(name: str):
    raise _missing("lipot", name, _DEEL_ONLY)
