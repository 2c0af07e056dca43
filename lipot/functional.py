"""``lipot.functional``: the functional forms of lipot (like ``torch.nn.functional``), as in
deel-torchlip: the activations and pooling operators of :mod:`lipot.nn.functional` and the loss
functions of :mod:`lipot.losses`. A facade: the code lives in those modules."""

from __future__ import annotations

from ._migration import FUNCTIONAL as _DEEL_ONLY
from ._migration import missing as _missing

from .losses import (
    weighted_kr,
    kr_loss,
    neg_kr_loss,
    hinge_margin_loss,
    hkr_loss,
    kr_multiclass_loss,
    hinge_multiclass_loss,
    hkr_multiclass_loss,
    soft_hkr_multiclass_loss,
    lse_hkr_multiclass_loss,
    tau_cross_entropy_loss,
    tau_bce_with_logits_loss,
    categorical_hinge_loss,
    pairwise_lipschitz,
    pairwise_radius,
    offset_cross_entropy_loss,
    margin_cross_entropy_loss,
    gloro_trades_loss,
    emma_loss,
    logit_annealing_loss,
)
from .nn.functional import (
    group_sort,
    group_sort_2,
    full_sort,
    max_min,
    pair_norm,
    group_sort_norm,
    cone_potential,
    cone_envelope,
    householder,
    lipschitz_prelu,
    l2_norm_pool2d,
    scaled_avg_pool2d,
    scaled_adaptive_avg_pool2d,
    scaled_adaptive_l2_norm_pool2d,
    invertible_downsample,
    invertible_upsample,
)

__all__ = [
    "group_sort",
    "group_sort_2",
    "full_sort",
    "max_min",
    "pair_norm",
    "group_sort_norm",
    "cone_potential",
    "cone_envelope",
    "householder",
    "lipschitz_prelu",
    "l2_norm_pool2d",
    "scaled_avg_pool2d",
    "scaled_adaptive_avg_pool2d",
    "scaled_adaptive_l2_norm_pool2d",
    "invertible_downsample",
    "invertible_upsample",
    "weighted_kr",
    "kr_loss",
    "neg_kr_loss",
    "hinge_margin_loss",
    "hkr_loss",
    "kr_multiclass_loss",
    "hinge_multiclass_loss",
    "hkr_multiclass_loss",
    "soft_hkr_multiclass_loss",
    "lse_hkr_multiclass_loss",
    "tau_cross_entropy_loss",
    "tau_bce_with_logits_loss",
    "categorical_hinge_loss",
    "pairwise_lipschitz",
    "pairwise_radius",
    "offset_cross_entropy_loss",
    "margin_cross_entropy_loss",
    "gloro_trades_loss",
    "emma_loss",
    "logit_annealing_loss",
]


def __getattr__(name: str):
    raise _missing("lipot.functional", name, _DEEL_ONLY)
