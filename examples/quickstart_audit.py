"""
Audit a certified classifier with attacks
=========================================

Attack a certified model and check that no adversarial example lies inside a
certified radius, and bound its Lipschitz constant from below (attacks) and above (verified).

Run it::

    python examples/quickstart_audit.py
"""

import torch

import lipot

torch.manual_seed(0)
gen = torch.Generator().manual_seed(0)
y = torch.where(torch.arange(1200) % 2 == 0, 1.0, -1.0)  # two Gaussian blobs, labels +-1
x = torch.randn(1200, 8, generator=gen) + 0.7 * y[:, None]
model = lipot.models.dense_classifier(8, (32, 32), 1)
lipot.training.fit(model, lipot.HKRLoss(alpha=0.9, min_margin=1.0), lipot.training.make_loader(x[:1000], y[:1000], 50),
                   epochs=3, log=None, progress=False)

report = lipot.audit_certificates(model, x[1000:1100], y[1000:1100], attack={"steps": 50})
print(report)
print(f"Lipschitz constant: between {report.lower_bound:.4f} (attained by a pair of inputs) and "
      f"{report.upper_bound:.4f} (verified)")
assert report.verdict == "ok" and report.violations == 0
