"""Orthogonal (BCOP/AOC) and AOL convolutions against independent computations.

Every claim is checked on the dense Jacobian of the layer (torch autograd on the layer as it
runs, float64 SVD by numpy), never with lipot's normalizers:

* sound everywhere: the largest singular value is at most ``k (1 + 1e-5)`` in train mode, eval
  mode and for a float64 copy, fresh and after Adam steps at lr 0.05, over a hypothesis sweep of
  kernel 1-7, stride 1-2, channels 1-16 in and out, groups, every padding mode,
  k in {0.5, 1, 3};
* exactly orthogonal where claimed (circular padding, kernel >= stride, outputs tiling the
  input): every singular value in ``[k (1 - 1e-4), k (1 + 1e-5)]``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import lipot
from conftest import jacobian_matrix, singular_values_np, train_steps

UPPER = 1e-5
LOWER = 1e-4
K_VALUES = st.sampled_from([0.5, 1.0, 3.0])
SWEEP = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _pads(kernel, padding):
    if padding == "same":
        return ((kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2)
    return (padding, padding)


def _out(size, kernel, stride, pads):
    return (size + pads[0] + pads[1] - kernel) // stride + 1


CHANNELS = st.sampled_from([1, 2, 3, 4, 5, 6, 8, 12, 16])


@st.composite
def ortho_config(draw):
    c_in, c_out = draw(CHANNELS), draw(CHANNELS)
    kernel = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 7]))
    stride = draw(st.sampled_from([1, 2]))
    groups = draw(st.sampled_from([g for g in (1, 2, 4) if c_in % g == 0 and c_out % g == 0]))
    mode = draw(st.sampled_from(["circular", "zeros", "circular", "zeros", "reflect", "replicate"]))
    padding = draw(st.sampled_from(["natural", "natural", 0, 1, 2]))
    if padding == "natural":  # "same" for stride 1; the padding whose outputs tile for stride 2
        padding = "same" if stride == 1 else max(kernel - stride + 1, 0) // 2
    # the largest size (even, so stride 2 can tile) that keeps the dense Jacobian small
    fits = [n for n in (4, 6, 8, 10) if max(c_in, c_out) * n * n <= 1100]
    size = draw(st.sampled_from(fits[-2:]))
    pads = _pads(kernel, padding)
    assume(_out(size, kernel, stride, pads) >= 1)
    if mode == "circular":
        assume(_out(size, kernel, stride, pads) * stride <= size and max(pads) <= size)
    if mode == "reflect":
        assume(max(pads) < size)
    return dict(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride, groups=groups, mode=mode,
                padding=padding, size=size, k=draw(K_VALUES), pads=pads)


def _claimed_orthogonal(cfg) -> bool:
    """The module docstring's claim: circular, kernel >= stride, out * stride == size."""
    out = _out(cfg["size"], cfg["kernel"], cfg["stride"], cfg["pads"])
    return cfg["mode"] == "circular" and cfg["kernel"] >= cfg["stride"] and out * cfg["stride"] == cfg["size"]


