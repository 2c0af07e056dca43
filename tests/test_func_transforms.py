"""torch.func on every lipot layer and activation: ``jacrev`` / ``jacfwd`` equal autograd's
Jacobian, ``vmap`` equals the loop, ``functional_call`` + ``grad`` give per-sample gradients.

The classes are enumerated from ``lipot.nn`` (a new layer without a case here fails
``test_every_exported_layer_has_a_case``). Each case is checked fresh and after one Adam step, in
training and eval mode, in float64. Training-mode forwards write state (the power-iteration vector,
the re-projected raw weight, BatchCentering's running mean), so each reference computation starts
from the same saved state as the transformed one.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, jacfwd, jacrev, vmap
from torch.nn.utils import parametrize

import lipot
import lipot.nn as L


def _parametrized_linear() -> nn.Module:
    layer = nn.Linear(4, 3)
    weight = L.LipschitzWeight(layer.weight.detach(), method="bjorck")
    parametrize.register_parametrization(layer, "weight", weight)
    return layer


def _first(m: nn.Module, xi: torch.Tensor) -> torch.Tensor:
    return m(xi[None])[0]


@dataclass
class Case:
    make: Callable[[], nn.Module]
    shape: tuple[int, ...]  # one sample
    single: Callable[[nn.Module, torch.Tensor], torch.Tensor] = _first  # one sample -> its output


CASES: dict[str, Case] = {
    "AOLConv2d": Case(lambda: L.AOLConv2d(2, 3, 3, padding=1), (2, 4, 4)),
    "AOLLinear": Case(lambda: L.AOLLinear(4, 3), (4,)),
    "BatchCentering": Case(lambda: L.BatchCentering(2), (2, 3)),
    "ConePotential": Case(lambda: L.ConePotential(3, cones=4), (3,)),
    "ConeEnvelope": Case(lambda: L.ConeEnvelope(3, cones=4, temperature=0.1), (3,)),
    "Flatten": Case(lambda: L.Flatten(), (2, 3)),
    "FrobeniusConv2d": Case(lambda: L.FrobeniusConv2d(2, 3, 3, padding=1), (2, 4, 4)),
    "FrobeniusLinear": Case(lambda: L.FrobeniusLinear(4, 3), (4,)),
    "FullSort": Case(lambda: L.FullSort(), (5,)),
    "GroupSort": Case(lambda: L.GroupSort(3), (6,)),
    "GroupSort2": Case(lambda: L.GroupSort2(), (6, 2)),
    "GroupSortNorm": Case(lambda: L.GroupSortNorm(), (8,)),
    "HouseHolder": Case(lambda: L.HouseHolder(4), (4, 2, 2)),
    "InvertibleDownSampling": Case(lambda: L.InvertibleDownSampling(2), (1, 4, 4)),
    "InvertibleUpSampling": Case(lambda: L.InvertibleUpSampling(2), (4, 2, 2)),
    "LPReLU": Case(lambda: L.LPReLU(), (4,)),
    "LayerCentering": Case(lambda: L.LayerCentering(2), (2, 3, 3)),
    "LipResidual": Case(lambda: L.LipResidual(L.SpectralLinear(4, 4)), (4,)),
    "LipschitzWeight": Case(_parametrized_linear, (4,)),
    "MaxMin": Case(lambda: L.MaxMin(), (4,)),
    "OrthoConv2d": Case(lambda: L.OrthoConv2d(2, 2, 3, padding=1, padding_mode="circular"), (2, 4, 4)),
    "OrthoConvTranspose2d": Case(lambda: L.OrthoConvTranspose2d(2, 2, 2, stride=2), (2, 3, 3)),
    "ScaledAdaptiveAvgPool2d": Case(lambda: L.ScaledAdaptiveAvgPool2d(), (2, 2, 2)),
    "ScaledAdaptiveL2NormPool2d": Case(lambda: L.ScaledAdaptiveL2NormPool2d(), (2, 2, 2)),
    "ScaledAvgPool2d": Case(lambda: L.ScaledAvgPool2d(2), (2, 4, 4)),
    "ScaledL2NormPool2d": Case(lambda: L.ScaledL2NormPool2d(2), (2, 4, 4)),
    "Sequential": Case(
        lambda: L.Sequential(L.SpectralLinear(4, 8), L.GroupSortNorm(), L.FrobeniusLinear(6, 2)), (4,)
    ),
    "SpectralConv1d": Case(lambda: L.SpectralConv1d(2, 3, 3, padding=1), (2, 5)),
    "SpectralConv2d": Case(lambda: L.SpectralConv2d(2, 3, 3, padding=1), (2, 4, 4)),
    "SpectralConvTranspose2d": Case(lambda: L.SpectralConvTranspose2d(2, 3, 3, padding=1), (2, 4, 4)),
    "SpectralLinear": Case(lambda: L.SpectralLinear(4, 3), (4,)),
    "StackedSpectralLinear": Case(lambda: L.StackedSpectralLinear(2, 4, 3), (4,),
                                  lambda m, xi: m(xi[None])[:, 0]),
}


def _exported_layer_classes() -> set[str]:
    return {
        name for name in L.__all__
        if inspect.isclass(getattr(L, name)) and issubclass(getattr(L, name), nn.Module)
    }


def test_every_exported_layer_has_a_case():
    assert _exported_layer_classes() == set(CASES)
    # every module class of the top-level namespace (the losses aside) is one of them
    top = {
        name for name in dir(lipot)
        if inspect.isclass(getattr(lipot, name)) and issubclass(getattr(lipot, name), nn.Module)
        and not getattr(lipot, name).__module__.startswith("lipot.losses")
    }
    assert top <= set(CASES)


def _build(name: str, stepped: bool) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    case = CASES[name]
    module = case.make().double()
    x = torch.randn(3, *case.shape, dtype=torch.float64)
    if stepped:
        params = [p for p in module.parameters() if p.requires_grad]
        module.train()
        out = module(x)
        loss = (out * torch.linspace(-1, 2, out.numel(), dtype=out.dtype).reshape(out.shape)).sum()
        if params:
            opt = torch.optim.Adam(params, lr=0.05)
            loss.backward()
            opt.step()
    return module, x


def _restoring(module: nn.Module, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``fn()`` run from the module's current state, the state then restored."""
    state = copy.deepcopy(module.state_dict())
    try:
        return fn()
    finally:
        module.load_state_dict(state)


