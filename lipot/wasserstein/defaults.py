r"""The estimator's defaults that depend on the data, each defined once: the batch size, the
dense critic's widths, the stopping tolerance and the candidates of model selection.

:class:`~lipot.wasserstein.estimator.W1Estimator` takes ``None`` for each of these settings and
asks the function here; the command line passes on only what the user set.
"""

from __future__ import annotations

from .. import models
from .critics import CONE_MAX_FEATURES, ENVELOPE_CONES

__all__ = ["auto_batch_size", "auto_envelope_cones", "ENVELOPE_SAMPLES_PER_CONE", "ENVELOPE_MIN_TRAIN",
           "ENVELOPE_MAX_FEATURES", "auto_hidden", "auto_tol", "auto_exact", "default_candidates", "LOW_DIM_HIDDEN",
           "LOW_DIM_FEATURES", "LOW_DIM_TOL", "HIGH_DIM_TOL", "EXACT_MAX_FEATURES", "EXACT_MAX_PAIRS"]


def auto_batch_size(n_train: int) -> int:
    """Default batch size (samples per side and step): the whole training part up to 512."""
    return max(1, min(n_train, 512))


ENVELOPE_SAMPLES_PER_CONE = 20
"""Training samples per side for each cone of the envelope critic on a fixed sample
(:func:`auto_envelope_cones`)."""


