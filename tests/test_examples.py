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
