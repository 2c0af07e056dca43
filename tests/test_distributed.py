"""DDP with torchrun (gloo, 2 CPU processes) against the same computation in one process.

The 2-process half is tests/ddp_worker.py, launched once per test session; its builders (model,
data, losses) are imported here, so both sides compute on the same network and batch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import ddp_worker as W
import lipot
from lipot import distributed as ldist
from lipot import losses
from lipot.training import TensorLoader, make_loader

WORKER = Path(__file__).with_name("ddp_worker.py")
ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available in this build")
    out = tmp_path_factory.mktemp("ddp") / "result.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return torch.load(out, weights_only=False)


def _single_step(name: str) -> dict:
    outputs, make_loss = W.LOSSES[name]
    model, loss_fn = W.gnp_model(outputs), make_loss()
    x, y = W.global_batch(outputs)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = loss_fn(model(x), y)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    opt.step()
    state = {"loss": float(loss.detach()), "grads": grads, "params": dict(model.state_dict())}
    if hasattr(loss_fn, "current_mean"):
        state["current_mean"] = float(loss_fn.current_mean)
    return state


FIT_ATOL = 3e-5
"""Parameters after a multi-step fit: the retraction update carries each step's float32 rounding
(two reduction orders: the ranks' averaged gradients and the whole batch's) into the next
(1.2e-5 measured on one near-zero weight entry after 6 steps; entries are about 0.3)."""


def _close(a: dict, b: dict, atol: float = ATOL) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=RTOL, msg=lambda m: f"{k}: {m}")


@pytest.mark.parametrize("name", list(W.LOSSES))
def test_ddp_step_equals_single_process_step(ranks, name):
    """One DDP step on two shards (13 + 12 samples, classes unevenly split) equals one step
    on the whole batch: loss, gradients and updated weights (incl. power-iteration buffers)."""
    assert ranks[0]["world_size"] == 2
    ref = _single_step(name)
    for r in ranks:
        got = r[f"step/{name}"]
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-5, abs=1e-6)
        _close(got["grads"], ref["grads"])
        _close(got["params"], ref["params"])
        if "current_mean" in ref:  # SoftHKR's running mean: global and the same on every rank
            assert got["current_mean"] == pytest.approx(ref["current_mean"], rel=1e-6)


def test_multi_gpu_flag_reduces_over_the_process_group(ranks):
    """NegKRLoss(multi_gpu=True) inside the group, without global_batch(), equals the global step
    (outside a group it is the single-process value: tests/test_deel_api.py)."""
    ref = _single_step("kr")
    for r in ranks:
        got = r["step/kr/multi_gpu-flag"]
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-5, abs=1e-6)
        _close(got["grads"], ref["grads"])


def test_per_rank_statistics_would_be_wrong(ranks):
    """Control: without global_batch() the KR gradient differs (each rank uses its own class
    means), so the equality above really tests the global statistics."""
    ref = _single_step("kr")
    got = ranks[0]["step/kr/local-statistics"]
    diff = max(float((got["grads"][k] - ref["grads"][k]).abs().max()) for k in ref["grads"])
    scale = max(float(g.abs().max()) for g in ref["grads"].values())
    assert diff > 0.05 * scale


def test_fit_distributed_equals_single_process_fit(ranks, tmp_path):
    """fit(distributed=True) on 2 ranks x 16 samples equals fit on batches of 32 (same seed,
    so the global batches are the same), including the validation metrics, and rank 0's
    checkpoint holds the plain model's state."""
    x, y = W.fit_data()
    model = W.gnp_model(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = make_loader(x, y, 32, seed=0)
    history = lipot.training.fit(model, losses.HKRLoss(0.9, 1.0), loader, 2,
                                 optimizer=opt, val_data=(x[:32], y[:32]), eps=[0.1], progress=False, log=None)
    for r in ranks:
        _close(r["fit"]["params"], dict(model.state_dict()), FIT_ATOL)
        for got, ref in zip(r["fit"]["history"], history):
            for key in ("loss", "accuracy", "kr", "val_accuracy", "lipschitz"):
                assert got[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), key
    assert ranks[0]["fit"]["history"] == ranks[1]["fit"]["history"]
    # a third epoch resumed from rank 0's checkpoint (fresh model, optimizer and loader seed)
    # equals a third epoch of the uninterrupted single-process run
    lipot.training.fit(model, losses.HKRLoss(0.9, 1.0), loader, 1, optimizer=opt, progress=False, log=None)
    for r in ranks:
        assert r["fit"]["resumed"]["epochs"] == [1, 2, 3]
        _close(r["fit"]["resumed"]["params"], dict(model.state_dict()), FIT_ATOL)


def test_w1_distributed(ranks):
    """estimate_w1(distributed=True): the same result on both ranks; the closed-form linear
    critic equals the single-process one; the GNP estimate is close to it (batches of 2 x 32
    instead of 32, so not equal) and below exact W1 + 3 stderr."""
    x, y = W.w1_data()
    a, b = ranks[0]["w1"], ranks[1]["w1"]
    assert a == b
    lin = lipot.estimate_w1(x, y, critic="linear", **W.W1_SETTINGS)
    assert a["linear"][0] == pytest.approx(lin.value, rel=1e-9, abs=1e-9)
    assert a["linear"][1] == pytest.approx(lin.stderr, rel=1e-9, abs=1e-9)
    net = lipot.estimate_w1(x, y, critic="gnp", **W.W1_SETTINGS)
    exact = lipot.ot.exact_w1(x.numpy(), y.numpy())
    assert a["gnp"][3] == ("gnp", "gnp")
    assert abs(a["gnp"][0] - net.value) < 0.15 * exact
    assert a["gnp"][0] <= exact + 3 * a["gnp"][1]


# ------------------------------------------------------------------ single-process behaviour


def test_sharded_tensor_loader_tiles_the_single_process_batches():
    x, y = torch.arange(50.0)[:, None], torch.arange(50)
    for drop_last in (True, False):
        single = [b[0].reshape(-1).tolist() for b in TensorLoader(x, y, 8, drop_last=drop_last, seed=3)]
        shards = [[b[0].reshape(-1).tolist() for b in TensorLoader(x, y, 4, drop_last=drop_last, seed=3,
                                                                    rank=r, world_size=2)] for r in (0, 1)]
        assert len(shards[0]) == len(shards[1]) == len(single)
        assert [s0 + s1 for s0, s1 in zip(*shards)] == single
        assert all(len(s) > 0 for s in shards[1])


def test_distributed_settings_need_a_process_group():
    assert not ldist.is_distributed() and ldist.world_size() == 1 and ldist.is_main()
    with pytest.raises(RuntimeError, match="torchrun"):
        with ldist.global_batch():
            pass
    with pytest.raises(RuntimeError, match="setup"):
        make_loader(torch.zeros(4, 1), torch.zeros(4), 2, distributed=True)
    with pytest.raises(RuntimeError, match="torchrun"):
        lipot.W1Estimator(distributed=True).fit(torch.zeros(20, 2), torch.ones(20, 2))
    model = W.gnp_model(1)
    with pytest.raises(RuntimeError, match="process group"):
        lipot.training.fit(model, losses.HKRLoss(0.9), make_loader(*W.fit_data(), 16), 1, distributed=True,
                           log=None, progress=False)
    with pytest.raises(ValueError, match="rank"):
        TensorLoader(torch.zeros(4, 1), torch.zeros(4), 2, rank=2, world_size=2)


def test_shard_slice_tiles_the_range():
    for n in (0, 1, 5, 25):
        for w in (1, 2, 3, 4):
            parts = [ldist.shard_slice(n, r, w) for r in range(w)]
            assert [i for p in parts for i in range(n)[p]] == list(range(n))
            sizes = [p.stop - p.start for p in parts]
            assert max(sizes) - min(sizes) <= 1


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *args], capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


