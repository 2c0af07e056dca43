"""Label-preserving augmentation of image batches, for :class:`lipot.training.TensorLoader`'s
``transform``."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _checks

__all__ = ["RandomTranslate"]


class RandomTranslate:
    r"""Shift every image of a batch ``(N, C, H, W)`` by its own integer offset
    :math:`(\delta_y, \delta_x)`, drawn uniformly in :math:`\{-m, \dots, m\}^2`, filling the
    uncovered border with zeros: :math:`x'_{c,i,j} = x_{c,\,i-\delta_y,\,j-\delta_x}` (0 outside
    the image).

    Small translations keep the label of a centred digit; the augmentation of the MNIST
    robustness records is of this kind (e.g. BCOP, Li et al., arXiv:1911.00937). The offsets
    are drawn on the CPU from torch's global generator, which :func:`lipot.training.fit`
    checkpoints, so a resumed run draws the same ones.

    Args:
        max_shift: :math:`m \ge 0`, in pixels (0: the identity).

    Example:
        >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 2] = 1.0
        >>> y = RandomTranslate(1)(x)
        >>> y.sum().item(), y.shape                       # the pixel moved by at most one step
        (1.0, torch.Size([1, 1, 5, 5]))
    """

    def __init__(self, max_shift: int) -> None:
        self.max_shift = _checks.non_negative_int("max_shift", max_shift)

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"RandomTranslate expects a batch (N, C, H, W), got shape {tuple(x.shape)}")
        m = self.max_shift
        if m == 0:
            return x
        n, _, h, w = x.shape
        shifts = torch.randint(-m, m + 1, (2, n)).to(x.device)
        padded = torch.nn.functional.pad(x, (m, m, m, m))
        rows = (torch.arange(h, device=x.device)[None, :] + m - shifts[0][:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device)[None, :] + m - shifts[1][:, None])[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return padded[batch, channels, rows, cols]

    def __repr__(self) -> str:
        return f"RandomTranslate(max_shift={self.max_shift})"
