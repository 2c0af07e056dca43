"""``benchmarks/certified_mnist.py`` end to end on a few hundred images: the held-out validation
split, the options of the record search, the test report with its curve, and resume."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MNIST_ROOT

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "certified_mnist.py"

pytestmark = pytest.mark.skipif(not MNIST_ROOT.is_dir(), reason="MNIST files not present (set LIPOT_MNIST_ROOT)")


def _run(out: Path, epochs: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--recipe", "gloro", "--epochs", str(epochs), "--minutes", "60",
           "--val-split", "300", "--limit", "512", "--translate", "1", "--data-root", str(MNIST_ROOT),
           "--out", str(out), "--tag", "smoke", "--overshoot", "1.2", "--batch-size", "128"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_validation_split_test_report_and_resume(tmp_path):
    _run(tmp_path, 1)
    proc = _run(tmp_path, 2)  # resumes from the checkpoint of the first call: one more epoch
    rows = list(csv.DictReader((tmp_path / "smoke.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    # --overshoot 1.2: the radius ramp ends at 1.2 x 1.58 (the recipe's default is 1.1 x)
    assert float(rows[-1]["train_eps"]) == pytest.approx(1.2 * 1.58, abs=1e-3)
    report = json.loads((tmp_path / "smoke-test.json").read_text())
    assert report["epochs"] == 2 and report["dataset"] == "mnist"
    # the validation figures are the held-out training images', the test figures the test set's
    assert report["val_clean"] == pytest.approx(float(rows[-1]["clean"]), abs=1e-4)
    curve = report["test_curve"]
    assert curve["eps"][0] == 0.0 and curve["eps"][-1] == 3.0
    assert all(a >= b for a, b in zip(curve["certified"], curve["certified"][1:]))  # non-increasing in eps
    assert curve["certified"][0] <= report["test_clean"] + 1e-6
    at_1 = curve["certified"][curve["eps"].index(1.0)]
    assert at_1 == pytest.approx(report["test_certified"]["1.0"], abs=1e-6)
    assert "test set, final model" in proc.stdout
    # the same figures on the training part (512 images with --limit), to tell capacity from overfitting
    assert "training images (512)" in proc.stdout
    fit = [report["train_certified"][e] for e in ("0.5", "1.0", "1.58")]
    assert report["train_clean"] >= fit[0] >= fit[1] >= fit[2] >= 0.0
    assert (tmp_path / "certified-vs-eps.png").is_file()
    # `lipot certify` / `lipot audit` find the data the model was trained on
    from lipot.training import load_checkpoint

    config = load_checkpoint(tmp_path / "smoke.pt")["extra"]["config"]
    assert config["data_root"] == str(MNIST_ROOT.resolve()) and config["dataset"] == "mnist"


def test_bad_validation_split_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--recipe", "emma", "--val-split", "60000",
                           "--data-root", str(MNIST_ROOT), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 2 and "--val-split" in proc.stderr