def _spectra(layer, x0):
    """Singular values of the dense Jacobian in train mode, in eval mode (cached kernel, frozen
    weights) and for a float64 copy."""
    out = {}
    layer.train()
    out["train"] = singular_values_np(jacobian_matrix(layer, x0))
    layer.eval()
    frozen = [p for p in layer.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        out["eval"] = singular_values_np(jacobian_matrix(layer, x0))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    out["float64"] = singular_values_np(jacobian_matrix(copy.deepcopy(layer).double().eval(), x0.double()))
    layer.train()
    return out


def _check(layer, cfg, exact: bool):
    x = torch.randn(3, cfg["c_in"], cfg["size"], cfg["size"])
    for stage in ("fresh", "after Adam steps"):
        if stage != "fresh":
            train_steps(layer, x, steps=4, lr=0.05)
        for mode, sv in _spectra(layer, x[:1]).items():
            k = cfg["k"]
            assert sv.max() <= k * (1 + UPPER), f"{stage}, {mode}: sigma_max {sv.max():.8f} > {k} ({cfg})"
            if exact and mode != "float64":
                assert sv.min() >= k * (1 - LOWER), f"{stage}, {mode}: sigma_min {sv.min():.8f} ({cfg})"


def _ortho(cfg, cls=None):
    return (cls or lipot.OrthoConv2d)(
        cfg["c_in"], cfg["c_out"], cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"],
        groups=cfg["groups"], padding_mode=cfg["mode"], k_coef_lip=cfg["k"],
    )


@SWEEP
@given(cfg=ortho_config())
def test_ortho_conv_is_sound_and_orthogonal_where_claimed(cfg):
    _check(_ortho(cfg), cfg, exact=_claimed_orthogonal(cfg))


@pytest.mark.parametrize("kernel", range(1, 8))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels", [(4, 4), (3, 7), (8, 2), (2, 8)])
def test_ortho_conv_is_exactly_orthogonal_with_circular_padding(kernel, stride, channels):
    """The grid of the claim: circular padding, every kernel 1-7 with stride 1 and 2, square and
    rectangular channel counts (isometries and co-isometries)."""
    padding = "same" if stride == 1 else max(kernel - stride + 1, 0) // 2
    cfg = dict(c_in=channels[0], c_out=channels[1], kernel=kernel, stride=stride, groups=1,
               mode="circular", padding=padding, size=8, k=1.0, pads=_pads(kernel, padding))
    _check(_ortho(cfg), cfg, exact=_claimed_orthogonal(cfg))
    assert _claimed_orthogonal(cfg) == (kernel >= stride)


@SWEEP
@given(cfg=ortho_config())
def test_aol_conv_is_sound(cfg):
    _check(_ortho(cfg, lipot.AOLConv2d), cfg, exact=False)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(c_in=st.integers(1, 12), c_out=st.integers(1, 12), kernel=st.integers(1, 6),
       stride=st.integers(1, 2), padding=st.integers(0, 2), size=st.sampled_from([3, 4, 5, 6]),
       groups=st.sampled_from([1, 2]), k=K_VALUES)
def test_ortho_conv_transpose_is_sound(c_in, c_out, kernel, stride, padding, size, groups, k):
    assume(c_in % groups == 0 and c_out % groups == 0)
    out = (size - 1) * stride - 2 * padding + kernel
    assume(out >= 1 and c_out * out * out <= 1200 and c_in * size * size <= 1200)
    layer = lipot.OrthoConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=padding,
                                       groups=groups, k_coef_lip=k)
    cfg = dict(c_in=c_in, size=size, k=k)
    _check(layer, cfg, exact=False)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n_in=st.integers(1, 24), n_out=st.integers(1, 24), k=K_VALUES)
def test_aol_linear_is_sound(n_in, n_out, k):
    layer = lipot.AOLLinear(n_in, n_out, k_coef_lip=k)
    x = torch.randn(8, n_in)
    for _ in range(2):
        sv = singular_values_np(jacobian_matrix(layer, x[:1]))
        assert sv.max() <= k * (1 + UPPER)
        train_steps(layer, x, steps=4, lr=0.05)


def test_aol_is_exact_once_the_weight_is_orthogonal():
    """AOL leaves an orthogonal operator unchanged (D = I): dense and circular conv."""
    linear = lipot.AOLLinear(6, 6)
    with torch.no_grad():
        linear.parametrizations.weight.original.copy_(torch.linalg.qr(torch.randn(6, 6))[0])
    sv = singular_values_np(jacobian_matrix(linear, torch.randn(1, 6)))
    assert sv.min() >= 1 - 1e-5 and sv.max() <= 1 + 1e-5
    ortho = lipot.OrthoConv2d(4, 4, 3, padding=1, padding_mode="circular")
    aol = lipot.AOLConv2d(4, 4, 3, padding=1, padding_mode="circular")
    with torch.no_grad():
        aol.parametrizations.weight.original.copy_(ortho.weight)
    sv = singular_values_np(jacobian_matrix(aol, torch.randn(1, 4, 6, 6)))
    assert sv.min() >= 1 - 1e-4 and sv.max() <= 1 + 1e-5


