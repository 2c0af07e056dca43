r"""KR critics: the returned critic types and the K fold critics trained together.

* :class:`ScaledCritic` :math:`g(x) = s\,f((x - c)/s)` — as Lipschitz as :math:`f` (a translation,
  then a rescaling of the domain and the range by the same factor). The estimator trains
  :math:`f` on inputs centered on the pooled mean :math:`c` (in float64) and scaled by
  :math:`s`, and returns :math:`g`, which takes the user's raw inputs.
* :class:`MeanCritic`: the average of the fold critics (1-Lipschitz when each is).
* :class:`LinearCritic`: :math:`f(x) = \langle u, x\rangle`, :math:`\|u\|_2 = 1`.
* :class:`StackedDenseCritic`: the K fold critics of the default dense network
  (:func:`lipot.models.dense_critic`) in one module built from
  :class:`~lipot.nn.StackedSpectralLinear` layers, so that one batched step trains the K
  critics (each on its own training part) at the cost of about one;
  :class:`SeparateCritics` gives any other critic (a user's module, the conv critic for images)
  the same interface, member by member.
* :class:`StackedConeCritic`: the K fold critics of the cone potential
  (:class:`lipot.nn.ConePotential`), proposed by the estimator for inputs of at most
  :data:`CONE_MAX_FEATURES` features.
* :class:`StackedEnvelopeCritic`: the K fold critics of the cone envelope
  (:class:`lipot.nn.ConeEnvelope`), with a soft minimum annealed to the exact one.

Both fold-critic modules map a batch ``(B, *shape)`` to the ``(K, B)`` values of the K critics,
and export member ``k`` as a :class:`ScaledCritic` (:meth:`StackedDenseCritic.member`) that
:func:`lipot.certify.lipschitz_bound` verifies.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .. import models
from ..nn.functional import cone_envelope, cone_potential, group_sort_norm
from ..nn import ConeEnvelope, ConePotential, GroupSortNorm, Sequential, StackedSpectralLinear
from ..nn.cones import DEFAULT_CONES
from ..linalg.normalizers import DEFAULT_EPS_BJORCK

__all__ = ["ScaledCritic", "MeanCritic", "LinearCritic", "StackedDenseCritic", "StackedConeCritic",
           "StackedEnvelopeCritic", "envelope_orientation", "envelope_start", "envelope_width_factor",
           "is_square_image", "SeparateCritics", "fold_critics", "CONE_MAX_FEATURES", "DEFAULT_CONES",
           "ENVELOPE_CONES", "ENVELOPE_TEMPERATURE", "ENVELOPE_ANNEAL_STEPS"]

CONE_MAX_FEATURES = 2
"""Largest input width (flattened) for which :func:`lipot.estimate_w1` proposes the cone critic
by default. Each cone describes one neighbourhood, so the critic overfits as the dimension
grows: on N(0, I_d) vs N(0, 1.5^2 I_d) with 2000 points per side, held out, it erred by -1.3 %
in d = 2, but by -11 % in d = 3 and 4 and -33 % in d = 10, where the GNP network (128-128-128
in that run) erred by -2 % to +3 % and -5 % (``python benchmarks/w1_cone_dimension.py``; ``docs/results.md``)."""


class ScaledCritic(nn.Module):
    r""":math:`g(x) = s\,f((x - c)/s)`: as Lipschitz as :math:`f`.

    ``center`` (float64, default 0) is subtracted in float64, then the input is cast to the
    critic's dtype, so float64 data far from the origin (offsets of 1e8) keep their resolution;
    float32 inputs far from the origin have already lost it (pass them as float64).
    """

    def __init__(self, critic: nn.Module, scale: float, center: Tensor | None = None) -> None:
        super().__init__()
        self.critic = critic
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("center", torch.zeros(()) if center is None else center.detach().double().clone())

    def forward(self, x: Tensor) -> Tensor:
        if bool(self.center.any()):
            x = (x.double() - self.center.reshape(x.shape[1:])).to(self.scale.dtype)
        return self.scale * self.critic(x / self.scale).reshape(x.shape[0])


class MeanCritic(nn.Module):
    """The average of several critics: 1-Lipschitz when each of them is."""

    def __init__(self, critics) -> None:
        super().__init__()
        self.critics = nn.ModuleList(critics)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([c(x).reshape(x.shape[0]) for c in self.critics]).mean(0)


class LinearCritic(nn.Sequential):
    r""":math:`f(x) = \langle u, \mathrm{vec}(x)\rangle` with :math:`\|u\|_2 = 1` (or
    :math:`u = 0`): exactly 1-Lipschitz. A ``Flatten -> Linear`` Sequential, so
    :func:`lipot.certify.lipschitz_bound` verifies it."""

    def __init__(self, direction: Tensor) -> None:
        u = direction.detach().reshape(-1).double()
        norm = float(u.norm())
        linear = nn.Linear(u.numel(), 1, bias=False)
        with torch.no_grad():
            linear.weight.copy_((u / norm if norm > 0 else u).reshape(1, -1))
        linear.weight.requires_grad_(False)
        super().__init__(nn.Flatten(), linear)


def _fold_view(t: Tensor, members: int) -> Tensor:
    """A stacked tensor as ``(K, -1)``: every stacked parameter and buffer is fold-major."""
    return t.reshape(members, -1)


class _FoldMajor:
    """``fold_state`` / ``load_fold_state`` for a module whose every parameter and buffer is
    stacked fold-major (member ``k`` is slice ``k`` of the first axis)."""

    members: int

    def fold_state(self, k: int) -> dict[str, Tensor]:
        return {name: _fold_view(t, self.members)[k].clone() for name, t in self.state_dict().items()}

    @torch.no_grad()
    def load_fold_state(self, k: int, state: dict[str, Tensor]) -> None:
        for name, t in self.state_dict(keep_vars=True).items():
            _fold_view(t, self.members)[k].copy_(state[name])


class StackedDenseCritic(_FoldMajor, nn.Module):
    r"""K dense GNP critics :math:`g_k(x) = s_k f_k(x / s_k)`, each :math:`f_k` the network of
    :func:`lipot.models.dense_critic` (``Flatten -> [SpectralLinear(h) -> GroupSortNorm] *
    len(hidden) -> SpectralLinear(1)``), evaluated together.

    Args:
        members: K.
        in_features: input dimension (inputs are flattened).
        scales: the K input scales :math:`s_k > 0`.
        hidden: hidden widths (divisible by 4).
        eps_bjorck: Björck target accuracy of every layer (as ``SpectralLinear``).

    The Björck iteration of a stacked layer stops when its *least* converged member reaches
    ``eps_bjorck``, so a member's weight can be a little closer to orthonormal than the same
    member's alone (both within ``eps_bjorck``).
    """

    def __init__(self, members: int, in_features: int, scales: Sequence[float],
                 hidden: Sequence[int] = models.DENSE_CRITIC_HIDDEN, eps_bjorck: float = DEFAULT_EPS_BJORCK
                 ) -> None:
        super().__init__()
        if len(scales) != members:
            raise ValueError(f"scales must have {members} entries (one per member), got {len(scales)}")
        for h in hidden:
            if h % 4:
                raise ValueError(f"hidden widths must be divisible by 4 for GroupSortNorm, got {h}")
        ins = [in_features, *(GroupSortNorm.out_features(h) for h in hidden)]
        self.members, self.in_features, self.hidden = members, in_features, tuple(hidden)
        outs = [*hidden, 1]
        # no output bias: KR values ignore constants, and Adam would move a bias whose gradient
        # is zero up to rounding by steps of size lr
        self.layers = nn.ModuleList(StackedSpectralLinear(members, a, b, bias=i + 1 < len(outs), eps_bjorck=eps_bjorck)
                                    for i, (a, b) in enumerate(zip(ins, outs)))
        self.register_buffer("scale", torch.tensor([float(s) for s in scales]))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, *shape) -> (K, B)``."""
        s = self.scale.to(x.dtype)[:, None, None]
        h = x.reshape(x.shape[0], -1)[None] / s
        for i, layer in enumerate(self.layers):
            if i:
                h = group_sort_norm(h, dim=2)
            h = layer(h)
        return (s * h)[..., 0]

    def member(self, k: int) -> ScaledCritic:
        """Critic ``k`` as a ``ScaledCritic`` over a :class:`lipot.nn.Sequential` with the
        structure of :func:`lipot.models.dense_critic`."""
        parts: list[nn.Module] = [nn.Flatten()]
        for i, layer in enumerate(self.layers):
            if i:
                parts.append(GroupSortNorm())
            parts.append(layer.member(k))
        return ScaledCritic(Sequential(*parts), float(self.scale[k])).eval()


