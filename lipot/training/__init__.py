"""The training stack: the loop :func:`fit` with per-epoch certified accuracy, atomic
checkpoints and resume (:mod:`~lipot.training.loop`, :mod:`~lipot.training.checkpoints`), radius
ramps and learning-rate decays (:mod:`~lipot.training.schedules`), and the record recipes
(:mod:`~lipot.training.recipes`). The CLI's ``lipot train`` is built on it.
"""

from __future__ import annotations

from .loop import *  # noqa: F401,F403
from .loop import __all__
