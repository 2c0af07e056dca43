"""Eval mode: the constrained weight is computed once, reused, and never stale.

The reference for the effective weight is the exact polar factor computed with numpy's SVD of
the layer's raw weight, independently of lipot.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

import lipot


TIGHT = dict(eps_bjorck=1e-7)  # converge fully so the exact polar factor is the reference


def raw(layer):
    return layer.parametrizations.weight.original


def exact_weight(layer):
    """k * polar(raw weight) via numpy SVD (dense layers)."""
    w = raw(layer).detach().double().cpu().numpy()
    u, _, vt = np.linalg.svd(w, full_matrices=False)
    return layer.k_coef_lip * (u @ vt)


def eval_output(layer, x):
    layer.eval()
    with torch.no_grad():
        return layer(x)


def reference_output(layer, x):
    w = torch.tensor(exact_weight(layer), dtype=x.dtype)
    return x @ w.T + layer.bias.detach()


def step(layer, x, lr=0.05):
    layer.train()
    opt = torch.optim.SGD(layer.parameters(), lr=lr)
    opt.zero_grad()
    (layer(x) ** 2).sum().backward()
    opt.step()


def test_eval_reuses_the_cached_weight():
    layer = lipot.SpectralLinear(16, 8).eval()
    with torch.no_grad():
        first = layer.weight
        second = layer.weight
    assert first is second


def test_eval_after_an_optimizer_step_uses_the_new_weight():
    """deel-torchlip returned the weight cached at the last training forward."""
    layer = lipot.SpectralLinear(16, 8, **TIGHT)
    x = torch.randn(4, 16)
    eval_output(layer, x)  # fill the cache
    step(layer, x)  # training forward, backward, SGD step: the raw weight moves
    out = eval_output(layer, x)
    torch.testing.assert_close(out, reference_output(layer, x), atol=1e-5, rtol=1e-5)
    # and a step taken while the layer is in eval mode
    layer.eval()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    (layer(x) ** 2).sum().backward()
    opt.step()
    torch.testing.assert_close(eval_output(layer, x), reference_output(layer, x), atol=1e-5, rtol=1e-5)


def test_eval_after_load_state_dict_and_dtype_change():
    a, b = lipot.SpectralLinear(10, 10, **TIGHT), lipot.SpectralLinear(10, 10, **TIGHT)
    x = torch.randn(3, 10)
    before = eval_output(a, x)
    a.load_state_dict(b.state_dict())
    after = eval_output(a, x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, eval_output(b, x))
    a.double()
    out64 = eval_output(a, x.double())
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64, reference_output(a, x.double()), atol=1e-5, rtol=1e-5)


def test_eval_after_in_place_write_and_k_change():
    layer = lipot.SpectralLinear(6, 6, **TIGHT)
    x = torch.randn(2, 6)
    eval_output(layer, x)
    with torch.no_grad():
        raw(layer).copy_(torch.eye(6) + 0.2 * torch.randn(6, 6))
    torch.testing.assert_close(eval_output(layer, x), reference_output(layer, x), atol=1e-5, rtol=1e-5)
    layer.k_coef_lip = 2.5
    torch.testing.assert_close(eval_output(layer, x), reference_output(layer, x), atol=1e-5, rtol=1e-5)


def test_eval_does_not_modify_parameters_and_mode_switch_clears_cache():
    layer = lipot.SpectralLinear(6, 6, **TIGHT)
    with torch.no_grad():
        raw(layer).copy_(torch.eye(6) + 0.2 * torch.randn(6, 6))  # eval must not project it
    snapshot = raw(layer).detach().clone()
    x = torch.randn(2, 6)
    eval_output(layer, x)
    assert torch.equal(raw(layer), snapshot)
    raw(layer).data.mul_(3.0)  # bypasses the version counter ...
    layer.train()
    layer.eval()  # ... but switching modes clears the cache
    torch.testing.assert_close(eval_output(layer, x), reference_output(layer, x), atol=1e-5, rtol=1e-5)


def test_eval_with_gradients_gives_weight_gradients():
    """Eval mode does not detach the weight when autograd needs it (e.g. fine-tuning in eval)."""
    layer = lipot.SpectralLinear(5, 5).eval()
    layer(torch.randn(3, 5)).sum().backward()
    assert raw(layer).grad is not None and raw(layer).grad.abs().sum() > 0


def test_train_and_eval_outputs_agree():
    layer = lipot.SpectralConv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 6, 6)
    layer.train()
    y_train = layer(x).detach()
    torch.testing.assert_close(eval_output(layer, x), y_train)


@pytest.mark.parametrize(
    "make",
    [
        lambda: lipot.SpectralLinear(8, 4),
        lambda: lipot.SpectralLinear(8, 4, eps_bjorck=None),
        lambda: lipot.FrobeniusLinear(8, 4),
        lambda: lipot.SpectralConv2d(2, 4, 3, padding=1, groups=2),
        lambda: lipot.SpectralConvTranspose2d(4, 2, 3, stride=2),
    ],
)
def test_state_dict_round_trip_including_power_iteration_buffers(make):
    source, target = make(), make()
    x = torch.randn(2, 8) if isinstance(source, torch.nn.Linear) else torch.randn(2, source.in_channels, 5, 5)
    for _ in range(3):
        step(source, x, lr=0.01)
    state = source.state_dict()
    if not isinstance(source, lipot.FrobeniusLinear):
        assert "parametrizations.weight.0.u" in state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    target.load_state_dict(torch.load(buffer))
    for name, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[name], value, rtol=0, atol=0)
    torch.testing.assert_close(eval_output(target, x), eval_output(source, x))
    source.train()
    target.train()
    torch.testing.assert_close(target(x), source(x))


def test_deepcopy_drops_the_cache_and_keeps_outputs():
    """(torch refuses to pickle parametrized modules: save state_dicts, or vanilla_export.)"""
    model = lipot.Sequential(lipot.SpectralLinear(4, 4), lipot.GroupSort2())
    x = torch.randn(2, 4)
    eval_output(model, x)
    clone = copy.deepcopy(model)
    assert clone[0].parametrizations.weight[0]._cache is None
    torch.testing.assert_close(eval_output(clone, x), eval_output(model, x))


def test_ill_conditioned_raw_weight_warns_and_stays_contractive():
    layer = lipot.SpectralLinear(6, 6, maxiter_bjorck=3)
    with torch.no_grad():
        raw(layer).copy_(torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0, 1e-3, 1e-4])))
    with pytest.warns(UserWarning, match="maxiter_bjorck"):
        w = layer.eval().weight.detach()
    sv = np.linalg.svd(w.double().numpy(), compute_uv=False)
    assert sv.max() <= 1 + 1e-6 and sv.min() < 0.5


def test_training_forward_reprojects_after_a_data_write():
    """A write through .data does not bump the version counter; the training forward must still
    notice it (content fingerprint) instead of using the raw weight as if it were orthonormal."""
    layer = lipot.SpectralLinear(8, 8)
    x = torch.randn(4, 8)
    layer.train()
    layer(x)
    raw(layer).data.mul_(3.0)
    raw(layer).data[0, 0] += 5.0
    for grad_enabled in (True, False):
        with torch.set_grad_enabled(grad_enabled):
            w = layer.weight.detach()
        assert np.linalg.norm(w.double().numpy(), 2) <= 1 + 1e-5
