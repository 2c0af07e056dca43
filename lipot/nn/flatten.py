"""``Flatten`` that also takes one unbatched vector (for ``torch.func.vmap`` over dense models)."""

from __future__ import annotations

from torch import Tensor, nn

from .functional import is_tracing

__all__ = ["Flatten"]


class Flatten(nn.Flatten):
    """``torch.nn.Flatten`` (default: every dimension after the batch axis) that returns a 1-D
    input, one unbatched vector, unchanged (``torch.nn.Flatten`` raises ``IndexError`` on it).

    The dense builders of :mod:`lipot.models` start with it, so that ``torch.func.vmap(model)``
    over ``(N, d)`` vectors (each call sees one ``(d,)`` sample) equals ``model(x)``. It is an
    isometry (1-Lipschitz) and exports to ``torch.nn.Flatten`` (same outputs on batched inputs).

    Args:
        start_dim, end_dim: as ``torch.nn.Flatten``.

    Example:
        >>> lipot.Flatten()(torch.randn(2, 3, 4)).shape
        torch.Size([2, 12])
        >>> lipot.Flatten()(torch.randn(5)).shape                # one unbatched vector is kept
        torch.Size([5])
    """

    def forward(self, input: Tensor) -> Tensor:
        if not is_tracing() and input.dim() == 1 and self.start_dim == 1:
            return input
        return super().forward(input)

    def vanilla_export(self) -> nn.Flatten:
        return nn.Flatten(self.start_dim, self.end_dim)
