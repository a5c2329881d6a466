"""Colour cost: what reading colour data in colour costs per image on the CPU, against grey.

A pretrained stem takes three channels either way: grey images are repeated to three (after the
augmentation, which runs on one channel), colour images keep theirs (and are augmented in all
three). So the network's work is the same and the difference is the batch preparation: indexing the
cached split, converting, warping and normalising three channels instead of one. Measured for the
demo's kind of trial (``spaces/demo.yaml``: MobileNetV2 with an ImageNet stem, its augmentation,
channels-last, batches of 64, one thread as ``resources: {cpu: 1}`` gives a trial) at 28 and 64 px,
on synthetic splits of the same pictures in both modes, through the project's own ``make_batches``:

- ``batch_preparation``: taking one training batch (index, convert, augment, normalise), per image;
- ``train_step``: taking a batch, then forward, backward and optimizer step of MobileNetV2 (random
  init: the same arithmetic as from ImageNet weights), per image.

Times are the process's CPU time (one thread), not wall time: on a machine shared with other work,
at niceness 19, the wall clock would count the waits for a core. Paired, so that what the other work
still does to the CPU (caches, memory bandwidth) weighs on both modes alike: each pair times one
grey and one colour batch (or step) back to back, the order alternating from pair to pair, and the
result is the median over pairs of colour / grey. Per-image times are the medians of each mode. On a
busy machine a training step's pairs spread by several per cent either way, more than the batches
can add, so ``train_step`` also reports the ratio the batches alone account for
(``colour_over_grey_from_batches``: 1 + extra batch time / grey step time). Also reported: the
decode cache's bytes per image (colour keeps three channels).

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/colour_cost.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: The demo sweep's MobileNetV2 trial (spaces/demo.yaml), pretrained so that grey is repeated to three channels.
CONFIG = {"architecture": "mobilenetv2_100", "pretrained": "imagenet", "frozen_depth": 0, "dropout": 0.3,
          "batch_size": 64, "lr": 1e-3, "augment_rotation": 10, "augment_shift": 0.05, "augment_scale": 0.1,
          "channels_last": True, "seed": 0}
MODES = ("grey", "colour")


def _splits(size: int, n: int) -> dict[str, Any]:
    """The same random pictures as a grey split (N, S, S, 1) and as a colour one (N, S, S, 3)."""
    from medtune.trainables.data import SplitArrays

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = (np.arange(n) % 2).astype(np.int64)
    return {"grey": SplitArrays(np.ascontiguousarray(colour[..., :1]), labels), "colour": SplitArrays(colour, labels)}


def _batches(cfg: Any, split: Any) -> Any:
    """Training batches of ``split`` for ever (a new epoch, reshuffled, after each pass)."""
    import torch

    from medtune.trainables.factories import make_batches

    iterator = make_batches(cfg, split, train=True, device=torch.device("cpu"))
    return itertools.chain.from_iterable(iterator for _ in itertools.count())


def _paired(work: dict[str, Callable[[], int]], pairs: int) -> dict[str, Any]:
    """Time ``work[mode]()`` (returns the images it handled) for both modes, back to back, ``pairs`` times."""
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    for i in range(pairs):
        for mode in (MODES if i % 2 == 0 else MODES[::-1]):
            started = time.process_time()
            images = work[mode]()
            seconds[mode].append((time.process_time() - started) / images)
    ratios = [c / g for g, c in zip(seconds["grey"], seconds["colour"])]
    return {"grey_us_per_image": statistics.median(seconds["grey"]) * 1e6,
            "colour_us_per_image": statistics.median(seconds["colour"]) * 1e6,
            "colour_over_grey": statistics.median(ratios),
            "colour_over_grey_quartiles": [float(q) for q in np.percentile(ratios, [25, 75])], "pairs": pairs}


def measure(size: int, images: int, batch_pairs: int, step_pairs: int) -> dict[str, Any]:
    import torch

    from medtune.trainables.config import TrialConfig
    from medtune.trainables.factories import input_channels
    from medtune.trainables.models import build_model

    cfg = TrialConfig.from_dict({**CONFIG, "image_size": size})
    splits = _splits(size, images)
    assert input_channels(cfg, colour=False) == input_channels(cfg, colour=True) == 3  # the same stem
    batches = {m: _batches(cfg, splits[m]) for m in MODES}

    def prepare(mode: str) -> Callable[[], int]:
        return lambda: len(next(batches[mode])[1])

    torch.manual_seed(0)
    model = build_model(cfg.architecture, num_classes=2, in_chans=3, dropout=cfg.dropout, pretrained="none")
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    criterion = torch.nn.CrossEntropyLoss()

    def train_step(mode: str) -> Callable[[], int]:
        def step() -> int:
            x, y = next(batches[mode])
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return len(y)
        return step

    for mode in MODES:  # warm-up: allocator, kernels
        train_step(mode)()
    prep = _paired({m: prepare(m) for m in MODES}, batch_pairs)
    step = _paired({m: train_step(m) for m in MODES}, step_pairs)
    # The network's work is the same in both modes, so the step's ratio should be what the batches add:
    step["colour_over_grey_from_batches"] = 1 + (prep["colour_us_per_image"] - prep["grey_us_per_image"]) / \
        step["grey_us_per_image"]
    return {"image_size": size, "images": images, "batch_size": cfg.batch_size,
            "cache_bytes_per_image": {m: int(splits[m].images[0].nbytes) for m in MODES},
            "batch_preparation": prep, "train_step": step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64])
    parser.add_argument("--images", type=int, default=1024, help="images per synthetic split")
    parser.add_argument("--batch-pairs", type=int, default=200, help="grey/colour pairs of batches timed")
    parser.add_argument("--step-pairs", type=int, default=40, help="grey/colour pairs of training steps timed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/colour_cost.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    rows = [measure(size, args.images, args.batch_pairs, args.step_pairs) for size in args.sizes]
    defaults = args.sizes == [28, 64] and (args.batch_pairs, args.step_pairs, args.threads) == (200, 40, 1)
    result = {
        "question": "What does reading colour data in colour cost per image on the CPU, against grey?",
        "command": ".venv/bin/python benchmarks/colour_cost.py" + ("" if defaults else " (non-default options)"),
        "date": dt.date.today().isoformat(), "threads": args.threads, "torch": torch.__version__,
        "machine": platform.machine(), "config": CONFIG, "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    for row in rows:
        prep, step = row["batch_preparation"], row["train_step"]
        print(f"{row['image_size']} px: batch preparation {prep['grey_us_per_image']:.1f} -> "
              f"{prep['colour_us_per_image']:.1f} us/image (x{prep['colour_over_grey']:.2f}); train step "
              f"{step['grey_us_per_image']:.0f} -> {step['colour_us_per_image']:.0f} us/image "
              f"(x{step['colour_over_grey']:.3f}, quartiles {step['colour_over_grey_quartiles']}; from the "
              f"batches x{step['colour_over_grey_from_batches']:.4f})")


if __name__ == "__main__":
    main()
