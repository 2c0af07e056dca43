"""vanilla_export: only torch modules, identical outputs, loadable where lipot is absent."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import lipot
from conftest import train_steps


def conv_model():
    return lipot.Sequential(
        lipot.SpectralConv2d(2, 8, 3, padding=1, padding_mode="circular"),
        lipot.GroupSort2(),
        lipot.BatchCentering(8),
        lipot.SpectralConv2d(8, 8, 3, padding="same", groups=2),
        lipot.HouseHolder(8),
        lipot.ScaledL2NormPool2d(2),
        lipot.InvertibleDownSampling(2),
        lipot.FrobeniusConv2d(32, 8, 1),
        lipot.MaxMin(),
        lipot.LayerCentering(16),
        lipot.InvertibleUpSampling(2),
        lipot.SpectralConvTranspose2d(4, 4, 2, stride=2),
        lipot.ScaledAvgPool2d(2),
        lipot.ScaledAdaptiveAvgPool2d((2, 2)),
        lipot.LPReLU(4),
        lipot.ScaledAdaptiveL2NormPool2d((1, 1)),
        nn.Flatten(),
        lipot.LipResidual(lipot.SpectralLinear(4, 4)),
        lipot.SpectralLinear(4, 6, eps_bjorck=None),
        lipot.FullSort(),
        lipot.FrobeniusLinear(6, 3, disjoint_neurons=False),
        k_coef_lip=2.0,
    )


def dense_model():
    return lipot.Sequential(
        lipot.SpectralLinear(5, 8), lipot.GroupSort(4), lipot.SpectralLinear(8, 1),
    )


class Custom(nn.Module):
    """A user model (not a Sequential) holding lipot layers."""

    def __init__(self):
        super().__init__()
        self.body = dense_model()
        self.conv = lipot.SpectralConv1d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.body(x) + self.conv(x[:, None, :]).sum(dim=(1, 2))[:, None]


@pytest.mark.parametrize("make,shape", [(conv_model, (3, 2, 8, 8)), (dense_model, (4, 5))])
def test_export_matches_and_contains_only_torch_modules(make, shape):
    model = make()
    x = torch.randn(*shape)
    train_steps(model, x, steps=3, lr=0.01)
    exported = lipot.vanilla_export(model)
    assert model.training  # mode restored
    for module in exported.modules():
        assert type(module).__module__.startswith("torch."), type(module)
        assert not isinstance(module, lipot.LipschitzModule)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), atol=1e-5, rtol=1e-5)


def test_export_of_a_custom_module_keeps_its_class():
    model = Custom()
    exported = lipot.vanilla_export(model)
    assert type(exported) is Custom
    assert isinstance(exported.conv, nn.Conv1d) and not isinstance(exported.conv, lipot.LipschitzModule)
    x = torch.randn(3, 5)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x), atol=1e-5, rtol=1e-5)
    # the original is untouched
    assert isinstance(model.conv, lipot.SpectralConv1d)


def test_exported_model_loads_without_lipot(tmp_path):
    model = conv_model()
    x = torch.randn(2, 2, 8, 8)
    model.eval()
    with torch.no_grad():
        expected = model(x)
    torch.save({"model": lipot.vanilla_export(model), "x": x, "y": expected}, tmp_path / "m.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["lipot"] = None  # any import of lipot now fails
        import torch
        data = torch.load({str(tmp_path / "m.pt")!r}, weights_only=False)
        with torch.no_grad():
            out = data["model"](data["x"])
        assert torch.allclose(out, data["y"], atol=1e-5, rtol=1e-5), (out - data["y"]).abs().max()
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_export_of_torch_parametrizations():
    layer = nn.utils.parametrizations.orthogonal(nn.Linear(4, 4))
    exported = lipot.vanilla_export(nn.Sequential(layer))
    assert type(exported[0]) is nn.Linear
    x = torch.randn(2, 4)
    torch.testing.assert_close(exported(x), layer(x))
