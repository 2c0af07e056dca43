"""Command line: ``lipot train``, ``lipot certify``, ``lipot audit`` and ``lipot estimate`` (built on
:mod:`lipot.training`, :mod:`lipot.certify`, :mod:`lipot.models`, :mod:`lipot.data`,
:mod:`lipot.wasserstein` and :mod:`lipot.ot`).

Examples::

    lipot train --dataset mnist --binary 0 8 --data-root MNIST_DIR --arch dense \\
        --hidden 32 16 --loss hkr --alpha 0.9090909 --min-margin 1 --epochs 10 --lr 3e-3 --out m08.pt
    lipot certify m08.pt --data-root MNIST_DIR --eps 0.5 1 1.58
    lipot audit m08.pt --data-root MNIST_DIR --n 1000
    lipot estimate a.npy b.npy --exact
    lipot estimate MNIST_DIR MNIST_DIR --class-a 0 --class-b 8

``train`` and ``estimate`` run data-parallel when launched by torchrun (``--batch-size`` is then
per process)::

    torchrun --nproc_per_node 2 -m lipot.cli train --dataset mnist --data-root ... --out m.pt

The package: :mod:`~lipot.cli.train`, :mod:`~lipot.cli.check` (certify, audit),
:mod:`~lipot.cli.estimate`; options left unset keep the library's defaults.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import check, estimate, train
from ._args import HelpWithDefaults, version

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``lipot`` parser with its four commands."""
    parser = argparse.ArgumentParser(
        prog="lipot", allow_abbrev=False,
        description="1-Lipschitz networks: train and certify robust classifiers, audit them with "
                    "attacks, estimate Wasserstein-1 distances. `lipot <command> --help` for each.",
    )
    parser.add_argument("--version", action="version", version=f"lipot {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    common.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars on stderr (default: when stderr is a terminal)")
    parser.commands = {}  # name -> its parser (main reports unknown options with its usage)

    def add_command(name: str, **kwargs) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], allow_abbrev=False,
                                 formatter_class=HelpWithDefaults, **kwargs)
        parser.commands[name] = command
        return command

    train.add_parser(add_command)
    check.add_parsers(add_command)
    estimate.add_parser(add_command)
    return parser


# user mistakes (bad values, files, settings) print one line; anything else is a bug: traceback
_USER_ERRORS = (ValueError, TypeError, OSError, FloatingPointError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A user error prints ``lipot <command>: error: <message>`` and exits
    with status 2, as argparse does for a bad option (``--debug``: the traceback instead)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported with the command's own usage, not the top-level one
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except _USER_ERRORS as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        parser.exit(2, f"lipot {args.command}: error: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