def _reference_jacobian(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(lambda t: module(t), x)


@pytest.fixture(
    params=[(n, t, s) for n in sorted(CASES) for t in (True, False) for s in (False, True)],
    ids=lambda p: f"{p[0]}-{'train' if p[1] else 'eval'}-{'after-adam-step' if p[2] else 'fresh'}",
)
def layer(request):
    """(name, module in its mode, batch): every case, train / eval, fresh / after one Adam step."""
    name, training, stepped = request.param
    module, x = _build(name, stepped)
    return name, module.train(training), x


def test_jacobians_equal_autograd(layer):
    _, module, x = layer
    expected = _restoring(module, lambda: _reference_jacobian(module, x))
    reverse = _restoring(module, lambda: jacrev(module)(x))
    forward = _restoring(module, lambda: jacfwd(module)(x))
    assert reverse.shape == expected.shape
    assert torch.allclose(reverse, expected, rtol=0, atol=1e-6), float((reverse - expected).abs().max())
    assert torch.allclose(forward, expected, rtol=0, atol=1e-6), float((forward - expected).abs().max())
    assert expected.abs().max() > 0  # a real Jacobian, not an all-zero one


def test_vmap_equals_loop(layer):
    name, module, x = layer
    single = CASES[name].single
    batched = _restoring(module, lambda: vmap(lambda xi: single(module, xi))(x))
    looped = torch.stack([_restoring(module, lambda: single(module, xi)) for xi in x])
    assert torch.allclose(batched, looped, rtol=0, atol=1e-12)


def test_transforms_leave_the_state_untouched():
    """A transformed forward in training mode is pure: no buffer or raw weight changes."""
    torch.manual_seed(0)
    model = L.Sequential(L.SpectralLinear(4, 4), L.GroupSort2(), L.BatchCentering(4)).double().train()
    x = torch.randn(5, 4, dtype=torch.float64)
    with torch.no_grad():
        model[0].parametrizations.weight.original.add_(0.1)  # an un-projected raw weight
    before = copy.deepcopy(model.state_dict())
    jacrev(model)(x)
    vmap(lambda xi: model(xi[None])[0])(x)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    model(x)  # an ordinary training step does update it
    assert not torch.equal(before["2.running_mean"], model.state_dict()["2.running_mean"])


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_per_sample_gradients_with_functional_call(training):
    """vmap(grad(functional_call)) over the parameters equals one backward pass per sample.

    Substituted parameters take the differentiable Björck path, the ordinary forward the
    re-projection and the exact polar derivative: equal to the Björck tolerance on the float32
    orthogonal initialization (1e-7 here), hence the 1e-6 of the Jacobian checks."""
    torch.manual_seed(0)
    model = L.Sequential(
        L.OrthoConv2d(1, 4, 3, padding=1), L.GroupSort2(), L.ScaledL2NormPool2d(2),
        nn.Flatten(), L.SpectralLinear(16, 4), L.MaxMin(), L.FrobeniusLinear(8, 1),
    ).double().train(training)
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, xi):
        return functional_call(model, p, (xi[None],)).sum()

    per_sample = _restoring(model, lambda: vmap(grad(loss), in_dims=(None, 0))(params, x))
    _assert_per_sample_gradients(model, x, per_sample)


