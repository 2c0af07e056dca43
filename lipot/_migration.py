"""The migration layer from deel-torchlip 1.0.5.

* Names that lipot does not define, each with what to use instead: accessing one
  (``lipot.PadConv2d``, ``lipot.functional.SymmetricPad``...) raises an ``AttributeError`` that
  says so (see the module ``__getattr__`` of :mod:`lipot` and :mod:`lipot.functional`).
* deel spellings of names lipot has under its own name (:data:`ALIASES`): ``lipot.LipschitzPReLU``
  and ``lipot.nn.ScaledAdaptativeL2NormPool2d`` still work, with a ``DeprecationWarning`` that
  names the lipot name. They are in no ``__all__`` and appear nowhere in the documentation.
"""

from __future__ import annotations

import warnings

__all__ = ["TOP_LEVEL", "FUNCTIONAL", "ALIASES", "missing", "resolve"]

ALIASES = {
    "LipschitzPReLU": "LPReLU",
    "ScaledAdaptativeL2NormPool2d": "ScaledAdaptiveL2NormPool2d",
}

TOP_LEVEL = {
    "BatchLipNorm": "lipot has no BatchLipNorm (its variance scaling makes the Lipschitz factor depend on "
                    "the data); use lipot.BatchCentering (centering only, 1-Lipschitz) or lipot.LayerCentering",
    "PadConv1d": "lipot's convolutions take every torch padding mode directly, with a bound that accounts "
                 "for it: lipot.SpectralConv1d(..., padding_mode='reflect'|'replicate'|'circular'); for an "
                 "unconstrained convolution use torch.nn.Conv1d",
    "PadConv2d": "lipot's convolutions take every torch padding mode directly, with a bound that accounts "
                 "for it: lipot.SpectralConv2d / lipot.OrthoConv2d(..., padding_mode='reflect'|'replicate'|"
                 "'circular'); for an unconstrained convolution use torch.nn.Conv2d",
    "ScaleBiasLayer": "lipot has no ScaleBiasLayer: give a lipot layer k_coef_lip for the scale and bias=True "
                      "for the bias",
    "ScaledLipschitzModule": "internal to deel-torchlip's BatchLipNorm; lipot layers derive from "
                             "lipot.nn.base.LipschitzModule",
    "SharedLipFactory": "internal to deel-torchlip's BatchLipNorm; lipot.Sequential(k_coef_lip=k) shares a "
                        "Lipschitz factor among layers",
    "utils": "lipot.linalg.normalizers (bjorck_orthonormalize, spectral_normalize, frobenius_normalize, "
             "aol_normalize) and lipot.vanilla_export / lipot.vanilla_model",
    "init": "lipot layers initialize their weights orthogonally themselves; torch.nn.init for other modules",
}

FUNCTIONAL = {
    "SymmetricPad": "torch has no symmetric padding; lipot layers take padding_mode='reflect', its closest "
                    "equivalent, with a bound that accounts for it",
    "apply_reduction": "lipot's loss functions take reduction='mean' | 'sum' | 'none' themselves",
    "kr_loss_multi_gpu": "lipot.functional.kr_loss(input, target, multi_gpu=True) (global-batch statistics; "
                         "the labels need no preprocessing)",
    "kr_loss_standard": "lipot.functional.kr_loss(input, target)",
    "process_labels_for_multi_gpu": "not needed: lipot's multi_gpu=True uses the labels as they are and "
                                    "computes the statistics over the union of the ranks' batches",
}


def missing(module: str, name: str, table: dict[str, str]) -> AttributeError:
    """The error for ``module.name``: the lipot replacement when ``name`` is a deel-torchlip name."""
    if name in table:
        return AttributeError(f"{module}.{name} (a deel-torchlip name) does not exist in lipot: {table[name]}")
    return AttributeError(f"module {module!r} has no attribute {name!r}")


def resolve(module: str, name: str, namespace: dict, table: dict[str, str] | None = None):
    """``module.name`` for a module ``__getattr__`` (PEP 562): the lipot object for a deprecated
    deel spelling in :data:`ALIASES` (with a ``DeprecationWarning`` naming the lipot name), else
    the ``AttributeError`` of :func:`missing` (with the replacement when ``table`` lists ``name``)."""
    if name in ALIASES:
        new = ALIASES[name]
        warnings.warn(f"{module}.{name} is deel-torchlip's spelling; use {module}.{new}, the same class "
                      f"(this alias will be removed)", DeprecationWarning, stacklevel=3)
        return namespace[new]
    raise missing(module, name, table or {})
