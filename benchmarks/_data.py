"""Where the benchmarks find MNIST (the four standard IDX ``.gz`` files): ``$LIPOT_MNIST_ROOT``,
else ``data/mnist`` in the repository, as for the examples."""

from __future__ import annotations

import os

MNIST_ROOT = os.environ.get("LIPOT_MNIST_ROOT",
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist"))