def test_cli_estimate_under_torchrun_matches_one_process(tmp_path, capsys):
    """`torchrun ... -m lipot.cli estimate` prints once (rank 0) the value one process gets
    (closed-form linear critic: the same numbers, summed over the ranks' batches)."""
    import numpy as np

    from lipot.cli import main

    gen = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", gen.normal(size=(400, 5)).astype(np.float32))
    np.save(tmp_path / "b.npy", (gen.normal(size=(300, 5)) + 0.7).astype(np.float32))
    args = ["estimate", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--critic", "linear", "--folds", "2",
            "--device", "cpu"]
    proc = _torchrun("-m", "lipot.cli", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert main(args) == 0
    single = capsys.readouterr().out
    lines = [line for line in proc.stdout.splitlines() if line.startswith("W1 estimate")]
    assert len(lines) == 1
    assert lines[0].split("in-sample")[0] == single.splitlines()[0].split("in-sample")[0]


def test_ddp_example_runs_under_torchrun(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "ddp_hkr.py"
    proc = _torchrun(str(script), "--epochs", "2", "--out", str(tmp_path / "ddp.pt"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "world size 2" in proc.stdout and proc.stdout.count("W1 between the classes") == 1
    accuracy = float(proc.stdout.split("val accuracy ")[1].split(",")[0])
    assert accuracy > 0.8
    state = lipot.training.load_checkpoint(tmp_path / "ddp.pt")
    assert state["epoch"] == 2 and len(state["rng"]) == 2  # one RNG state per rank
    model = lipot.models.dense_classifier(16, (64, 64), 1)
    model.load_state_dict(state["model"])  # the plain model's keys (no DDP "module." prefix)
