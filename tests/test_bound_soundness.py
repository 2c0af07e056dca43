"""Every bound lipot returns is at least a *measured* Lipschitz constant, for random configurations
of every module ``lipschitz_bound`` and ``nominal_lipschitz`` accept.

The measurement is independent of the code under test: in float64, the largest of

* unit impulses at every input position, around 0 and around a random point (exact for max
  pooling: an impulse in the pixel read by the most windows);
* random difference quotients :math:`\\lVert f(x) - f(y)\\rVert / \\lVert x - y\\rVert`, far and near;
* the local Jacobian norm at random points, by power iteration on :math:`J^\\top J` through
  ``torch.func`` (jvp then vjp).

Each is a lower bound of the true constant; the bound under test must not be below any of them.
Configurations are drawn by hypothesis over every argument form torch accepts (int and tuple
kernels, strides, paddings, dilation, ``ceil_mode``, 1-D/2-D/3-D, batched and unbatched sample
shapes). The default run draws a few hundred; ``-m slow`` draws ten times as many.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from torch import nn

import lipot.nn as L
from lipot.certify import lipschitz_bound
from lipot.nn import nominal_lipschitz

TOL = 1e-6
# the settings lipot refuses to bound, each with a ValueError that names it
REFUSALS = ("not the adjoint of its forward", "read only padding", "has a negative amount")


# ----------------------------------------------------------------------------- the measurement


def _impulses(f, shape, base, scale, chunk=512):
    n = math.prod(shape)
    best = 0.0
    with torch.no_grad():
        f0 = f(base[None])
        for start in range(0, n, chunk):
            idx = torch.arange(start, min(n, start + chunk))
            x = base.reshape(1, -1).repeat(len(idx), 1)
            x[torch.arange(len(idx)), idx] += scale
            diff = f(x.reshape(len(idx), *shape)) - f0
            best = max(best, float(diff.reshape(len(idx), -1).norm(dim=1).max()) / scale)
    return best


def _quotients(f, shape, gen, pairs=16):
    x = torch.randn(pairs, *shape, generator=gen, dtype=torch.float64)
    best = 0.0
    for step in (1.0, 1e-4):
        v = torch.randn(pairs, *shape, generator=gen, dtype=torch.float64) * step
        with torch.no_grad():
            num = (f(x + v) - f(x)).reshape(pairs, -1).norm(dim=1)
        best = max(best, float((num / v.reshape(pairs, -1).norm(dim=1)).max()))
    return best


def _power_iteration(f, shape, gen, points=2, steps=30):
    best = 0.0

    def one(z):
        return f(z[None])[0]

    for _ in range(points):
        x = torch.randn(*shape, generator=gen, dtype=torch.float64)
        v = torch.randn(*shape, generator=gen, dtype=torch.float64)
        for _ in range(steps):
            v = v / v.norm()
            _, jv = torch.func.jvp(one, (x,), (v,))
            best = max(best, float(jv.detach().norm()))
            _, pullback = torch.func.vjp(one, x)
            (v,) = pullback(jv)
            if float(v.detach().norm()) == 0:
                break
    return best


def measured_lipschitz(module: nn.Module, shape: tuple[int, ...], seed: int = 0) -> float:
    """Largest lower estimate of the l2 Lipschitz constant of ``module`` (eval mode, float64) on
    one sample of ``shape``: the module is called on a batch ``(B, *shape)``."""
    module = module.double().eval()
    gen = torch.Generator().manual_seed(seed)
    # StackedSpectralLinear puts its members first: (K, B, out)
    f = (lambda x: module(x).transpose(0, 1)) if isinstance(module, L.StackedSpectralLinear) else module
    base = torch.randn(*shape, generator=gen, dtype=torch.float64)
    return max(
        _impulses(f, shape, torch.zeros(shape, dtype=torch.float64), 1.0),
        _impulses(f, shape, base, 1e-3),
        _quotients(f, shape, gen),
        _power_iteration(f, shape, gen),
    )


def assert_sound(module: nn.Module, shape: tuple[int, ...], nominal: bool = True) -> None:
    """``lipschitz_bound`` (and ``nominal_lipschitz``, valid for every size) >= the measurement."""
    module = module.double().eval()
    try:
        with torch.no_grad():
            empty = module(torch.zeros(1, *shape, dtype=torch.float64)).numel() == 0
    except (RuntimeError, ValueError, IndexError):  # torch (or lipot) refuses this input size
        reject()
    try:
        bound = lipschitz_bound(nn.Sequential(module), shape)
    except ValueError as refusal:  # a documented refusal is allowed, never a smaller number
        assert any(reason in str(refusal) for reason in REFUSALS), str(refusal)
        return
    if empty:  # a map into an empty output is 0-Lipschitz (torch's backward refuses empty outputs)
        assert bound >= 0.0
        return
    measured = measured_lipschitz(module, shape)
    assert measured <= bound * (1 + TOL) + 1e-12, f"{module} on {shape}: bound {bound} < measured {measured}"
    if nominal:
        claim = nominal_lipschitz(module)
        assert measured <= claim * (1 + TOL) + 1e-12, f"{module}: nominal {claim} < measured {measured}"


SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def both_runs(strategy, default: int):
    """A default test with ``default`` examples and a ``slow`` one with ten times as many. Each
    inner function gets its own name: hypothesis derives the derandomized seed from it."""
    def wrap(check):
        def fast(case):
            check(case)

        def slow(case):
            check(case)

        fast.__name__ = fast.__qualname__ = f"{check.__name__}_fast"
        slow.__name__ = slow.__qualname__ = f"{check.__name__}_slow"
        fast = settings(max_examples=default, **SETTINGS)(given(case=strategy)(fast))
        slow = pytest.mark.slow(settings(max_examples=10 * default, **SETTINGS)(given(case=strategy)(slow)))
        return fast, slow
    return wrap


# ----------------------------------------------------------------------------- argument forms


def _arg(draw, values, n, allow_none=False):
    """An int, or a tuple of ``n`` ints (sometimes a 1-tuple where torch broadcasts it)."""
    form = draw(st.sampled_from(["int", "tuple"] + (["none"] if allow_none else [])))
    if form == "none":
        return None
    if form == "int":
        return draw(values)
    return tuple(draw(values) for _ in range(n))


def _sample_shape(draw, n, lo=1, hi=8, channels_needed=False):
    spatial = tuple(draw(st.integers(lo, hi)) for _ in range(n))
    unbatched = not channels_needed and draw(st.booleans())
    return spatial if unbatched else (draw(st.integers(1, 2)), *spatial)


@st.composite
def max_pools(draw):
    n = draw(st.integers(1, 3))
    adaptive = draw(st.booleans())
    hi = {1: 14, 2: 9, 3: 5}[n]
    shape = _sample_shape(draw, n, 1, hi)
    if adaptive:
        cls = (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[n - 1]
        return cls(_arg(draw, st.integers(1, hi), n)), shape
    cls = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[n - 1]
    kernel = _arg(draw, st.integers(1, 4), n)
    ks = kernel if isinstance(kernel, tuple) else (kernel,) * n
    padding = draw(st.integers(0, min(ks) // 2)) if draw(st.booleans()) else \
        tuple(draw(st.integers(0, k // 2)) for k in ks)
    module = cls(kernel, stride=_arg(draw, st.integers(1, 4), n, allow_none=True), padding=padding,
                 dilation=_arg(draw, st.integers(1, 3), n), ceil_mode=draw(st.booleans()))
    return module, shape


@st.composite
def avg_pools(draw):
    n = draw(st.integers(1, 3))
    hi = {1: 14, 2: 9, 3: 5}[n]
    if draw(st.booleans()):
        shape = _sample_shape(draw, n, 1, hi)
        cls = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[n - 1]
        return cls(_arg(draw, st.integers(1, hi), n)), shape
    shape = _sample_shape(draw, n, 1, hi, channels_needed=n == 3)
    cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[n - 1]
    kernel = _arg(draw, st.integers(1, 4), n)
    ks = kernel if isinstance(kernel, tuple) else (kernel,) * n
    kwargs = dict(stride=_arg(draw, st.integers(1, 4), n, allow_none=True),
                  padding=tuple(draw(st.integers(0, k // 2)) for k in ks),
                  ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()))
    if n > 1 and draw(st.booleans()):
        kwargs["divisor_override"] = draw(st.integers(1, 9))
    return cls(kernel, **kwargs), shape


@st.composite
def paddings_and_upsampling(draw):
    n = draw(st.integers(1, 3))
    hi = {1: 10, 2: 6, 3: 4}[n]
    shape = _sample_shape(draw, n, 1, hi, channels_needed=True)
    kind = draw(st.sampled_from(["zero", "constant", "reflect", "replicate", "circular", "upsample"]))
    if kind == "upsample":
        modes = ["nearest", "nearest-exact", "area"] + [("linear", "bilinear", "trilinear")[n - 1]]
        mode = draw(st.sampled_from(modes))
        if draw(st.booleans()):
            size = _arg(draw, st.integers(1, 2 * hi), n)
            return nn.Upsample(size=size, mode=mode), shape
        scale = draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0]))
        corners = {"align_corners": draw(st.booleans())} if mode in ("linear", "bilinear", "trilinear") else {}
        return nn.Upsample(scale_factor=scale, mode=mode, **corners), shape
    pads = tuple(draw(st.integers(0 if kind in ("reflect", "replicate") else -1, 3)) for _ in range(2 * n))
    pad = pads[0] if draw(st.booleans()) and min(pads) >= 0 else pads
    classes = {
        "zero": (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d),
        "constant": (nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d),
        "reflect": (nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d),
        "replicate": (nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d),
        "circular": (nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d),
    }
    cls = classes[kind][n - 1]
    module = cls(pad, draw(st.floats(-2, 2))) if kind == "constant" else cls(pad)
    return module, shape


@st.composite
def torch_activations(draw):
    shape = tuple(draw(st.integers(1, 5)) for _ in range(draw(st.integers(1, 3))))
    slope = draw(st.floats(-3, 3))
    choices = [
        nn.ReLU(), nn.ReLU6(), nn.Tanh(), nn.Sigmoid(), nn.Softsign(), nn.Tanhshrink(), nn.Identity(),
        nn.Hardtanh(-draw(st.floats(0, 2)), draw(st.floats(0.1, 2))), nn.LeakyReLU(slope),
        nn.ELU(alpha=slope), nn.Softplus(beta=draw(st.sampled_from([0.5, 1.0, 4.0])),
                                         threshold=draw(st.sampled_from([15.0, 20.0, 40.0]))),
        nn.Softmax(dim=-1), nn.Flatten(), nn.PixelShuffle(1),
    ]
    return draw(st.sampled_from(choices)), shape


def _conv_shape(draw, c, n):
    return (c, *(draw(st.integers(3, 8 if n == 2 else 12)) for _ in range(n)))


@st.composite
def weighted_modules(draw):
    kind = draw(st.sampled_from(["linear", "conv1d", "conv2d", "convT", "spectral_conv", "ortho_conv",
                                 "aol_conv", "frobenius_conv", "spectral_convT", "ortho_convT",
                                 "spectral_linear", "aol_linear", "stacked", "batchnorm", "residual",
                                 "k_sequential", "dropout"]))
    c_in, c_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    k, s = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    d = 1 if s > 1 else draw(st.integers(1, 2))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    pad = draw(st.integers(0, 2))
    if kind == "linear":
        return nn.Linear(c_in, c_out), (c_in,)
    if kind == "spectral_linear":
        return L.SpectralLinear(c_in, c_out), (c_in,)
    if kind == "aol_linear":
        return L.AOLLinear(c_in, c_out), (c_in,)
    if kind == "stacked":
        return L.StackedSpectralLinear(draw(st.integers(1, 4)), c_in, c_out), (c_in,)
    if kind == "residual":
        width = 2 * c_in
        block = nn.Sequential(L.SpectralLinear(width, width), L.GroupSort2(), nn.Linear(width, width))
        residual = L.LipResidual(L.Sequential(L.SpectralLinear(width, width), L.GroupSort2()),
                                 k_coef_lip=draw(st.sampled_from([0.5, 1.0, 2.0])))
        with torch.no_grad():
            residual.alpha.fill_(draw(st.floats(-3, 3)))
        return (residual if draw(st.booleans()) else nn.Sequential(residual, block)), (width,)
    if kind == "k_sequential":
        k_model = draw(st.sampled_from([0.5, 2.0, 5.0]))
        return L.Sequential(L.SpectralConv2d(c_in, 4, 3, padding=1), L.GroupSort2(), L.ScaledL2NormPool2d(2),
                            nn.Flatten(), L.SpectralLinear(4 * 4, 2), k_coef_lip=k_model), (c_in, 8, 8)
    if kind == "dropout":
        return nn.Sequential(nn.Dropout(0.5), nn.Linear(c_in, c_out), nn.Dropout1d(0.3)), (c_in, 3)
    if kind == "batchnorm":
        bn = nn.BatchNorm1d(c_in)
        with torch.no_grad():
            bn.running_var.uniform_(0.1, 3.0)
            bn.running_mean.normal_()
            bn.weight.normal_()
        return bn, (c_in, draw(st.integers(1, 4)))
    if kind == "conv1d":
        return nn.Conv1d(c_in, c_out, k, s, pad, d, padding_mode=mode), _conv_shape(draw, c_in, 1)
    if kind == "conv2d":
        groups = draw(st.sampled_from([g for g in (1, 2) if c_in % g == 0 and c_out % g == 0]))
        return nn.Conv2d(c_in, c_out, _arg(draw, st.integers(1, 4), 2), s, pad, d, groups, padding_mode=mode), \
            _conv_shape(draw, c_in, 2)
    if kind == "convT":
        return nn.ConvTranspose2d(c_in, c_out, k, s, pad, output_padding=draw(st.integers(0, s - 1))), \
            _conv_shape(draw, c_in, 2)
    if kind == "spectral_conv":
        return L.SpectralConv2d(c_in, c_out, k, s, pad, d, padding_mode=mode), _conv_shape(draw, c_in, 2)
    if kind == "frobenius_conv":
        return L.FrobeniusConv2d(c_in, c_out, k, s, pad, d, padding_mode=mode), _conv_shape(draw, c_in, 2)
    if kind == "spectral_convT":
        return L.SpectralConvTranspose2d(c_in, c_out, k, s, pad), _conv_shape(draw, c_in, 2)
    if kind == "ortho_convT":
        return L.OrthoConvTranspose2d(c_in, c_out, s, stride=s), _conv_shape(draw, c_in, 2)
    cls = L.OrthoConv2d if kind == "ortho_conv" else L.AOLConv2d
    padding = "same" if s == 1 and draw(st.booleans()) else (k - 1) // 2
    return cls(c_in, c_out, k, stride=s, padding=padding, padding_mode=mode), _conv_shape(draw, c_in, 2)


@st.composite
def lipot_weight_free(draw):
    k = draw(st.sampled_from([0.5, 1.0, 2.0]))
    c = 2 * draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["groupsort", "fullsort", "maxmin", "householder", "lprelu", "gsnorm",
                                 "avg", "l2", "adaptive_avg", "adaptive_l2", "down", "up", "cones",
                                 "envelope", "layer_centering", "batch_centering"]))
    h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    image = (c, 2 * h, 2 * w)
    modules = {
        "groupsort": lambda: (L.GroupSort(2, k_coef_lip=k), (c, h)),
        "fullsort": lambda: (L.FullSort(k_coef_lip=k), (c,)),
        "maxmin": lambda: (L.MaxMin(k_coef_lip=k), (c, h)),
        "householder": lambda: (L.HouseHolder(c, k_coef_lip=k, theta_initializer="normal"), (c, h)),
        "lprelu": lambda: (L.LPReLU(c, init=draw(st.floats(-3, 3)), k_coef_lip=k), (c,)),
        "gsnorm": lambda: (L.GroupSortNorm(k_coef_lip=k), (2 * c,)),
        "avg": lambda: (L.ScaledAvgPool2d(2, k_coef_lip=k), image),
        "l2": lambda: (L.ScaledL2NormPool2d(2, ceil_mode=True, k_coef_lip=k), (c, 2 * h + 1, 2 * w)),
        "adaptive_avg": lambda: (L.ScaledAdaptiveAvgPool2d((h, w), k_coef_lip=k), image),
        "adaptive_l2": lambda: (L.ScaledAdaptiveL2NormPool2d((h, w), k_coef_lip=k), image),
        "down": lambda: (L.InvertibleDownSampling(2, k_coef_lip=k), image),
        "up": lambda: (L.InvertibleUpSampling(2, k_coef_lip=k), (4, h, w)),
        "cones": lambda: (L.ConePotential(c, cones=3, k_coef_lip=k), (c,)),
        "envelope": lambda: (L.ConeEnvelope(c, cones=3, lower=draw(st.booleans()),
                                            temperature=draw(st.sampled_from([0.0, 0.05, 1.0])), k_coef_lip=k), (c,)),
        "layer_centering": lambda: (L.LayerCentering(c, k_coef_lip=k), image),
        "batch_centering": lambda: (L.BatchCentering(c, k_coef_lip=k), image),
    }
    return modules[kind]()


# ----------------------------------------------------------------------------- the tests


@both_runs(max_pools(), 120)
def _max_pool_checks(case):
    assert_sound(*case, nominal=not isinstance(case[0], (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                                                           nn.AdaptiveMaxPool3d)))


test_max_pooling_bound_is_sound, test_max_pooling_bound_is_sound_long = _max_pool_checks


@both_runs(avg_pools(), 80)
def _avg_pool_checks(case):
    assert_sound(*case, nominal=False)


test_average_pooling_bound_is_sound, test_average_pooling_bound_is_sound_long = _avg_pool_checks


@both_runs(paddings_and_upsampling(), 80)
def _copy_checks(case):
    assert_sound(*case, nominal=isinstance(case[0], (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d)))


test_padding_and_upsampling_bound_is_sound, test_padding_and_upsampling_bound_is_sound_long = _copy_checks


@both_runs(torch_activations(), 40)
def _activation_checks(case):
    assert_sound(*case)


test_torch_activation_bound_is_sound, test_torch_activation_bound_is_sound_long = _activation_checks


@both_runs(weighted_modules(), 60)
def _weighted_checks(case):
    module, shape = case
    torch.manual_seed(0)
    assert_sound(module, shape, nominal=False)


test_weighted_module_bound_is_sound, test_weighted_module_bound_is_sound_long = _weighted_checks


@both_runs(lipot_weight_free(), 40)
def _lipot_checks(case):
    assert_sound(*case)


test_lipot_module_bound_is_sound, test_lipot_module_bound_is_sound_long = _lipot_checks


# ----------------------------------------------------------------------------- the cases found


@pytest.mark.parametrize("module,shape,truth", [
    (nn.MaxPool2d(3, 2), (1, 7, 7), 2.0),  # the int form was bounded as if 1-D: sqrt(2)
    (nn.MaxPool2d(3, 1), (1, 7, 7), 3.0),  # was sqrt(3)
    (nn.MaxPool3d(2, 1), (1, 4, 4, 4), math.sqrt(8)),
    (nn.MaxPool1d(3, 2, dilation=2), (1, 9), math.sqrt(3)),  # dilation: was refused
    (L.StackedSpectralLinear(4, 3, 3), (3,), 2.0),  # four orthogonal members: was 1
])
def test_formerly_unsound_cases(module, shape, truth):
    torch.manual_seed(0)
    bound = lipschitz_bound(nn.Sequential(module), shape)
    measured = measured_lipschitz(module, shape)
    assert measured == pytest.approx(truth, rel=1e-6)
    assert truth <= bound * (1 + 1e-9)
    assert bound <= truth * (1 + 1e-6)  # and exact


def test_elu_with_a_negative_alpha():
    """ELU's slope alpha * e^x tends to |alpha| at 0-: the bound was max(1, alpha) = 1."""
    elu = nn.ELU(alpha=-2.0).double()
    x = torch.tensor([-2e-7, -1e-7], dtype=torch.float64)
    y = elu(x)
    quotient = float((y[1] - y[0]).abs() / 1e-7)
    assert quotient == pytest.approx(2.0, rel=1e-5)
    assert quotient <= lipschitz_bound(nn.Sequential(elu), (2,)) * (1 + 1e-6)
    assert quotient <= nominal_lipschitz(elu) * (1 + 1e-6)