def _assert_per_sample_gradients(model: nn.Module, x: torch.Tensor, per_sample: dict) -> None:
    """``per_sample[k][i]`` equals the gradient of ``model(x[i:i+1]).sum()`` (one backward pass)."""
    for i in range(x.shape[0]):
        def one():
            model.zero_grad()
            model(x[i:i + 1]).sum().backward()
            return {k: v.grad.clone() for k, v in model.named_parameters()}
        expected = _restoring(model, one)
        for k in per_sample:
            assert torch.allclose(per_sample[k][i], expected[k], rtol=0, atol=1e-6), k


def _dense_critic() -> nn.Module:
    from lipot.models import dense_critic

    return dense_critic(3, hidden=(8, 8))


def _conv_critic() -> nn.Module:
    return L.Sequential(
        L.OrthoConv2d(1, 4, 3, padding=1), L.GroupSort2(), L.ScaledL2NormPool2d(2), nn.Flatten(),
        L.SpectralLinear(16, 4), L.GroupSortNorm(), L.AOLLinear(3, 1),
    )


@pytest.mark.parametrize("make, shape", [(_dense_critic, (3,)), (_conv_critic, (1, 4, 4))],
                         ids=["dense", "conv"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_ensemble_of_critics_with_stack_module_state(make, shape, training):
    """K critics batched the torch.func way (stack_module_state + vmap over functional_call), as a
    user would batch lipot models: equal to running the K models one by one. (Batched weights
    cannot be read on the host: the normalizations run their fixed-step, conservative path.)"""
    torch.manual_seed(0)
    critics = [make().double().train(training) for _ in range(3)]
    params, buffers = torch.func.stack_module_state(critics)
    base = copy.deepcopy(critics[0]).to("meta")
    x = torch.randn(10, *shape, dtype=torch.float64)

    def one(p, b):
        return functional_call(base, (p, b), (x,))

    batched = vmap(one)(params, buffers)
    looped = torch.stack([_restoring(c, lambda: c(x)) for c in critics])
    assert torch.allclose(batched, looped, rtol=0, atol=1e-7)


# ----------------------------------------------------------------------------- unbatched samples


UNBATCHED = {
    "GroupSort": (lambda dim: L.GroupSort(3, dim=dim), 6),
    "GroupSort2": (lambda dim: L.GroupSort2(dim=dim), 4),
    "FullSort": (lambda dim: L.FullSort(dim=dim), 5),
    "GroupSortNorm": (lambda dim: L.GroupSortNorm(dim=dim), 8),
    "MaxMin": (lambda dim: L.MaxMin(dim=dim), 3),
    "HouseHolder": (lambda dim: L.HouseHolder(4, theta_initializer="normal", dim=dim), 4),
    "LPReLU": (lambda dim: L.LPReLU(), 3),
}


@pytest.mark.parametrize("name", sorted(UNBATCHED))
def test_activations_take_one_unbatched_sample(name):
    """A lone vector (C,) is one sample with the default dim (torch's PReLU convention), and with
    dim=-3 a lone image (C, H, W) is: vmap over the batch equals the batched call."""
    make, channels = UNBATCHED[name]
    torch.manual_seed(0)
    vectors = torch.randn(5, channels, dtype=torch.float64)
    torch.manual_seed(0)
    layer = make(1).double()
    assert torch.equal(vmap(layer)(vectors), layer(vectors))
    assert torch.equal(layer(vectors[0]), layer(vectors)[0])
    if name == "LPReLU":  # one slope per channel needs dimension 1, as torch.nn.PReLU
        return
    images = torch.randn(5, channels, 3, 2, dtype=torch.float64)
    layer = make(-3).double()
    assert torch.equal(vmap(layer)(images), layer(images))
    assert torch.equal(layer(images[0]), layer(images)[0])


def _models():
    from lipot import models

    return {
        "dense_classifier": (lambda: models.dense_classifier(6, (8, 4), 3), (6,)),
        "dense_classifier-lln": (lambda: models.dense_classifier(6, (8,), 3, head="lln"), (6,)),
        "dense_critic": (lambda: models.dense_critic(8, (8, 8)), (8,)),
        "conv_classifier": (lambda: models.conv_classifier(1, 8, (4, 4), (8,), 3), (1, 8, 8)),
        "conv_classifier-stride": (lambda: models.conv_classifier(2, 8, (4,), (8,), 3, downsample="stride",
                                                                  conv="aol", head="lln"), (2, 8, 8)),
        "cnn_4c3f": (lambda: models.cnn_4c3f(1, 8, 3), (1, 8, 8)),
        "conv_critic": (lambda: models.conv_critic(1, 8, conv="spectral"), (1, 8, 8)),
    }


@pytest.mark.parametrize("name", sorted(_models()))
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_vmap_over_the_models(name, training):
    """``vmap(model)(x) == model(x)`` for every builder of lipot.models, and the per-sample recipe
    (functional_call + vmap + grad, and vmap(jacrev)) equals one backward pass per sample."""
    make, shape = _models()[name]
    torch.manual_seed(0)
    model = make().double().train(training)
    x = torch.randn(3, *shape, dtype=torch.float64)
    batched = _restoring(model, lambda: model(x))
    assert torch.allclose(_restoring(model, lambda: vmap(model)(x)), batched, rtol=0, atol=1e-10)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, xi):
        return functional_call(model, p, (xi,)).sum()

    per_sample = _restoring(model, lambda: vmap(grad(loss), in_dims=(None, 0))(params, x))
    jacobians = _restoring(model, lambda: vmap(jacrev(model))(x))
    _assert_per_sample_gradients(model, x, per_sample)
    for i in range(x.shape[0]):
        reference = _restoring(model, lambda: _reference_jacobian(model, x[i:i + 1]))[0, :, 0]
        assert torch.allclose(jacobians[i], reference, rtol=0, atol=1e-6)
