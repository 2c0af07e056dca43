"""Datasets: a reader for MNIST-format IDX files (MNIST, Fashion-MNIST) and a binary-subset helper.

IDX format (LeCun et al.): a big-endian header ``0x00 0x00 <type> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the data. MNIST files hold unsigned bytes (type ``0x08``): images
``(N, 28, 28)`` (magic 2051) and labels ``(N,)`` (magic 2049). Files may be gzip-compressed.
Nothing is downloaded: point ``root`` at the four standard files. The seeded toy pairs with a
known W1 (:func:`toy_pair`) live in :mod:`lipot.data.toys`.
"""

from __future__ import annotations

import gzip
import zlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .toys import TOYS, ToyPair, toy_pair

__all__ = ["read_idx", "mnist", "fashion_mnist", "binary_subset", "FASHION_MNIST_ROOT", "TOYS", "ToyPair", "toy_pair"]

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
"""Where Debian's ``dataset-fashion-mnist`` package puts the files."""

_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or ``.gz``) into a numpy array, checking the header and size.

    Raises:
        FileNotFoundError: no such file.
        ValueError: bad magic number, unknown data type, or a size that does not match the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: not a complete gzip file ({err}); the download or copy is "
                         "truncated or corrupt: fetch the file again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (the first two bytes must be 0)")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{code:02x}")
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions)")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", ndim, 4))
    dtype = _DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    body = len(data) - 4 - 4 * ndim
    if body != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{body} bytes; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"{stem}[.gz] not found in {root}; pass root= the folder holding the four MNIST-format "
        "files (nothing is downloaded)"
    )


def _pixels(images: np.ndarray, root: Path) -> np.ndarray:
    """float32 pixels in [0, 1]: integer images are divided by 255; floating-point images are
    taken as they are and must already lie in [0, 1] (they are never divided twice)."""
    if np.issubdtype(images.dtype, np.integer):
        if images.min() < 0 or images.max() > 255:
            raise ValueError(f"{root}: integer pixels must lie in [0, 255], got "
                             f"[{images.min()}, {images.max()}]")
        return images.astype(np.float32) / 255.0
    out = images.astype(np.float32)
    if not np.isfinite(out).all() or out.min() < 0 or out.max() > 1:
        raise ValueError(f"{root}: floating-point pixels must be finite and lie in [0, 1], got "
                         f"[{np.nanmin(out)}, {np.nanmax(out)}]; rescale them or store bytes")
    return out


def _load(root: str | os.PathLike, split: str) -> tuple[Tensor, Tensor]:
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    images = read_idx(_find(root, _FILES[split][0]))
    labels = read_idx(_find(root, _FILES[split][1]))
    if images.ndim != 3 or labels.ndim != 1:
        raise ValueError(f"{root}: expected images (N, H, W) and labels (N,), got "
                         f"{images.shape} and {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{root}: {images.shape[0]} images but {labels.shape[0]} labels")
    if images.shape[0] == 0:
        raise ValueError(f"{root}: the {split} IDX files {_FILES[split][0]} and {_FILES[split][1]} "
                         "hold zero samples; use complete copies of the dataset")
    x = torch.from_numpy(_pixels(images, root)).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def mnist(root: str | os.PathLike, split: str = "train") -> tuple[Tensor, Tensor]:
    """MNIST from the four standard IDX files in ``root``.

    Returns:
        ``(x, y)``: float32 images ``(N, 1, 28, 28)`` in [0, 1] and int64 labels ``(N,)``
        (60000 for ``split='train'``, 10000 for ``'test'``).
    """
    return _load(root, split)


def fashion_mnist(root: str | os.PathLike = FASHION_MNIST_ROOT, split: str = "train") -> tuple[Tensor, Tensor]:
    """Fashion-MNIST (same format as :func:`mnist`); default ``root`` is where
    ``apt-get install dataset-fashion-mnist`` puts it."""
    return _load(root, split)


def binary_subset(x: Tensor, y: Tensor, positive: int, negative: int) -> tuple[Tensor, Tensor]:
    """Keep the samples of two classes; labels become +1 (``positive``) and -1 (``negative``).

    Example: ``binary_subset(x, y, 0, 8)`` for MNIST 0-vs-8.
    Returns ``(x_subset, y_pm1)`` with ``y_pm1`` float32 of shape ``(n, 1)``.
    """
    if positive == negative:
        raise ValueError(f"positive and negative must differ, got {positive} twice")
    keep = (y == positive) | (y == negative)
    if not bool(keep.any()):
        raise ValueError(f"no sample has label {positive} or {negative}")
    labels = torch.where(y[keep] == positive, 1.0, -1.0).unsqueeze(1)
    return x[keep], labels