def test_max_pool_acceptance_case():
    assert lipschitz_bound(nn.Sequential(nn.MaxPool2d(3, 2)), (1, 7, 7)) >= 2


def test_discontinuous_softplus_is_refused():
    with pytest.raises(ValueError, match="threshold"):
        lipschitz_bound(nn.Sequential(nn.Softplus(threshold=1.0)), (3,))
    with pytest.raises(ValueError, match="threshold"):
        nominal_lipschitz(nn.Softplus(threshold=0.0))


def test_hooks_and_overridden_forwards_are_refused():
    class Louder(nn.Linear):
        def forward(self, x):
            return 10 * super().forward(x)

    with pytest.raises(ValueError, match="overrides"):
        lipschitz_bound(Louder(3, 3), (3,))
    layer = L.SpectralLinear(3, 3)
    handle = layer.register_forward_hook(lambda m, i, o: 10 * o)
    with pytest.raises(ValueError, match="forward hooks"):
        lipschitz_bound(nn.Sequential(layer), (3,))
    with pytest.raises(ValueError, match="forward hooks"):
        nominal_lipschitz(layer)
    handle.remove()
    assert lipschitz_bound(nn.Sequential(layer), (3,)) <= 1 + 1e-6
    hook = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: o)
    try:
        with pytest.raises(ValueError, match="global"):
            lipschitz_bound(nn.Sequential(nn.ReLU()), (3,))
    finally:
        hook.remove()


