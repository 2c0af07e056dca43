r"""Losses for 1-Lipschitz networks: Kantorovich-Rubinstein (KR), hinge, hinge-KR (HKR),
temperature-scaled cross-entropies (:mod:`lipot.losses.hkr`) and the certified-margin losses of
the certified-robustness records on per-pair certificates (:mod:`lipot.losses.margin`).
Functional forms (also in :mod:`lipot.functional`) and ``torch.nn`` modules, with deel-torchlip's names and arguments.

**Sign convention.** Every ``*_loss`` function and ``*Loss`` module returns a quantity to
**minimize**, except :func:`kr_loss` / :class:`KRLoss` / :func:`kr_multiclass_loss` /
:class:`KRMulticlassLoss`, which return the KR *estimate*

.. math::
    \mathrm{KR}(f) = \mathbb{E}_{x\sim P}[f(x)] - \mathbb{E}_{x\sim N}[f(x)]
    \;\le\; W_1(P, N) \quad\text{for 1-Lipschitz } f,

(:math:`P` the samples with a positive label, :math:`N` the others), a value to **maximize**
(it is a metric and the W1 lower bound). To train on the KR term alone minimize
:func:`neg_kr_loss` / :class:`NegKRLoss`. :class:`KRLoss` warns when its output requires a
gradient, because minimizing it would *decrease* the KR term (deel-torchlip's trap).
The HKR losses are ``alpha * hinge - (1 - alpha) * KR`` (minimize), ``0 <= alpha <= 1``:
minimizing them increases the KR term (tested).

**Labels.** Binary losses take ``target`` of the shape of ``input`` (``(N,)`` or ``(N, 1)``)
with values in {-1, +1} or {0, 1}. Multiclass losses take one-hot targets ``(N, C)`` with
values in {0, 1} or {-1, +1}, or integer class indices ``(N,)``. Anything else raises.

**Reduction.** ``'mean'`` (default), ``'sum'`` or ``'none'`` over the batch (``'auto'`` is
``'mean'``, as in deel-torchlip). The KR term is a difference of class means, so its
per-sample values are weighted so that their *mean* over the batch is the KR estimate.

**Distributed (DDP).** Inside :func:`lipot.distributed.global_batch` the batch statistics (KR
class counts, the mean reduction's batch size, SoftHKR's mean :math:`|f|`) are all-reduced over
the ranks and each rank returns its share times the world size, so the average of the ranks'
losses -- and DDP's averaged gradient -- is that of the global batch (tested against one
process in ``tests/test_distributed.py``). ``reduction='none'`` returns per-sample values
whose mean over the global batch is the loss.

References: Serrurier et al., *Achieving robustness in classification using optimal transport
with hinge regularization*, CVPR 2021, arXiv:2006.06520; Serrurier et al., *On the explainable
properties of 1-Lipschitz neural networks: an optimal transport perspective*, NeurIPS 2023,
arXiv:2206.06854 (soft HKR).
"""

from __future__ import annotations

from .hkr import (
    kr_loss,
    weighted_kr,
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
)
from .modules import (
    KRLoss,
    NegKRLoss,
    HingeMarginLoss,
    HKRLoss,
    KRMulticlassLoss,
    HingeMulticlassLoss,
    HKRMulticlassLoss,
    SoftHKRMulticlassLoss,
    LseHKRMulticlassLoss,
    TauCrossEntropyLoss,
    TauBCEWithLogitsLoss,
    CategoricalHingeLoss,
)
from .margin import (
    pairwise_lipschitz,
    pairwise_radius,
    offset_cross_entropy_loss,
    margin_cross_entropy_loss,
    gloro_trades_loss,
    emma_loss,
    logit_annealing_loss,
    OffsetCrossEntropyLoss,
    MarginCrossEntropyLoss,
    GloroTradesLoss,
    EMMALoss,
    LogitAnnealingLoss,
)

__all__ = [
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
    "KRLoss",
    "NegKRLoss",
    "HingeMarginLoss",
    "HKRLoss",
    "KRMulticlassLoss",
    "HingeMulticlassLoss",
    "HKRMulticlassLoss",
    "SoftHKRMulticlassLoss",
    "LseHKRMulticlassLoss",
    "TauCrossEntropyLoss",
    "TauBCEWithLogitsLoss",
    "CategoricalHingeLoss",
    "pairwise_lipschitz",
    "pairwise_radius",
    "offset_cross_entropy_loss",
    "margin_cross_entropy_loss",
    "gloro_trades_loss",
    "emma_loss",
    "logit_annealing_loss",
    "OffsetCrossEntropyLoss",
    "MarginCrossEntropyLoss",
    "GloroTradesLoss",
    "EMMALoss",
    "LogitAnnealingLoss",
]
