"""``benchmarks/gpu_check.py --quick`` on the CPU: every section runs and writes sane figures.

The full run is for a GPU; this checks that the script works end to end (the figures of a
--quick run are those of tiny layers and a few hundred images, not results)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MNIST_ROOT

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900,
                          cwd=REPO, env=env)


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    if not MNIST_ROOT.is_dir():
        pytest.skip("MNIST files not present (set LIPOT_MNIST_ROOT)")
    out = tmp_path_factory.mktemp("gpu_check") / "quick.json"
    proc = _run("--quick", "--device", "cpu", "--data-root", str(MNIST_ROOT), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_quick_run_writes_every_section(quick_results):
    results, stdout = quick_results
    assert results["quick"] is True
    assert results["environment"]["device"] == "cpu"
    assert set(results["sections"]) == {"layers", "emma", "w1", "mnist_halves", "audit"}
    for name, section in results["sections"].items():
        assert section["section_seconds"] > 0, name
        assert f"[{name}]" in stdout, name
    assert results["total_seconds"] >= sum(s["section_seconds"] for s in results["sections"].values()) * 0.99


def test_quick_layers_are_ratios_to_the_plain_layer(quick_results):
    layers = quick_results[0]["sections"]["layers"]
    cases = [c for c in layers if c != "section_seconds"]
    assert len(cases) == 3  # one dense case, two convolutions
    for case in cases:
        rows = layers[case]
        base = "nn.Linear" if case.startswith("dense") else "nn.Conv2d"
        assert rows[base]["ratio"] == 1.0
        assert any(name.startswith("lipot") for name in rows)
        for row in rows.values():
            assert row["ms"] > 0 and math.isclose(row["ratio"] * rows[base]["ms"], row["ms"], rel_tol=1e-9)


def test_quick_emma_certified_accuracies_are_ordered(quick_results):
    emma = quick_results[0]["sections"]["emma"]
    assert emma["train_images"] == 512 and emma["test_images"] == 256
    cert = [emma["certified"][e] for e in ("0.5", "1.0", "1.58")]
    assert 0 <= cert[2] <= cert[1] <= cert[0] <= emma["clean"] <= 1
    assert emma["epoch_seconds"] > 0


def test_quick_w1_rows_have_finite_values_and_the_exact_reference(quick_results):
    rows = {k: v for k, v in quick_results[0]["sections"]["w1"].items() if k != "section_seconds"}
    assert len(rows) == 5
    for name, row in rows.items():
        assert math.isfinite(row["lipot"]) and row["lipot"] > 0, name
        assert row["exact"] > 0 and row["exact_seconds"] >= 0
        ref = row["exact"] if row["reference_is"] == "exact" else row["reference"]
        assert math.isclose(row["lipot_error_pct"], 100 * (row["lipot"] - ref) / ref, rel_tol=1e-9)


def test_quick_mnist_halves_reports_the_first_budget_within_two_percent(quick_results):
    halves = quick_results[0]["sections"]["mnist_halves"]
    final = halves["runs"][-1]["value"]
    assert halves["converged"] == final
    first = next(r for r in halves["runs"] if abs(r["value"] - final) <= 0.02 * abs(final))
    assert halves["seconds_to_2pct"] == first["seconds"]
    assert halves["exact"] > 0


def test_quick_audit_finds_no_violation(quick_results):
    audit = quick_results[0]["sections"]["audit"]
    assert audit["n"] == 20 and audit["n_correct"] > 0
    assert audit["violations"] == 0 and audit["verdict"] == "ok"
    assert audit["min_ratio"] >= 1 - 1e-4
    assert audit["lower_bound"] <= audit["upper_bound"] * (1 + 1e-4)


def test_cuda_without_a_gpu_is_refused_by_name():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    proc = _run("--device", "cuda", "--only", "layers", "--quick")
    assert proc.returncode == 2
    assert "--device cuda" in proc.stderr and "--device cpu" in proc.stderr
