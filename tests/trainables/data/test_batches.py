"""BatchIterator: shapes, normalisation, resizing, seeded shuffling and augmentation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from medtune.trainables.data import AugmentConfig, BatchIterator, SplitArrays


def make_split(n: int = 50, size: int = 28, seed: int = 0) -> SplitArrays:
    """Random images; labels are row ids so tests can follow every sample."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
    return SplitArrays(images=images, labels=np.arange(n, dtype=np.int64))


def collect(it: BatchIterator) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*list(it))
    return torch.cat(xs), torch.cat(ys)


def test_shapes_dtypes_and_len():
    split = make_split(50)
    it = BatchIterator(split, 16, shuffle=False, seed=0)
    assert len(it) == 4
    batches = list(it)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (16, 1, 28, 28) and x.device.type == "cpu"
    assert y.dtype == torch.int64 and y.shape == (16,)
    dropped = BatchIterator(split, 16, shuffle=True, seed=0, drop_last=True)
    assert len(dropped) == 3 and [len(y) for _, y in dropped] == [16, 16, 16]
    assert len(BatchIterator(make_split(48), 16, shuffle=False, seed=0)) == 3


def test_unshuffled_keeps_order_and_values():
    split = make_split(10)
    x, y = collect(BatchIterator(split, 4, shuffle=False, seed=0, mean=(0.0,), std=(1.0,)))
    assert torch.equal(y, torch.arange(10))
    expected = torch.from_numpy(split.images).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(x, expected, atol=1e-6)


def test_normalisation_one_and_three_channels():
    images = np.zeros((3, 4, 4, 1), dtype=np.uint8)
    images[1], images[2] = 128, 255
    split = SplitArrays(images=images, labels=np.zeros(3, dtype=np.int64))
    x, _ = collect(BatchIterator(split, 3, shuffle=False, seed=0))  # default mean=std=0.5
    assert torch.allclose(x[:, 0, 0, 0], torch.tensor([-1.0, 128 / 255 * 2 - 1, 1.0]), atol=1e-6)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x3, _ = collect(BatchIterator(split, 3, shuffle=False, seed=0, channels=3, mean=mean, std=std))
    assert x3.shape == (3, 3, 4, 4)
    for c in range(3):
        want = (torch.tensor([0.0, 128 / 255, 1.0]) - mean[c]) / std[c]
        assert torch.allclose(x3[:, c, 2, 2], want, atol=1e-5)
    # RGB statistics on a 1-channel model: their average.
    x1, _ = collect(BatchIterator(split, 3, shuffle=False, seed=0, channels=1, mean=mean, std=std))
    want = (torch.tensor([0.0, 128 / 255, 1.0]) - np.mean(mean)) / np.mean(std)
    assert x1.shape == (3, 1, 4, 4) and torch.allclose(x1[:, 0, 1, 1], want, atol=1e-5)


def test_three_channels_repeat_gray():
    x, _ = collect(BatchIterator(make_split(5), 5, shuffle=False, seed=0, channels=3))
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


def test_input_size_upscales_bilinear():
    split = make_split(6, size=28)
    x, _ = collect(BatchIterator(split, 4, shuffle=False, seed=0, channels=3, input_size=75))
    assert x.shape == (6, 3, 75, 75)
    base, _ = collect(BatchIterator(split, 4, shuffle=False, seed=0))
    want = torch.nn.functional.interpolate(base, size=(75, 75), mode="bilinear", align_corners=False)
    assert torch.allclose(x[:, :1], want, atol=1e-5)
    same, _ = collect(BatchIterator(split, 4, shuffle=False, seed=0, input_size=28))
    assert torch.equal(same, base)


