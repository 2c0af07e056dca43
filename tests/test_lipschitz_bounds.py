"""Every lipot layer is k-Lipschitz: exact check with the dense Jacobian (float64 SVD).

For many configurations drawn by hypothesis, each layer is trained a few Adam steps (float32, a
large learning rate) towards random targets; then the largest singular value of its Jacobian is
measured at random inputs in training mode, in eval mode (cached weights) and for a float64 copy.
It must not exceed ``k * (1 + 1e-4)``. The Jacobian is computed by torch autograd on the layer
itself; nothing in lipot's normalizers is used to check lipot.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lipot
from conftest import jacobian_matrix, lipschitz_all_modes, train_steps

TOL = 1e-4
K_VALUES = st.sampled_from([0.5, 1.0, 3.0])
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def assert_k_lipschitz(module, x, k, **kw):
    train_steps(module, x)
    measured = lipschitz_all_modes(module, x[:1], **kw)
    for mode, value in measured.items():
        assert value <= k * (1 + TOL), f"{mode}: Lipschitz {value:.7f} > k={k} ({module})"
    return measured


def _out_len(n, k, s, p, d):
    return (n + p[0] + p[1] - d * (k - 1) - 1) // s + 1


padding_choice = st.sampled_from(
    [("zeros", 0), ("zeros", 1), ("zeros", 2), ("zeros", "same"), ("zeros", "valid"),
     ("reflect", 1), ("reflect", 2), ("replicate", 1), ("replicate", 2),
     ("circular", 1), ("circular", 2)]
)


@st.composite
def conv_config(draw, dims=2):
    c_in = draw(st.integers(1, 8))
    c_out = draw(st.integers(1, 8))
    kernel = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 2))
    mode, padding = draw(padding_choice)
    dilation = draw(st.integers(1, 2)) if stride == 1 else 1
    groups = draw(st.sampled_from([g for g in (1, 2) if c_in % g == 0 and c_out % g == 0]))
    size = draw(st.integers(4, 12 if dims == 2 else 16))
    assume(not (padding == "same" and stride > 1))
    pads = (0, 0) if padding == "valid" else (padding, padding) if isinstance(padding, int) else (
        (dilation * (kernel - 1)) // 2, dilation * (kernel - 1) - (dilation * (kernel - 1)) // 2)
    assume(_out_len(size, kernel, stride, pads, dilation) >= 1)
    if mode == "reflect":
        assume(max(pads) < size)
    # keep the dense Jacobian small
    assume(c_in * size**dims <= 1200 and c_out * (size + 4) ** dims <= 2600)
    k = draw(K_VALUES)
    return dict(c_in=c_in, c_out=c_out, kernel=kernel, stride=stride, padding=padding,
                padding_mode=mode, dilation=dilation, groups=groups, size=size, k=k)


@SETTINGS
@given(cfg=conv_config(), frobenius=st.booleans())
def test_conv2d_is_k_lipschitz(cfg, frobenius):
    cls = lipot.FrobeniusConv2d if frobenius else lipot.SpectralConv2d
    layer = cls(cfg["c_in"], cfg["c_out"], cfg["kernel"], stride=cfg["stride"],
                padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"],
                padding_mode=cfg["padding_mode"], k_coef_lip=cfg["k"])
    x = torch.randn(3, cfg["c_in"], cfg["size"], cfg["size"])
    assert_k_lipschitz(layer, x, cfg["k"], points=1)


@SETTINGS
@given(cfg=conv_config(dims=1))
def test_conv1d_is_k_lipschitz(cfg):
    layer = lipot.SpectralConv1d(cfg["c_in"], cfg["c_out"], cfg["kernel"], stride=cfg["stride"],
                                 padding=cfg["padding"], dilation=cfg["dilation"],
                                 groups=cfg["groups"], padding_mode=cfg["padding_mode"],
                                 k_coef_lip=cfg["k"])
    x = torch.randn(3, cfg["c_in"], cfg["size"])
    assert_k_lipschitz(layer, x, cfg["k"], points=1)


@SETTINGS
@given(
    c_in=st.integers(1, 8), c_out=st.integers(1, 8), kernel=st.integers(1, 5),
    stride=st.integers(1, 2), padding=st.integers(0, 2), size=st.integers(4, 10),
    out_pad=st.integers(0, 1), k=K_VALUES,
)
def test_conv_transpose2d_is_k_lipschitz(c_in, c_out, kernel, stride, padding, size, out_pad, k):
    assume(out_pad < stride)
    out = (size - 1) * stride - 2 * padding + kernel + out_pad
    assume(out >= 1 and c_out * out * out <= 2600 and c_in * size * size <= 1200)
    layer = lipot.SpectralConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=padding,
                                          output_padding=out_pad, k_coef_lip=k)
    assert_k_lipschitz(layer, torch.randn(3, c_in, size, size), k, points=1)


@SETTINGS
@given(n_in=st.integers(1, 24), n_out=st.integers(1, 24), k=K_VALUES,
       variant=st.sampled_from(["bjorck", "spectral", "frobenius"]))
def test_linear_is_k_lipschitz(n_in, n_out, k, variant):
    if variant == "bjorck":
        layer = lipot.SpectralLinear(n_in, n_out, k_coef_lip=k)
    elif variant == "spectral":
        layer = lipot.SpectralLinear(n_in, n_out, k_coef_lip=k, eps_bjorck=None)
    else:
        layer = lipot.FrobeniusLinear(n_in, n_out, disjoint_neurons=False, k_coef_lip=k)
    assert_k_lipschitz(layer, torch.randn(8, n_in), k, points=1)


@SETTINGS
@given(n_in=st.integers(1, 24), n_out=st.integers(1, 12), k=K_VALUES)
def test_frobenius_disjoint_bounds_each_output(n_in, n_out, k):
    """disjoint_neurons=True: each output is k-Lipschitz; the l2 map is k*sqrt(m)-Lipschitz."""
    layer = lipot.FrobeniusLinear(n_in, n_out, disjoint_neurons=True, k_coef_lip=k)
    x = torch.randn(8, n_in)
    train_steps(layer, x)
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        jac = jacobian_matrix(layer, x[0]).numpy()
        assert np.linalg.norm(jac, axis=1).max() <= k * (1 + TOL)
        assert np.linalg.norm(jac, 2) <= k * np.sqrt(n_out) * (1 + TOL)
    assert layer.lipschitz_bound() == pytest.approx(k * np.sqrt(n_out))


@st.composite
def activation_case(draw):
    kind = draw(st.sampled_from(["groupsort", "groupsort2", "fullsort", "maxmin", "householder", "lprelu"]))
    k = draw(K_VALUES)
    channels = 2 * draw(st.integers(1, 4))
    spatial = draw(st.sampled_from([(), (3,), (3, 4)]))
    if kind == "groupsort":
        group = draw(st.sampled_from([g for g in (1, 2, 3, 4, 6, 8) if channels % g == 0]))
        layer = lipot.GroupSort(group, k_coef_lip=k)
    elif kind == "groupsort2":
        layer = lipot.GroupSort2(k_coef_lip=k)
    elif kind == "fullsort":
        layer = lipot.FullSort(k_coef_lip=k)
    elif kind == "maxmin":
        layer = lipot.MaxMin(k_coef_lip=k)
    elif kind == "householder":
        layer = lipot.HouseHolder(channels, k_coef_lip=k, theta_initializer="normal")
    else:
        layer = lipot.LPReLU(num_parameters=channels, init=draw(st.floats(-3, 3)), k_coef_lip=k)
    return layer, (channels, *spatial), k


@SETTINGS
@given(case=activation_case())
def test_activations_are_k_lipschitz(case):
    layer, shape, k = case
    x = torch.randn(4, *shape)
    assert_k_lipschitz(layer, x, k, points=3)


@st.composite
def pooling_case(draw):
    kind = draw(st.sampled_from(["avg", "adaptive_avg", "l2", "adaptive_l2", "down", "up"]))
    k = draw(K_VALUES)
    channels = draw(st.integers(1, 4))
    ph, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    oh, ow = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    size = (ph * oh, pw * ow)
    if kind == "avg":
        layer = lipot.ScaledAvgPool2d((ph, pw), k_coef_lip=k)
    elif kind == "adaptive_avg":
        layer = lipot.ScaledAdaptiveAvgPool2d((oh, ow), k_coef_lip=k)
    elif kind == "l2":
        layer = lipot.ScaledL2NormPool2d((ph, pw), ceil_mode=draw(st.booleans()), k_coef_lip=k)
        size = (size[0] + draw(st.integers(0, ph - 1)), size[1])
    elif kind == "adaptive_l2":
        layer = lipot.ScaledAdaptiveL2NormPool2d((oh, ow), k_coef_lip=k)
    elif kind == "down":
        layer = lipot.InvertibleDownSampling(ph, k_coef_lip=k)
        size = (ph * oh, ph * ow)
    else:
        layer = lipot.InvertibleUpSampling(ph, k_coef_lip=k)
        channels = ph * ph * channels
    return layer, (channels, *size), k


@SETTINGS
@given(case=pooling_case())
def test_pooling_and_sampling_are_k_lipschitz(case):
    layer, shape, k = case
    assert_k_lipschitz(layer, torch.randn(4, *shape), k, points=2)


@SETTINGS
@given(channels=st.integers(1, 4), k=K_VALUES, batch=st.booleans(), bias=st.booleans())
def test_centering_is_k_lipschitz(channels, k, batch, bias):
    if batch:
        layer = lipot.BatchCentering(channels, bias=bias, k_coef_lip=k)
        x = torch.randn(3, channels, 3, 3) + 2.0
        train_steps(layer, x)
        # training mode: a map of the whole batch
        layer.train()
        assert local_batch_lipschitz(layer, x) <= k * (1 + TOL)
        layer.eval()
        assert local_batch_lipschitz(layer, x) <= k * (1 + TOL)
    else:
        layer = lipot.LayerCentering(channels, bias=bias, k_coef_lip=k)
        assert_k_lipschitz(layer, torch.randn(3, channels, 3, 4), k, points=1)


def local_batch_lipschitz(layer, x):
    return float(np.linalg.norm(jacobian_matrix(layer, x).numpy(), 2))


@SETTINGS
@given(width=st.integers(2, 12), k=K_VALUES)
def test_residual_is_k_lipschitz(width, k):
    block = lipot.Sequential(lipot.SpectralLinear(width, width), lipot.GroupSort2() if width % 2 == 0 else lipot.MaxMin(),
                             lipot.SpectralLinear(width * (1 if width % 2 == 0 else 2), width))
    layer = lipot.LipResidual(block, k_coef_lip=k)
    assert_k_lipschitz(layer, torch.randn(6, width), k, points=2)
