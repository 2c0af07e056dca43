r"""Audit: check, not trust, a model's Lipschitz bound and its certificates.

* :func:`lipschitz_lower_bound`: the largest ratio :math:`\lVert f(a) - f(b)\rVert / \lVert a -
  b\rVert` found (a true lower bound on :math:`L`, whatever the search did) by two searches:
  power iteration on :math:`J^\top J` at the data points (:math:`J^\top u` by autograd,
  :math:`Jv` by a central difference, so the reported value is itself a ratio over a pair), and
  gradient ascent of the pairwise ratio. GroupSort networks are piecewise linear, so
  :math:`\lVert J(x)\rVert` has no useful gradient; the pairwise ratio does.
* :func:`attack_radius`: per sample, the smallest :math:`\ell_2` perturbation found by an
  ensemble of minimum-norm attacks written here -- batched DeepFool (Moosavi-Dezfooli et al.,
  arXiv:1511.04599), targeted FAB (Croce & Hein, arXiv:1907.02044), FMN (Pintor et al.,
  arXiv:2102.12827) and APGD with the DLR loss (Croce & Hein, arXiv:2003.01690) bisected on the
  radius per sample. Every returned point is re-checked: it really is misclassified.
* :func:`audit_certificates`: certificates (from a verified bound) against attack radii, and
  the lower bound against the upper one. A certificate is a lower bound on the distance to the
  decision boundary and a successful attack an upper bound, so ``certificate <= attack radius``
  must hold per sample; attacks miss small errors, hence the norm audit beside it.

The package: :mod:`~lipot.audit.lower_bound`, :mod:`~lipot.audit.attacks`,
:mod:`~lipot.audit.report` (and the shared helpers in ``_common``).

Binary models with one logit (class = sign) are handled as the two logits ``(0, f)``.
"""

from .attacks import ATTACKS, AttackResult, attack_radius
from .lower_bound import LowerBound, lipschitz_lower_bound
from .report import AuditReport, audit_certificates

__all__ = ["lipschitz_lower_bound", "LowerBound", "attack_radius", "AttackResult", "audit_certificates",
           "AuditReport", "ATTACKS"]
