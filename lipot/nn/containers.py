"""``lipot.Sequential``: a ``torch.nn.Sequential`` that makes the whole model k-Lipschitz."""

from __future__ import annotations

import warnings
from collections import OrderedDict

from torch import nn

from .base import LipschitzModule, nominal_lipschitz
from .export import vanilla_export

__all__ = ["Sequential"]


class Sequential(nn.Sequential, LipschitzModule):
    r"""``torch.nn.Sequential`` whose composition is ``k_coef_lip``-Lipschitz.

    The Lipschitz constant of a composition is at most the product of its layers' constants.
    ``Sequential`` sets the factor of each of its ``n`` lipot layers (those with a
    ``k_coef_lip``: weight layers, activations, pooling, nested Sequentials...) to
    :math:`k^{1/n}`, so the product is :math:`k`. Other children must be ``torch.nn`` modules
    with a known constant :math:`\le 1` (ReLU, Flatten, Identity, non-overlapping MaxPool...);
    anything else raises ``ValueError``, since lipot could not stand behind the bound. (This is
    the guarantee deel-torchlip's Sequential intended but did not deliver: it set an attribute
    that its linear and convolution layers never read again.)

    A child's own ``k_coef_lip`` other than 1 is overridden, with a warning. A
    ``FrobeniusLinear(disjoint_neurons=True)`` with several outputs makes each *output*
    ``k``-Lipschitz, not the l2 map: a warning says so, except for the last layer (a
    row-normalized "LLN" head, which :func:`lipot.certify.certified_accuracy` certifies with
    the per-pair form :math:`(z_i - z_j)/(L\lVert w_i - w_j\rVert)` of the body bound
    :math:`L`).

    Args:
        *args: modules, or one ``OrderedDict`` of named modules, as ``torch.nn.Sequential``.
        k_coef_lip: Lipschitz constant of the whole model.

    Example:
        >>> model = lipot.Sequential(
        ...     lipot.SpectralLinear(8, 16), lipot.GroupSort2(), lipot.SpectralLinear(16, 1), k_coef_lip=2.0)
        >>> model(torch.randn(5, 8)).shape
        torch.Size([5, 1])
        >>> round(lipot.lipschitz_bound(model, (8,)), 4)        # the factor is shared among the layers
        2.0
    """

    def __init__(self, *args, k_coef_lip: float = 1.0) -> None:
        nn.Sequential.__init__(self, *args)
        self._init_lipschitz(k_coef_lip)
        self._distribute(warn_override=True)

    def _lipschitz_children(self) -> list[LipschitzModule]:
        children = []
        for name, module in self.named_children():
            if isinstance(module, LipschitzModule):
                children.append(module)
            else:
                try:
                    bound = nominal_lipschitz(module)
                except ValueError as err:
                    raise ValueError(f"Sequential layer {name!r}: {err}") from None
                if bound > 1.0:
                    raise ValueError(
                        f"Sequential layer {name!r} ({type(module).__name__}) is only "
                        f"{bound:g}-Lipschitz; use a lipot layer instead"
                    )
        return children

    def _distribute(self, warn_override: bool) -> None:
        children = self._lipschitz_children()
        if not children:
            return
        per_layer = self.k_coef_lip ** (1.0 / len(children))
        last = list(self.children())[-1]
        for child in children:
            if warn_override and child.k_coef_lip != 1.0 and abs(child.k_coef_lip - per_layer) > 1e-12:
                warnings.warn(
                    f"Sequential(k_coef_lip={self.k_coef_lip:g}) overrides k_coef_lip="
                    f"{child.k_coef_lip:g} of {type(child).__name__} (now {per_layer:g}); set the "
                    "factor on the Sequential only",
                    UserWarning,
                    stacklevel=3,
                )
            child.k_coef_lip = per_layer
            # a row-normalized last layer (an "LLN" head) is certified per pair by lipot.certify
            if child is not last and getattr(child, "disjoint_neurons", False) \
                    and getattr(child, "out_features", 1) > 1:
                warnings.warn(
                    "Sequential contains FrobeniusLinear(disjoint_neurons=True) with "
                    f"{child.out_features} outputs: each output is k-Lipschitz, but the l2 map is "
                    f"only k*sqrt({child.out_features})-Lipschitz; multiclass certificates must "
                    "divide the margin by 2k",
                    UserWarning,
                    stacklevel=3,
                )

    def _k_coef_lip_changed(self) -> None:
        self._distribute(warn_override=False)

    def lipschitz_bound(self) -> float:
        """Product of the children's nominal bounds."""
        bound = 1.0
        for module in self.children():
            bound *= nominal_lipschitz(module)
        return bound

    def vanilla_export(self) -> nn.Sequential:
        return nn.Sequential(
            OrderedDict((name, vanilla_export(m)) for name, m in self.named_children())
        )

    def _frozen(self, *args, **kwargs):
        raise TypeError(
            "lipot.Sequential cannot be restructured after construction (its Lipschitz factor is "
            "distributed over the layers it was built with); build a new Sequential instead"
        )

    append = extend = insert = pop = __setitem__ = __delitem__ = __iadd__ = _frozen

    def extra_repr(self) -> str:
        return f"k_coef_lip={self.k_coef_lip:g}"
