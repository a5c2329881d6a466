"""Raw images in, probabilities and decisions out: the one inference path of ``medtune predict`` and the MLflow model.

A model's predictions must be the report's: ``medtune final``'s test predictions come from
``make_batches`` (channels, the architecture's minimum size, normalisation, channels-last, on the
device) and ``loop.predict_proba`` (softmax, autocast on a GPU), over images the data path decoded.
``Predictor`` runs exactly that: raw images are decoded by the data path's readers
(``raw_images``), batched by ``make_batches`` one batch of ``batch_size`` at a time and scored by
``predict_proba``; ``prediction_rule`` turns the probabilities into decisions.

Decoding overlaps the model: while one batch runs, the next one's images decode in a thread pool
(Pillow and the DICOM reader release the GIL), so on a folder of files the model waits little.

No Ray or MLflow here: ``medtune.search.run.predict`` (the command) and
``medtune.search.tracking.pyfunc_model`` (the MLflow model) both call this module.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from medtune.trainables.config import TrialConfig
from medtune.trainables.data import SplitArrays
from medtune.trainables.device_defaults import resolved
from medtune.trainables.factories import make_batches, pick_device, precision_for
from medtune.trainables.loop import predict_proba
from medtune.trainables.model_bundle import MACHINE_KEYS, BundleError, ModelBundle, load_model, read_bundle
from medtune.trainables.models import TransferModel
from medtune.trainables.prediction_rule import DecisionRule, decision_rule
from medtune.trainables.raw_images import IMAGE_CHANNELS, RawImageError, decode_item, stack

#: Images per forward pass unless told otherwise (``--batch-size``).
DEFAULT_BATCH_SIZE = 64
#: At most this many threads decode images (as the folder source decodes).
MAX_DECODE_THREADS = 8


@dataclass
class Predictions:
    """One row per image: every class's probability (the model's softmax, uncalibrated), the
    predicted class and, for two classes at a threshold, the calibrated positive-class score and
    the decision (1: the positive class)."""

    class_names: tuple[str, ...]
    probabilities: np.ndarray  # (N, K) float64
    predicted: np.ndarray  # (N,) class index
    rule: DecisionRule
    score: np.ndarray | None = None  # (N,) calibrated positive-class probability
    decision: np.ndarray | None = None  # (N,) bool

    def __len__(self) -> int:
        return len(self.predicted)

    @property
    def threshold(self) -> float | None:
        return self.rule.threshold

    def columns(self) -> dict[str, Any]:
        """Column name -> values: ``prob_<class>`` for each class, ``predicted_class``, and with a
        threshold ``score``, ``threshold`` and ``decision`` (1 when score >= threshold). Multi-label
        findings: ``prob_<finding>``, ``threshold_<finding>`` and ``decision_<finding>`` for each,
        then ``findings``, the names of those decided present (``;``-joined)."""
        out: dict[str, Any] = {f"prob_{name}": self.probabilities[:, k] for k, name in enumerate(self.class_names)}
        if self.rule.thresholds is not None:
            decisions = np.asarray(self.predicted, dtype=np.int64).reshape(len(self), len(self.class_names))
            for k, name in enumerate(self.class_names):
                out[f"threshold_{name}"] = np.full(len(self), float(self.rule.thresholds[k]))
                out[f"decision_{name}"] = decisions[:, k]
            out["findings"] = [";".join(n for n, d in zip(self.class_names, row) if d) for row in decisions]
            return out
        out["predicted_class"] = [self.class_names[int(i)] for i in self.predicted]
        if self.score is not None and self.decision is not None and self.threshold is not None:
            out["score"] = self.score
            out["threshold"] = np.full(len(self), float(self.threshold))
            out["decision"] = self.decision.astype(np.int64)
        return out

    @classmethod
    def join(cls, parts: Sequence["Predictions"], class_names: tuple[str, ...], rule: DecisionRule) -> "Predictions":
        """The rows of ``parts`` in order (no parts: no rows)."""
        k = len(class_names)
        probs = np.concatenate([p.probabilities for p in parts]) if parts else np.empty((0, k))
        predicted = np.concatenate([p.predicted for p in parts]) if parts else np.empty(0, dtype=np.int64)
        with_scores = rule.threshold is not None or rule.thresholds is not None
        score = np.concatenate([p.score for p in parts]) if with_scores and parts else (
            np.empty(0) if with_scores else None)
        decision = np.concatenate([p.decision for p in parts]) if with_scores and parts else (
            np.empty(0, dtype=bool) if with_scores else None)
        return cls(class_names, probs, predicted, rule, score, decision)


@dataclass
class Scored:
    """What ``Predictor.predict_items`` made of a list of raw images: predictions for the readable
    ones (``rows``: their positions in the list) and why each other one could not be read."""

    predictions: Predictions
    rows: list[int]
    bad: list[tuple[int, str]] = field(default_factory=list)


class Predictor:
    """A bundle's model, ready to score raw images as its final run scored test images.

    ``device`` defaults to the GPU when there is one; ``batch_size`` images go through the model
    at a time. ``rule`` is the decision rule (``prediction_rule.decision_rule``; default: the
    model's stored operating point)."""

    def __init__(self, bundle: ModelBundle, model: TransferModel | None = None, *, device: torch.device | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, rule: DecisionRule | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bundle.image_channels not in IMAGE_CHANNELS:
            raise BundleError(f"{bundle.folder}: a model trained on {bundle.image_channels}-channel images; expected "
                              f"one of {IMAGE_CHANNELS} (grey or RGB colour)")
        self.bundle = bundle
        self.device = device or pick_device()
        self.batch_size = batch_size
        self.rule = rule or decision_rule(bundle)
        config = {k: v for k, v in bundle.config.items() if k not in MACHINE_KEYS}
        # batch_size only sets how many images make_batches yields at once (one batch per call here).
        self.cfg = dataclasses.replace(TrialConfig.from_dict(config), batch_size=batch_size,
                                       eval_batch_size=batch_size)
        self.precision = precision_for(self.cfg, self.device)
        model = (model or load_model(bundle)).to(self.device).eval()
        # In the memory layout the batches have on this device (make_batches resolves the same).
        channels_last = resolved(self.cfg, self.device).channels_last
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> "Predictor":
        """The bundle (or sweep trial export) in ``folder``, loaded."""
        return cls(read_bundle(folder), **kwargs)

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @property
    def channels(self) -> int:
        """What images are decoded to for this model: 1 (grey) or 3 (colour), as its training images were."""
        return self.bundle.image_channels

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.bundle.class_names

    def with_rule(self, rule: DecisionRule) -> "Predictor":
        """The same loaded model deciding by ``rule``."""
        other = object.__new__(Predictor)
        other.__dict__.update(self.__dict__, rule=rule)
        return other

    def batches(self, images: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(model input, placeholder labels) of decoded (N, S, S[, C]) uint8 images, ``batch_size``
        at a time, as ``make_batches`` makes them for a split."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            split = SplitArrays(images=chunk, labels=np.zeros(len(chunk), dtype=np.int64))
            yield from make_batches(self.cfg, split, train=False, device=self.device)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities (float64) of decoded (N, S, S[, 1]) uint8 images."""
        if len(images) == 0:
            return np.empty((0, len(self.class_names)))
        probs, _ = predict_proba(self.model, self.batches(images), self.precision,
                                 multilabel=self.bundle.multilabel)  # findings: a sigmoid per output
        return probs

    def predict_arrays(self, images: np.ndarray) -> Predictions:
        """Predictions for decoded (N, S, S[, 1]) uint8 images, by ``self.rule``."""
        probs = self.probabilities(images)
        predicted, score, decision = self.rule.apply(probs)
        return Predictions(self.class_names, probs, predicted, self.rule, score, decision)

    def gradcam(self, images: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, Any]:
        """Grad-CAM maps (N, H, W) in [0, 1] at the model's input size for decoded images, each for
        its class in ``targets`` (``trainables.gradcam``: the deepest stage with 7x7 cells), and the
        layer they came from. Inputs as ``make_batches`` makes them, contiguous (as ``gradcam.png``)."""
        from medtune.trainables.gradcam import gradcam_with_layer

        images = np.asarray(images)
        split = SplitArrays(images=images[..., None] if images.ndim == 3 else images,
                            labels=np.zeros(len(images), dtype=np.int64))
        cfg = dataclasses.replace(self.cfg, channels_last=False)
        x = torch.cat([xb for xb, _ in make_batches(cfg, split, train=False, device=self.device)])
        maps = np.zeros((len(images), x.shape[-2], x.shape[-1]), dtype=np.float32)
        layer = None
        targets = np.asarray(targets, dtype=np.int64)
        for target in np.unique(targets):
            rows = np.flatnonzero(targets == target)
            maps[rows], layer = gradcam_with_layer(self.model, x[torch.as_tensor(rows, device=x.device)], int(target))
        return maps, layer

    def predict(self, items: Sequence[Any]) -> Predictions:
        """Predictions for raw images (bytes, base64 text, paths, pixel arrays); an unreadable one
        raises ``RawImageError`` naming its position."""
        scored = self.predict_items(items, tolerate_bad=False)
        return scored.predictions

    def predict_items(self, items: Sequence[Any], *, tolerate_bad: bool = True,
                      on_progress: Callable[[int], None] | None = None) -> Scored:
        """Decode and score ``items`` batch by batch, the next batch decoding while one runs.

        Unreadable items are skipped and listed (``tolerate_bad``) or raise ``RawImageError``;
        ``on_progress(n)`` is told after each batch how many more items were handled."""
        size = self.image_size
        workers = max(1, min(MAX_DECODE_THREADS, os.cpu_count() or 1))
        parts: list[Predictions] = []
        rows: list[int] = []
        bad: list[tuple[int, str]] = []
        with tempfile.TemporaryDirectory(prefix="medtune-predict-") as scratch, \
                ThreadPoolExecutor(max_workers=workers) as pool:
            def submit(start: int) -> list[Future]:
                """A batch's decoding as one task per worker: few tasks, little waiting for the GIL."""
                chunk = max(1, -(-min(self.batch_size, max(0, len(items) - start)) // workers))
                stop = min(start + self.batch_size, len(items))
                return [pool.submit(_decode_chunk, items, first, min(first + chunk, stop), size, scratch,
                                    self.channels)
                        for first in range(start, stop, chunk)]

            pending = submit(0)
            for start in range(0, len(items), self.batch_size):
                current, pending = pending, submit(start + self.batch_size)  # the next batch decodes meanwhile
                decoded = []
                for index, result in (pair for future in current for pair in future.result()):
                    if isinstance(result, np.ndarray):
                        decoded.append(result)
                        rows.append(index)
                    elif not tolerate_bad:
                        for other in pending:
                            other.cancel()
                        raise RawImageError(f"image {index}: {result}")
                    else:
                        bad.append((index, result))
                if decoded:
                    parts.append(self.predict_arrays(stack(decoded, size, self.channels)))
                if on_progress is not None:
                    on_progress(min(self.batch_size, len(items) - start))
        return Scored(Predictions.join(parts, self.class_names, self.rule), rows, bad)


def _decode_chunk(items: Sequence[Any], start: int, stop: int, size: int, scratch: str,
                  channels: int) -> list[tuple[int, np.ndarray | str]]:
    """(index, decoded image) of ``items[start:stop]``, or (index, why it is unreadable)."""
    out: list[tuple[int, np.ndarray | str]] = []
    for index in range(start, stop):
        try:
            out.append((index, decode_item(items[index], size, scratch, channels)))
        except Exception as exc:  # noqa: BLE001 - any reader failure means an unreadable image
            out.append((index, str(exc) if isinstance(exc, RawImageError) else f"{type(exc).__name__}: {exc}"))
    return out
