r"""Wasserstein-1 estimation with Kantorovich-Rubinstein (KR) dual critics, checked against
exact optimal transport (:mod:`lipot.ot`).

The package, bottom to top:

* :mod:`~lipot.wasserstein.folds`: the fold plan (train / selection / held-out parts);
* :mod:`~lipot.wasserstein.sources`: samples in memory or streamed, centered in float64
  (:func:`~lipot.wasserstein.sources.make_sources`);
* :mod:`~lipot.wasserstein.samplers`: samplers (callables or iterators) drawing fresh training
  samples for every pass;
* :mod:`~lipot.wasserstein.moments`: per-part float64 sums of samples and critic values;
* :mod:`~lipot.wasserstein.critics`: the returned critic types and the stacked fold critics;
* :mod:`~lipot.wasserstein.fitting`: the K fold critics trained together;
* :mod:`~lipot.wasserstein.defaults`: the defaults that depend on the data (batch size, widths,
  stopping tolerance, candidates);
* :mod:`~lipot.wasserstein.result`: :class:`W1Result` (value, standard error, critic,
  :meth:`~lipot.W1Result.transport_direction`);
* :mod:`~lipot.wasserstein.settings`: the checks of the estimator's settings;
* :mod:`~lipot.wasserstein.estimator`: :class:`W1Estimator` and :func:`estimate_w1`.
"""

from .critics import (CONE_MAX_FEATURES, LinearCritic, MeanCritic, ScaledCritic, SeparateCritics, StackedConeCritic,
                      StackedDenseCritic, StackedEnvelopeCritic)
from .defaults import auto_batch_size, auto_envelope_cones, auto_exact, auto_hidden, auto_tol, default_candidates
from .estimator import W1Estimator, W1Result, estimate_w1
from .folds import FoldPlan

__all__ = [
    "estimate_w1",
    "W1Estimator",
    "W1Result",
    "ScaledCritic",
    "MeanCritic",
    "LinearCritic",
    "StackedDenseCritic",
    "StackedConeCritic",
    "StackedEnvelopeCritic",
    "SeparateCritics",
    "FoldPlan",
    "auto_batch_size",
    "auto_envelope_cones",
    "auto_hidden",
    "auto_tol",
    "auto_exact",
    "default_candidates",
    "CONE_MAX_FEATURES",
]
