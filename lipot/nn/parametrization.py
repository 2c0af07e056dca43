r"""The one weight-normalization code path shared by every lipot weight layer.

:class:`LipschitzWeight` is a :mod:`torch.nn.utils.parametrize` parametrization registered on
``weight``. It views the raw weight as a batch of matrices (one per convolution group, rows =
output channels), normalizes them with :mod:`lipot.normalizers`, and multiplies by
``k_coef_lip * coefficient`` (the convolution correction, 1 for dense layers):

* ``"bjorck"`` (Spectral* layers): the polar factor :math:`\mathrm{polar}(W) = W(W^\top W)^{-1/2}`,
  computed by spectral scaling (power iteration with a persistent vector) and Björck steps.
  In training mode the raw parameter is **replaced in place by its own polar factor** before
  use. This does not change the function the layer computes
  (:math:`\mathrm{polar}(\mathrm{polar}(W)) = \mathrm{polar}(W)`), but it keeps the raw weight
  orthonormal, so after an optimizer step two or three Björck steps restore orthonormality, and
  the backward pass is the exact 2-matmul derivative of the polar factor at an orthonormal point
  (:func:`lipot.normalizers.polar_tangent`) instead of back-propagation through every step.
* ``"spectral"`` (``eps_bjorck=None``): division by a *verified* upper bound on the largest
  singular value (:func:`lipot.normalizers.spectral_normalize`).
* ``"frobenius"``: division by the Frobenius norm (per matrix, or per row with
  ``disjoint_neurons``).
* ``"aol"`` (AOL* layers): the closed-form almost-orthogonal rescaling of the input channels
  (:func:`lipot.normalizers.aol_normalize`), on the weight in its own shape (a kernel's
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

import contextlib
import math
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .. import _checks
from .._transforms import in_functorch_transform, is_compiling, is_transformed_tensor
from .base import LipschitzModule
from ..normalizers import (
    DEFAULT_BETA_BJORCK,
    DEFAULT_EPS_BJORCK,
    DEFAULT_EPS_SPECTRAL,
    DEFAULT_MAXITER_BJORCK,
    DEFAULT_MAXITER_SPECTRAL,
    _static,
    aol_normalize,
    bjorck_orthonormalize,
    check_bjorck_beta,
    frobenius_normalize,
    polar_tangent,
    power_iteration,
    spectral_normalize,
)

METHODS = ("bjorck", "spectral", "frobenius", "aol")
_LOW_PRECISION = (torch.float16, torch.bfloat16)

# Björck steps used under torch.compile (no convergence test is possible there).
COMPILED_BJORCK_STEPS = 12


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def _full_precision(weight: Tensor):
    """A context that turns torch.autocast off while a weight is normalized: under autocast the
    Björck and power-iteration products would run in float16/bfloat16 and the weight's spectral
    norm could exceed its bound (1.002 measured for a 64x64 layer under CPU bfloat16). The layer's
    own product with its input still runs under autocast."""
    device_type = weight.device.type
    if device_type in ("cpu", "cuda") and _autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


class CachedWeight(nn.Module):
    """Base of lipot's weight parametrizations: ``raw -> k_coef_lip * coefficient * f(raw)``
    with the no-grad cache described in the module docstring.

    Subclasses set ``k_coef_lip`` and ``coefficient`` and implement :meth:`_compute` (the
    weight, differentiable w.r.t. ``raw``); ``forward`` serves the cache when no gradient is
    needed.
    """

    k_coef_lip: float
    coefficient: float
    _cache: tuple[tuple, Tensor] | None = None

    @property
    def scale(self) -> float:
        """The factor ``k_coef_lip * coefficient`` applied after normalization."""
        return self.k_coef_lip * self.coefficient

    def _scaled(self, w: Tensor) -> Tensor:
        return w if self.scale == 1.0 else self.scale * w

    def _compute(self, raw: Tensor) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def _needs_graph(raw: Tensor) -> bool:
        return is_compiling() or (torch.is_grad_enabled() and raw.requires_grad) or is_transformed_tensor(raw)

    def forward(self, raw: Tensor) -> Tensor:
        with _full_precision(raw):
            if self._needs_graph(raw):
                return self._compute(raw)
            return self._cached(raw)

    def _cache_key(self, x: Tensor) -> tuple:
        # (coefficient is fixed at construction; k_coef_lip can change)
        return (x._version, x.data_ptr(), x.dtype, x.device, self.k_coef_lip, self.training)

    def _cache_hit(self, x: Tensor) -> Tensor | None:
        cache = self._cache
        if cache is None or cache[0] != self._cache_key(x):
            return None
        return cache[1]

    def _cached(self, x: Tensor) -> Tensor:
        hit = self._cache_hit(x)
        if hit is not None:
            return hit
        with torch.no_grad():
            w = self._compute(x)
        self._cache = (self._cache_key(x), w)
        return w

    def cached_weight(self, x: Tensor) -> Tensor | None:
        """The cached weight for raw weight ``x`` if it is valid and no gradient is needed
        (the fast path of the layers' forward), else ``None``. The cache only ever holds a
        normalized weight, so a hit is always within the bound."""
        if self._needs_graph(x):
            return None
        return self._cache_hit(x)

    def train(self, mode: bool = True) -> "CachedWeight":
        self._cache = None
        return super().train(mode)

    def __getstate__(self):
        state = super().__getstate__().copy()
        state["_cache"] = None
        return state


class LipschitzWeight(CachedWeight):
    """Parametrization ``raw weight -> k_coef_lip * coefficient * normalize(raw weight)``.

    Args:
        weight: the raw weight (used for its shape, dtype and device).
        method: ``"bjorck"``, ``"spectral"``, ``"frobenius"`` or ``"aol"``.
        groups: number of independent matrices (convolution groups).
        coefficient: extra factor (convolution correction); the layer is
            ``k_coef_lip``-Lipschitz when ``coefficient`` times the normalized matrix norm bounds
            the operator norm by 1.
        k_coef_lip: Lipschitz factor.
        disjoint_neurons: Frobenius only: normalize each row separately.
    """

    def __init__(
        self,
        weight: Tensor,
        method: str,
        groups: int = 1,
        coefficient: float = 1.0,
        k_coef_lip: float = 1.0,
        eps_spectral: float = DEFAULT_EPS_SPECTRAL,
        maxiter_spectral: int = DEFAULT_MAXITER_SPECTRAL,
        eps_bjorck: float = DEFAULT_EPS_BJORCK,
        maxiter_bjorck: int = DEFAULT_MAXITER_BJORCK,
        beta_bjorck: float = DEFAULT_BETA_BJORCK,
        disjoint_neurons: bool = False,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.groups = _checks.positive_int("groups", groups)
        self.coefficient = _checks.positive_float("coefficient", coefficient)
        self.k_coef_lip = _checks.positive_float("k_coef_lip", k_coef_lip)
        self.eps_spectral = _checks.positive_float("eps_spectral", eps_spectral)
        self.maxiter_spectral = _checks.positive_int("maxiter_spectral", maxiter_spectral)
        self.eps_bjorck = _checks.positive_float("eps_bjorck", eps_bjorck)
        self.maxiter_bjorck = _checks.positive_int("maxiter_bjorck", maxiter_bjorck)
        self.beta_bjorck = check_bjorck_beta(beta_bjorck)
        self.disjoint_neurons = bool(disjoint_neurons)
        if weight.shape[0] % self.groups:
            raise ValueError(
                f"groups={groups} must divide the weight's first dimension {weight.shape[0]}"
            )
        cols = weight[0].numel()
        u = torch.randn(self.groups, cols, device=weight.device, dtype=weight.dtype)
        self.register_buffer("u", u / u.norm(dim=1, keepdim=True))
        self._cache: tuple[tuple, Tensor] | None = None
        self._projected: tuple[int, int, Tensor] | None = None

    def extra_repr(self) -> str:
        return f"method={self.method!r}, groups={self.groups}, scale={self.scale:.6g}"

    def _check_u(self) -> None:
        """The power-iteration vector must be finite and non-zero (a corrupted state_dict, or a
        write through ``.data``, could break it): a clear error instead of a NaN weight."""
        if _static(self.u) or in_functorch_transform():
            return
        norms = self.u.norm(dim=1)
        if not bool((torch.isfinite(norms) & (norms > 0)).all()):
            raise ValueError(
                "the power-iteration buffer 'u' of this layer's weight parametrization contains "
                "NaN, Inf or a zero vector (a corrupted state_dict?); the weight itself may be "
                "fine. Load a valid state_dict, or reset the buffer: "
                "lipot.nn.parametrization.lipschitz_weight(layer).u.normal_()"
            )

    def _updates_state(self) -> bool:
        """Training mode outside ``torch.func`` transforms (inside one the layer is a pure
        function: same output, no buffer written)."""
        return self.training and not in_functorch_transform()

    # ---- views ---------------------------------------------------------------------------

    def _matrix(self, x: Tensor) -> Tensor:
        return x.reshape(self.groups, x.shape[0] // self.groups, -1)

    # ---- normalization --------------------------------------------------------------------

    def _prescale(self, m: Tensor, warm: bool = False) -> Tensor:
        """Divisor putting the spectrum near 1: max(RMS singular value, sigma_est / 1.6), or
        the RMS singular value alone when ``warm`` (the matrix is an orthonormal one plus one
        optimizer update: its spectrum is already clustered around the RMS value, and the power
        iteration would cost more, in small operations, than the Björck steps it saves).

        A constant for autograd (the polar factor is scale invariant); soundness does not depend
        on it, since :func:`bjorck_orthonormalize` certifies its own starting spectrum.
        """
        with torch.no_grad():
            rank = min(m.shape[-2], m.shape[-1])
            rms = m.detach().flatten(-2).norm(dim=-1) / math.sqrt(rank)
            if warm:
                return rms.clamp_min(torch.finfo(m.dtype).tiny)
            self._check_u()
            sigma, u = power_iteration(m.detach(), self.u, self.eps_spectral, self.maxiter_spectral)
            if self._updates_state():
                self.u.copy_(u)
            return torch.maximum(rms, sigma / 1.6).clamp_min(torch.finfo(m.dtype).tiny)

    def _orthonormalize(self, m: Tensor, fixed_iterations: int | None = None, warm: bool = False) -> Tensor:
        q, steps, converged = bjorck_orthonormalize(
            m / self._prescale(m, warm)[:, None, None],
            eps=self.eps_bjorck,
            maxiter=self.maxiter_bjorck,
            beta=self.beta_bjorck,
            fixed_iterations=fixed_iterations,
            return_info=True,
        )
        if fixed_iterations is None and not converged:
            warnings.warn(
                f"Björck orthonormalization did not reach eps_bjorck={self.eps_bjorck:g} in "
                f"maxiter_bjorck={self.maxiter_bjorck} steps (ill-conditioned raw weight, e.g. "
                "loaded from elsewhere): the layer is still Lipschitz-bounded but not yet "
                "gradient-norm preserving. Training steps finish the job (the raw weight is "
                "re-projected each step); otherwise raise maxiter_bjorck.",
                UserWarning,
                stacklevel=2,
            )
        return q

    def _normalized(self, x: Tensor, projected: bool | None = None) -> Tensor:
        """The normalized matrices (without the scale), differentiable w.r.t. ``x``
        (``projected``: whether ``x`` is known to be its own polar factor; checked if None)."""
        if self.method == "aol":
            return aol_normalize(x, self.groups)
        m = self._matrix(x)
        if self.method == "frobenius":
            return frobenius_normalize(m, self.disjoint_neurons)
        if self.method == "spectral":
            self._check_u()
            u = self.u if self.training else self.u.clone()
            out, u_new, _ = spectral_normalize(m, u, self.eps_spectral, self.maxiter_spectral)
            if self._updates_state():
                with torch.no_grad():
                    self.u.copy_(u_new)
            return out
        if _static(m):
            return self._orthonormalize(m, fixed_iterations=COMPILED_BJORCK_STEPS)
        if projected if projected is not None else self._is_projected(x):
            return polar_tangent(m)
        return self._orthonormalize(m)

    # ---- projection of the raw parameter (Björck, training mode) --------------------------

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
        # same storage as the last projection: an orthonormal matrix plus an in-place update
        warm = self._projected is not None and self._projected[1] == x.data_ptr()
        with torch.no_grad():
            q = self._orthonormalize(self._matrix(x), warm=warm)
            x.copy_(q.reshape(x.shape))
            self._projected = (x._version, x.data_ptr(), x.sum())
        return True

    # ---- forward ---------------------------------------------------------------------------

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
        warm = self._projected is not None and self._projected[1] == x.data_ptr()
        with torch.no_grad():
            q = self._orthonormalize(self._matrix(x), warm=warm).reshape(x.shape)
        return x + (q - x).detach(), True

    def forward(self, x: Tensor) -> Tensor:
        with _full_precision(x):
            return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        if x.dtype in _LOW_PRECISION:
            raise TypeError(
                f"lipot layers keep float32 or float64 weights, got a {x.dtype} weight: the "
                "orthonormalization and its certificates are not reliable in half precision. Keep "
                "the model in float32 (do not call .half() / .bfloat16() on it); for mixed "
                "precision, run the forward under torch.autocast"
            )
        projected = None
        if self.method == "bjorck" and self.training and not is_compiling():
            if in_functorch_transform():
                return self._compute(*self._virtual_projection(x))
            else:
                projected = self._project(x)
        if self._needs_graph(x):
            return self._compute(x, projected)
        return self._cached(x)

    def _compute(self, x: Tensor, projected: bool | None = None) -> Tensor:
        return self._scaled(self._normalized(x, projected)).reshape(x.shape)

    def right_inverse(self, w: Tensor) -> Tensor:
        """Assigning ``layer.weight = W`` stores ``W / scale`` as the raw weight."""
        return w / self.scale

    def __getstate__(self):
        state = super().__getstate__()
        state["_projected"] = None
        return state


def spectral_weight_kwargs(
    eps_spectral: float,
    eps_bjorck: float | None,
    maxiter_spectral: int,
    maxiter_bjorck: int,
    beta_bjorck: float,
) -> dict:
    """LipschitzWeight arguments of the Spectral* layers (``eps_bjorck=None``: spectral only)."""
    return dict(
        method="spectral" if eps_bjorck is None else "bjorck",
        eps_spectral=eps_spectral,
        maxiter_spectral=maxiter_spectral,
        eps_bjorck=DEFAULT_EPS_BJORCK if eps_bjorck is None else eps_bjorck,
        maxiter_bjorck=maxiter_bjorck,
        beta_bjorck=beta_bjorck,
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

    def _copy_into(self, plain: nn.Module) -> nn.Module:
        """Copy the effective weight and bias into a plain torch layer of the same shape."""
        with torch.no_grad():
            plain.weight.copy_(self.weight)
            if self.bias is not None:
                plain.bias.copy_(self.bias)
        return plain
