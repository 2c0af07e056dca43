r"""The result of a W1 estimate: :class:`W1Result` (value, standard error, critic, transport
directions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["W1Result"]


@dataclass
class W1Result:
    r"""An estimate of :math:`W_1` between two samples (:func:`lipot.estimate_w1`).

    In expectation ``value`` is at most the population W1 (the held-out KR value of a
    1-Lipschitz critic) and ``exact`` at least (the plug-in estimate is convex in the samples),
    so the two bracket it; in low dimension the plug-in bias is small and ``exact`` is often the
    closer.

    Attributes:
        value: the held-out KR value :math:`\mathbb E_X f - \mathbb E_Y f` of the selected
            critics (use it, not ``in_sample``).
        stderr: its standard error.
        ci: its 95 % confidence interval.
        in_sample: the KR value on the training parts (optimistic).
        critic: the fitted 1-Lipschitz potential :math:`f` on raw inputs (the mean of the fold
            critics).
        history: one record per epoch of every trained network.
        n_heldout: the held-out samples of each side.
        seconds: the estimation time.
        selected: the critic kept in each fold (``"linear"``, ``"cone"``, ``"envelope"``,
            ``"gnp"`` or ``"custom"``).
        exact: POT's exact W1 of the two samples (``exact=True``, or by default for small
            samples of at most two features, :func:`lipot.wasserstein.defaults.auto_exact`),
            else ``None``.
        n_drawn: the samples drawn from each sampler (samplers only, else ``(0, 0)``).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> x, y = torch.randn(400, 2, generator=gen), torch.randn(400, 2, generator=gen) + 2.0
        >>> result = lipot.estimate_w1(x, y, critic="linear", seed=0)
        >>> result.selected                                   # the critic kept in each fold
        ('linear', 'linear', 'linear', 'linear', 'linear')
        >>> result.exact is not None                          # exact OT of these small 2-D samples
        True
        >>> result.transport_direction(y[:3]).norm(dim=1)     # unit vectors: where y's points move
        tensor([1.0000, 1.0000, 1.0000])
    """

    value: float
    stderr: float
    ci: tuple[float, float]
    in_sample: float
    critic: nn.Module = field(repr=False)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    n_heldout: tuple[int, int] = (0, 0)
    seconds: float = 0.0
    selected: tuple[str, ...] = ()
    exact: float | None = None
    n_drawn: tuple[int, int] = (0, 0)

    def transport_direction(self, points, batch_size: int = 4096) -> Tensor:
        r"""The estimated transport direction at ``points`` ``(n, ...)``: the unit vector
        :math:`\nabla f(p)/\lVert\nabla f(p)\rVert` of the critic's gradient.

        For an optimal critic of :math:`W_1(\mu, \nu)` (``X ~ mu``, ``Y ~ nu``), a point of
        :math:`\nu` is transported along :math:`\nabla f`, toward :math:`\mu`, and
        :math:`f(T(y)) - f(y) = \lVert T(y) - y\rVert` (Kantorovich-Rubinstein duality; Villani,
        *Optimal transport, old and new*, Thm 5.10). Returns the critic's dtype on its device; a zero gradient (a flat critic) gives a zero vector.
        """
        param = next(self.critic.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        x = torch.as_tensor(points).to(dtype)
        if x.dim() < 2 or x.shape[0] == 0:
            raise ValueError(f"points must be a non-empty batch (n, ...), got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("points contain NaN or Inf values")
        out = []
        with torch.enable_grad():
            for part in x.split(batch_size):
                part = part.to(device).detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self.critic(part).sum(), part)
                flat = grad.reshape(grad.shape[0], -1)
                norm = flat.norm(dim=1, keepdim=True)
                out.append((flat / torch.where(norm > 0, norm, torch.ones_like(norm))).reshape(grad.shape))
        return torch.cat(out)
