"""No host synchronisation per step: what an epoch reads back from the device must not grow with its batches.

On a GPU every ``.item()``, ``.cpu()``, ``float(tensor)`` or blocking copy waits for all queued
kernels; one per step stalls a launch-bound GPU every step. There is no GPU here, so the test counts
the calls that would synchronise one: wrappers around the tensor methods that read values back (and
``Tensor.to`` with a device and without ``non_blocking``), called from anything but torch's own
Python code (the optimizer's step counters live on the host by design), plus log records. A whole
training epoch (``run_training``: train, validation pass, metrics, report, checkpoint) runs once over
3 batches and once over 9 (train and eval alike); the counts of the second epoch must be equal.
Where CUDA is present the same runs also count torch's own sync warnings
(``torch.cuda.set_sync_debug_mode``).
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from medtune.trainables.data import DatasetSplits, SplitArrays
from medtune.trainables.reporters import LocalReporter
from medtune.trainables.train import run_training

TORCH_DIR = str(Path(torch.__file__).parent)
READS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__", "__array__", "__format__")
BATCH = 8


class SyncCounter:
    """Counts host reads of tensors by the caller's file and line, while ``on``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.on = False

    def _note(self, name: str) -> None:
        if not self.on:
            return
        frame = sys._getframe(2)
        if frame.f_code.co_filename.startswith(TORCH_DIR):
            return
        self.counts[f"{name} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}"] += 1

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in READS:
            original = getattr(torch.Tensor, name)

            def wrapper(tensor, *args, _name=name, _original=original, **kwargs):
                self._note(_name)
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, wrapper)
        original_to = torch.Tensor.to

        def to(tensor, *args, **kwargs):
            moves = "device" in kwargs or any(isinstance(a, (torch.device, str, torch.Tensor)) for a in args)
            if moves and not kwargs.get("non_blocking", False):
                self._note("blocking .to(device)")
            return original_to(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "to", to)

    def snapshot(self) -> Counter[str]:
        return Counter(self.counts)


class LogCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1


class SnapshotReporter(LocalReporter):
    """Keeps the counts at every report, so each epoch's share can be told apart."""

    def __init__(self, *args, counter: SyncCounter, logs: LogCounter, **kwargs):
        super().__init__(*args, **kwargs)
        self.counter, self.logs = counter, logs
        self.marks: list[tuple[Counter[str], int, int]] = []

    def report(self, metrics, checkpoint_dir):
        self.counter.on = False
        super().report(metrics, checkpoint_dir)
        self.marks.append((self.counter.snapshot(), self.logs.records, _cuda_sync_warnings()))
        self.counter.on = True


_CUDA_SYNC_WARNINGS: list[warnings.WarningMessage] = []


def _cuda_sync_warnings() -> int:
    return sum("synchroniz" in str(w.message) for w in _CUDA_SYNC_WARNINGS)


def _splits(batches: int) -> DatasetSplits:
    rng = np.random.default_rng(0)
    n = batches * BATCH

    def split() -> SplitArrays:
        return SplitArrays(images=rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                           labels=(np.arange(n) % 2).astype(np.int64))

    return DatasetSplits(train=split(), val=split(), test=split(), class_names=("a", "b"), fingerprint="sync")


def _second_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batches: int) -> tuple[Counter[str], int, int]:
    counter, logs = SyncCounter(), LogCounter()
    counter.install(monkeypatch)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(logs)
    root.setLevel(logging.DEBUG)
    reporter = SnapshotReporter(tmp_path / f"run{batches}", counter=counter, logs=logs, num_threads=1)
    config = {"architecture": "simple_cnn", "pretrained": "none", "batch_size": BATCH, "eval_batch_size": BATCH,
              "epochs": 2, "lr": 1e-3, "augment_rotation": 10.0, "augment_hflip": True, "data_source": "synthetic"}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _CUDA_SYNC_WARNINGS[:] = []
            if torch.cuda.is_available():
                torch.cuda.set_sync_debug_mode("warn")
            try:
                run_training(config, reporter, data=_splits(batches))
            finally:
                if torch.cuda.is_available():
                    torch.cuda.set_sync_debug_mode("default")
                _CUDA_SYNC_WARNINGS[:] = caught
    finally:
        counter.on = False
        root.removeHandler(logs)
        root.setLevel(old_level)
        monkeypatch.undo()
    (first, first_logs, _), (second, second_logs, _) = reporter.marks
    assert len(reporter.history) == 2
    return second - first, second_logs - first_logs, _cuda_sync_warnings()


def test_an_epochs_host_reads_do_not_grow_with_its_batches(tmp_path, monkeypatch):
    few, few_logs, few_cuda = _second_epoch(tmp_path, monkeypatch, 3)
    many, many_logs, many_cuda = _second_epoch(tmp_path, monkeypatch, 9)
    assert sum(few.values()) > 0  # the counters are hooked: the epoch's loss and validation reads show
    assert many == few, f"per-step host reads: 3 batches {dict(few)}, 9 batches {dict(many)}"
    assert many_logs == few_logs, f"per-step logging: {few_logs} records over 3 batches, {many_logs} over 9"
    if torch.cuda.is_available():
        assert many_cuda == few_cuda, f"CUDA syncs: {few_cuda} over 3 batches, {many_cuda} over 9"


def test_the_counter_catches_a_read_per_step(tmp_path, monkeypatch):
    """The same measurement with a ``.item()`` per step slipped into the loop: it must show."""
    import medtune.trainables.loop as loop

    original = loop.train_one_epoch

    def leaky(model, batches, *args, **kwargs):
        class Leak:
            def __iter__(self):
                for images, labels in batches:
                    labels.sum().item()
                    yield images, labels

            def set_epoch(self, epoch):
                batches.set_epoch(epoch)

        return original(model, Leak(), *args, **kwargs)

    monkeypatch.setattr("medtune.trainables.folds.train_one_epoch", leaky)
    monkeypatch.setattr("medtune.trainables.train.train_one_epoch", leaky)
    few, _, _ = _second_epoch(tmp_path, monkeypatch, 3)
    monkeypatch.setattr("medtune.trainables.folds.train_one_epoch", leaky)
    monkeypatch.setattr("medtune.trainables.train.train_one_epoch", leaky)
    many, _, _ = _second_epoch(tmp_path, monkeypatch, 9)
    assert sum(many.values()) - sum(few.values()) == 6  # one read per extra batch
