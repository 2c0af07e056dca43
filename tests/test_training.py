"""Training helper: metrics, atomic checkpoints, resume; the CLI on real MNIST when present."""

from __future__ import annotations

import json

import pytest
import torch

import lipot
from lipot import cli, losses, models
from lipot.cli import check as check_cli
from lipot.cli import train as train_cli
from lipot.training import fit, load_checkpoint, make_loader, save_checkpoint


from conftest import MNIST_ROOT


def _toy(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = torch.where(x[:, 0] > 0, 1.0, -1.0)[:, None]
    return x + 0.5 * y, y


def test_fit_learns_and_resumes(tmp_path):
    torch.manual_seed(0)
    x, y = _toy()
    ckpt = tmp_path / "run.pt"
    model = models.dense_classifier(2, (8,), 1)
    history = fit(model, losses.HKRLoss(0.9, 0.5), make_loader(x, y, 32), 2, lr=0.01,
                  val_data=(x, y), eps=[0.1], checkpoint=ckpt, log=None)
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["val_accuracy"] > 0.9
    assert history[-1]["kr"] > 0 and 0 <= history[-1]["certified"][0.1] <= history[-1]["val_accuracy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 2
    # resume: a fresh model continues at epoch 3 from the saved weights
    fresh = models.dense_classifier(2, (8,), 1)
    more = fit(fresh, losses.HKRLoss(0.9, 0.5), make_loader(x, y, 32), 3, lr=0.01, checkpoint=ckpt, log=None)
    assert [h["epoch"] for h in more] == [1, 2, 3]
    assert load_checkpoint(ckpt)["epoch"] == 3


def test_fit_checkpoints_soft_hkr_state(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(120, 4)
    y = x[:, :3].argmax(1)
    loss = losses.SoftHKRMulticlassLoss(0.9, alpha_mean=0.5)
    fit(models.dense_classifier(4, (8,), 3), loss, make_loader(x, y, 40), 1, checkpoint=tmp_path / "s.pt", log=None)
    assert load_checkpoint(tmp_path / "s.pt")["loss"]["current_mean"].item() == pytest.approx(loss.current_mean.item())


def test_checkpoint_directory_is_refused_before_the_first_epoch(tmp_path):
    """A checkpoint path that is a directory fails before any training: no batch is drawn and
    the weights are those of the untrained model."""
    torch.manual_seed(0)
    model = models.dense_classifier(4, (8,), 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    drawn = []

    class Loader:
        def __iter__(self):
            drawn.append(1)
            yield torch.randn(8, 4), torch.arange(8) % 3

    (tmp_path / "ckpt").mkdir()
    with pytest.raises(IsADirectoryError, match="ckpt is a directory"):
        fit(model, losses.HKRMulticlassLoss(0.9), Loader(), 3, checkpoint=tmp_path / "ckpt", progress=False, log=None)
    assert not drawn
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_tensor_loader_covers_each_sample_once_and_is_seeded():
    from lipot.training import TensorLoader

    x = torch.arange(10.0)[:, None]
    loader = TensorLoader(x, x, 3, shuffle=True, drop_last=False, seed=5)
    assert len(loader) == 4
    seen = torch.cat([b for b, _ in loader]).ravel()
    assert sorted(seen.tolist()) == list(range(10))
    again = torch.cat([b for b, _ in TensorLoader(x, x, 3, shuffle=True, drop_last=False, seed=5)]).ravel()
    assert torch.equal(seen, again)
    assert len(make_loader(x, x, 3)) == 3  # shuffled loaders drop the last partial batch
    ordered = torch.cat([b for b, _ in make_loader(x, x, 4, shuffle=False)]).ravel()
    assert ordered.tolist() == list(range(10))


def test_fit_and_loader_errors():
    x, y = _toy()
    with pytest.raises(ValueError, match="epochs"):
        fit(models.dense_classifier(2, (4,), 1), losses.HKRLoss(0.9), make_loader(x, y, 32), 0)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(x, y, 0)


def test_cli_records_the_conv_and_loads_checkpoints_from_before_the_choice(tmp_path):
    args = cli.build_parser().parse_args(["train", "--arch", "conv", "--out", "m.pt"])
    x = torch.zeros(2, 1, 8, 8)
    assert train_cli.arch_kwargs(args, x, 3)["conv"] == models.DEFAULT_CONV  # recorded, not implied
    # every argument of the builder is recorded as resolved (a later default change keeps old checkpoints)
    assert train_cli.arch_kwargs(args, x, 3)["downsample"] == "pool"
    assert train_cli.arch_kwargs(args, x, 3)["channels"] == [16, 32]
    args = cli.build_parser().parse_args(["train", "--arch", "conv", "--conv", "aol", "--downsample",
                                          "stride", "--out", "m.pt"])
    assert train_cli.arch_kwargs(args, x, 3)["conv"] == "aol"
    # a checkpoint written before conv= existed holds SpectralConv2d weights and no "conv" key
    kwargs = {"in_channels": 1, "input_size": 8, "channels": [4, 8], "dense": [8], "num_classes": 3,
              "convs_per_block": 1}
    old = models.conv_classifier(**kwargs, conv="spectral")
    path = tmp_path / "old.pt"
    save_checkpoint(path, {"model": old.state_dict(), "extra": {"config": {
        "arch": "conv", "arch_kwargs": kwargs, "dataset": "mnist", "binary": None, "loss": "lse-hkr"}}})
    model, _ = check_cli.load_model(str(path))
    assert isinstance(model[0], lipot.SpectralConv2d)
    with torch.no_grad():
        torch.testing.assert_close(model(x), old.eval()(x))


@pytest.mark.skipif(not MNIST_ROOT.is_dir(), reason="MNIST files not present (set LIPOT_MNIST_ROOT)")
def test_cli_train_then_certify(tmp_path, capsys):
    out = tmp_path / "m08.pt"
    code = cli.main(["train", "--dataset", "mnist", "--binary", "0", "8", "--data-root", str(MNIST_ROOT),
                     "--arch", "dense", "--hidden", "16", "--epochs", "1", "--batch-size", "256",
                     "--eps", "0.5", "--schedule", "cosine", "--out", str(out)])
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["val_accuracy"] > 0.95
    assert cli.main(["certify", str(out), "--data-root", str(MNIST_ROOT), "--eps", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "verified Lipschitz bound" in text and "certified accuracy at eps=0.5" in text
    model = models.build("dense", **load_checkpoint(out)["extra"]["config"]["arch_kwargs"])
    assert isinstance(model, lipot.Sequential)
    assert cli.main(["audit", str(out), "--data-root", str(MNIST_ROOT), "--n", "64", "--steps", "20"]) == 0
    text = capsys.readouterr().out
    assert "violations (attack radius < certificate): 0" in text and "verdict: ok" in text
    # a false, smaller bound is caught (exit status 1)
    assert cli.main(["audit", str(out), "--data-root", str(MNIST_ROOT), "--n", "64", "--steps", "20",
                     "--lipschitz", "0.5"]) == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.skipif(not MNIST_ROOT.is_dir(), reason="MNIST files not present (set LIPOT_MNIST_ROOT)")
def test_cli_margin_loss_with_ramp_decay_and_lln_head(tmp_path, capsys):
    out = tmp_path / "emma.pt"
    code = cli.main(["train", "--dataset", "mnist", "--data-root", str(MNIST_ROOT), "--arch", "dense",
                     "--hidden", "32", "--head", "lln", "--loss", "emma", "--train-eps", "0.5",
                     "--ramp-epochs", "2", "--overshoot", "1.2", "--epochs", "1", "--batch-size", "512",
                     "--schedule", "exponential", "--final-lr", "1e-5", "--eps", "0.5", "--out", str(out)])
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    steps = 60000 // 512
    assert last["train_eps"] == pytest.approx(0.5 * 1.2 * ((steps - 1) / steps) / 2)
    assert last["lr"] == pytest.approx(1e-3) and last["val_accuracy"] > 0.8  # the epoch's learning rate
    assert load_checkpoint(out)["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-5)  # decayed
    assert cli.main(["certify", str(out), "--data-root", str(MNIST_ROOT), "--eps", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "certified accuracy at eps=0.5" in text
    model, config = check_cli.load_model(str(out))
    assert isinstance(model[-1], lipot.FrobeniusLinear) and config["loss"] == "emma"


def test_cli_losses_keep_the_library_defaults():
    """Unset options take the loss classes' own defaults; set ones are passed on."""
    def loss(*argv):
        args = cli.build_parser().parse_args(["train", "--out", "m.pt", *argv])
        return train_cli.loss_from_args(args, models.dense_classifier(4, (8,), 3))

    lse, ref = loss("--loss", "lse-hkr"), losses.LseHKRMulticlassLoss()
    assert (lse.alpha, lse.temperature, lse.min_margin) == (ref.alpha, ref.temperature, ref.min_margin)
    soft, ref = loss("--loss", "soft-hkr", "--alpha", "0.3"), losses.SoftHKRMulticlassLoss()
    assert (soft.alpha, soft.temperature, soft.min_margin) == (0.3, ref.temperature, ref.min_margin)
    hkr = loss("--loss", "hkr", "--min-margin", "2")
    assert (hkr.alpha, hkr.min_margin) == (train_cli.HKR_ALPHA, 2.0)
    assert loss("--loss", "hkr-multiclass").min_margin == losses.HKRMulticlassLoss(0.5).min_margin
    assert loss("--loss", "tau-ce", "--temperature", "4").tau == 4.0


def test_cli_recipe_and_4c3f_arch_kwargs():
    args = cli.build_parser().parse_args(["train", "--arch", "4c3f", "--head", "lln", "--out", "m.pt"])
    kwargs = train_cli.arch_kwargs(args, torch.zeros(2, 1, 28, 28), 10)
    assert kwargs == {"in_channels": 1, "input_size": 28, "num_classes": 10, "conv": models.DEFAULT_CONV,
                      "head": "lln", "width": 1, "convs_per_block": 1}
    assert isinstance(models.build("4c3f", **kwargs)[-1], lipot.FrobeniusLinear)
    args = cli.build_parser().parse_args(["train", "--recipe", "emma", "--eps", "0.5", "1.58", "--out", "m.pt"])
    assert train_cli.train_eps(args) == 1.58 and train_cli.radius_ramp(args).overshoot == lipot.training.schedules.RadiusRamp(1.0).overshoot


def test_cli_width_and_translate():
    parse = cli.build_parser().parse_args
    x = torch.zeros(2, 1, 28, 28)
    kwargs = train_cli.arch_kwargs(parse(["train", "--arch", "4c3f", "--width", "2", "--out", "m.pt"]), x, 10)
    assert kwargs["width"] == 2 and models.build("4c3f", **kwargs)[0].out_channels == 64
    with pytest.raises(ValueError, match="--width"):
        train_cli.arch_kwargs(parse(["train", "--arch", "dense", "--width", "2", "--out", "m.pt"]), x, 10)
    args = parse(["train", "--recipe", "emma", "--width", "2", "--out", "m.pt"])
    config = train_cli._setup(args, x, 10)[0]
    assert config["arch_kwargs"]["width"] == 2
    # a deeper 4C3F (two 3x3 convolutions per resolution), by --arch and through a recipe
    kwargs = train_cli.arch_kwargs(parse(["train", "--arch", "4c3f", "--convs-per-block", "2", "--out", "m.pt"]), x, 10)
    assert kwargs["convs_per_block"] == 2 and sum(hasattr(m, "out_channels") for m in models.build("4c3f", **kwargs)) == 6
    args = parse(["train", "--recipe", "gloro", "--convs-per-block", "2", "--out", "m.pt"])
    assert train_cli._setup(args, x, 10)[0]["arch_kwargs"]["convs_per_block"] == 2
    assert parse(["train", "--translate", "2", "--out", "m.pt"]).translate == 2
    with pytest.raises(SystemExit):
        parse(["train", "--translate", "-1", "--out", "m.pt"])
