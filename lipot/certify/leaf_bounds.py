r"""Verified Lipschitz bounds of single modules (the leaves of the model walk in
:mod:`lipot.certify`), from their current weights and the input shape.

* ``nn.Linear`` (plain, lipot, AOL, torch-parametrized or ``spectral_norm``-hooked): the float64
  SVD of the weight the forward uses;
* convolutions (``Conv1d``, ``Conv2d``, ``ConvTranspose2d``, lipot's or torch's): the FFT /
  polyphase norm of :mod:`lipot.linalg.operator_norms` for zero and tiling circular padding, else a
  count bound (see :func:`conv_bound`);
* eval-mode batch normalization: its largest diagonal scale;
* :class:`~lipot.nn.StackedSpectralLinear`: the SVD of the whole stacked weight (the map from a
  shared input to the ``K`` outputs; each member alone is ``k``-Lipschitz, the stack is up to
  :math:`\sqrt K` times more);
* lipot's weight-free (or analytically bounded) modules: their ``lipschitz_bound()``;
* the weight-free ``torch.nn`` modules of :mod:`lipot.nn.torch_bounds`, on this input size.

Before any of these, :func:`lipot.linalg.plain_call.check_plain_call` refuses a module whose call may
not be its class's computation (forward hooks, an overridden ``forward``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..linalg.conv_coefficients import resolve_padding, conv_count_bound, padding_copy_bound
from ..nn.base import LipschitzModule
from ..linalg.plain_call import check_plain_call
from ..nn.stacked import StackedSpectralLinear
from ..nn.torch_bounds import shaped_torch_bound
from ..linalg.operator_norms import (
    NUMERIC_MARGIN,
    effective_weight,
    circular_tiles,
    conv_operator_norm,
    linear_operator_norm,
)

__all__ = ["leaf_bound", "conv_bound"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)


def _operator_input_size(module: nn.Module, shape: tuple[int, ...], weight: Tensor) -> tuple[int, ...]:
    """Spatial size of the input of the convolution whose operator norm bounds the layer:
    the layer's own input, or for a transposed convolution (the adjoint of ``conv2d`` with the
    same weight, stride, padding and groups) its output."""
    if not isinstance(module, nn.ConvTranspose2d):
        return tuple(shape[1:])
    with torch.no_grad():
        out = module(torch.zeros(1, *shape, device=weight.device, dtype=weight.dtype))
    return tuple(out.shape[2:])


def conv_bound(module: nn.Module, shape: tuple[int, ...]) -> tuple[float, str]:
    """The tightest guaranteed bound lipot knows for this padding mode (see
    :func:`lipot.lipschitz_bound`)."""
    weight = effective_weight(module)
    size = _operator_input_size(module, shape, weight)
    mode = module.padding_mode
    padding = getattr(module, "_padding_arg", module.padding)
    settings = (module.stride, padding, module.dilation, module.groups)
    if mode == "zeros":
        return conv_operator_norm(weight, size, *settings), "conv FFT/polyphase (float64)"
    pads = resolve_padding(padding, module.kernel_size, module.dilation, module.stride)
    axes = zip(size, module.kernel_size, module.stride, module.dilation, pads)
    if mode == "circular" and all(circular_tiles(*axis) for axis in axes):
        bound = conv_operator_norm(weight, size, *settings, padding_mode="circular")
        return bound, "circular conv FFT/polyphase (float64, exact on the input torus)"
    # ||conv|| <= sqrt(max incidence) * ||reshaped kernel||
    count = conv_count_bound(module.kernel_size, module.stride, padding, module.dilation, mode, input_size=size)
    per_group = weight.shape[0] // module.groups
    norms = [
        linear_operator_norm(weight[g * per_group:(g + 1) * per_group]) for g in range(module.groups)
    ]
    bound, method = count * max(norms), f"count bound x kernel SVD ({mode} padding)"
    if mode in ("reflect", "replicate"):
        # padding copies pixels (norm sqrt(max copies)), then a valid convolution
        copies = padding_copy_bound(module.kernel_size, module.stride, padding, module.dilation, mode, input_size=size)
        padded = tuple(n + left + right for n, (left, right) in zip(size, pads))
        valid = copies * conv_operator_norm(weight, padded, module.stride, 0, module.dilation, module.groups)
        if valid < bound:
            bound, method = valid, f"padding copies x valid conv FFT ({mode} padding)"
    return bound, method


def _batchnorm_bound(module: nn.modules.batchnorm._BatchNorm) -> float:
    if module.training or module.running_var is None:
        raise ValueError(
            f"{type(module).__name__} is only bounded in eval mode with running statistics"
        )
    scale = 1.0 / torch.sqrt(module.running_var.detach().double() + module.eps)
    if module.weight is not None:
        scale = scale * module.weight.detach().double().abs()
    return float(scale.max()) * (1 + NUMERIC_MARGIN)


def _has_state(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None or next(module.children(), None) is not None


def leaf_bound(module: nn.Module, shape: tuple[int, ...]) -> tuple[float, str]:
    """(bound, method) of one module on inputs of ``shape`` (one sample, no batch axis); raises
    ``ValueError`` for a module lipot cannot bound."""
    check_plain_call(module)
    if isinstance(module, nn.Linear):
        return linear_operator_norm(effective_weight(module)), "SVD (float64)"
    if isinstance(module, _CONVS):
        return conv_bound(module, shape)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return _batchnorm_bound(module), "diagonal scale"
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)):
        return 1.0, "identity in eval mode"
    if isinstance(module, StackedSpectralLinear):
        return linear_operator_norm(effective_weight(module)), "SVD of the stacked weight (float64)"
    if isinstance(module, LipschitzModule):
        # lipot's weight-free (or analytically bounded) modules: activations, pooling, sampling,
        # centering, HouseHolder, LPReLU, cones -- their bound holds for every parameter value.
        return module.lipschitz_bound(), "analytic (lipot)"
    bound = None if _has_state(module) else shaped_torch_bound(module, shape)
    if bound is None:
        raise ValueError(
            f"lipschitz_bound: cannot bound {type(module).__name__}. Supported: Linear/Conv1d/"
            "Conv2d/ConvTranspose2d (lipot or torch), BatchNorm (eval), lipot activations, "
            "pooling and sampling, LipResidual, and the weight-free torch.nn modules of "
            "lipot.nn.torch_bounds (activations, max / average / adaptive pooling, padding, "
            "non-negative upsampling), inside nn.Sequential or lipot.Sequential. Compute the "
            "bound of other structures part by part and multiply."
        )
    return bound, "analytic (torch.nn, on this input size)"
