"""Is a module's call the computation lipot bounds? (no hooks, no overridden forward)

A bound derived from a module's class and weights holds only if calling the module runs that
class's computation: a forward hook can scale the output, a subclass can override ``forward``
(``class MyLinear(nn.Linear)`` whose forward returns ``10 * super().forward(x)``), and either
would make the bound silently too small. :func:`check_plain_call` refuses such modules.

Allowed: forwards defined by torch or lipot, torch's parametrization classes
(``torch.nn.utils.parametrize``), and the weight pre-hooks of ``torch.nn.utils.spectral_norm``
and ``torch.nn.utils.weight_norm``, whose weight :func:`hooked_weight` recomputes as the eval-mode
forward uses it.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.modules import module as _module_globals
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

__all__ = ["check_plain_call", "hooked_weight"]

# methods through which a module's call reaches its computation
_CALL_PATH = ("__call__", "_call_impl", "forward", "_conv_forward", "_constrained_weight", "_output_padding")
_TRUSTED_PREFIXES = ("torch.", "lipot.")
_WEIGHT_HOOKS = (SpectralNorm, WeightNorm)


def _foreign_overrides(cls: type) -> list[str]:
    """``Class.method`` for every call-path method defined outside torch and lipot."""
    found = []
    for klass in cls.__mro__:
        if klass.__module__.startswith(_TRUSTED_PREFIXES) or klass.__module__ == "builtins":
            continue
        found += [f"{klass.__qualname__}.{name}" for name in _CALL_PATH if name in vars(klass)]
    return found


def check_plain_call(module: nn.Module, who: str = "lipschitz_bound") -> None:
    """Raise ``ValueError`` (naming ``who`` and the module) if calling ``module`` may not run
    its class's own computation: forward hooks or pre-hooks (other than spectral / weight norm
    weight hooks), global module hooks, or a call-path method overridden outside torch and
    lipot."""
    name = type(module).__name__
    overrides = _foreign_overrides(type(module))
    if overrides:
        raise ValueError(
            f"{who}: cannot bound {name}: it overrides {', '.join(overrides)}, so its output is not the one lipot "
            "bounds from its class and weights; bound the parts it is made of instead"
        )
    pre = [h for h in module._forward_pre_hooks.values() if not isinstance(h, _WEIGHT_HOOKS)]
    if module._forward_hooks or pre:
        raise ValueError(
            f"{who}: cannot bound {name}: it has forward hooks, which can change its output; remove them "
            "(handle.remove()) before bounding the model"
        )
    if _module_globals._global_forward_hooks or _module_globals._global_forward_pre_hooks:
        raise ValueError(
            f"{who}: cannot bound {name}: global module forward hooks are registered "
            "(torch.nn.modules.module.register_module_forward_hook); they can change every "
            "module's output, so lipot refuses to bound; remove them first"
        )


def hooked_weight(module: nn.Module) -> Tensor | None:
    """The weight an eval-mode forward of ``module`` uses when a ``spectral_norm`` or
    ``weight_norm`` pre-hook computes it (``None`` without such a hook)."""
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm) and hook.name == "weight":
            return hook.compute_weight(module, do_power_iteration=False).detach()
        if isinstance(hook, WeightNorm) and hook.name == "weight":
            return hook.compute_weight(module).detach()
    return None
