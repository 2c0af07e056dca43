r"""Centering layers: subtracting a mean is an orthogonal projection, hence 1-Lipschitz.

* :class:`LayerCentering` subtracts the mean over ``dim`` (the spatial dimensions by default) of
  each sample and channel.
* :class:`BatchCentering` subtracts the per-channel mean over the batch (and spatial dimensions)
  in training mode — a projection of the whole batch tensor, so 1-Lipschitz as a map of the
  batch — and a fixed running mean in eval mode (a translation: an isometry).

Both add an optional per-channel bias (dimension 1) and multiply by ``k_coef_lip``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .. import _checks
from .._transforms import in_functorch_transform
from .functional import is_tracing
from .base import LipschitzModule, trace_export

__all__ = ["LayerCentering", "BatchCentering"]


def _add_channel_vector(x: Tensor, v: Tensor) -> Tensor:
    return (x.movedim(1, -1) + v).movedim(-1, 1)


def _check_channels(name: str, x: Tensor, num_features: int) -> None:
    if not is_tracing() and (x.dim() < 2 or x.shape[1] != num_features):
        raise ValueError(
            f"{name}: expected input of shape (N, {num_features}, ...) (num_features={num_features}), "
            f"got {tuple(x.shape)}"
        )


class _Centering(nn.Module, LipschitzModule):
    def __init__(self, num_features: int, bias: bool, k_coef_lip: float) -> None:
        nn.Module.__init__(self)
        self.num_features = _checks.positive_int("num_features", num_features)
        self._init_lipschitz(k_coef_lip)
        if bias:
            self.bias = nn.Parameter(torch.zeros(self.num_features))
        else:
            self.register_parameter("bias", None)

    def _finish(self, centered: Tensor) -> Tensor:
        if self.k_coef_lip != 1.0:
            centered = centered * self.k_coef_lip
        if self.bias is not None:
            centered = _add_channel_vector(centered, self.bias)
        return centered

    def vanilla_export(self) -> nn.Module:
        """The eval-mode computation as a GraphModule (BatchCentering: its running mean)."""
        return trace_export(self)


class LayerCentering(_Centering):
    """Subtract the mean over ``dim`` of each sample, add a bias, times ``k_coef_lip``.

    Args:
        num_features: number of channels (dimension 1), for the bias.
        dim: dimensions to average over (default: the last two, i.e. spatial for NCHW).
        bias: learn a per-channel bias.
        k_coef_lip: Lipschitz factor.

    Example:
        >>> center = lipot.LayerCentering()                     # each channel minus its spatial mean
        >>> center(torch.tensor([[[[1.0, 2.0, 6.0]]]])).detach()
        tensor([[[[-2., -1.,  3.]]]])
    """

    def __init__(
        self,
        num_features: int = 1,
        dim: int | Sequence[int] = (-2, -1),
        bias: bool = True,
        k_coef_lip: float = 1.0,
    ) -> None:
        super().__init__(num_features, bias, k_coef_lip)
        self.dim = (dim,) if isinstance(dim, int) else tuple(dim)

    def forward(self, input: Tensor) -> Tensor:
        _check_channels("LayerCentering", input, self.num_features)
        return self._finish(input - input.mean(dim=self.dim, keepdim=True))


class BatchCentering(_Centering):
    """Subtract the per-channel batch mean (training) or running mean (eval), add a bias.

    Args:
        num_features: number of channels (dimension 1).
        dim: dimensions to average over in training (default: all but dimension 1).
        bias: learn a per-channel bias.
        momentum: running-mean update ``(1 - m) * running + m * batch_mean``; ``None`` for a
            cumulative average (as ``torch.nn.BatchNorm``).
        k_coef_lip: Lipschitz factor.

    **Running mean vs deel-torchlip.** lipot's default is torch's exponential average
    (``momentum=0.1``). deel-torchlip 1.0.5 keeps the cumulative average of the batch means, and
    each eval-mode forward collapses that history to the weight of a single batch. With
    ``momentum=None`` lipot keeps the plain cumulative average: the same value as deel's as long
    as no eval-mode pass interrupts training.

    Inside a ``torch.func`` transform (``vmap``, ``jacrev``...) the training-mode output is the
    same (the input minus its batch mean) but the running mean is not updated: a transformed
    function is pure.

    Example:
        >>> center = lipot.BatchCentering(2)                     # x minus the batch mean (running mean in eval)
        >>> center(torch.tensor([[1.0, 2.0], [3.0, 6.0]])).detach()
        tensor([[-1., -2.],
                [ 1.,  2.]])
    """

    def __init__(
        self,
        num_features: int = 1,
        dim: Sequence[int] | None = None,
        bias: bool = True,
        momentum: float | None = 0.1,
        k_coef_lip: float = 1.0,
    ) -> None:
        super().__init__(num_features, bias, k_coef_lip)
        self.dim = None if dim is None else tuple(dim)
        if momentum is not None:
            momentum = _checks.fraction("momentum (or None)", momentum, low_open=True)
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(self.num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, input: Tensor) -> Tensor:
        _check_channels("BatchCentering", input, self.num_features)
        if not self.training:
            return self._finish(_add_channel_vector(input, -self.running_mean))
        dims = self.dim if self.dim is not None else (0,) + tuple(range(2, input.dim()))
        if any(input.shape[d] == 0 for d in dims):
            raise ValueError(
                f"BatchCentering: the training-mode input {tuple(input.shape)} is empty along the "
                f"dimensions {dims} it averages over, so it has no mean (and would turn the running "
                "mean into NaN); skip empty batches (e.g. drop_last=True) or use eval mode"
            )
        mean = input.mean(dim=dims, keepdim=True)
        if in_functorch_transform():  # a pure function there: no running-statistic update
            return self._finish(input - mean)
        with torch.no_grad():
            self.num_batches_tracked += 1
            batch_mean = mean.movedim(1, 0).reshape(self.num_features, -1).mean(1)
            m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.lerp_(batch_mean.to(self.running_mean.dtype), m)
        return self._finish(input - mean)