def test_zero_padding_is_an_isometry_away_from_the_border():
    """Stride 1, c_out >= c_in: an input that is zero within (k - 1) / 2 of the border keeps its
    norm exactly (the zero padding is never read)."""
    layer = lipot.OrthoConv2d(3, 5, 5, padding=2)
    x = torch.zeros(16, 3, 12, 12, dtype=torch.float64)
    x[:, :, 2:-2, 2:-2] = torch.randn(16, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        y = copy.deepcopy(layer).double().eval()(x) - layer.bias.double()[:, None, None]
    ratio = y.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    torch.testing.assert_close(ratio, torch.ones_like(ratio), atol=1e-6, rtol=0)


def test_zero_padding_spectrum_report():
    """How far from 1 zero padding moves the spectrum (16 -> 16 channels, 3x3, 12x12 input):
    most singular values stay at 1, the border ones drop."""
    layer = lipot.OrthoConv2d(16, 16, 3, padding=1)
    sv = singular_values_np(jacobian_matrix(layer, torch.randn(1, 16, 12, 12)))
    assert sv.max() <= 1 + UPPER
    assert np.median(sv) >= 0.999
    assert (sv >= 0.99).mean() >= 0.6


def test_circular_wrapping_windows_are_refused():
    layer = lipot.OrthoConv2d(2, 4, 3, stride=2, padding=1, padding_mode="circular")
    layer(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="wrap around"):
        layer(torch.randn(1, 2, 7, 7))
    aol = lipot.AOLConv2d(2, 2, 3, padding=3, padding_mode="circular")
    with pytest.raises(ValueError, match="wrap around"):
        aol(torch.randn(1, 2, 6, 6))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="eps_bjorck=None"):
        lipot.OrthoConv2d(2, 2, 3, eps_bjorck=None)
    with pytest.raises(ValueError, match="beta_bjorck"):
        lipot.OrthoConv2d(2, 2, 3, beta_bjorck=0.25)
    with pytest.raises(ValueError, match="padding_mode"):
        lipot.OrthoConv2d(2, 2, 3, padding_mode="symmetric")
    with pytest.raises(ValueError, match="k_coef_lip"):
        lipot.OrthoConv2d(2, 2, 3, k_coef_lip=0)
    layer = lipot.OrthoConv2d(2, 2, 3)
    with pytest.raises(ValueError, match="cannot be assigned"):
        layer.weight = torch.zeros(2, 2, 3, 3)


def test_kernel_has_the_requested_shape_and_even_kernels_work():
    for kernel, stride in [(1, 1), (2, 1), (2, 2), (3, 2), (4, 2), (6, 1), (7, 2), (1, 2), (3, 3)]:
        layer = lipot.OrthoConv2d(4, 6, kernel, stride=stride, groups=2)
        assert tuple(layer.weight.shape) == (6, 2, kernel, kernel)
    rect = lipot.OrthoConv2d(3, 3, (2, 5), padding="same", padding_mode="circular")
    sv = singular_values_np(jacobian_matrix(rect, torch.randn(1, 3, 6, 6)))
    assert sv.min() >= 1 - LOWER and sv.max() <= 1 + UPPER


def test_packed_factors_are_each_orthonormal_with_several_bases_per_slot():
    """3 -> 7, 6x6 stride 2 packs its 8 projector bases 3 per slot (the last slot holds 2 and a
    larger identity block). Read straight from the packed tensor after Adam steps, every
    factor has orthonormal rows (singular values by numpy), and the layer is exactly
    orthogonal with circular padding."""
    torch.manual_seed(0)
    layer = lipot.OrthoConv2d(3, 7, 6, stride=2, padding=2, padding_mode="circular")
    plan = layer.parametrizations.weight[0].plan
    assert (plan.bases, plan.per_slot) == (8, 3)
    x = torch.randn(3, 3, 8, 8)
    train_steps(layer, x, steps=4, lr=0.05)
    layer(x)  # the training forward re-projects the packed factors in place
    slots = layer.parametrizations.weight.original.detach().double().view(plan.count, plan.rows, plan.cols)
    r, c = plan.rank, plan.block_channels
    blocks = [slots[0, :7, :12]]  # R (7 x 3*2*2, wide)
    for f in range(plan.bases):
        s, i = divmod(f, plan.per_slot)
        blocks.append(slots[1 + s, i * r:(i + 1) * r, i * c:(i + 1) * c])
    for block in blocks:
        sv = np.linalg.svd(block.numpy(), compute_uv=False)
        assert np.abs(sv - 1).max() < 1e-5
    sv = singular_values_np(jacobian_matrix(layer.eval(), torch.randn(1, 3, 8, 8)))
    assert sv.min() >= 1 - LOWER and sv.max() <= 1 + UPPER