def test_channels_last():
    x, _ = next(iter(BatchIterator(make_split(8), 8, shuffle=False, seed=0, channels=3, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_shuffle_covers_every_sample_once_per_epoch():
    split = make_split(53)
    it = BatchIterator(split, 8, shuffle=True, seed=1)
    for epoch in range(3):
        it.set_epoch(epoch)
        x, y = collect(it)
        assert sorted(y.tolist()) == list(range(53))
        # Images travel with their labels.
        expected = torch.from_numpy(split.images[y.numpy()]).permute(0, 3, 1, 2).float() / 127.5 - 1
        assert torch.allclose(x, expected, atol=1e-6)


def test_shuffle_is_deterministic_per_seed_and_epoch():
    split = make_split(64)
    a, b = BatchIterator(split, 10, shuffle=True, seed=7), BatchIterator(split, 10, shuffle=True, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    assert torch.equal(collect(a)[1], collect(b)[1])
    a.set_epoch(3)
    first = collect(a)[1]
    a.set_epoch(4)
    assert not torch.equal(first, collect(a)[1])
    c = BatchIterator(split, 10, shuffle=True, seed=8)
    c.set_epoch(3)
    assert not torch.equal(first, collect(c)[1])


def test_passes_advance_epoch_without_set_epoch():
    it = BatchIterator(make_split(40), 10, shuffle=True, seed=0)
    e0, e1 = collect(it)[1], collect(it)[1]
    assert not torch.equal(e0, e1)
    it.set_epoch(0)
    assert torch.equal(collect(it)[1], e0)


def test_augmentation_changes_pixels_keeps_shape_and_is_seeded():
    split = make_split(32)
    aug = AugmentConfig(rotation=15, shift=0.1, scale=0.1)
    plain, _ = collect(BatchIterator(split, 16, shuffle=False, seed=0, channels=3, input_size=40))
    it = BatchIterator(split, 16, shuffle=False, seed=0, channels=3, input_size=40, augment=aug)
    warped, y = collect(it)
    assert warped.shape == plain.shape == (32, 3, 40, 40) and torch.equal(y, torch.arange(32))
    assert (warped - plain).abs().mean() > 0.1
    assert torch.isfinite(warped).all()
    it.set_epoch(0)
    assert torch.equal(collect(it)[0], warped)
    it.set_epoch(1)
    assert not torch.equal(collect(it)[0], warped)
    # Turning augmentation on must not change the shuffle order.
    order_plain = collect(BatchIterator(split, 16, shuffle=True, seed=3))[1]
    order_aug = collect(BatchIterator(split, 16, shuffle=True, seed=3, augment=aug))[1]
    assert torch.equal(order_plain, order_aug)


def test_disabled_or_missing_augment_is_identity():
    split = make_split(20)
    plain, _ = collect(BatchIterator(split, 8, shuffle=False, seed=0))
    off, _ = collect(BatchIterator(split, 8, shuffle=False, seed=0, augment=AugmentConfig()))
    assert not AugmentConfig().enabled and AugmentConfig(hflip=True).enabled
    assert torch.equal(plain, off)


def test_hflip_only_mirrors():
    split = make_split(64)
    plain, _ = collect(BatchIterator(split, 64, shuffle=False, seed=0))
    flipped, _ = collect(BatchIterator(split, 64, shuffle=False, seed=0, augment=AugmentConfig(hflip=True)))
    same = (flipped == plain).flatten(1).all(1)
    mirrored = (flipped == plain.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_small_rotation_keeps_image_close():
    split = make_split(8)
    plain, _ = collect(BatchIterator(split, 8, shuffle=False, seed=0, mean=(0.0,), std=(1.0,)))
    tiny, _ = collect(BatchIterator(split, 8, shuffle=False, seed=0, mean=(0.0,), std=(1.0,),
                                    augment=AugmentConfig(rotation=1e-4)))
    assert torch.allclose(tiny, plain, atol=1e-3)


def test_read_only_memmap_input_is_shared_without_warning(tmp_path):
    images = make_split(12).images
    np.save(tmp_path / "x.npy", images)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        it = BatchIterator(SplitArrays(images=mm, labels=np.arange(12)), 5, shuffle=True, seed=0)
        x, y = collect(it)
    assert x.shape == (12, 1, 28, 28) and sorted(y.tolist()) == list(range(12))


def test_empty_split_and_bad_arguments():
    empty = SplitArrays(images=np.zeros((0, 28, 28, 1), np.uint8), labels=np.zeros(0, np.int64))
    it = BatchIterator(empty, 4, shuffle=True, seed=0)
    assert len(it) == 0 and list(it) == []
    split = make_split(4)
    for kwargs in (dict(batch_size=0), dict(channels=2), dict(mean=(0.1, 0.2)), dict(std=(0.0,))):
        args = {"batch_size": 2, **kwargs}
        with pytest.raises(ValueError):
            BatchIterator(split, args.pop("batch_size"), shuffle=False, seed=0, **args)
    with pytest.raises(ValueError):
        AugmentConfig(scale=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    split = make_split(40)
    kw = dict(shuffle=True, seed=5, channels=3, input_size=64,
              augment=AugmentConfig(rotation=10, shift=0.1, hflip=True),
              channels_last=True)
    cpu_x, cpu_y = collect(BatchIterator(split, 16, **kw))
    gpu_x, gpu_y = collect(BatchIterator(split, 16, device="cuda", **kw))
    assert gpu_x.device.type == "cuda" and gpu_y.device.type == "cuda"
    assert torch.equal(gpu_y.cpu(), cpu_y)
    assert torch.allclose(gpu_x.cpu(), cpu_x, atol=1e-4)


def test_timed_batches_count_only_the_wait_for_batches():
    """The per-epoch ``data_seconds`` metric: time inside ``next()``, not the consumer's own time."""
    import time

    from medtune.trainables.loop import TimedBatches

    def slow_source():
        for i in range(3):
            time.sleep(0.05)
            yield torch.zeros(1), torch.zeros(1, dtype=torch.long)

    timed = TimedBatches(slow_source())
    for _ in timed:
        time.sleep(0.2)  # the model's work: not waiting for data
    seconds = timed.take_seconds()
    assert 0.15 <= seconds < 0.6
    assert timed.take_seconds() == 0.0
