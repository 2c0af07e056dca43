r"""The one weight-normalization code path shared by every lipot weight layer.

:class:`LipschitzWeight` is a :mod:`torch.nn.utils.parametrize` parametrization registered on
``weight``. It views the raw weight as a batch of matrices (one per convolution group, rows =
output channels), normalizes them with :mod:`lipot.linalg.normalizers`, and multiplies by
``k_coef_lip * coefficient`` (the convolution correction, 1 for dense layers):

* ``"bjorck"`` (Spectral* layers): the polar factor :math:`\mathrm{polar}(W) = W(W^\top W)^{-1/2}`,
  computed by spectral scaling (power iteration with a persistent vector) and Björck steps.
  In training mode the raw parameter is **replaced in place by its own polar factor** before
  use. This does not change the function the layer computes
  (:math:`\mathrm{polar}(\mathrm{polar}(W)) = \mathrm{polar}(W)`), but it keeps the raw weight
  orthonormal, so after an optimizer step two or three Björck steps restore orthonormality, and
  the backward pass is the exact 2-matmul derivative of the polar factor at an orthonormal point
  (:func:`lipot.linalg.normalizers.polar_tangent`) instead of back-propagation through every step.

  With ``update="retraction"`` (the default, :data:`DEFAULT_UPDATE`) training is
  Riemannian gradient descent on the orthonormal matrices: the gradient is the same tangent
  projection of the plain gradient (the polar factor's derivative at the orthonormal raw weight),
  and after each optimizer step a single Björck step
  (:func:`lipot.linalg.normalizers.bjorck_retract`, a retraction) brings the weight back instead
  of a projection to ``eps_bjorck``. A step of relative size :math:`\delta` leaves the singular
  values within about :math:`\tfrac32\delta^2` of 1 (below 1 always: the step maps every
  :math:`\sigma \le \sqrt3` into :math:`[0, 1]`). The number of steps is planned from an
  estimate of the spectrum's deviation to reach :data:`RETRACTION_TOL` times ``eps_bjorck``: one
  after an ordinary
  update, two or three after a large one (Adam on a loss that shrinks every output moved a 1024-wide
  weight's spectrum so far that one step per update let its smallest singular value fall to
  0.004), the full projection when the estimate is 1 or more. The
  two updates follow the same gradient,
  so Adam's moments are the same, and they differ at second order in the step size. The cost
  per step is two matrix products for the weight. Out of training the layer uses the projection
  of its raw weight to :data:`POLISH_TOL` (computed once per weight and cached; the raw weight is
  not written, so data-parallel ranks that evaluate on one rank only stay identical).

  Dense layers in training compute the tangent gradient from the batch
  (:func:`lipot.linalg.tangent_linear.tangent_linear`, through ``orthonormal_for_training``):
  two products of the batch's size instead of two of the weight's.
* ``"spectral"`` (``eps_bjorck=None``): division by a *verified* upper bound on the largest
  singular value (:func:`lipot.linalg.normalizers.spectral_normalize`).
* ``"frobenius"``: division by the Frobenius norm (per matrix, or per row with
  ``disjoint_neurons``).
* ``"aol"`` (AOL* layers): the closed-form almost-orthogonal rescaling of the input channels
  (:func:`lipot.linalg.normalizers.aol_normalize`), on the weight in its own shape (a kernel's
  self-correlation for convolutions).

Caching: when no gradient is needed (``torch.no_grad()``, or a frozen weight), the normalized
weight is computed once and reused until the raw weight changes. The cache key is the tensor's
version counter, storage pointer, device and dtype, so an optimizer step, ``load_state_dict``,
``.to(device)`` or any in-place change invalidates it, and switching ``train()``/``eval()``
clears it. Writes through ``param.data`` bypass PyTorch's version counter: the projection
still detects them (a content fingerprint), so an unprojected raw weight is never used, but a
cached no-grad weight (always a normalized one) may be served until ``module.train()`` or
``module.eval()`` is called.

Under ``torch.compile`` the layer uses a fixed number of Björck steps with autograd through them
and no in-place projection (no data-dependent control flow, no parameter mutation).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import _checks
from .._transforms import in_functorch_transform, is_compiling, is_static, is_transformed_tensor
from .cached import CachedWeight, full_precision
from ..linalg.normalizers import (
    DEFAULT_BETA_BJORCK,
    DEFAULT_EPS_BJORCK,
    DEFAULT_EPS_SPECTRAL,
    DEFAULT_MAXITER_BJORCK,
    DEFAULT_MAXITER_SPECTRAL,
    aol_normalize,
    bjorck_near_orthonormal,
    bjorck_orthonormalize,
    bjorck_retract,
    check_bjorck_beta,
    frobenius_normalize,
    polar_tangent,
    power_iteration,
    spectral_normalize,
)

__all__ = ["LipschitzWeight", "NormalizationConfig", "METHODS", "UPDATES", "DEFAULT_UPDATE", "RETRACTION_TOL",
           "POLISH_TOL", "check_weight_dtype"]

METHODS = ("bjorck", "spectral", "frobenius", "aol")
UPDATES = ("polar", "retraction")
DEFAULT_UPDATE = "retraction"
"""The update of Björck weights unless a layer sets one (:class:`NormalizationConfig`)."""
RETRACTION_TOL = 10.0
"""The ``"retraction"`` update plans its Björck steps in training for ``RETRACTION_TOL *
eps_bjorck`` (1e-2 by default): one step after an ordinary optimizer update (the singular values
then end within about 1e-3 of 1 with Adam at lr 1e-3), more after a large one. Planning for
``eps_bjorck`` itself took a second step after 22 of 59 updates of a 1024-wide layer (Adam, lr
1e-3, batch 256, random targets: the setup of ``benchmarks/test_dense_gnp_step.py``), for a
train step of 4.41x ``nn.Linear`` against 4.11x, in one 60-round interleaved timing."""
POLISH_TOL = 1e-4
"""Accuracy of the singular values of a ``"retraction"`` layer's weight out of training (or
``eps_bjorck`` if smaller): computed once per weight (cached), so tighter than the per-step
default."""
_LOW_PRECISION = (torch.float16, torch.bfloat16)

# Björck steps used under torch.compile (no convergence test is possible there).
COMPILED_BJORCK_STEPS = 12


def check_weight_dtype(dtype: torch.dtype) -> None:
    """lipot weights are float32 or float64: refuse half precision with what to do instead."""
    if dtype in _LOW_PRECISION:
        raise TypeError(
            f"lipot layers keep float32 or float64 weights, got {dtype}: the orthonormalization and "
            "its certificates are not reliable in half precision. Keep the model in float32 (do not "
            "pass dtype=torch.float16/bfloat16 or call .half() / .bfloat16()); for mixed precision, "
            "run the forward under torch.autocast"
        )


@dataclass(frozen=True)
class NormalizationConfig:
    """The settings of a weight normalization, validated once (one object per layer).

    ``eps_spectral`` / ``maxiter_spectral``: the power iteration (the spectral method's estimate,
    Björck's starting scale); ``eps_bjorck`` / ``maxiter_bjorck`` / ``beta_bjorck``: the Björck
    iteration; ``disjoint_neurons``: Frobenius only, normalize each row separately;
    ``update``: Björck only, how training keeps the weight orthonormal (module docstring):
    ``"polar"`` (the exact derivative of the polar factor, the raw weight projected to
    ``eps_bjorck`` at every step) or ``"retraction"`` (the same gradient, one Björck step after
    each optimizer step, the projection to :data:`POLISH_TOL` out of training).
    """

    eps_spectral: float = DEFAULT_EPS_SPECTRAL
    maxiter_spectral: int = DEFAULT_MAXITER_SPECTRAL
    eps_bjorck: float = DEFAULT_EPS_BJORCK
    maxiter_bjorck: int = DEFAULT_MAXITER_BJORCK
    beta_bjorck: float = DEFAULT_BETA_BJORCK
    disjoint_neurons: bool = False
    update: str = DEFAULT_UPDATE

    def __post_init__(self) -> None:
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {self.update!r}")
        _checks.positive_float("eps_spectral", self.eps_spectral)
        _checks.positive_int("maxiter_spectral", self.maxiter_spectral)
        _checks.positive_float("eps_bjorck", self.eps_bjorck)
        _checks.positive_int("maxiter_bjorck", self.maxiter_bjorck)
        check_bjorck_beta(self.beta_bjorck)


class LipschitzWeight(CachedWeight):
    """Parametrization ``raw weight -> k_coef_lip * coefficient * normalize(raw weight)``.

    ``LipschitzWeight(weight, method, ...)`` builds the parametrization of ``method`` (a subclass:
    Björck, spectral, Frobenius or AOL); they share the matrix view, the scale, the
    power-iteration buffer ``u``, the precision checks and the eval cache.

    Args:
        weight: the raw weight (used for its shape, dtype and device).
        method: ``"bjorck"``, ``"spectral"``, ``"frobenius"`` or ``"aol"``.
        groups: number of independent matrices (convolution groups).
        coefficient: extra factor (convolution correction); the layer is
            ``k_coef_lip``-Lipschitz when ``coefficient`` times the normalized matrix norm bounds
            the operator norm by 1.
        k_coef_lip: Lipschitz factor.
        **settings: the fields of :class:`NormalizationConfig`.

    Example:
        >>> lin = torch.nn.Linear(6, 4)
        >>> param = lipot.LipschitzWeight(lin.weight, "bjorck")
        >>> torch.nn.utils.parametrize.register_parametrization(lin, "weight", param)
        ParametrizedLinear(...)
        >>> s = torch.linalg.svdvals(lin.weight.detach())
        >>> bool(((s - 1).abs() <= 1e-3).all())           # all 1, to the default eps_bjorck
        True
    """

    method: str = ""
    _by_method: dict[str, type["LipschitzWeight"]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.method:
            LipschitzWeight._by_method[cls.method] = cls

    def __new__(cls, *args, **kwargs):
        if cls is LipschitzWeight:  # dispatch on the method (copies and unpickling pass no args)
            method = args[1] if len(args) > 1 else kwargs.get("method")
            if method not in METHODS:
                raise ValueError(f"method must be one of {METHODS}, got {method!r}")
            cls = LipschitzWeight._by_method[method]
        return super().__new__(cls)

    def __init__(self, weight: Tensor, method: str, groups: int = 1, coefficient: float = 1.0,
                 k_coef_lip: float = 1.0, **settings) -> None:
        super().__init__()
        self.config = NormalizationConfig(**settings)
        self.groups = _checks.positive_int("groups", groups)
        self.coefficient = _checks.positive_float("coefficient", coefficient)
        self.k_coef_lip = _checks.positive_float("k_coef_lip", k_coef_lip)
        if weight.shape[0] % self.groups:
            raise ValueError(
                f"groups={groups} must divide the weight's first dimension {weight.shape[0]}"
            )
        u = torch.randn(self.groups, weight[0].numel(), device=weight.device, dtype=weight.dtype)
        self.register_buffer("u", u / u.norm(dim=1, keepdim=True))
        self._cache: tuple[tuple, Tensor] | None = None

    def extra_repr(self) -> str:
        return f"method={self.method!r}, groups={self.groups}, scale={self.scale:.6g}"

    def _check_u(self) -> None:
        """The power-iteration vector must be finite and non-zero (a corrupted state_dict, or a
        write through ``.data``, could break it): a clear error instead of a NaN weight."""
        if is_static(self.u) or in_functorch_transform():
            return
        norms = self.u.norm(dim=1)
        if not bool((torch.isfinite(norms) & (norms > 0)).all()):
            raise ValueError(
                "the power-iteration buffer 'u' of this layer's weight parametrization contains "
                "NaN, Inf or a zero vector (a corrupted state_dict?); the weight itself may be "
                "fine. Load a valid state_dict, or reset the buffer: "
                "lipot.nn.weight_layer.lipschitz_weight(layer).u.normal_()"
            )

    def _updates_state(self) -> bool:
        """Training mode outside ``torch.func`` transforms (inside one the layer is a pure
        function: same output, no buffer written)."""
        return self.training and not in_functorch_transform()

    def _matrix(self, x: Tensor) -> Tensor:
        return x.reshape(self.groups, x.shape[0] // self.groups, -1)

    def _normalized(self, x: Tensor, projected: bool | None = None) -> Tensor:
        """The normalized matrices (without the scale), differentiable w.r.t. ``x``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        with full_precision(x):
            check_weight_dtype(x.dtype)
            return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        if self._needs_graph(x):
            return self._compute(x)
        return self._cached(x)

    def _compute(self, x: Tensor, projected: bool | None = None) -> Tensor:
        return self._scaled(self._normalized(x, projected)).reshape(x.shape)

    def right_inverse(self, w: Tensor) -> Tensor:
        """Assigning ``layer.weight = W`` stores ``W / scale`` as the raw weight."""
        return w / self.scale


class _SpectralWeight(LipschitzWeight):
    """Division by a verified upper bound of the largest singular value
    (:func:`lipot.linalg.normalizers.spectral_normalize`), the power-iteration vector kept in ``u``."""

    method = "spectral"

    def _normalized(self, x: Tensor, projected: bool | None = None) -> Tensor:
        self._check_u()
        u = self.u if self.training else self.u.clone()
        out, u_new, _ = spectral_normalize(self._matrix(x), u, self.config.eps_spectral,
                                           self.config.maxiter_spectral)
        if self._updates_state():
            with torch.no_grad():
                self.u.copy_(u_new)
        return out


class _FrobeniusWeight(LipschitzWeight):
    """Division by the Frobenius norm (per matrix, or per row with ``disjoint_neurons``)."""

    method = "frobenius"

    def _normalized(self, x: Tensor, projected: bool | None = None) -> Tensor:
        return frobenius_normalize(self._matrix(x), self.config.disjoint_neurons)


class _AOLWeight(LipschitzWeight):
    """The almost-orthogonal rescaling on the weight in its own shape
    (:func:`lipot.linalg.normalizers.aol_normalize`)."""

    method = "aol"

    def _normalized(self, x: Tensor, projected: bool | None = None) -> Tensor:
        return aol_normalize(x, self.groups)


class _BjorckWeight(LipschitzWeight):
    """The polar factor by spectral scaling and Björck steps, the raw weight re-projected in place
    in training mode and the exact polar derivative in the backward pass (module docstring)."""

    method = "bjorck"
    _polished = True  # (class default: objects unpickled from before the "retraction" update)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._projected: tuple[int, int, Tensor] | None = None
        self._polished = True  # the projected raw weight is orthonormal to eps_bjorck

    def _prescale(self, m: Tensor, warm: bool = False) -> Tensor:
        """Divisor putting the spectrum near 1: max(RMS singular value, sigma_est / 1.6), or
        the RMS singular value alone when ``warm`` (the matrix is an orthonormal one plus one
        optimizer update too large for :func:`lipot.linalg.normalizers.bjorck_near_orthonormal`: its
        spectrum is still clustered around the RMS value, and the power iteration would cost
        more, in small operations, than the Björck steps it saves).

        A constant for autograd (the polar factor is scale invariant); soundness does not depend
        on it, since :func:`bjorck_orthonormalize` certifies its own starting spectrum.
        """
        with torch.no_grad():
            rank = min(m.shape[-2], m.shape[-1])
            rms = m.detach().flatten(-2).norm(dim=-1) / math.sqrt(rank)
            if warm:
                return rms.clamp_min(torch.finfo(m.dtype).tiny)
            self._check_u()
            sigma, u = power_iteration(m.detach(), self.u, self.config.eps_spectral, self.config.maxiter_spectral)
            if self._updates_state():
                self.u.copy_(u)
            return torch.maximum(rms, sigma / 1.6).clamp_min(torch.finfo(m.dtype).tiny)

    def _orthonormalize(self, m: Tensor, fixed_iterations: int | None = None, warm: bool = False,
                        polish: bool = False) -> Tensor:
        """The polar factor of ``m`` to ``eps_bjorck``, or to :meth:`_polish_tol` with steps
        planned from the Frobenius bound at any width when ``polish`` (guaranteed accuracy)."""
        tol = self._polish_tol() if polish else self.config.eps_bjorck
        if fixed_iterations is None:  # near orthonormal: no rescaling, no test between steps
            wide = {"max_width": None} if polish else {}
            near = bjorck_near_orthonormal(m, tol, self.config.maxiter_bjorck, **wide)
            if near is not None:
                return near[0]
        q, steps, converged = bjorck_orthonormalize(
            m / self._prescale(m, warm and not polish)[:, None, None],
            tol=tol,
            maxiter=self.config.maxiter_bjorck,
            beta=self.config.beta_bjorck,
            fixed_iterations=fixed_iterations,
            return_info=True,
        )
        if fixed_iterations is None and not converged:
            warnings.warn(
                f"Björck orthonormalization did not reach {tol:g} (eps_bjorck={self.config.eps_bjorck:g}) in "
                f"maxiter_bjorck={self.config.maxiter_bjorck} steps (ill-conditioned raw weight, e.g. "
                "loaded from elsewhere): the layer is still Lipschitz-bounded but not yet "
                "gradient-norm preserving. Training steps finish the job (the raw weight is "
                "re-projected each step); otherwise raise maxiter_bjorck.",
                UserWarning,
                stacklevel=2,
            )
        return q

    def _normalized(self, x: Tensor, projected: bool | None = None) -> Tensor:
        """``projected``: whether ``x`` is known to be its own polar factor (checked if None)."""
        m = self._matrix(x)
        if is_static(m):
            return self._orthonormalize(m, fixed_iterations=COMPILED_BJORCK_STEPS)
        if projected if projected is not None else self._is_projected(x):
            if not self.training and not self._polished:  # a retraction's output: polished copy
                return self._orthonormalize(m, polish=True)
            return polar_tangent(m)
        return self._orthonormalize(m, polish=self.config.update == "retraction")

    def _is_projected(self, x: Tensor) -> bool:
        """Whether ``x`` is still the output of this module's last projection.

        The version counter and storage catch optimizer steps, ``load_state_dict``, ``.to()``
        and in-place writes; a content fingerprint (one reduction) also catches writes through
        ``x.data``, which bypass the version counter and would otherwise let a non-orthonormal
        raw weight be used as is.
        """
        projected = self._projected
        if projected is None or is_transformed_tensor(x) or projected[:2] != (x._version, x.data_ptr()):
            return False
        return bool(torch.equal(x.detach().sum(), projected[2]))

    def _project(self, x: Tensor) -> bool:
        """Replace the raw weight by its polar factor (same function, orthonormal raw weight).
        Returns whether ``x`` is now projected (not for a non-leaf tensor)."""
        if not x.is_leaf:
            return False
        if self._is_projected(x):
            return True
        with torch.no_grad():
            q, self._polished = self._projection(x)
            x.copy_(q)
            self._projected = (x._version, x.data_ptr(), x.sum())
        return True

    def _projection(self, x: Tensor) -> tuple[Tensor, bool]:
        """The value the training-mode projection gives ``x`` (in ``x``'s shape), and whether it
        is polished (orthonormal to the full accuracy). ``"polar"``: the projection to
        ``eps_bjorck``. ``"retraction"``: the :func:`bjorck_retract` steps planned to reach
        :data:`RETRACTION_TOL` times ``eps_bjorck`` from the estimated deviation of the spectrum (one after an ordinary
        update; the same rule for a weight projected before its last optimizer step and for a
        checkpoint of one, so a resumed run steps exactly as the uninterrupted one), and the
        projection to :meth:`_polish_tol` for a matrix whose spectrum is not certified or too
        far (an arbitrary weight loaded or assigned)."""
        # same storage as the last projection: an orthonormal matrix plus an in-place update
        warm = self._projected is not None and self._projected[1] == x.data_ptr()
        m = self._matrix(x)
        if self.config.update == "retraction":
            step = bjorck_retract(m, RETRACTION_TOL * self.config.eps_bjorck, self.config.maxiter_bjorck)
            if step is None:
                return self._orthonormalize(m, polish=True).reshape(x.shape), True
            q, far = step
            if far is not None:  # per matrix (stacked members stay independent)
                q = torch.where(far[:, None, None], self._orthonormalize(m, polish=True), q)
            return q.reshape(x.shape), False
        return self._orthonormalize(m, warm=warm).reshape(x.shape), True

    def _polish_tol(self) -> float:
        """:data:`POLISH_TOL`, or ``eps_bjorck`` if smaller."""
        return min(self.config.eps_bjorck, POLISH_TOL)

    def orthonormal_for_training(self, x: Tensor) -> Tensor | None:
        """For a caller that writes its own backward through this normalization (the
        orthogonal-kernel composition): in eager training mode with a gradient, project ``x``
        in place exactly as :meth:`forward` does and return its ``(groups, m, n)`` matrix view,
        now orthonormal to the Björck tolerance, so that the backward pass through the polar
        factor is :func:`lipot.linalg.normalizers.polar_tangent_vjp` at that view (the scale is left
        to the caller). ``None`` in every other case (evaluation, no gradient,
        ``torch.compile``, ``torch.func`` transforms, a non-leaf ``x``): call the module.
        """
        if not (self.training and torch.is_grad_enabled() and x.requires_grad):
            return None
        if is_compiling() or in_functorch_transform() or is_transformed_tensor(x):
            return None
        with full_precision(x):
            check_weight_dtype(x.dtype)
            if not self._project(x):
                return None
        return self._matrix(x)

    def _virtual_projection(self, x: Tensor) -> tuple[Tensor, bool | None]:
        """Inside a ``torch.func`` transform: the training-mode projection without writing
        anything. Returns ``x + (q - x).detach()`` (the value :meth:`_project` would store, with
        the gradient it would receive), so outputs and derivatives equal those of an ordinary
        training-mode forward. Parameters substituted by the transform (``functional_call``)
        have no projection state and take the differentiable Björck path."""
        if is_transformed_tensor(x) or not x.is_leaf:
            return x, None
        if self._is_projected(x):
            return x, True
        with torch.no_grad():
            q, _ = self._projection(x)
        return x + (q - x).detach(), True

    def _forward(self, x: Tensor) -> Tensor:
        projected = None
        if self.training and not is_compiling():
            if in_functorch_transform():
                return self._compute(*self._virtual_projection(x))
            projected = self._project(x)
        if self._needs_graph(x):
            return self._compute(x, projected)
        return self._cached(x)

    def __getstate__(self):
        state = super().__getstate__()
        state["_projected"] = None
        state["_polished"] = True  # a copy has no projection: it is orthonormalized from scratch
        return state
