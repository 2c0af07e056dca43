"""Verified Lipschitz bounds and the robustness certificates they give
(:mod:`~lipot.certify.certificates`), with the bound of each leaf module
(:mod:`~lipot.certify.leaf_bounds`)."""

from __future__ import annotations

from .certificates import *  # noqa: F401,F403
from .certificates import __all__
