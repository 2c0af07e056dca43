"""``vanilla_export``: turn a lipot model into plain torch modules with identical outputs."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from .base import LipschitzModule, evaluating
from .flatten import Flatten

__all__ = ["vanilla_export", "vanilla_model"]


def _without_parametrizations(module: nn.Module) -> nn.Module:
    """A copy of a torch-parametrized module with its parametrized tensors as plain parameters.

    (``parametrize.remove_parametrizations`` on a deep copy would edit the generated class the
    copy shares with the original and break the original.)
    """
    values = {name: getattr(module, name).detach().clone() for name in module.parametrizations}
    memo = {id(module.parametrizations): None}
    exported = copy.deepcopy(module, memo)
    exported.__class__ = type(module).__bases__[0]
    del exported._modules["parametrizations"]
    for name, value in values.items():
        exported.register_parameter(name, nn.Parameter(value))
    return exported


def _export(module: nn.Module) -> nn.Module:
    if isinstance(module, (LipschitzModule, Flatten)):
        return module.vanilla_export()
    children = dict(module.named_children())
    if parametrize.is_parametrized(module):
        return _without_parametrizations(module)
    # copy the module itself, with placeholders for its children, then export each child
    memo = {id(child): None for child in children.values()}
    exported = copy.deepcopy(module, memo)
    for name, child in children.items():
        exported._modules[name] = None if child is None else _export(child)
    return exported


def vanilla_export(model: nn.Module) -> nn.Module:
    """Return a copy of ``model`` built only from ``torch.nn`` modules, with identical outputs.

    * Spectral/Frobenius dense and convolution layers become ``nn.Linear``, ``nn.Conv1d``,
      ``nn.Conv2d`` or ``nn.ConvTranspose2d`` holding the constrained weight (``k_coef_lip`` and
      the convolution coefficient folded in);
    * ``lipot.Sequential`` becomes ``nn.Sequential``;
    * activations, pooling, sampling, centering and residual layers, which have no ``torch.nn``
      counterpart, become ``torch.fx.GraphModule`` objects (``nn.Module`` subclasses generated
      by torch from the layer's forward: only torch functions, no lipot code);
    * other modules are deep-copied (``torch.nn.utils.parametrize`` parametrizations are
      replaced by their current value).

    The export reproduces **eval-mode** outputs (e.g. BatchCentering's running mean); the
    original model's mode is left unchanged. The result can be saved with ``torch.save`` and
    loaded where lipot is not installed.

    Args:
        model: a module built from lipot layers (and any other modules).

    Example:
        >>> model = lipot.Sequential(lipot.SpectralLinear(4, 8), lipot.GroupSort2(), lipot.SpectralLinear(8, 1))
        >>> plain = lipot.vanilla_export(model)
        >>> type(plain).__name__, type(plain[0]).__name__
        ('Sequential', 'Linear')
        >>> x = torch.randn(3, 4)
        >>> bool(torch.allclose(plain(x), model.eval()(x)))
        True
    """
    with evaluating(model), torch.no_grad():
        exported = _export(model)
    return exported.eval()


def vanilla_model(model: nn.Module, in_place: bool = True, new_module: nn.Module | None = None) -> nn.Module:
    """deel-torchlip's call pattern of :func:`vanilla_export`: converts ``model`` **in place** by
    default and returns it; ``in_place=False`` returns a converted copy and leaves ``model`` as
    it was (that is :func:`vanilla_export`).

    In place, the object ``model`` itself becomes the exported module (its class and contents
    are replaced), so every reference to it, a lipot layer at the top included, now holds the
    plain ``torch.nn`` model. (deel-torchlip converts only the children in place, and leaves a
    lipot layer passed on its own unconverted.) Outputs are the eval-mode outputs, as for
    :func:`vanilla_export`.

    Args:
        model: a module built from lipot layers.
        in_place: convert ``model`` itself (deel-torchlip's behaviour) or return a converted copy.
        new_module: deel-torchlip's internal recursion argument; must stay ``None``.

    Example:
        >>> model = lipot.Sequential(lipot.SpectralLinear(4, 8), lipot.GroupSort2(), lipot.SpectralLinear(8, 1))
        >>> x = torch.randn(3, 4)
        >>> before = model.eval()(x)
        >>> same = lipot.vanilla_model(model)                 # converted in place
        >>> same is model, type(model).__name__, bool(torch.allclose(model(x), before))
        (True, 'Sequential', True)
    """
    if new_module is not None:
        raise ValueError("new_module is deel-torchlip's internal recursion argument; leave it None")
    exported = vanilla_export(model)
    if not in_place:
        return exported
    model.__class__ = type(exported)
    model.__dict__.clear()
    model.__dict__.update(exported.__dict__)
    return model
