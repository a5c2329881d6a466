"""In-memory batching: a split held once as a uint8 tensor, normalised and augmented per batch.

Grey splits (N, H, W, 1) are fed as one channel, or repeated to three for an RGB stem; colour splits
(N, H, W, 3) keep their three channels (each normalised with its own mean and std, all warped by the
same affine), or become luma once, up front, for a one-channel model (``channels=1``).

No DataLoader workers: the data is small and already decoded, and worker processes would
cost more (startup, IPC, duplicated memory per Ray trial) than the few vectorised tensor
ops per batch done here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .colour import rgb_to_gray
from .splits import SplitArrays

# Seed streams, so enabling augmentation never changes the shuffle order.
_SHUFFLE_STREAM, _AUGMENT_STREAM = 0, 1


@dataclass(frozen=True)
class AugmentConfig:
    """Random affine augmentation, drawn per sample. Flips are off by default: heart side matters on X-rays."""

    rotation: float = 0.0  # max degrees, uniform in [-r, r]
    shift: float = 0.0  # max translation as a fraction of the image size
    scale: float = 0.0  # max relative zoom, uniform in [1 - s, 1 + s]
    hflip: bool = False

    def __post_init__(self) -> None:
        if self.rotation < 0 or self.shift < 0 or not 0 <= self.scale < 1:
            raise ValueError(f"AugmentConfig: expected rotation >= 0, shift >= 0, 0 <= scale < 1; got {self}")

    @property
    def affine(self) -> bool:
        return bool(self.rotation or self.shift or self.scale)

    @property
    def enabled(self) -> bool:
        return self.affine or self.hflip


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    """CPU generator for one (seed, epoch, stream); SeedSequence mixes nearby seeds apart."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, epoch & 0xFFFFFFFFFFFFFFFF, stream])
    gen = torch.Generator()
    gen.manual_seed(int(state.generate_state(1, dtype=np.uint64)[0]))
    return gen


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 1) uint8 array -> (N, 1, H, W) tensor sharing its memory (memmaps included);
    (N, H, W, 3) -> (N, H, W, 3) as it is, each batch is permuted to (B, 3, H, W) when taken."""
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError(f"BatchIterator: expected images shaped (N, H, W, 1) (grey) or (N, H, W, 3) (colour), "
                         f"got {images.shape}")
    n, h, w, c = images.shape
    arr = np.ascontiguousarray(images, dtype=np.uint8)
    if c == 1:
        arr = arr.reshape(n, 1, h, w)
    with warnings.catch_warnings():
        # Cache memmaps are read-only; we only ever read (index_select makes new tensors).
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arr)


def _channel_stats(values: tuple[float, ...], channels: int, name: str) -> torch.Tensor:
    vals = [float(v) for v in values]
    if len(vals) not in (1, 3):
        raise ValueError(f"BatchIterator: {name} needs 1 or 3 values, got {values}")
    if channels == 1 and len(vals) == 3:
        vals = [sum(vals) / 3]  # RGB statistics on a gray image: their average
    elif channels == 3 and len(vals) == 1:
        vals = vals * 3
    return torch.tensor(vals, dtype=torch.float32).view(1, channels, 1, 1)


class BatchIterator:
    """Iterates one split as normalized float tensors, on the given device.

    Yields x float32 (B, channels, S, S) and y int64 (B,). The split is moved to `device`
    once, as uint8; each batch is indexed, converted, resized to `input_size` if that
    differs from the stored size, augmented (only when `augment` is given and enabled),
    normalized with mean/std, and made channels_last if asked.

    Shuffle order and augmentation are a pure function of (seed, epoch). Each full pass
    advances the epoch by one, so a loop that forgets `set_epoch` still reshuffles;
    `set_epoch` pins it (e.g. when resuming from a checkpoint).
    """

    def __init__(
        self,
        split: SplitArrays,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        device: torch.device | str = "cpu",
        channels: int = 1,
        input_size: int | None = None,
        mean: tuple[float, ...] = (0.5,),
        std: tuple[float, ...] = (0.5,),
        augment: AugmentConfig | None = None,
        channels_last: bool = False,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"BatchIterator: batch_size must be >= 1, got {batch_size}")
        if channels not in (1, 3):
            raise ValueError(f"BatchIterator: channels must be 1 or 3, got {channels}")
        if len(split.images) != len(split.labels):
            raise ValueError(f"BatchIterator: {len(split.images)} images but {len(split.labels)} labels")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.channels = channels
        self.channels_last = channels_last
        self.drop_last = drop_last
        self.augment = augment if augment is not None and augment.enabled else None
        self.epoch = 0

        images = split.images
        if images.ndim == 4 and images.shape[3] == 3 and channels == 1:
            images = rgb_to_gray(images)[..., None]  # colour data for a one-channel model: luma, once
        self._images = _as_tensor(images).to(self.device)
        #: Colour kept: the tensor is (N, H, W, 3) and each batch is permuted to (B, 3, H, W).
        self._nhwc = images.shape[3] == 3
        self._labels = torch.as_tensor(np.asarray(split.labels, dtype=np.int64)).to(self.device)
        height, stored = images.shape[1], images.shape[2]
        self.input_size = input_size or stored
        self._resize = self.input_size != stored or height != stored
        # Fold /255 and normalisation into one multiply-add: x * scale + shift.
        std_t = _channel_stats(std, channels, "std")
        if (std_t <= 0).any():
            raise ValueError(f"BatchIterator: std must be > 0, got {std}")
        mean_t = _channel_stats(mean, channels, "mean")
        self._scale = (1.0 / (255.0 * std_t)).to(self.device)
        self._shift = (-mean_t / std_t).to(self.device)

    @property
    def num_samples(self) -> int:
        return len(self._labels)

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle order and augmentation draws of `epoch`."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.num_samples
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=_generator(self.seed, epoch, _SHUFFLE_STREAM)).to(self.device)
        aug_gen = _generator(self.seed, epoch, _AUGMENT_STREAM) if self.augment else None
        for b in range(len(self)):
            start, stop = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:
                xb, yb = self._images[start:stop], self._labels[start:stop]
            else:
                idx = order[start:stop]
                xb, yb = self._images.index_select(0, idx), self._labels.index_select(0, idx)
            yield self._transform(xb, aug_gen), yb

    def _transform(self, xb: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        # Stays 1-channel and in 0..255 until the final multiply-add: resizing, warping and
        # flipping are linear per channel, so doing them before /255 and the gray->RGB
        # repeat gives the same result at a third of the work for 3-channel models.
        # Colour batches come as (B, H, W, 3): the permuted view is channels-last in memory.
        x = xb.permute(0, 3, 1, 2).float() if self._nhwc else xb.float()
        if self._resize:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=False)
        if gen is not None:
            x = self._augment(x, gen)
        x = torch.addcmul(self._shift, x, self._scale)  # broadcasts 1 -> `channels` channels
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        elif self._nhwc:
            x = x.contiguous()
        return x

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Per-sample rotation/shift/zoom as one affine_grid + grid_sample; flips by indexing."""
        a = self.augment
        assert a is not None
        # Fixed draw layout (angle, dx, dy, zoom, flip) keeps draws independent of which are used.
        u = torch.rand(x.shape[0], 5, generator=gen).mul_(2).sub_(1)
        if a.affine:
            angle = u[:, 0] * math.radians(a.rotation)
            zoom = 1.0 + u[:, 3] * a.scale
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            tx, ty = u[:, 1] * (2 * a.shift), u[:, 2] * (2 * a.shift)  # grid coords span 2 units
            theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
            # non_blocking: a blocking host-to-GPU copy waits for the GPU's queue, every batch.
            grid = F.affine_grid(theta.to(x.device, non_blocking=True), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if a.hflip:
            flip = (u[:, 4] < 0).to(x.device, non_blocking=True).view(-1, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
        return x
