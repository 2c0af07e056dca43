"""The :class:`LipschitzModule` mixin and the nominal Lipschitz bound of a module.

Every lipot layer carries a Lipschitz factor ``k_coef_lip``: the layer is ``k_coef_lip``-Lipschitz
from the l2 norm of its input to the l2 norm of its output (``FrobeniusLinear`` with
``disjoint_neurons=True`` is the one exception: each *output* is ``k_coef_lip``-Lipschitz, see its
docstring). The factor can be changed after construction (``layer.k_coef_lip = 2``); the change
takes effect at the next forward. :class:`lipot.Sequential` uses this to make a whole model
``k``-Lipschitz.

:func:`nominal_lipschitz` returns the bound a module *claims* (from its construction); it is used
to compose claims (Sequential, LipResidual). Verified bounds computed from the actual weights
belong to ``lipot.certify``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .. import _checks
from ..linalg.plain_call import check_plain_call
from .torch_bounds import nominal_torch_bound

__all__ = ["LipschitzModule", "TracedLipschitzModule", "nominal_lipschitz", "trace_export", "evaluating"]


@contextlib.contextmanager
def evaluating(module: nn.Module):
    """Put ``module`` in eval mode for the block, then restore its previous mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class LipschitzModule:
    """Mixin for lipot layers: a ``k_coef_lip`` property and a ``vanilla_export`` method.

    Example:
        >>> layer = lipot.SpectralLinear(4, 4, k_coef_lip=0.5)
        >>> isinstance(layer, lipot.LipschitzModule), layer.k_coef_lip
        (True, 0.5)
    """

    _k_coef_lip: float = 1.0

    def _init_lipschitz(self, k_coef_lip: float) -> None:
        self._k_coef_lip = _checks.positive_float("k_coef_lip", k_coef_lip)

    @property
    def k_coef_lip(self) -> float:
        """The Lipschitz factor of this layer (settable)."""
        return self._k_coef_lip

    @k_coef_lip.setter
    def k_coef_lip(self, value: float) -> None:
        self._k_coef_lip = _checks.positive_float("k_coef_lip", value)
        self._k_coef_lip_changed()

    def _k_coef_lip_changed(self) -> None:
        """Hook for layers that store the factor elsewhere (weight parametrizations)."""

    @property
    def layer_name(self) -> str:
        """The layer's class name for messages (``SpectralLinear``, not the
        ``ParametrizedSpectralLinear`` subclass that ``torch.nn.utils.parametrize`` creates)."""
        cls = type(self)
        while cls.__name__.startswith("Parametrized") and cls.__bases__:
            cls = cls.__bases__[0]
        return cls.__name__

    def _check_width(self, input: torch.Tensor, expected: int, dim: int, what: str) -> None:
        """Refuse an input whose ``dim`` does not have ``expected`` entries, naming the layer
        (torch's own message, e.g. "mat1 and mat2 shapes cannot be multiplied", does not)."""
        if input.dim() < -dim if dim < 0 else input.dim() <= dim:
            raise ValueError(f"{self.layer_name}: input of shape {tuple(input.shape)} has too few "
                             f"dimensions (expected {what} in dimension {dim})")
        if input.shape[dim] != expected:
            raise ValueError(
                f"{self.layer_name}: input of shape {tuple(input.shape)} has {input.shape[dim]} "
                f"{what} in dimension {dim}, expected {expected}"
            )

    def lipschitz_bound(self) -> float:
        """The l2 -> l2 Lipschitz constant this layer guarantees (its nominal bound)."""
        return self._k_coef_lip

    def vanilla_export(self) -> nn.Module:
        """An equivalent module built only from ``torch.nn`` / ``torch.fx`` classes."""
        raise NotImplementedError(f"{self.layer_name} does not implement vanilla_export")


class _ShallowTracer(torch.fx.Tracer):
    """Traces one module's own forward; calls to its submodules stay module calls."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def _make_portable(graph: torch.fx.Graph) -> None:
    """Make a traced graph picklable and loadable without lipot: drop string type annotations,
    the tracer class reference, and the guards (and placeholders) of specialized arguments
    (torch.fx cannot re-trace those guards when unpickling)."""
    guard = torch.fx._symbolic_trace._assert_is_none
    for node in list(graph.nodes):
        node.type = None
        if node.op == "call_function" and node.target is guard:
            graph.erase_node(node)
    for node in list(graph.nodes):
        if node.op == "placeholder" and not node.users and node.args == (None,):
            graph.erase_node(node)
    graph._tracer_cls = None
    graph.lint()


def trace_export(module: nn.Module, concrete_args: dict | None = None) -> nn.Module:
    """Export a lipot module without weight parametrization by tracing its eval-mode forward with
    ``torch.fx``.

    The resulting ``GraphModule`` calls only torch functions, holds the module's parameters and
    buffers, and loads without lipot. Submodules stay as calls to submodules of the same name
    (replace them by their own exports). ``concrete_args`` fixes optional forward arguments.
    """
    with evaluating(module):
        graph = _ShallowTracer().trace(module, concrete_args=concrete_args)
        _make_portable(graph)
        return torch.fx.GraphModule(module, graph, type(module).__name__)


def nominal_lipschitz(module: nn.Module) -> float:
    """The l2 Lipschitz bound a module claims, valid for every input size: ``lipschitz_bound()``
    for lipot modules, :func:`lipot.nn.torch_bounds.nominal_torch_bound` for the weight-free
    ``torch.nn`` modules it knows (pointwise activations, LeakyReLU, ELU, Softmax, Softplus with
    its default threshold, max pooling, zero padding, reshapes).

    Args:
        module: a lipot module or one of those ``torch.nn`` modules.

    Raises:
        ValueError: for a module whose Lipschitz constant lipot cannot know (plain ``nn.Linear``,
            ``nn.Conv2d``, batch normalization, dropout, custom modules...), or whose call may
            not be its class's computation (forward hooks, a ``forward`` overridden outside
            torch and lipot).

    Example:
        >>> lipot.nominal_lipschitz(lipot.SpectralLinear(4, 4, k_coef_lip=3.0))
        3.0
        >>> lipot.nominal_lipschitz(torch.nn.ReLU())
        1.0
    """
    check_plain_call(module, "nominal_lipschitz")
    if isinstance(module, LipschitzModule):
        return module.lipschitz_bound()
    bound = nominal_torch_bound(module)
    if bound is None:
        raise ValueError(
            f"cannot bound the Lipschitz constant of {type(module).__name__}: use its lipot "
            "equivalent (e.g. SpectralLinear for nn.Linear, SpectralConv2d for nn.Conv2d, "
            "ScaledAvgPool2d for nn.AvgPool2d), or a plain torch.nn.Sequential if you do not "
            "need a guaranteed bound"
        )
    return bound


class TracedLipschitzModule(nn.Module, LipschitzModule):
    """Base of the weightless lipot layers (activations, pooling, sampling): a ``k_coef_lip`` and
    an export by :func:`trace_export` (a ``torch.fx.GraphModule`` of the layer's own forward)."""

    def __init__(self, k_coef_lip: float = 1.0) -> None:
        nn.Module.__init__(self)
        self._init_lipschitz(k_coef_lip)

    def vanilla_export(self) -> nn.Module:
        return trace_export(self)
