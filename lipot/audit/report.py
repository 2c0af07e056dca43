"""The audit: certificates (from a verified bound) against attack radii, and the empirical
Lipschitz lower bound against the bound the certificates use."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .. import _checks
from ..certify.certificates import certified_accuracy, lipschitz_bound
from ..nn.base import evaluating
from ._common import Logits, as_inputs, check_labels
from .attacks import attack_radius
from .lower_bound import lipschitz_lower_bound

__all__ = ["audit_certificates", "AuditReport"]


@dataclass
class AuditReport:
    """:func:`audit_certificates`'s result (on the correctly classified samples).

    ``violations``: samples whose attack radius is below their certificate (beyond the float32
    tolerance ``rtol``); ``min_ratio`` / ``median_ratio``: attack radius / certificate;
    ``lower_bound`` (empirical, :func:`lipschitz_lower_bound`) and ``upper_bound`` (the bound
    the certificates used); ``verdict``: ``"ok"`` or what failed."""

    n: int
    n_correct: int
    violations: int
    min_ratio: float
    median_ratio: float
    lower_bound: float
    upper_bound: float
    verified_bound: float | None
    certificate_method: str
    verdict: str
    unattacked: int = 0
    verified_note: str = ""
    certificates: Tensor = field(default=None, repr=False)
    attack_radii: Tensor = field(default=None, repr=False)
    adversarial: Tensor = field(default=None, repr=False)

    def __str__(self) -> str:
        lines = [
            f"audit of {self.n} samples ({self.n_correct} correctly classified, audited)",
            f"  certificates: {self.certificate_method}",
            f"  Lipschitz bounds: empirical lower {self.lower_bound:.6f} <= upper {self.upper_bound:.6f}"
            + (f" (verified {self.verified_bound:.6f})" if self.verified_bound is not None else "")
            + (f"; {self.verified_note}" if self.verified_note else ""),
            f"  attack radius / certificate: min {self.min_ratio:.4f}, median {self.median_ratio:.4f}",
            f"  violations (attack radius < certificate): {self.violations}"
            + (f"; {self.unattacked} samples with no adversarial point found" if self.unattacked else ""),
            f"  verdict: {self.verdict}",
        ]
        return "\n".join(lines)


def _problems(violations: int, verified: float | None, lower: float, upper: float, rtol: float) -> list[str]:
    """What fails the audit: violated certificates, a verified bound above the one used (the
    norm audit), an empirical lower bound above it."""
    problems = []
    if violations:
        problems.append(f"{violations} certificate(s) violated by an attack")
    if verified is not None and verified > upper * (1 + rtol):
        problems.append(f"norm audit: the verified bound {verified:.6f} exceeds the bound used {upper:.6f}")
    if lower > upper * (1 + rtol):
        problems.append(f"empirical Lipschitz lower bound {lower:.6f} exceeds the bound used {upper:.6f}")
    return problems


def audit_certificates(model: nn.Module, X, y, lipschitz: float | None = None, *, attack: dict | None = None,
                       lower: dict | None = None, rtol: float = 1e-4, per_pair: bool = True,
                       device: str | torch.device | None = None) -> AuditReport:
    """Audit ``model``'s certificates on ``(X, y)``: certificates vs attack radii, and the
    empirical lower bound on :math:`L` vs the bound the certificates use.

    Args:
        model: a classifier (one logit for binary, else ``(N, C)`` logits).
        X, y: inputs and labels (as for :func:`lipot.certify.certified_accuracy`).
        lipschitz: the bound to certify with; ``None`` computes the verified bound
            (:func:`lipot.certify.lipschitz_bound`, per pair when the model is a Sequential
            ending with a Linear layer).
        attack: keyword arguments for :func:`attack_radius`; lower: for
            :func:`lipschitz_lower_bound`.
        rtol: relative tolerance of a violation (float32 logits: a point found at
            ``radius >= certificate * (1 - rtol)`` is not counted).

    The verdict fails when any certificate is violated; when the verified bound (product of
    exact per-layer operator norms) exceeds the bound the certificates assumed (the norm audit:
    attacks alone miss small errors); or when the empirical lower bound exceeds it.

    Example:
        >>> model = lipot.Sequential(lipot.SpectralLinear(4, 8), lipot.GroupSort2(), lipot.SpectralLinear(8, 3))
        >>> x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
        >>> report = lipot.audit_certificates(model, x, y, attack={"steps": 20})
        >>> report.violations, report.verdict                 # no attack beats a certificate
        (0, 'ok')
    """

    x = as_inputs("X", X)
    y = torch.as_tensor(y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y: {y.shape[0]} labels for {x.shape[0]} inputs")
    _checks.fraction("rtol", rtol, high_open=True)
    param = next(iter(model.parameters()), None)
    with evaluating(model):  # the labels against the model's outputs, named as this function's y
        check_labels(Logits(model), x[:1].to(device or (param.device if param is not None else x.device)), y,
                x.shape[0])
    cert = certified_accuracy(model, (x, y), [0.0], lipschitz=lipschitz, per_pair=per_pair, device=device)
    verified, verified_note = None, ""
    try:
        verified = lipschitz_bound(model, tuple(x.shape[1:]))
    except ValueError as err:  # a module lipot cannot bound: reported, and only the empirical audit remains
        if lipschitz is None:
            raise
        verified_note = f"no verified bound ({err})"
    upper = float(lipschitz) if lipschitz is not None else verified
    lb = lipschitz_lower_bound(model, x, **(lower or {}))
    correct = cert.correct
    att = attack_radius(model, x[correct], y[correct], device=device, **(attack or {}))
    certs = cert.radii[correct].double()
    radii = att.radii.double()
    ratio = radii / certs.clamp_min(1e-30)
    violations = int((radii < certs * (1 - rtol)).sum())
    problems = _problems(violations, verified, lb.value, upper, rtol)
    finite = ratio[torch.isfinite(ratio)]
    return AuditReport(
        n=x.shape[0], n_correct=int(correct.sum()), violations=violations,
        min_ratio=float(finite.min()) if finite.numel() else math.inf,
        median_ratio=float(finite.median()) if finite.numel() else math.inf,
        lower_bound=lb.value, upper_bound=upper, verified_bound=verified,
        certificate_method=cert.method if lipschitz is None else f"given L = {upper:g}",
        verdict="ok" if not problems else "FAILED: " + "; ".join(problems),
        unattacked=int((~att.success).sum()), verified_note=verified_note, certificates=certs, attack_radii=radii, adversarial=att.points,
    )