# ------------------------------------------------------------------ integration with lipot


def _model(conv="ortho", mode="circular"):
    torch.manual_seed(0)
    layer = lipot.models.CONV_LAYERS[conv]
    return lipot.Sequential(
        layer(1, 4, 4, stride=2, padding=1, padding_mode=mode), lipot.GroupSort2(),
        layer(4, 4, 3, padding=1, padding_mode=mode), lipot.GroupSort2(),
        lipot.OrthoConvTranspose2d(4, 2, 3, padding=1),
        nn.Flatten(), lipot.SpectralLinear(2 * 4 * 4, 4), lipot.GroupSort2(), lipot.SpectralLinear(4, 3),
    )


@pytest.mark.parametrize("conv", ["ortho", "aol"])
def test_certify_bound_export_and_sequential(conv):
    model = _model(conv)
    x = torch.randn(16, 1, 8, 8)
    train_steps(model, x, steps=3, lr=0.05)
    model.eval()
    bound = lipot.lipschitz_bound(model, (1, 8, 8))
    measured = max(np.linalg.norm(jacobian_matrix(model, xi[None]).numpy(), 2) for xi in x[:4])
    assert measured <= bound * (1 + 1e-6)
    assert bound <= 1 + 1e-5
    report = lipot.certify.lipschitz_report(model, (1, 8, 8))[1]
    if conv == "ortho":  # exact FFT norms on the torus: the orthogonal layers are at 1
        assert all(abs(e.bound - 1) < 1e-5 for e in report if e.kind == "OrthoConv2d")
        assert "exact" in report[0].method
    plain = lipot.vanilla_export(model)
    assert type(plain[0]) is nn.Conv2d and type(plain[4]) is nn.ConvTranspose2d
    assert plain[0].padding_mode == "circular"
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), atol=1e-6, rtol=1e-5)
    model.k_coef_lip = 4.0  # distributed over the 8 lipot layers
    per_layer = 4.0 ** (1 / 8)
    assert model[0].k_coef_lip == pytest.approx(per_layer)
    sv = singular_values_np(jacobian_matrix(model[0], x[:1]))
    assert sv.max() <= per_layer * (1 + UPPER)
    if conv == "ortho":
        assert sv.min() >= per_layer * (1 - LOWER)


def test_eval_cache_state_dict_and_deepcopy():
    layer = lipot.OrthoConv2d(3, 6, 3, padding=1)
    layer.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        first = layer._constrained_weight()
        assert layer._constrained_weight() is first  # cached
        y = layer(x)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer.train()
    layer(x).pow(2).sum().backward()
    opt.step()
    layer.eval()
    with torch.no_grad():
        assert not torch.equal(layer(x), y)  # the cache follows the optimizer step
        fresh = lipot.OrthoConv2d(3, 6, 3, padding=1)
        fresh.load_state_dict(layer.state_dict())
        fresh.eval()
        torch.testing.assert_close(fresh(x), layer(x), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(copy.deepcopy(layer)(x), layer(x))


def test_gnp_stack_preserves_input_gradient_norms():
    """Every layer a co-isometry (no dimension increase) with circular padding: the input
    gradient of the scalar output has norm 1 (the quickstart's network)."""
    torch.manual_seed(0)
    model = lipot.Sequential(
        lipot.OrthoConv2d(1, 4, 4, stride=2, padding=1, padding_mode="circular"), lipot.GroupSort2(),
        lipot.OrthoConv2d(4, 16, 4, stride=2, padding=1, padding_mode="circular"), lipot.GroupSort2(),
        nn.Flatten(), lipot.SpectralLinear(16 * 4 * 4, 8), lipot.GroupSort2(), lipot.FrobeniusLinear(8, 1),
    ).eval()
    x = torch.randn(8, 1, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x).sum(), x)
    norms = grad.flatten(1).norm(dim=1)
    assert norms.min() >= 1 - 1e-3 and norms.max() <= 1 + 1e-5


