"""RandomTranslate against a brute-force shift, and the loader's transform hook."""

from __future__ import annotations

import pytest
import torch

import lipot
from lipot.data import RandomTranslate
from lipot.training import TensorLoader, make_loader


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Brute force, one pixel at a time: out[c, i, j] = img[c, i - dy, j - dx], 0 outside."""
    c, h, w = img.shape
    out = torch.zeros_like(img)
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[:, i, j] = img[:, i - dy, j - dx]
    return out


@pytest.mark.parametrize("m", [1, 2, 3])
def test_every_image_is_one_brute_force_shift_within_range(m):
    x = torch.rand(24, 2, 7, 6)
    out = RandomTranslate(m)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = set()
    for img, res in zip(x, out):
        matches = [(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)
                   if torch.equal(res, _shift(img, dy, dx))]
        assert matches, "the output is not a translation of its input within max_shift"
        offsets.add(matches[0])
    assert len(offsets) > 3  # offsets are drawn per image, not once per batch


def test_translation_is_seeded_by_the_global_generator_and_zero_is_the_identity():
    x = torch.rand(8, 1, 5, 5)
    torch.manual_seed(3)
    a = RandomTranslate(2)(x)
    torch.manual_seed(3)
    assert torch.equal(a, RandomTranslate(2)(x))
    assert RandomTranslate(0)(x) is x


def test_translation_errors_name_the_argument():
    with pytest.raises(ValueError, match="max_shift"):
        RandomTranslate(-1)
    with pytest.raises(TypeError, match="max_shift"):
        RandomTranslate(1.5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        RandomTranslate(1)(torch.rand(3, 5, 5))


def test_loader_applies_the_transform_to_inputs_only():
    x = torch.arange(12.0).reshape(12, 1, 1, 1)
    y = torch.arange(12)
    loader = make_loader(x, y, 4, shuffle=False, transform=lambda b: -b)
    for xb, yb in loader:
        assert torch.equal(xb.ravel(), -yb.float())
    with pytest.raises(TypeError, match="transform"):
        TensorLoader(x, y, 4, transform=3)


def test_fit_trains_with_translations():
    torch.manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 3, (64,))
    model = lipot.models.conv_classifier(1, 8, (4,), (8,), 3)
    history = lipot.training.fit(model, lipot.losses.LseHKRMulticlassLoss(0.9, 1.0), make_loader(
        x, y, 16, transform=RandomTranslate(1)), 2, progress=False, log=None)
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(m["loss"])) for m in history)


def test_wider_4c3f_doubles_the_convolutions_and_keeps_a_unit_body_bound():
    model = lipot.models.cnn_4c3f(1, 8, 3, width=2)
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d) or hasattr(m, "out_channels")]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128]
    body_bound = lipot.lipschitz_bound(model[:-1], (1, 8, 8))
    assert 0.99 < body_bound <= 1 + 1e-4
    recipe = lipot.training.recipes.build_recipe("emma", 1.58, 2, input_size=8, num_classes=3, width=2)
    assert recipe.arch_kwargs["width"] == 2
    assert lipot.models.build(recipe.arch, **recipe.arch_kwargs)[0].out_channels == 64
    with pytest.raises(ValueError, match="width"):
        lipot.training.recipes.build_recipe("lse-hkr", 1.58, 2, width=2)
    with pytest.raises(ValueError, match="width"):
        lipot.models.cnn_4c3f(width=0)