class StackedConeCritic(_FoldMajor, nn.Module):
    r"""K cone critics :math:`g_k(x) = s_k f_k(x / s_k)`, each :math:`f_k` a
    :class:`lipot.nn.ConePotential` on the flattened input, evaluated together.

    Args:
        members: K.
        in_features: input dimension (inputs are flattened).
        scales: the K input scales :math:`s_k > 0`.
        cones: centers per term of every member.

    :meth:`place` puts member ``k``'s centers on data points (which must come from its own
    training part: a critic must not see the points it is evaluated on).
    """

    def __init__(self, members: int, in_features: int, scales: Sequence[float], cones: int = DEFAULT_CONES) -> None:
        super().__init__()
        if len(scales) != members:
            raise ValueError(f"scales must have {members} entries (one per member), got {len(scales)}")
        self.members, self.in_features, self.cones = members, in_features, cones
        self.low_centers = nn.Parameter(torch.randn(members, cones, in_features))
        self.low_offsets = nn.Parameter(torch.zeros(members, cones))
        self.high_centers = nn.Parameter(torch.randn(members, cones, in_features))
        self.high_offsets = nn.Parameter(torch.zeros(members, cones))
        self.register_buffer("scale", torch.tensor([float(s) for s in scales]))

    @torch.no_grad()
    def place(self, k: int, low: Tensor, high: Tensor) -> None:
        """Member ``k``: centers of the minimum on the points ``low`` (samples of the second
        measure, where the critic is small), of the maximum on ``high`` (first measure), both
        ``(cones, *shape)`` in the critic's input coordinates; zero offsets."""
        s = self.scale[k]
        self.low_centers[k].copy_(low.reshape(self.cones, -1) / s)
        self.high_centers[k].copy_(high.reshape(self.cones, -1) / s)
        self.low_offsets[k].zero_()
        self.high_offsets[k].zero_()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, *shape) -> (K, B)``."""
        s = self.scale.to(x.dtype)[:, None]
        h = x.reshape(x.shape[0], -1)[None] / s[..., None]
        return s * cone_potential(h, self.low_centers, self.low_offsets, self.high_centers, self.high_offsets)

    def member(self, k: int) -> ScaledCritic:
        """Critic ``k`` as a ``ScaledCritic`` over ``lipot.nn.Sequential(Flatten, ConePotential)``."""
        cone = ConePotential(self.in_features, self.cones).to(self.scale.device)
        with torch.no_grad():
            for name in ("low_centers", "low_offsets", "high_centers", "high_offsets"):
                getattr(cone, name).copy_(getattr(self, name)[k])
        return ScaledCritic(Sequential(nn.Flatten(), cone), float(self.scale[k])).eval()


ENVELOPE_CONES = 1024
"""Cones of each envelope critic. More cones than the data has clusters: a cone that starts
where no transport happens never moves, so the envelope needs spares (funnel pairs with 64
funnels in 16-D, fresh samples, 3000 steps: -19.0 % of the true W1 with 64 cones, -11.9 % with
256, -5.7 % with 1024, all with the exact minimum: ``python benchmarks/w1_envelope_alone.py
--dim 16 --funnels 64 --cones M``)."""

ENVELOPE_TEMPERATURE = 0.05
"""Initial temperature of the envelope critic's soft minimum, in units of its scaled input (RMS
distance 1 to the mean). With a soft minimum every cone has a gradient, and the spare cones
follow the data (same pair, 256 cones: -11.9 % with the exact minimum, -8.5 % with an annealed
soft one of 0.3 in the data's units: ``... --cones 256 --temperature 0.3``); it falls linearly
to 0 over :data:`ENVELOPE_ANNEAL_STEPS` training steps."""

ENVELOPE_ANNEAL_STEPS = 2000
"""Training steps over which the envelope critic's temperature falls to 0."""


def envelope_width_factor(in_features: int) -> float:
    r""":math:`\min(1, 4/\sqrt d)`: the envelope's learning rate and temperature shrink with the
    input width beyond 16 features. In the scaled inputs (RMS norm 1) one coordinate spreads
    over about :math:`1/\sqrt d`, so a fixed step moves a center relatively further in wide
    inputs: on the 128-D, 64-funnel pair the envelope's selection KR (``res.history`` of
    ``estimate_w1`` on the samplers of ``benchmarks/w1_funnels.py --sampler``, ``draws=(16384,
    4096, 8192)``, ``epochs=100``) stayed at 60 % of the truth with the 16-D settings and
    reached 98 % with this factor."""
    return min(1.0, 4.0 / math.sqrt(in_features))


class StackedEnvelopeCritic(_FoldMajor, nn.Module):
    r"""K cone-envelope critics :math:`g_k(x) = s_k f_k(x / s_k)`, each :math:`f_k` a
    :class:`lipot.nn.ConeEnvelope` of the flattened input (lower or upper, one orientation per
    member), evaluated together.

    Training uses the fast distances of :func:`lipot.functional.cone_envelope` (``exact=False``);
    :meth:`StackedEnvelopeCritic.member` exports a layer that computes them exactly, so the critic the estimator
    evaluates and returns is 1-Lipschitz in floating point. Every training forward advances
    each member's step count; its temperature is
    :math:`\tau_0 \max(0, 1 - t / T)` (:data:`ENVELOPE_TEMPERATURE`,
    :data:`ENVELOPE_ANNEAL_STEPS`), and a snapshot keeps the temperature it had.

    Args:
        members: K.
        in_features: input dimension (inputs are flattened).
        scales: the K input scales :math:`s_k > 0`.
        cones: centers per member.
        temperature: :math:`\tau_0` before the width factor (both it and the learning rate are
            multiplied by :func:`envelope_width_factor`).
        anneal_steps: :math:`T`.
    """

    challenger = True
    """In the estimator's race it must beat the other networks to go on, but they do not have to
    beat it: it rises fast early and can level off below a GNP network that would overtake it
    later (funnel pairs, d = 16, 4 funnels, seed 0: as a rival it stopped the GNP network
    early, -6.5 % of the true W1 against -3.7 % for the GNP network alone)."""

    LR_FACTOR = 3.0
    """The envelope trains with 3x the estimator's learning rate (its parameters are points and
    offsets in the scaled input space, which move by about ``lr`` per Adam step), times
    :func:`envelope_width_factor` of the input width: ``self.lr_factor``, which the fitting
    loop reads."""

    def __init__(self, members: int, in_features: int, scales: Sequence[float], cones: int = ENVELOPE_CONES,
                 temperature: float = ENVELOPE_TEMPERATURE, anneal_steps: int = ENVELOPE_ANNEAL_STEPS) -> None:
        super().__init__()
        if len(scales) != members:
            raise ValueError(f"scales must have {members} entries (one per member), got {len(scales)}")
        self.members, self.in_features, self.cones = members, in_features, cones
        width = envelope_width_factor(in_features)
        self.lr_factor = self.LR_FACTOR * width
        self.temperature0, self.anneal_steps = float(temperature) * width, int(anneal_steps)
        self.centers = nn.Parameter(torch.randn(members, cones, in_features))
        self.offsets = nn.Parameter(torch.zeros(members, cones))
        self.register_buffer("scale", torch.tensor([float(s) for s in scales]))
        self.register_buffer("sign", torch.ones(members))
        self.register_buffer("steps", torch.zeros(members))

    def warming(self, k: int) -> bool:
        """Whether member ``k`` is still annealing (temperature above 0): the estimator's race
        then judges it against its own best only, so it goes on while it keeps rising, even
        below a rival, and stops when it levels off. It starts near one cone at the mean and
        rises slowly while its soft minimum sharpens; judged against its rivals, a GNP network
        that led the first epochs stopped it on the 128-D, 64-funnel pair (samplers: -40.5 %
        with the GNP network selected; -6.3 % with this grace). Exempting it from stopping
        altogether until the annealing ends gave the same -6.3 %, but on finite data, where it
        levels off within about 8 epochs, it kept it training for 140 more epochs without a
        gain (8000 per side, 64-D, 64 funnels: -39.0 % in 732 s against -39.6 % in 96 s,
        ``benchmarks/w1_funnels.py``)."""
        return bool(self.steps[k] < self.anneal_steps)

    def temperature(self) -> Tensor:
        """The K members' current temperatures."""
        return self.temperature0 * (1 - self.steps / self.anneal_steps).clamp_min(0)

    @torch.no_grad()
    def place(self, k: int, lower: bool, centers: Tensor) -> None:
        """Member ``k``: a lower (or upper) envelope with its centers at ``centers`` ``(cones,
        *shape)`` (input coordinates), zero offsets, temperature back to :math:`\tau_0`."""
        self.centers[k].copy_(centers.reshape(self.cones, -1) / self.scale[k])
        self.offsets[k].zero_()
        self.sign[k] = 1.0 if lower else -1.0
        self.steps[k] = 0.0

    def forward(self, x: Tensor) -> Tensor:
        """``(B, *shape) -> (K, B)``."""
        if self.training:
            self.steps += 1
        s = self.scale.to(x.dtype)[:, None]
        h = x.reshape(x.shape[0], -1)[None] / s[..., None]
        f = cone_envelope(h, self.centers, self.offsets, self.temperature().to(x.dtype), self.sign.to(x.dtype),
                          exact=False)
        return s * f

    def member(self, k: int) -> ScaledCritic:
        """Critic ``k`` as a ``ScaledCritic`` over ``lipot.nn.Sequential(Flatten, ConeEnvelope)``
        (exact distances, the temperature of its current state)."""
        env = ConeEnvelope(self.in_features, self.cones, lower=bool(self.sign[k] > 0),
                           temperature=float(self.temperature()[k])).to(self.scale.device)
        with torch.no_grad():
            env.centers.copy_(self.centers[k])
            env.offsets.copy_(self.offsets[k])
        return ScaledCritic(Sequential(nn.Flatten(), env), float(self.scale[k])).eval()


def envelope_orientation(x: Tensor, y: Tensor) -> bool:
    r"""Whether a *lower* envelope (a minimum of cones, small on the second sample) suits the KR
    value :math:`\bar f_X - \bar f_Y` of the samples ``x`` and ``y`` ``(n, d)`` better than an
    upper one: the single cone at the second sample's mean, :math:`\lVert\cdot - \bar y\rVert`,
    against :math:`-\lVert\cdot - \bar x\rVert`. The lower envelope fits transport toward
    concentrated points of the second measure, the upper one toward those of the first."""
    mx, my = x.mean(0), y.mean(0)
    lower = (x - my).norm(dim=1).mean() - (y - my).norm(dim=1).mean()
    upper = (y - mx).norm(dim=1).mean() - (x - mx).norm(dim=1).mean()
    return bool(lower >= upper)


def envelope_start(points: Tensor, cones: int, gen: torch.Generator) -> Tensor:
    """Starting centers ``(cones, d)`` from the samples ``points`` ``(n, d)`` of the side the
    envelope wraps: every other center on a random sample (sharp clusters in low dimension), the
    rest near the samples' mean (mean + 0.1 standard deviation of noise per coordinate). In high
    dimension a center on a sample is far from every other sample and never becomes the closest
    cone; the centers near the mean spread out from there (funnel pairs, 64 funnels, fresh
    samples: -3.5 % / +1.8 % of the true W1 in 128-D / 2-D with this start, -3.0 % / -58.5 % with
    every center near the mean, -32.7 % / +1.8 % with every center on a sample: ``python
    benchmarks/w1_envelope_alone.py --dim D --funnels 64 --cones 1024 --temperature 0.3 --start
    mixed|mean|data``)."""
    n, d = points.shape
    noise = torch.randn(cones, d, generator=gen, dtype=points.dtype).to(points.device)
    centers = points.mean(0) + 0.1 * points.std(0, correction=0) * noise
    picks = torch.randint(0, n, ((cones + 1) // 2,), generator=gen).to(points.device)
    centers[::2] = points[picks]
    return centers


class SeparateCritics(nn.Module):
    """K critics :math:`g_k(x) = s_k f_k(x/s_k)` held as separate modules (any architecture),
    with the interface of :class:`StackedDenseCritic`: ``(B, *shape) -> (K, B)``."""

    def __init__(self, critics: Sequence[nn.Module], scales: Sequence[float]) -> None:
        super().__init__()
        self.members = len(critics)
        self.critics = nn.ModuleList(ScaledCritic(c, s) for c, s in zip(critics, scales))

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([c(x) for c in self.critics])

    def member(self, k: int) -> ScaledCritic:
        return copy.deepcopy(self.critics[k]).eval()

    def fold_state(self, k: int) -> dict[str, Tensor]:
        return {name: t.clone() for name, t in self.critics[k].state_dict().items()}

    def load_fold_state(self, k: int, state: dict[str, Tensor]) -> None:
        self.critics[k].load_state_dict(state)


def is_square_image(shape: tuple[int, ...]) -> bool:
    """``(C, H, H)`` with ``H`` divisible by 4: the inputs of :func:`lipot.models.conv_critic`."""
    return len(shape) == 3 and shape[1] == shape[2] and shape[1] % 4 == 0


def fold_critics(critic: nn.Module | None, shape: tuple[int, ...], scales: Sequence[float], seed: int,
                 hidden: Sequence[int] = models.DENSE_CRITIC_HIDDEN) -> nn.Module:
    """The K fold critics to train: stacked dense critics for vectors (the default), else
    K separate copies of ``critic`` (a user's module: the same initialization in every fold)
    or of the conv critic (seeded ``seed + k``)."""
    members = len(scales)
    if critic is None and not is_square_image(shape):
        torch.manual_seed(seed)
        return StackedDenseCritic(members, int(np.prod(shape)), scales, hidden)
    nets = []
    for k in range(members):
        torch.manual_seed(seed + k)
        nets.append(copy.deepcopy(critic) if critic is not None else models.conv_critic(shape[0], shape[1]))
    return SeparateCritics(nets, scales)
