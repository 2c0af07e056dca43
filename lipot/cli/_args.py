"""Helpers shared by the commands: argparse number types, the help formatter, the options the
user set, the training datasets and the torchrun launch."""

from __future__ import annotations

import argparse
import inspect
import os
from typing import Sequence

import torch

from ..data import readers as data
from .. import distributed

__all__ = ["HelpWithDefaults", "version", "POSITIVE_INT", "NONNEGATIVE_INT", "POSITIVE", "NONNEGATIVE",
           "unit_interval", "library_default", "user_set", "dataset", "launch"]


class HelpWithDefaults(argparse.HelpFormatter):
    """Each option's help ends with its default, unless the help already says it or there is
    none to show (``None``, ``False``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False \
                or action.default == argparse.SUPPRESS or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def version() -> str:
    """The installed lipot version (``unknown`` for a source checkout that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version as _installed

    try:
        return _installed("lipot")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _number(kind, minimum: float, strict: bool):
    """An argparse ``type`` for numbers ``> minimum`` (``strict``) or ``>= minimum``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")) or (
                value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


POSITIVE_INT = _number(int, 0, strict=True)
NONNEGATIVE_INT = _number(int, 0, strict=False)
POSITIVE = _number(float, 0.0, strict=True)
NONNEGATIVE = _number(float, 0.0, strict=False)


def unit_interval(text: str) -> float:
    """An argparse ``type`` for numbers in [0, 1]."""
    value = NONNEGATIVE(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def library_default(fn, name: str):
    """The default of argument ``name`` of the library function or class ``fn`` (for help texts:
    the value is defined there only)."""
    return inspect.signature(fn).parameters[name].default


def user_set(args, **names: str) -> dict:
    """``{keyword: value}`` for the options the user set (``None`` means unset): the library
    keeps its defaults, defined there only."""
    return {key: getattr(args, opt) for key, opt in names.items() if getattr(args, opt) is not None}


def dataset(name: str, root: str | None, split: str, binary: Sequence[int] | None):
    """The images and labels of ``split`` of MNIST or Fashion-MNIST (two classes -> +-1 with
    ``binary``)."""
    if name == "mnist":
        if root is None:
            raise ValueError("--data-root is required for mnist (the folder with the 4 IDX files)")
        x, y = data.mnist(root, split)
    elif name == "fashion-mnist":
        if root is None and not os.path.isdir(data.FASHION_MNIST_ROOT):
            raise FileNotFoundError(
                f"Fashion-MNIST is not in {data.FASHION_MNIST_ROOT}: install it with "
                "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or pass --data-root"
            )
        x, y = data.fashion_mnist(root or data.FASHION_MNIST_ROOT, split)
    else:
        raise ValueError(f"unknown dataset {name!r}: use mnist or fashion-mnist")
    if binary:
        x, y = data.binary_subset(x, y, binary[0], binary[1])
    return x, y


def launch(device: str | None) -> tuple[bool, str | torch.device | None]:
    """Under torchrun (``WORLD_SIZE`` > 1): initialize the process group and use this rank's
    device (unless ``--device`` is given). Returns (distributed, device)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False, device
    own = distributed.setup()
    return True, device or own
