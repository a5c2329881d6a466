"""BatchIterator on colour splits: three channels kept, each normalised with its own statistics and
warped by the same affine, or read as luma for a one-channel model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtune.trainables.data import AugmentConfig, BatchIterator, SplitArrays
from medtune.trainables.data.colour import rgb_to_gray

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def colour_split(n: int = 20, size: int = 12, seed: int = 0) -> SplitArrays:
    rng = np.random.default_rng(seed)
    return SplitArrays(images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                       labels=np.arange(n, dtype=np.int64))


def collect(it: BatchIterator) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*list(it))
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("channels_last", [False, True])
def test_colour_keeps_three_channels_each_with_its_own_mean_and_std(channels_last):
    split = colour_split()
    x, y = collect(BatchIterator(split, 8, shuffle=False, seed=0, channels=3, mean=MEAN, std=STD,
                                 channels_last=channels_last))
    assert x.shape == (20, 3, 12, 12) and x.dtype == torch.float32 and torch.equal(y, torch.arange(20))
    assert x.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    rgb = torch.from_numpy(split.images).permute(0, 3, 1, 2).float() / 255
    want = (rgb - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(x, want, atol=1e-5)


def test_a_one_channel_model_reads_colour_as_luma():
    split = colour_split()
    x, _ = collect(BatchIterator(split, 8, shuffle=False, seed=0, channels=1, mean=(0.0,), std=(1.0,)))
    assert x.shape == (20, 1, 12, 12)
    luma = torch.from_numpy(rgb_to_gray(split.images)).float()[:, None] / 255
    assert torch.allclose(x, luma, atol=1e-6)


def test_colour_is_resized_and_shuffled_like_grey():
    split = colour_split(n=10, size=8)
    grey_of = [SplitArrays(np.ascontiguousarray(split.images[..., c : c + 1]), split.labels) for c in range(3)]
    kwargs = dict(shuffle=True, seed=5, input_size=16, mean=(0.0,), std=(1.0,))
    x, y = collect(BatchIterator(split, 4, channels=3, **kwargs))
    for c, grey in enumerate(grey_of):  # each channel as the grey path would have fed it on its own
        xc, yc = collect(BatchIterator(grey, 4, channels=1, **kwargs))
        assert torch.equal(y, yc) and torch.allclose(x[:, c : c + 1], xc, atol=1e-5)


def test_augmentation_warps_all_three_channels_by_the_same_affine():
    split = colour_split(n=16, size=16, seed=1)
    augment = AugmentConfig(rotation=20, shift=0.1, scale=0.1, hflip=True)
    kwargs = dict(shuffle=True, seed=3, augment=augment, mean=(0.0,), std=(1.0,))
    x, _ = collect(BatchIterator(split, 8, channels=3, **kwargs))
    plain, _ = collect(BatchIterator(split, 8, channels=3, shuffle=True, seed=3, mean=(0.0,), std=(1.0,)))
    assert not torch.allclose(x, plain)  # something was warped
    for c in range(3):
        grey = SplitArrays(np.ascontiguousarray(split.images[..., c : c + 1]), split.labels)
        xc, _ = collect(BatchIterator(grey, 8, channels=1, **kwargs))  # same seed: same draws
        assert torch.allclose(x[:, c : c + 1], xc, atol=1e-5)


def test_rejects_other_channel_counts():
    bad = SplitArrays(np.zeros((2, 4, 4, 2), np.uint8), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        BatchIterator(bad, 2, shuffle=False, seed=0)
