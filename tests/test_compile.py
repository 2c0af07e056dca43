"""A small GNP model under torch.compile(fullgraph=True).

Whole-graph capture is what matters (no graph breaks); the default run uses the ``aot_eager``
backend (capture + AOT autograd, no C++ compilation), the ``slow`` run also uses inductor.
Under compile lipot runs a fixed number of Björck steps with autograd through them (no in-place
projection, no data-dependent stopping), so compiled and eager outputs and gradients agree.
"""

from __future__ import annotations

import pytest
import torch

import lipot
from conftest import lipschitz_all_modes


def small_model():
    torch.manual_seed(0)
    return lipot.Sequential(
        lipot.SpectralConv2d(1, 4, 3, padding=1),
        lipot.GroupSort2(),
        lipot.ScaledL2NormPool2d(2),
        torch.nn.Flatten(),
        lipot.SpectralLinear(4 * 4 * 4, 16),
        lipot.FullSort(),
        lipot.FrobeniusLinear(16, 1),
    )


def ortho_model():
    """Orthogonal and AOL convolutions (circular and strided) and an orthogonal transposed conv."""
    torch.manual_seed(0)
    return lipot.Sequential(
        lipot.OrthoConv2d(1, 4, 4, stride=2, padding=1, padding_mode="circular"),
        lipot.GroupSort2(),
        lipot.AOLConv2d(4, 4, 3, padding=1),
        lipot.OrthoConvTranspose2d(4, 2, 3, padding=1),
        torch.nn.Flatten(),
        lipot.SpectralLinear(2 * 4 * 4, 8),
        lipot.GroupSort2(),
        lipot.SpectralLinear(8, 1),
    )


def run_compiled(backend, make_model=small_model):
    torch._dynamo.reset()
    model = make_model()
    x = torch.randn(8, 1, 8, 8)
    eager_out = model(x)
    eager_out.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    compiled = torch.compile(model, fullgraph=True, backend=backend)
    out = compiled(x)
    torch.testing.assert_close(out, eager_out.detach(), atol=1e-5, rtol=1e-5)
    out.sum().backward()
    for grad, ref in zip((p.grad for p in model.parameters()), eager_grads):
        torch.testing.assert_close(grad, ref, atol=1e-4, rtol=1e-3)

    # a few compiled training steps, then the exact bound of the model
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        compiled(x).pow(2).mean().backward()
        opt.step()
    model.eval()
    with torch.no_grad():  # both are the polar factor to eps_bjorck = 1e-3
        torch.testing.assert_close(compiled(x), model(x), atol=2e-3, rtol=2e-3)
    measured = lipschitz_all_modes(model, x[:1], points=2)
    assert max(measured.values()) <= 1 + 1e-4


@pytest.mark.parametrize("make_model", [small_model, ortho_model])
def test_compile_fullgraph_aot_eager(make_model):
    run_compiled("aot_eager", make_model)


@pytest.mark.slow
@pytest.mark.parametrize("make_model", [small_model, ortho_model])
def test_compile_fullgraph_inductor(make_model):
    run_compiled("inductor", make_model)