def test_spectral_norm_hook_uses_the_current_weight():
    """torch's hook-based spectral_norm keeps the weight of the last forward in ``.weight``; the
    bound must follow the raw weight as it is now."""
    torch.manual_seed(0)
    layer = nn.utils.spectral_norm(nn.Linear(4, 4))
    layer(torch.randn(2, 4))
    with torch.no_grad():
        layer.weight_orig.mul_(5.0)  # an optimizer step, no forward since
    bound = lipschitz_bound(nn.Sequential(layer), (4,))
    assert measured_lipschitz(layer, (4,)) <= bound * (1 + 1e-9)


def test_torch_bugs_and_non_finite_outputs_are_refused():
    """Found by the long property run: a max window over padding only outputs -inf, and torch's
    circular padding with a negative amount outputs uninitialized memory on short axes."""
    pool = nn.MaxPool2d(kernel_size=(1, 2), stride=1, padding=(0, 1), dilation=2)
    with pytest.raises(ValueError, match="read only padding"):
        lipschitz_bound(nn.Sequential(pool), (1, 1, 1))
    assert lipschitz_bound(nn.Sequential(pool), (1, 1, 4)) == pytest.approx(math.sqrt(2))  # taps x-1, x+1
    assert measured_lipschitz(pool, (1, 1, 4)) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="padding=.* has a negative amount"):
        lipschitz_bound(nn.Sequential(nn.CircularPad3d((0, 0, 0, 0, 1, -1))), (1, 1, 1, 1))


def test_empty_output_is_bounded_by_zero():
    """Found by the long property run: downsampling a 1-wide input to width 0 made the bound's
    backward pass fail."""
    assert lipschitz_bound(nn.Sequential(nn.Upsample(scale_factor=0.5, mode="area")), (1, 1)) == 0.0


def test_return_indices_is_refused():
    with pytest.raises(ValueError, match="return_indices"):
        lipschitz_bound(nn.Sequential(nn.MaxPool2d(2, return_indices=True)), (1, 4, 4))


def test_bicubic_and_negative_divisor_are_refused():
    with pytest.raises(ValueError, match="mode='bicubic'"):
        lipschitz_bound(nn.Sequential(nn.Upsample(scale_factor=2, mode="bicubic")), (1, 4, 4))
    with pytest.raises(ValueError, match="divisor_override"):
        lipschitz_bound(nn.Sequential(nn.AvgPool2d(2, divisor_override=-1)), (1, 4, 4))