def auto_envelope_cones(n_train: int, fresh: bool = False) -> int:
    """Default number of cones of the envelope critic.

    On a fixed sample (``fresh=False``): one cone per :data:`ENVELOPE_SAMPLES_PER_CONE`
    training samples (of the smaller side), between 16 and
    :data:`~lipot.wasserstein.critics.ENVELOPE_CONES`. An envelope fitted to a fixed sample
    overfits it, the more the more cones it has: on funnel pairs with 8000 points per side
    (5440 training samples per fold), seed 0, ``critic="envelope"``, 256 cones erred by -7.6 %
    (16-D, 64 funnels), -37.7 % (64-D, 64 funnels) and -16.9 % (128-D, 4 funnels) against
    -10.3 %, -39.6 % and -21.6 % with 1024 (``benchmarks/w1_funnels.py``); 64 cones gave
    -40.3 % and -14.9 % on the last two. Small samples also train faster with fewer cones.

    With samplers (``fresh=True``) every training pass draws new samples, nothing is overfitted
    and the spare cones pay (16-D, 64 funnels, fresh samples: -19.0 % of the true W1 with 64
    cones, -11.9 % with 256, -5.7 % with 1024, ``benchmarks/w1_envelope_alone.py``): they get
    :data:`~lipot.wasserstein.critics.ENVELOPE_CONES`."""
    if fresh:
        return ENVELOPE_CONES
    return max(16, min(ENVELOPE_CONES, int(n_train) // ENVELOPE_SAMPLES_PER_CONE))


LOW_DIM_HIDDEN = (64,) * 6
"""Hidden widths of the dense critic for inputs of 3 to :data:`LOW_DIM_FEATURES` features:
deeper and narrower than :data:`lipot.models.DENSE_CRITIC_HIDDEN`, at about the same cost per
step. A GroupSortNorm network composes pair norms layer by layer, so depth, not width, lets it
represent radial and clustered potentials: on 6 samples of N(0, I_10) vs N(0, 1.5^2 I_10) with
2000 points per side the mean held-out error went from -3.66 % to -1.45 %, every sample better
(``python benchmarks/w1_sample_spread.py --case scaled --dim 10 --n 2000 --samples 6 [--set
hidden=64,64,64,64,64,64]``). In 2-D, where the cone critic covers sharp clusters, the
three-layer network fitted two moons of 2000 points better (-0.16 % of exact OT against -0.91 %
with the deep one, ``lipot estimate --toy moons``), so 2-D inputs keep it."""

LOW_DIM_FEATURES = 16
"""Largest input width (flattened) that gets :data:`LOW_DIM_HIDDEN` (measured at d = 10; wider
inputs, such as flattened images, keep the critic their benchmarks were measured with)."""


def auto_hidden(in_features: int) -> tuple[int, ...]:
    """Default hidden widths of the dense critic: :data:`LOW_DIM_HIDDEN` for inputs of more than
    :data:`~lipot.wasserstein.critics.CONE_MAX_FEATURES` and at most :data:`LOW_DIM_FEATURES`
    features, else :data:`lipot.models.DENSE_CRITIC_HIDDEN`."""
    low = CONE_MAX_FEATURES < in_features <= LOW_DIM_FEATURES
    return LOW_DIM_HIDDEN if low else models.DENSE_CRITIC_HIDDEN


LOW_DIM_TOL = 1e-3
"""Stopping tolerance of :func:`auto_tol` for inputs of at most :data:`LOW_DIM_FEATURES`
features. There the halved learning rates' last gains are about 0.001 % per epoch and do not
move the estimate: paired on the validation cases of at most 10 features (``python
benchmarks/w1_validation.py --only shift diracs scaled moons mixtures --set tol=0`` and
``tol=0.001``, side by side), ``1e-3`` made them up to 2.3x faster (two moons, 5000 per side:
57 s -> 25 s) and moved no value by more than 0.08 % of the reference."""

HIGH_DIM_TOL = 1e-4
"""Stopping tolerance of :func:`auto_tol` for wider inputs. On flattened MNIST pairs the
critics still gain about 0.05 % per epoch late in training, and ``1e-3`` lowered the held-out
values (lower bounds) by 0.25 % to 0.6 % (``--only mnist --set tol=...``), and by 1.25 % on
digits 0-4 vs 5-9 with 10k per side (``python benchmarks/w1_time_to_estimate.py --case
mnist``); ``1e-4`` left the MNIST values within 0.003 % of ``tol=0``."""


def auto_tol(in_features: int) -> float:
    """Default stopping tolerance ``tol``: :data:`LOW_DIM_TOL` for inputs of at most
    :data:`LOW_DIM_FEATURES` features, else :data:`HIGH_DIM_TOL`."""
    return LOW_DIM_TOL if in_features <= LOW_DIM_FEATURES else HIGH_DIM_TOL


ENVELOPE_MIN_TRAIN = 4096
"""Smallest training part (samples per side, per fold) for which :func:`default_candidates`
proposes the envelope critic. It was measured to pay on the funnel pairs with 8000 per side
(about 5400 training samples per fold) and with samplers; on the speed cases of 2000 to 5000
per side it was never selected and made the estimate 1.3x to 2.6x slower
(``python benchmarks/w1_speed.py --old-src ...``), so smaller samples do not train it unless
``critic="envelope"`` asks."""

ENVELOPE_MAX_FEATURES = 128
"""Widest input (flattened) for which :func:`default_candidates` proposes the envelope critic:
the widest funnel pairs measured (its cost per step grows with the width; flattened images such
as MNIST's 784 features keep the GNP network alone)."""


def default_candidates(in_features: int, n_train: int | None = None) -> tuple[str, ...]:
    """The candidates of ``critic=None``, in training order: ``"linear"``, then ``"cone"`` for
    inputs of at most :data:`~lipot.wasserstein.critics.CONE_MAX_FEATURES` features (flattened),
    ``"envelope"`` for at most :data:`ENVELOPE_MAX_FEATURES` features and a training part of at
    least :data:`ENVELOPE_MIN_TRAIN` samples per side (``n_train``; ``None``: unknown, no
    envelope), and ``"gnp"``. (Square images get the conv critic and no envelope: see
    ``W1Estimator._kinds``.)"""
    kinds = ["linear"]
    if in_features <= CONE_MAX_FEATURES:
        kinds.append("cone")
    if in_features <= ENVELOPE_MAX_FEATURES and n_train is not None and n_train >= ENVELOPE_MIN_TRAIN:
        kinds.append("envelope")
    return (*kinds, "gnp")


EXACT_MAX_FEATURES = 2
r"""Largest input width for which :func:`auto_exact` adds POT's exact W1 of the two samples to
the result. The exact plug-in value is biased upward (in expectation it is at least the
population W1, by convexity), by about :math:`n^{-1/d}`: on funnel pairs (:mod:`lipot.data.funnels`,
seed 0, 4000 per side, 4 / 64 funnels) it erred by -0.8 % / +7.5 % in 2-D, +0.9 % / +8.7 % in
3-D, +3.9 % / +14.1 % in 4-D and +33.2 % / +56.6 % in 8-D (``python benchmarks/w1_funnels.py
--exact-only --dims 2 3 4 8 --funnels 4 64 --seeds 0 --n 4000``), while the estimator erred by
-2.1 % / -7.3 % in 2-D (8000 per side, mean of 3 pairs). In 2-D it is a useful upper companion of
the held-out value (a lower bound in expectation); beyond, its bias soon outgrows the
estimator's."""

EXACT_MAX_PAIRS = 4_000_000
"""Largest ``n * m`` for which :func:`auto_exact` computes it (2000 points per side: a 32 MB cost
matrix; POT's network simplex took 0.1 to 1.1 s at 1000 per side and 2.3 to 4.9 s at 4000 per
side on the 2-D pairs above, on a 2-core CPU). Pass ``exact=True`` for larger samples (up to
:func:`lipot.ot.exact_w1`'s memory guard)."""


def auto_exact(in_features: int, n: int, m: int) -> bool:
    """Whether ``exact=None`` adds the exact W1 of the samples: at most
    :data:`EXACT_MAX_FEATURES` features and ``n * m <= EXACT_MAX_PAIRS``."""
    return in_features <= EXACT_MAX_FEATURES and n * m <= EXACT_MAX_PAIRS
