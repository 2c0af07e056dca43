"""Layers whose ``weight`` carries a :class:`~lipot.nn.parametrization.LipschitzWeight`: the
registering function (orthogonal initialization, then the parametrization) and the layer mixin
(Lipschitz factor, cached weight, export)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .. import _checks
from ..linalg.normalizers import DEFAULT_EPS_BJORCK
from .base import LipschitzModule
from .cached import autocast_enabled
from .parametrization import LipschitzWeight, check_weight_dtype

__all__ = ["spectral_weight_kwargs", "register_lipschitz_weight", "lipschitz_weight", "LipschitzWeightLayer"]


def spectral_weight_kwargs(
    eps_spectral: float,
    eps_bjorck: float | None,
    maxiter_spectral: int,
    maxiter_bjorck: int,
    beta_bjorck: float,
    update: str | None = None,
) -> dict:
    """LipschitzWeight arguments of the Spectral* layers (``eps_bjorck=None``: spectral only;
    ``update`` applies to Björck only; ``None``: the default,
    :data:`~lipot.nn.parametrization.DEFAULT_UPDATE`)."""
    if eps_bjorck is None and update is not None:
        raise ValueError(f"update={update!r} sets how Björck training keeps the weight orthonormal; it "
                         "does not apply with eps_bjorck=None (spectral normalization): drop one of them")
    return dict(
        method="spectral" if eps_bjorck is None else "bjorck",
        eps_spectral=eps_spectral,
        maxiter_spectral=maxiter_spectral,
        eps_bjorck=DEFAULT_EPS_BJORCK if eps_bjorck is None else eps_bjorck,
        maxiter_bjorck=maxiter_bjorck,
        beta_bjorck=beta_bjorck,
        **({} if update is None else {"update": update}),  # (Björck's setting only)
    )


def register_lipschitz_weight(module: nn.Module, **kwargs) -> LipschitzWeight:
    """Orthogonally initialize ``module.weight``, zero its bias and register a
    :class:`LipschitzWeight` on it. Returns the parametrization."""
    with torch.no_grad():
        weight = module.weight
        groups = kwargs.get("groups", 1)
        view = weight.reshape(groups, weight.shape[0] // groups, -1)
        for g in range(groups):
            nn.init.orthogonal_(view[g])
        if getattr(module, "bias", None) is not None:
            module.bias.zero_()
    param = LipschitzWeight(weight, **kwargs)
    parametrize.register_parametrization(module, "weight", param)
    return param


def lipschitz_weight(module: nn.Module) -> LipschitzWeight:
    """The :class:`LipschitzWeight` registered on ``module.weight``."""
    return module.parametrizations.weight[0]


class LipschitzWeightLayer(LipschitzModule):
    """Mixin for layers whose ``weight`` carries a :class:`LipschitzWeight`."""

    def _init_weight(self, k_coef_lip: float, **kwargs) -> None:
        for size in ("in_features", "out_features", "in_channels", "out_channels"):
            if hasattr(self, size):
                _checks.positive_int(size, getattr(self, size))
        check_weight_dtype(self.weight.dtype)
        self._init_lipschitz(k_coef_lip)
        register_lipschitz_weight(self, k_coef_lip=self._k_coef_lip, **kwargs)

    def _k_coef_lip_changed(self) -> None:
        lipschitz_weight(self).k_coef_lip = self._k_coef_lip

    def _constrained_weight(self) -> Tensor:
        """The weight for ``forward``: the parametrization's cached value when valid and no
        gradient is needed (skipping ``torch.nn.utils.parametrize``'s per-access overhead, ~16 us),
        otherwise ``self.weight`` through parametrize."""
        plist = self._modules["parametrizations"]._modules["weight"]
        cached = plist._modules["0"].cached_weight(plist._parameters["original"])
        return self.weight if cached is None else cached

    def _orthonormal_for_training(self, input: Tensor) -> Tensor | None:
        """In eager training with a gradient, outside autocast: the raw weight, projected in place
        exactly as the parametrization's forward projects it, as its orthonormal ``(groups, m,
        n)`` view, for a forward through :func:`lipot.linalg.tangent_linear.tangent_linear`
        (the same output and gradients, the weight's gradient computed from the batch). ``None``
        in every other case and for non-Björck weights: use ``self.weight``."""
        param = lipschitz_weight(self)
        method = getattr(param, "orthonormal_for_training", None)
        if method is None or autocast_enabled(input.device.type):
            return None
        return method(self.parametrizations.weight.original)

    def _copy_into(self, plain: nn.Module) -> nn.Module:
        """Copy the effective weight and bias into a plain torch layer of the same shape."""
        with torch.no_grad():
            plain.weight.copy_(self.weight)
            if self.bias is not None:
                plain.bias.copy_(self.bias)
        return plain
