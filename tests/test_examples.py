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
