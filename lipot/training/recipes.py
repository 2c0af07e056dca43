r"""Certified-training recipes: a network, a loss, an optimizer and schedules, by name, so the CLI,
the benchmarks and user code train the same thing.

=============  ===============================================================================
``emma``       4C3F (orthogonal convs, LLN head) + :class:`lipot.losses.EMMALoss`, radius ramp
               to 1.1·ε over the first 30 % of the epochs, Adam 1e-3 cosine-decayed to 1e-6,
               batch 256.
``gloro``      as ``emma`` with GloRo's TRADES loss (:class:`lipot.losses.GloroTradesLoss`,
               λ = 1.5).
``la``         as ``emma`` with Logit Annealing (:class:`lipot.losses.LogitAnnealingLoss`).
``lse-hkr``    the earlier lipot recipe: conv 32-64 (spectral convs, 2×2 L2-norm pooling),
               dense 256, :class:`lipot.losses.LseHKRMulticlassLoss` (α = 0.95, margin 3,
               temperature 1), Adam 1e-3 constant, batch 128.
=============  ===============================================================================

References: Leino et al., *Globally-robust neural networks* (GloRo), arXiv:2102.08452; Hu et al.,
*Unlocking deterministic robustness certification on ImageNet* (LiResNet, EMMA),
arXiv:2301.12549; Lai et al., *Enhancing certified robustness via block reflector orthogonal
layers and logit annealing loss* (BRONet), arXiv:2505.15174.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import losses, models
from .schedules import RadiusRamp, lr_decay
from .loop import DEFAULT_LR

__all__ = ["Recipe", "RECIPES", "build_recipe"]


@dataclass
class Recipe:
    """What :func:`build_recipe` returns: pass ``model``, ``loss``, ``optimizer``,
    ``scheduler`` and ``radius_ramp`` to :func:`lipot.training.fit` with batches of
    ``batch_size``; ``models.build(arch, **arch_kwargs)`` rebuilds the network."""

    name: str
    arch: str
    arch_kwargs: dict
    model: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    radius_ramp: RadiusRamp | None
    batch_size: int


RECIPES = ("emma", "gloro", "la", "lse-hkr")


def _margin_loss(name: str, eps: float, head: nn.Module) -> nn.Module:
    if name == "emma":
        return losses.EMMALoss(eps, head=head)
    if name == "gloro":
        return losses.GloroTradesLoss(eps, head=head, lam=1.5)
    return losses.LogitAnnealingLoss(eps, head=head)


def build_recipe(name: str, eps: float, epochs: int, in_channels: int = 1, input_size: int = 28,
                 num_classes: int = 10, conv: str = models.DEFAULT_CONV, lr: float = DEFAULT_LR,
                 final_lr: float = 1e-6, overshoot: float = 1.1, ramp_fraction: float = 0.3,
                 width: int = 1, convs_per_block: int = 1) -> Recipe:
    """The recipe ``name`` (:data:`RECIPES`) for certified accuracy at radius ``eps`` over
    ``epochs`` epochs (the length of the learning-rate decay and of the radius ramp).
    ``width`` multiplies the convolution channels of the 4C3F recipes and ``convs_per_block``
    deepens them (see :func:`lipot.models.cnn_4c3f`)."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {RECIPES}, got {name!r}")
    shape = {"in_channels": in_channels, "input_size": input_size, "num_classes": num_classes}
    for option, value in (("width", width), ("convs_per_block", convs_per_block)):
        if value != 1 and name == "lse-hkr":
            raise ValueError(f"{option} applies to the 4C3F recipes {RECIPES[:-1]}, not to 'lse-hkr' "
                             f"(got {option}={value!r})")
    if name == "lse-hkr":
        arch, kwargs = "conv", {**shape, "channels": [32, 64], "dense": [256], "conv": "spectral"}
        model = models.build(arch, **kwargs)
        loss = losses.LseHKRMulticlassLoss(0.95, 1.0, min_margin=3.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        return Recipe(name, arch, kwargs, model, loss, optimizer, None, None, 128)
    arch, kwargs = "4c3f", {**shape, "conv": conv, "head": "lln"}
    if width != 1:
        kwargs["width"] = width
    if convs_per_block != 1:
        kwargs["convs_per_block"] = convs_per_block
    model = models.build(arch, **kwargs)
    ramp = RadiusRamp(eps, overshoot, ramp_fraction * epochs)
    loss = _margin_loss(name, ramp(0.0), model[-1])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = lr_decay(optimizer, epochs, "cosine", final_lr)
    return Recipe(name, arch, kwargs, model, loss, optimizer, scheduler, ramp, 256)