# ------------------------------------------------------------- the hand-written backward


FUSED_CASES = [  # (c_in, c_out, kernel, stride, groups): every side, extent and packing
    (32, 64, 3, 2, 1), (32, 64, 4, 2, 1), (8, 8, 3, 1, 1), (3, 7, 3, 1, 1), (7, 3, 5, 1, 1),
    (6, 12, 7, 2, 3), (4, 4, 2, 2, 1), (3, 5, (3, 5), 1, 1), (4, 6, 1, 1, 2), (3, 7, 6, 2, 1),
    (2, 12, 3, 2, 1),  # tall R stored transposed, blocks on the input side
]


def _moved_layer(c_in, c_out, kernel, stride, groups, **kwargs):
    """A float64 layer in train mode whose factors moved off their initial values."""
    torch.manual_seed(0)
    layer = lipot.OrthoConv2d(c_in, c_out, kernel, stride=stride, groups=groups, padding=1,
                              k_coef_lip=1.5, **kwargs).double()
    train_steps(layer, torch.randn(2, c_in, 9, 9, dtype=torch.float64), steps=2, lr=0.05)
    layer.train()
    return layer


def _graph_names(tensor):
    names, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and type(node).__name__ not in names:
            names.add(type(node).__name__)
            stack.extend(f for f, _ in node.next_functions)
    return names


@pytest.mark.parametrize("case", FUSED_CASES)
def test_fused_training_backward_equals_autograd_and_its_own_derivative(case):
    """In eager training mode the kernel's backward is written by hand (composition VJP, then
    the polar derivative). It must equal autograd through the unfused composition of
    ``polar_tangent(Q)``, to first and second order (``create_graph``)."""
    layer = _moved_layer(*case)
    param = layer.parametrizations.weight
    raw = param.original
    kernel = param[0](raw)  # re-projects raw in place, then the fused path
    assert any("ComposeAtOrthonormal" in name for name in _graph_names(kernel))
    plan = param[0].plan
    reference_raw = raw.detach().clone().requires_grad_()
    q = lipot.linalg.normalizers.polar_tangent(reference_raw.view(plan.count, plan.rows, plan.cols))
    reference = 1.5 * plan.compose(q)
    assert torch.equal(kernel, reference)
    gen = torch.Generator().manual_seed(1)
    g = torch.randn(kernel.shape, generator=gen, dtype=torch.float64)
    v = torch.randn(raw.shape, generator=gen, dtype=torch.float64)
    (fused,) = torch.autograd.grad((kernel * g).sum(), raw, create_graph=True)
    (expected,) = torch.autograd.grad((reference * g).sum(), reference_raw, create_graph=True)
    torch.testing.assert_close(fused, expected, rtol=1e-10, atol=1e-12)
    (fused2,) = torch.autograd.grad((fused * v).sum(), raw)
    (expected2,) = torch.autograd.grad((expected * v).sum(), reference_raw)
    torch.testing.assert_close(fused2, expected2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", FUSED_CASES[:4])
def test_fused_training_gradient_matches_finite_differences_of_the_polar_factor(case):
    """Independent of every backward formula: the directional derivative of
    ``<G, kernel(polar(raw))>`` by central differences, the kernel recomputed from scratch in
    eval mode (Björck to 1e-12 in float64), equals the training-mode gradient."""
    layer = _moved_layer(*case, eps_bjorck=1e-12, maxiter_bjorck=60)
    param = layer.parametrizations.weight
    raw = param.original
    kernel = param[0](raw)
    gen = torch.Generator().manual_seed(2)
    g = torch.randn(kernel.shape, generator=gen, dtype=torch.float64)
    v = torch.randn(raw.shape, generator=gen, dtype=torch.float64)
    (grad,) = torch.autograd.grad((kernel * g).sum(), raw)
    param[0].eval()
    base, t = raw.detach().clone(), 1e-5
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            raw.copy_(base + sign * t * v)
            values.append(float((param[0](raw) * g).sum()))
    numeric = (values[0] - values[1]) / (2 * t)
    assert abs(float((grad * v).sum()) - numeric) <= 1e-6 * max(1.0, abs(numeric))
