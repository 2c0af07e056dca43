"""Bad inputs, table-driven: every case must raise a clear error (its type, and a message that
names the argument or the file), or give the correct result; nothing on disk may be lost.

Classes (the ``kind`` column): ``labels`` (labels outside the model's classes or codings),
``settings`` (functional forms refuse what their modules refuse), ``counts`` (steps, sizes,
epochs), ``inputs`` (empty, NaN, wrong width, half precision, corrupted buffers), ``files``
(IDX files and checkpoints), ``cli`` (each subcommand with bad values: exit status 2 and one
``lipot <command>: error: ...`` line, never a traceback).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from torch import nn

import lipot
import lipot.losses as LL
import lipot.nn as L
from lipot import cli, data
from lipot.cli import train as train_cli
from lipot.audit import attack_radius, audit_certificates
from lipot.certify import certified_accuracy, certified_radius
from lipot.nn.weight_layer import lipschitz_weight
from lipot.ot import exact_w1
from lipot.training import fit, load_checkpoint, make_loader, save_checkpoint
from lipot.wasserstein import W1Estimator, estimate_w1


# ----------------------------------------------------------------------------- fixtures


def _model3() -> nn.Module:
    torch.manual_seed(0)
    return lipot.Sequential(L.SpectralLinear(4, 8), L.GroupSort2(), L.SpectralLinear(8, 3))


def _model1() -> nn.Module:
    torch.manual_seed(0)
    return lipot.Sequential(L.SpectralLinear(4, 8), L.GroupSort2(), L.SpectralLinear(8, 1))


X4 = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
Y3 = torch.tensor([0, 1, 2, 0, 1, 2])
YB = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])


def _write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}
    array = array.astype(">f4") if array.dtype.kind == "f" else array.astype(np.uint8)
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    if gz:
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def _mnist_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        _write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return root


def _checkpoint(path: Path, hidden=(8,)) -> Path:
    """A real `lipot train`-style checkpoint of a small dense model."""
    model = lipot.models.build("dense", in_features=16, hidden=list(hidden), num_classes=3)
    config = {"arch": "dense", "arch_kwargs": {"in_features": 16, "hidden": list(hidden), "num_classes": 3},
              "loss": "hkr-multiclass", "dataset": "mnist", "binary": None}
    save_checkpoint(path, {"model": model.state_dict(), "epoch": 1, "history": [], "extra": {"config": config}})
    return path


# ----------------------------------------------------------------------------- API cases


@dataclass
class Bad:
    kind: str
    call: Callable[[Path], object]
    error: type[BaseException]
    names: str  # regex the message must match: the argument or the file


def _nan_u(_):
    layer = L.SpectralLinear(4, 3, eps_bjorck=None)
    with torch.no_grad():
        lipschitz_weight(layer).u.fill_(float("nan"))
    return layer(X4)


def _truncated_gz(tmp: Path):
    good = _write_idx(tmp / "a-idx1-ubyte.gz", np.arange(100, dtype=np.uint8) % 10)
    cut = tmp / "cut-idx1-ubyte.gz"
    cut.write_bytes(good.read_bytes()[:20])
    return data.read_idx(cut)


def _not_gzip(tmp: Path):
    path = tmp / "plain-idx1-ubyte.gz"
    path.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 3) + bytes([1, 2, 3]))
    return data.read_idx(path)


def _float_pixels_out_of_range(tmp: Path):
    _mnist_folder(tmp / "m", np.full((4, 2, 2), 3.0, dtype=np.float32), np.arange(4) % 2)
    return data.mnist(tmp / "m")


def _truncated_checkpoint(tmp: Path):
    path = _checkpoint(tmp / "c.pt")
    path.write_bytes(path.read_bytes()[:200])
    return load_checkpoint(path)


def _text_checkpoint(tmp: Path):
    (tmp / "c.pt").write_text("epoch 3\n")
    return load_checkpoint(tmp / "c.pt")


def _empty_checkpoint(tmp: Path):
    (tmp / "c.pt").write_bytes(b"")
    return load_checkpoint(tmp / "c.pt")


def _state_dict_checkpoint(tmp: Path):
    torch.save(_model3().state_dict(), tmp / "c.pt")
    return load_checkpoint(tmp / "c.pt")


def _fit_tiny(tmp: Path, model=None, x=None, **kwargs):
    x = torch.randn(32, 16) if x is None else x
    y = torch.arange(32) % 3
    model = model or lipot.models.build("dense", in_features=16, hidden=[8], num_classes=3)
    return fit(model, LL.HKRMulticlassLoss(0.9), make_loader(x, y, 8), 1, progress=False, log=None, **kwargs)


def _resume_other_architecture(tmp: Path):
    path = tmp / "c.pt"
    _fit_tiny(tmp, checkpoint=path)  # a real training checkpoint of a hidden=[8] model
    other = lipot.models.build("dense", in_features=16, hidden=[12], num_classes=3)
    return _fit_tiny(tmp, other, checkpoint=path, resume=True)


def _checkpoint_is_a_directory(tmp: Path):
    (tmp / "ckpt").mkdir()
    return _fit_tiny(tmp, checkpoint=tmp / "ckpt")


def _resume_other_loss(tmp: Path):
    path = tmp / "c.pt"
    _fit_tiny(tmp, checkpoint=path)  # written while training with HKRMulticlassLoss
    y = torch.arange(32) % 3
    return fit(lipot.models.build("dense", in_features=16, hidden=[8], num_classes=3), LL.SoftHKRMulticlassLoss(0.9),
               make_loader(torch.randn(32, 16), y, 8), 2, progress=False, log=None, checkpoint=path, resume=True)


def _zero_sample_idx(tmp: Path):
    _mnist_folder(tmp / "m", np.zeros((0, 2, 2), dtype=np.uint8), np.zeros(0, dtype=np.uint8))
    return data.mnist(tmp / "m")


def _nan_certify_data(tmp: Path):
    x = torch.randn(6, 4)
    x[2, 1] = float("nan")
    return certified_accuracy(lipot.models.dense_classifier(4, (8,), 3), (x, torch.arange(6) % 3), 0.1)


def _nan_training_data(tmp: Path):
    x = torch.randn(32, 16)
    x[5, 3] = float("nan")
    return _fit_tiny(tmp, x=x)


def _unsaveable_checkpoint(tmp: Path):
    return save_checkpoint(tmp / "c.pt", {"model": {}, "epoch": 1, "bad": lambda: None})


def _certify(model, y, eps=0.1):
    return lambda _: certified_accuracy(model, (X4, y), [eps])


API_CASES: dict[str, Bad] = {
    # labels outside the model's classes or codings
    "certify-label-out-of-range": Bad("labels", _certify(_model3(), torch.tensor([0, 1, 2, 7, 1, 0])), ValueError, r"labels .*\[0, 3\)"),
    "certify-negative-label": Bad("labels", _certify(_model3(), torch.tensor([0, 1, 2, -1, 1, 0])), ValueError, r"labels"),
    "certify-binary-0-2": Bad("labels", _certify(_model1(), torch.tensor([0, 2, 0, 2, 0, 2])), ValueError, r"labels .*\{0, 1\}"),
    "certify-binary-minus1-5": Bad("labels", _certify(_model1(), torch.tensor([-1, 5, -1, 5, -1, 5])), ValueError, r"labels"),
    "certify-float-indices": Bad("labels", _certify(_model3(), Y3.float()), ValueError, r"labels"),
    "certify-one-hot-values": Bad("labels", _certify(_model3(), 2 * nn.functional.one_hot(Y3, 3)), ValueError, r"one-hot labels"),
    "hkr-labels-0-2": Bad("labels", lambda _: LL.hkr_loss(YB, torch.tensor([0.0, 2, 0, 2, 0, 2]), 0.5), ValueError, r"target"),
    "kr-labels-minus1-5": Bad("labels", lambda _: LL.kr_loss(YB, torch.tensor([-1.0, 5, -1, 5, -1, 5])), ValueError, r"target"),
    "hinge-multiclass-index-3": Bad("labels", lambda _: LL.hinge_multiclass_loss(torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 0, 1])), ValueError, r"target .*\[0, 3\)"),
    "tau-ce-index-5": Bad("labels", lambda _: LL.TauCrossEntropyLoss(1.0)(torch.randn(6, 3), torch.tensor([0, 1, 2, 5, 0, 1])), ValueError, r"target .*\[0, 3\)"),
    "tau-ce-target-shape": Bad("labels", lambda _: LL.tau_cross_entropy_loss(torch.randn(6, 3), torch.zeros(6, 2), 1.0), ValueError, r"target"),
    "kr-multiclass-one-hot-2": Bad("labels", lambda _: LL.kr_multiclass_loss(torch.randn(6, 3), 2 * nn.functional.one_hot(Y3, 3)), ValueError, r"one-hot target"),
    "audit-label-out-of-range": Bad("labels", lambda _: audit_certificates(_model3(), X4, torch.tensor([0, 1, 2, 9, 1, 0])), ValueError, r"\by\b.*\[0, 3\)"),
    "attack-binary-minus1-0": Bad("labels", lambda _: attack_radius(_model1(), X4, torch.tensor([-1, 0, -1, 0, -1, 0])), ValueError, r"\by\b"),
    # functional forms refuse what their modules refuse
    "hkr-min-margin-negative": Bad("settings", lambda _: LL.hkr_loss(torch.randn(6), YB, 0.5, min_margin=-1), ValueError, r"min_margin"),
    "hinge-min-margin-negative": Bad("settings", lambda _: LL.hinge_margin_loss(torch.randn(6), YB, min_margin=-2), ValueError, r"min_margin"),
    "hinge-multiclass-min-margin-0": Bad("settings", lambda _: LL.hinge_multiclass_loss(torch.randn(6, 3), Y3, min_margin=0), ValueError, r"min_margin"),
    "lse-temperature-negative": Bad("settings", lambda _: LL.lse_hkr_multiclass_loss(torch.randn(6, 3), Y3, 0.5, temperature=-1), ValueError, r"temperature"),
    "lse-penalty-zero": Bad("settings", lambda _: LL.lse_hkr_multiclass_loss(torch.randn(6, 3), Y3, 0.5, penalty=0), ValueError, r"penalty"),
    "soft-hkr-temperature-zero": Bad("settings", lambda _: LL.soft_hkr_multiclass_loss(torch.randn(6, 3), Y3, 0.5, 1.0, 0.0), ValueError, r"temperature"),
    "categorical-hinge-margin-zero": Bad("settings", lambda _: LL.categorical_hinge_loss(torch.randn(6, 3), Y3, min_margin=0), ValueError, r"min_margin"),
    "hkr-multiclass-alpha-1.5": Bad("settings", lambda _: LL.hkr_multiclass_loss(torch.randn(6, 3), Y3, alpha=1.5), ValueError, r"alpha"),
    "hkr-module-alpha-negative": Bad("settings", lambda _: LL.HKRLoss(-0.1), ValueError, r"alpha"),
    "tau-bce-tau-zero": Bad("settings", lambda _: LL.tau_bce_with_logits_loss(torch.randn(6), YB, 0.0), ValueError, r"tau"),
    "reduction-unknown": Bad("settings", lambda _: LL.kr_loss(torch.randn(6), YB, reduction="avg"), ValueError, r"reduction"),
    "emma-eps-negative": Bad("settings", lambda _: LL.emma_loss(torch.randn(6, 3), Y3, eps=-1.0), ValueError, r"eps"),
    "k-coef-lip-zero": Bad("settings", lambda _: L.SpectralLinear(4, 3, k_coef_lip=0), ValueError, r"k_coef_lip"),
    "audit-rtol-1": Bad("settings", lambda _: audit_certificates(_model3(), X4, Y3, rtol=1.0), ValueError, r"rtol must be in \[0, 1\)"),
    "batch-centering-momentum-0": Bad("settings", lambda _: L.BatchCentering(3, momentum=0.0), ValueError, r"momentum"),
    "w1-smoothing-1": Bad("settings", lambda _: W1Estimator(smoothing=1.0).fit(np.zeros((20, 2)), np.ones((20, 2))), ValueError, r"smoothing"),
    "w1-tol-negative": Bad("settings", lambda _: W1Estimator(tol=-0.1).fit(np.zeros((20, 2)), np.ones((20, 2))), ValueError, r"tol must be in"),
    "emma-min-fraction-2": Bad("settings", lambda _: LL.EMMALoss(0.5, min_fraction=2.0), ValueError, r"min_fraction"),
    "transposed-output-padding": Bad("settings", lambda _: L.SpectralConvTranspose2d(2, 2, 3, output_padding=4), ValueError, r"output_padding"),
    # counts
    "attack-steps-0": Bad("counts", lambda _: attack_radius(_model3(), X4, Y3, steps=0), ValueError, r"steps"),
    "attack-batch-size-0": Bad("counts", lambda _: attack_radius(_model3(), X4, Y3, batch_size=0), ValueError, r"batch_size"),
    "audit-attack-steps-0": Bad("counts", lambda _: audit_certificates(_model3(), X4, Y3, attack={"steps": 0}), ValueError, r"steps"),
    "audit-attack-steps-negative": Bad("counts", lambda _: audit_certificates(_model3(), X4, Y3, attack={"steps": -1}), ValueError, r"steps"),
    "fit-epochs-0": Bad("counts", lambda tmp: fit(_model3(), LL.HKRMulticlassLoss(0.9), make_loader(X4, Y3, 2), 0), ValueError, r"epochs"),
    "loader-batch-size-0": Bad("counts", lambda _: make_loader(X4, Y3, 0), ValueError, r"batch_size"),
    "w1-folds-0": Bad("counts", lambda _: estimate_w1(np.zeros((20, 2)), np.ones((20, 2)), folds=0), ValueError, r"folds"),
    "w1-epochs-negative": Bad("counts", lambda _: W1Estimator(epochs=-1).fit(np.zeros((20, 2)), np.ones((20, 2))), ValueError, r"epochs"),
    "linear-in-features-0": Bad("counts", lambda _: L.SpectralLinear(0, 3), ValueError, r"in_features|features"),
    "groupsort-size-0": Bad("counts", lambda _: L.GroupSort(0), ValueError, r"group_size"),
    # inputs
    "batch-centering-empty-batch": Bad("inputs", lambda _: L.BatchCentering(3).train()(torch.randn(0, 3)), ValueError, r"BatchCentering.*empty"),
    "linear-wrong-width": Bad("inputs", lambda _: L.SpectralLinear(4, 3)(torch.randn(2, 5)), ValueError, r"SpectralLinear.*5 features.*expected 4"),
    "conv-wrong-channels": Bad("inputs", lambda _: L.SpectralConv2d(3, 4, 3)(torch.randn(1, 2, 8, 8)), ValueError, r"SpectralConv2d.*2 channels.*expected 3"),
    "ortho-conv-wrong-channels": Bad("inputs", lambda _: L.OrthoConv2d(4, 4, 3, padding=1)(torch.randn(1, 2, 8, 8)), ValueError, r"OrthoConv2d.*channels"),
    "aol-linear-wrong-width": Bad("inputs", lambda _: L.AOLLinear(4, 3)(torch.randn(2, 6)), ValueError, r"AOLLinear"),
    "float16-layer": Bad("inputs", lambda _: L.SpectralLinear(4, 3).half()(X4.half()), TypeError, r"float16.*float32"),
    "bfloat16-layer": Bad("inputs", lambda _: L.OrthoConv2d(2, 2, 3, padding=1).bfloat16()(torch.randn(1, 2, 4, 4).bfloat16()), TypeError, r"bfloat16"),
    "float16-constructor": Bad("inputs", lambda _: L.SpectralLinear(4, 3, dtype=torch.float16), TypeError, r"float16.*float32"),
    "bfloat16-ortho-constructor": Bad("inputs", lambda _: L.OrthoConv2d(2, 2, 3, dtype=torch.bfloat16), TypeError, r"bfloat16"),
    "nan-power-iteration-buffer": Bad("inputs", _nan_u, ValueError, r"power-iteration buffer 'u'"),
    "loss-nan-input": Bad("inputs", lambda _: LL.hkr_loss(torch.tensor([float("nan"), 1.0]), torch.tensor([1.0, -1.0]), 0.5), ValueError, r"input .*NaN"),
    "radius-nan-logits": Bad("inputs", lambda _: certified_radius(torch.tensor([[float("nan"), 1.0]]), 1.0), ValueError, r"logits"),
    "w1-nan-x": Bad("inputs", lambda _: estimate_w1(np.full((20, 2), np.nan), np.ones((20, 2))), ValueError, r"\bX\b"),
    "w1-empty-y": Bad("inputs", lambda _: estimate_w1(np.ones((20, 2)), np.ones((0, 2))), ValueError, r"\bY\b"),
    "w1-float32-overflow": Bad("inputs", lambda _: estimate_w1(np.full((20, 2), 1e39), np.ones((20, 2))), ValueError, r"\bX\b.*float32"),
    "exact-w1-dimension-mismatch": Bad("inputs", lambda _: exact_w1(np.ones((5, 2)), np.ones((5, 3))), ValueError, r"dimension|features|shape"),
    # files
    "idx-truncated-gz": Bad("files", _truncated_gz, ValueError, r"cut-idx1-ubyte\.gz.*gzip"),
    "idx-not-gzip": Bad("files", _not_gzip, ValueError, r"plain-idx1-ubyte\.gz"),
    "idx-float-pixels-out-of-range": Bad("files", _float_pixels_out_of_range, ValueError, r"pixels .*\[0, 1\]"),
    "idx-missing-folder": Bad("files", lambda tmp: data.mnist(tmp / "nowhere"), FileNotFoundError, r"nowhere"),
    "checkpoint-truncated": Bad("files", _truncated_checkpoint, ValueError, r"c\.pt cannot be read"),
    "checkpoint-text": Bad("files", _text_checkpoint, ValueError, r"c\.pt cannot be read"),
    "checkpoint-empty": Bad("files", _empty_checkpoint, ValueError, r"c\.pt cannot be read"),
    "checkpoint-plain-state-dict": Bad("files", _state_dict_checkpoint, ValueError, r"c\.pt is not a lipot training checkpoint"),
    "resume-model-only-checkpoint": Bad("files", lambda tmp: _fit_tiny(tmp, checkpoint=_checkpoint(tmp / "c.pt"), resume=True), ValueError, r"c\.pt holds a model but not the training state"),
    "checkpoint-missing": Bad("files", lambda tmp: load_checkpoint(tmp / "none.pt"), FileNotFoundError, r"none\.pt"),
    "resume-other-architecture": Bad("files", _resume_other_architecture, ValueError, r"c\.pt was written for a different model"),
    "checkpoint-is-a-directory": Bad("files", _checkpoint_is_a_directory, IsADirectoryError, r"ckpt is a directory"),
    "resume-other-loss": Bad("files", _resume_other_loss, ValueError, r"c\.pt was written while training with HKRMulticlassLoss, not SoftHKRMulticlassLoss"),
    "idx-zero-samples": Bad("files", _zero_sample_idx, ValueError, r"train-images-idx3-ubyte.*zero samples"),
    "certify-nan-data": Bad("inputs", _nan_certify_data, ValueError, r"^data: the inputs of batch 0 contain NaN"),
    "w1-lr-not-a-number": Bad("settings", lambda _: W1Estimator(lr="fast").fit(np.zeros((20, 2)), np.ones((20, 2))), TypeError, r"^lr must be a positive number, got 'fast'"),
    "training-data-nan": Bad("inputs", _nan_training_data, ValueError, r"training data contains NaN"),
    "checkpoint-unsaveable": Bad("files", _unsaveable_checkpoint, Exception, r"."),
    # cone envelopes: a negative temperature, an orientation that is not a bool
    "envelope-negative-temperature": Bad("settings", lambda _: L.ConeEnvelope(3, temperature=-0.1), ValueError, r"temperature must be a finite number >= 0"),
    "envelope-lower-not-bool": Bad("settings", lambda _: L.ConeEnvelope(3, lower="yes"), TypeError, r"lower must be True or False"),
}


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_api_bad_input_raises_a_clear_error(name, tmp_path):
    case = API_CASES[name]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(case.error, match=case.names):
        case.call(tmp_path)
    leftovers = [p.name for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert not leftovers, leftovers  # a failed write never leaves a partial file
    assert set(before) <= {p.name for p in tmp_path.rglob("*")}  # nothing was deleted


# ----------------------------------------------------------------------------- correct behaviours


def test_float_idx_pixels_are_not_divided_again(tmp_path):
    pixels = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 2, 2)
    _mnist_folder(tmp_path / "m", pixels, np.arange(4) % 2)
    x, _ = data.mnist(tmp_path / "m")
    assert torch.allclose(x[:, 0], torch.from_numpy(pixels))


def test_byte_idx_pixels_are_scaled_to_the_unit_interval(tmp_path):
    pixels = np.array([0, 51, 255, 102], dtype=np.uint8).reshape(1, 2, 2)
    _mnist_folder(tmp_path / "m", pixels, np.array([3]))
    x, y = data.mnist(tmp_path / "m")
    assert torch.allclose(x.flatten(), torch.tensor([0.0, 0.2, 1.0, 0.4])) and y.tolist() == [3]


def test_autocast_keeps_the_weight_within_its_bound():
    torch.manual_seed(0)
    layer = L.SpectralLinear(64, 64).train()
    with torch.no_grad():
        layer.parametrizations.weight.original.add_(0.05 * torch.randn(64, 64))
    for training in (True, False):
        layer.train(training)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            weight = layer.weight
        assert weight.dtype == torch.float32
        assert float(np.linalg.norm(weight.detach().double().numpy(), 2)) <= 1 + 1e-5


# ----------------------------------------------------------------------------- CLI


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err


def _files(tmp: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    np.save(tmp / "a.npy", rng.normal(size=(60, 2)))
    np.save(tmp / "obj.npy", np.array([{"a": 1}, 2], dtype=object), allow_pickle=True)
    np.save(tmp / "nan.npy", np.full((60, 2), np.nan))
    np.savez(tmp / "two.npz", a=np.zeros((5, 2)), b=np.ones((5, 2)))
    (tmp / "text.pt").write_text("not a checkpoint")
    torch.save(_model3().state_dict(), tmp / "sd.pt")
    _checkpoint(tmp / "model.pt")
    other = _checkpoint(tmp / "other.pt", hidden=(8,))
    state = torch.load(other, weights_only=True)
    state["extra"]["config"]["arch_kwargs"]["hidden"] = [12]
    torch.save(state, other)
    _mnist_folder(tmp / "mnist", (np.arange(6 * 4) % 256).astype(np.uint8).reshape(6, 2, 2), np.arange(6) % 3)
    (tmp / "dir.pt").mkdir()
    return {name: tmp / name for name in ("a.npy", "obj.npy", "nan.npy", "two.npz", "text.pt", "sd.pt",
                                          "model.pt", "other.pt", "mnist", "dir.pt")}


CLI_CASES: dict[str, tuple[list[str], str]] = {
    # argv (with {file} placeholders), regex of the error line
    "audit-steps-negative": (["audit", "{model.pt}", "--steps", "-1"], r"--steps: must be > 0"),
    "audit-n-negative": (["audit", "{model.pt}", "--n", "-5"], r"--n: must be > 0"),
    "audit-n-text": (["audit", "{model.pt}", "--n", "many"], r"--n: expected an integer"),
    "estimate-limit-negative": (["estimate", "{a.npy}", "{a.npy}", "--limit", "-1"], r"--limit: must be > 0"),
    "estimate-limit-zero": (["estimate", "{a.npy}", "{a.npy}", "--limit", "0"], r"--limit: must be > 0"),
    "estimate-folds-zero": (["estimate", "{a.npy}", "{a.npy}", "--folds", "0"], r"--folds"),
    "estimate-lr-nan": (["estimate", "{a.npy}", "{a.npy}", "--lr", "nan"], r"--lr"),
    "estimate-class-absent": (["estimate", "{mnist}", "{mnist}", "--class-a", "42", "--class-b", "1"], r"no sample of class 42"),
    "estimate-class-on-file": (["estimate", "{a.npy}", "{a.npy}", "--class-a", "1"], r"--class-a"),
    "estimate-object-npy": (["estimate", "{obj.npy}", "{a.npy}"], r"obj\.npy holds Python objects"),
    "estimate-two-array-npz": (["estimate", "{two.npz}", "{a.npy}"], r"two\.npz holds 2 arrays"),
    "estimate-toy-with-files": (["estimate", "{a.npy}", "{a.npy}", "--toy", "moons"], r"--toy replaces the samples"),
    "estimate-no-samples": (["estimate"], r"give two samples A B .* or --toy"),
    "estimate-class-a-alone": (["estimate", "{mnist}", "{mnist}", "--class-a", "1"], r"--class-a and --class-b go together"),
    "estimate-toy-unknown": (["estimate", "--toy", "spiral"], r"--toy: invalid choice"),
    "estimate-missing-file": (["estimate", "{a.npy}", "missing.npy"], r"missing\.npy does not exist"),
    "estimate-nan-values": (["estimate", "{nan.npy}", "{a.npy}", "--no-progress"], r"\bX\b.*NaN"),
    "estimate-unknown-suffix": (["estimate", "{text.pt}", "{a.npy}"], r"expected a \.npy"),
    "train-out-exists": (["train", "--out", "{model.pt}"], r"already exists.*--resume.*--force"),
    "train-out-directory": (["train", "--out", "{dir.pt}"], r"is a directory"),
    "train-alpha-above-1": (["train", "--out", "new.pt", "--alpha", "2"], r"--alpha: must be in \[0, 1\]"),
    "train-option-of-another-arch": (["train", "--out", "new.pt", "--data-root", "{mnist}", "--channels", "8"],
                                     r"--channels: not an option of --arch dense"),
    "train-alpha-with-tau-ce": (["train", "--out", "new.pt", "--data-root", "{mnist}", "--loss", "tau-ce", "--alpha", "0.5"],
                                r"--alpha: not an option of --loss tau-ce"),
    "train-alpha-with-margin-loss": (["train", "--out", "new.pt", "--data-root", "{mnist}", "--loss", "emma", "--alpha", "0.5"],
                                     r"--alpha: not an option of --loss emma"),
    "train-hidden-with-recipe": (["train", "--out", "new.pt", "--data-root", "{mnist}", "--recipe", "emma", "--hidden", "8"],
                                 r"--hidden: not an option of --recipe emma"),
    "estimate-n-with-files": (["estimate", "{a.npy}", "{a.npy}", "--n", "5"], r"--n sets the size of a --toy pair.*--limit"),
    "train-epochs-zero": (["train", "--out", "new.pt", "--epochs", "0"], r"--epochs: must be > 0"),
    "train-abbreviated-option": (["train", "--out", "new.pt", "--epoch", "3"], r"unrecognized arguments: --epoch"),
    "train-mnist-without-root": (["train", "--out", "new.pt"], r"--data-root is required"),
    "train-resume-text-checkpoint": (["train", "--out", "{text.pt}", "--resume", "--data-root", "{mnist}", "--batch-size", "2",
                                      "--hidden", "8", "--epochs", "1"], r"text\.pt cannot be read"),
    "certify-text-checkpoint": (["certify", "{text.pt}"], r"text\.pt cannot be read"),
    "certify-state-dict": (["certify", "{sd.pt}"], r"sd\.pt is not a lipot training checkpoint"),
    "certify-other-architecture": (["certify", "{other.pt}"], r"other\.pt was written for a different model"),
    "certify-directory": (["certify", "{dir.pt}"], r"dir\.pt is a directory"),
    "certify-eps-negative": (["certify", "{model.pt}", "--eps", "-1"], r"--eps: must be >= 0"),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_user_error_is_one_line_and_exit_2(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = _files(tmp_path)
    argv, pattern = CLI_CASES[name]
    argv = [str(files[a[1:-1]]) if a.startswith("{") else a for a in argv]
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, err = _run_cli(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"lipot {argv[0]}: error: "), err
    assert len(last) > len(f"lipot {argv[0]}: error: ") and __import__("re").search(pattern, last), last
    for path, content in snapshot.items():  # nothing on disk was lost or changed
        assert path.read_bytes() == content, path
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_cli_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        cli.main(["estimate", str(tmp_path / "missing.npy"), str(tmp_path / "missing.npy"), "--debug"])


def test_cli_reads_a_csv_with_a_header_row(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + [3.0, 0.0]
    for name, values in (("a.csv", a), ("b.csv", b)):
        np.savetxt(tmp_path / name, values, delimiter=",", header="x,y", comments="")
    assert cli.main(["estimate", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--critic", "linear",
                     "--no-progress"]) == 0
    assert "W1 estimate" in capsys.readouterr().out


def test_bad_input_table_size():
    """At least 60 cases over the classes above."""
    kinds = {}
    for case in API_CASES.values():
        kinds[case.kind] = kinds.get(case.kind, 0) + 1
    kinds["cli"] = len(CLI_CASES)
    assert sum(kinds.values()) >= 60 and set(kinds) == {"labels", "settings", "counts", "inputs", "files", "cli"}


def test_ctrl_c_during_training_says_how_to_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run.pt"
    _fit_tiny(tmp_path, checkpoint=out)  # one finished epoch on disk

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "_run_training", interrupted)
    before = out.read_bytes()
    assert cli.main(["train", "--out", str(out), "--resume"]) == 130
    err = capsys.readouterr().err
    assert "holds the last finished epoch (1)" in err and "--resume" in err and "Traceback" not in err
    assert out.read_bytes() == before


def test_force_replaces_an_existing_checkpoint_only_when_a_new_epoch_is_written(tmp_path, monkeypatch):
    out = _checkpoint(tmp_path / "run.pt")
    seen = {}
    monkeypatch.setattr(train_cli, "_run_training", lambda args: seen.update(exists=out.exists(), resume=args.resume) or 0)
    assert cli.main(["train", "--out", str(out), "--force"]) == 0
    assert seen == {"exists": True, "resume": False}  # kept until fit() atomically replaces it


def test_toy_estimate_prints_the_reference(capsys):
    assert cli.main(["estimate", "--toy", "shift", "--n", "400", "--critic", "linear", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "toy 'shift' (400 + 400 points in 10-D): W1 = 2.00000 (the truth)" in out and "% off" in out


def test_certify_finds_the_data_the_model_was_trained_on(tmp_path, capsys, monkeypatch):
    files = _files(tmp_path)
    out = tmp_path / "m.pt"
    assert cli.main(["train", "--data-root", str(files["mnist"]), "--arch", "dense", "--hidden", "8",
                     "--loss", "hkr-multiclass", "--epochs", "1", "--batch-size", "6", "--eps", "0.1",
                     "--out", str(out), "--no-progress"]) == 0
    monkeypatch.chdir(tmp_path.parent)
    assert cli.main(["certify", str(out), "--eps", "0.1"]) == 0  # no --data-root needed
    assert "certified accuracy at eps=0.1" in capsys.readouterr().out


def test_npz_key_selects_an_array(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "pair.npz", a=rng.normal(size=(300, 2)), b=rng.normal(size=(300, 2)) + [2.0, 0.0])
    pair = str(tmp_path / "pair.npz")
    assert cli.main(["estimate", pair + ":a", pair + ":b", "--critic", "linear", "--no-progress"]) == 0
    assert "W1 estimate" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["estimate", pair + ":c", pair + ":b"])
    assert "has no array 'c'" in capsys.readouterr().err
