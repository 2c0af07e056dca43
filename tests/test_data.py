"""IDX reader on files written here (independent of the reader), and on MNIST when present."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lipot import data

from conftest import MNIST_ROOT


def _write_idx(path: Path, array: np.ndarray, code: int = 0x08, compress: bool = False) -> None:
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    path = tmp_path / ("img.idx3" + (".gz" if compress else ""))
    _write_idx(path, images, compress=compress)
    np.testing.assert_array_equal(data.read_idx(path), images)
    floats = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    _write_idx(tmp_path / "f.idx", floats, code=0x0D)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "f.idx"), floats)


def test_read_idx_errors(tmp_path):
    good = np.zeros((3, 2, 2), dtype=np.uint8)
    _write_idx(tmp_path / "ok", good)
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "magic").write_bytes(b"\x01" + raw[1:])
    (tmp_path / "trunc").write_bytes(raw[:-1])
    (tmp_path / "type").write_bytes(raw[:2] + b"\x07" + raw[3:])
    with pytest.raises(ValueError, match="not an IDX"):
        data.read_idx(tmp_path / "magic")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        data.read_idx(tmp_path / "trunc")
    with pytest.raises(ValueError, match="data type"):
        data.read_idx(tmp_path / "type")
    with pytest.raises(FileNotFoundError):
        data.read_idx(tmp_path / "missing")


def test_dataset_folder_and_binary_subset(tmp_path):
    rng = np.random.default_rng(1)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), compress=True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 8, 3, 8, 0, 1], dtype=np.uint8), compress=True)
    x, y = data.mnist(tmp_path, "test")
    assert x.shape == (6, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    xs, ys = data.binary_subset(x, y, 0, 8)
    assert xs.shape[0] == 4 and ys.ravel().tolist() == [1.0, -1.0, -1.0, 1.0]
    with pytest.raises(FileNotFoundError, match="train-images"):
        data.mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        data.mnist(tmp_path, "val")
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8), compress=True)
    with pytest.raises(ValueError, match="6 images but 5 labels"):
        data.mnist(tmp_path, "test")


@pytest.mark.skipif(not MNIST_ROOT.is_dir(), reason="MNIST files not present (set LIPOT_MNIST_ROOT)")
def test_real_mnist_sizes():
    x, y = data.mnist(MNIST_ROOT, "test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert torch.bincount(y).tolist()[:2] == [980, 1135]  # the standard test-set class counts
