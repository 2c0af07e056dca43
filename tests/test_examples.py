"""The examples run and their own assertions hold."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["quickstart.py"])
def test_example_runs(script):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)], capture_output=True, text=True, cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "singular values" in result.stdout


def test_certified_mnist_example_runs():
    from conftest import MNIST_ROOT

    if not MNIST_ROOT.is_dir():
        pytest.skip("MNIST files not present (set LIPOT_MNIST_ROOT)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "certified_mnist.py"), str(MNIST_ROOT), "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "verified Lipschitz bound" in result.stdout and "certified accuracy" in result.stdout


def test_w1_toy_critics_example_writes_its_figure(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "critics.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "w1_toy_critics.py"), "--out", str(out), "--n", "300",
         "--epochs", "1"], capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stdout.count("exact_w1") == 4


def test_certified_mnist_recipe_example_runs():
    from conftest import MNIST_ROOT

    if not MNIST_ROOT.is_dir():
        pytest.skip("MNIST files not present (set LIPOT_MNIST_ROOT)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "certified_mnist_recipe.py"), str(MNIST_ROOT), "1", "512"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "per-pair (verified body bound)" in result.stdout and "radii of 5 test images" in result.stdout


@pytest.mark.parametrize("script, expected", [
    ("quickstart_w1.py", "exact W1 of these samples"),
    ("quickstart_certify.py", "certified accuracy"),
    ("quickstart_audit.py", "verdict: ok"),
    ("plot_certified_accuracy.py", "certified accuracy at eps = 1.00"),
])
def test_quickstart_for_each_use_runs(script, expected):
    """The W1, certified-classifier and audit quickstarts (the gallery and the docs) run and their own
    assertions (accuracy of the estimate, verified bound, no certificate violated) hold."""
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout
