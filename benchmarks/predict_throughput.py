"""Predict throughput: images/s of ``medtune predict`` on CPU against the bare forward pass of its model.

``medtune predict`` does more than the network: it decodes every PNG with the data path's reader
(in a thread pool, the next batch while the model runs the current one), batches with
``make_batches`` (channels, minimum size, normalisation, channels-last), runs the model with
``predict_proba`` (softmax), calibrates the scores and decides at the threshold. The question is
what all that costs on top of the forward pass, for the two image sizes medtune's users train at
(28 px MedMNIST, 224 px), at batch 64:

- ``predict``: the inference path of ``medtune predict``, ``Predictor.predict_items`` over the PNG
  files of a folder (decode, batch, forward, softmax, calibration, decision), with the model loaded;
- ``predict_arrays``: the same over uint8 arrays instead of files (an ``.npz``, arrays sent to the
  MLflow model): the wrapper without the PNG decoder's cost;
- ``bare``: ``model(x)`` under ``torch.inference_mode`` over the very batches ``make_batches`` made of
  the same images, already decoded and in memory (no decoding, no softmax, no decisions);
- ``end_to_end``: ``medtune.predict(bundle, folder, out=csv)`` in this process, for scale: it adds
  reading the bundle, building the model, listing the folder and writing the CSV (not the
  interpreter's start or imports); measured once, after the repeats.

Each is timed in wall seconds and in CPU seconds of this process (all its threads). On a machine
shared with other work the wall rates move with the neighbours (up to 20x between minutes here);
the CPU rates count only this work, so their ratio holds: it is what predict costs over the forward
pass, before decoding overlaps the model on a second core (which the wall ratio gains on a quiet
machine). Target: predict >= 0.8x the bare images/s. The models are untrained (``pretrained: none``): weights do
not change the time. ``simple_cnn`` at 28 px is the worst case (a network so small that everything
around it shows); ``mobilenetv2_100`` is the demo sweep's pretrained architecture. Each pair is measured
``--repeats`` times, interleaved, and the median kept; the machine is shared, so single runs move.

    MEDTUNE_DATA_DIR=../shared/data MEDTUNE_WEIGHTS_DIR=../shared/weights \\
        .venv/bin/python benchmarks/predict_throughput.py
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

RESULT = Path(__file__).resolve().parent / "results" / "predict_throughput.json"
#: (architecture, image size, images scored per measurement). simple_cnn at 224 px is left out: its
#: full-resolution convolutions take ~0.1 s an image on one core, so nothing around them can show.
CASES = (("simple_cnn", 28, 2048), ("mobilenetv2_100", 28, 2048), ("mobilenetv2_100", 224, 256))
TARGET = 0.8


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth grey images with noise (PNG-compressible like an X-ray, not like white noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 120 + 60 * np.sin(6 * xx) * np.cos(4 * yy)
    return np.clip(base[None] + rng.normal(0, 12, (n, size, size)), 0, 255).astype(np.uint8)


def _bundle(folder: Path, architecture: str, size: int) -> Path:
    import torch

    from medtune.trainables.config import TrialConfig
    from medtune.trainables.factories import build_trial_model
    from medtune.trainables.model_bundle import write_bundle

    config = {"architecture": architecture, "pretrained": "none", "image_size": size, "batch_size": 64,
              "data_source": "benchmark"}
    torch.manual_seed(0)
    model = build_trial_model(TrialConfig.from_dict(config), 2)
    point = {"rule": "balanced", "threshold": 0.5, "raw_threshold": 0.5, "anchor": 0.5,
             "calibration": {"method": "platt", "slope": 1.2, "intercept": -0.1, "fitted_on": 100, "reason": ""}}
    return write_bundle(folder, model, config, ("NORMAL", "PNEUMONIA"), operating_point=point)


class Clock:
    """Wall and CPU seconds (this process, all its threads) of the block it times."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def rates(self, n: int) -> tuple[float, float]:
        """(images per wall second, images per CPU second)."""
        return n / self.wall, n / self.cpu


def _end_to_end_rate(bundle: Path, pngs: Path, out: Path, n: int, batch: int) -> tuple[float, float]:
    import medtune

    with Clock() as clock:
        outcome = medtune.predict(bundle, pngs, out=out, batch_size=batch)
    assert len(outcome.keys) == n, (len(outcome.keys), n)
    return clock.rates(n)


def _predict_rate(predictor: object, items: list) -> tuple[float, float]:
    with Clock() as clock:
        scored = predictor.predict_items(items)
    assert len(scored.rows) == len(items) and not scored.bad
    return clock.rates(len(items))


def _bare_rate(predictor: object, images: np.ndarray) -> tuple[float, float]:
    import torch

    batches = [x for x, _ in predictor.batches(images)]  # the same preprocessed batches, in memory
    model = predictor.model
    with torch.inference_mode(), Clock() as clock:
        for x in batches:
            model(x)
    return clock.rates(len(images))


def measure(architecture: str, size: int, n: int, batch: int, repeats: int, work: Path) -> dict:
    import torch

    from medtune.trainables.inference import Predictor

    folder = work / f"{architecture}-{size}"
    bundle = _bundle(folder / "model", architecture, size)
    images = _images(n, size)
    pngs = folder / "pngs"
    pngs.mkdir(parents=True)
    files = []
    for i, image in enumerate(images):
        files.append(pngs / f"{i:05d}.png")
        files[-1].write_bytes(_png(image))
    predictor = Predictor.from_folder(bundle, batch_size=batch, device=torch.device("cpu"))
    _predict_rate(predictor, files[: 2 * batch])  # warm-up: thread pools, oneDNN's kernels for these shapes
    _bare_rate(predictor, images[: 2 * batch])
    arrays = list(images)
    runs: dict[str, list[tuple[float, float]]] = {"predict": [], "predict_arrays": [], "bare": []}
    for _ in range(repeats):  # interleaved: a neighbour's load hits all sides alike
        runs["predict"].append(_predict_rate(predictor, files))
        runs["predict_arrays"].append(_predict_rate(predictor, arrays))
        runs["bare"].append(_bare_rate(predictor, images))
    end_to_end = _end_to_end_rate(bundle, pngs, folder / "predictions.csv", n, batch)
    wall = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    row = {"architecture": architecture, "image_size": size, "images": n, "batch_size": batch,
           "predict_images_per_s": wall["predict"], "predict_arrays_images_per_s": wall["predict_arrays"],
           "bare_forward_images_per_s": wall["bare"], "ratio": wall["predict"] / wall["bare"],
           "ratio_arrays": wall["predict_arrays"] / wall["bare"],
           "predict_images_per_cpu_s": cpu["predict"], "predict_arrays_images_per_cpu_s": cpu["predict_arrays"],
           "bare_forward_images_per_cpu_s": cpu["bare"], "cpu_ratio": cpu["predict"] / cpu["bare"],
           "cpu_ratio_arrays": cpu["predict_arrays"] / cpu["bare"], "end_to_end_images_per_s": end_to_end[0],
           "runs_wall_cpu": runs}
    row["meets_target"] = row["ratio"] >= TARGET
    print(f"{architecture:16} {size:>4} px  images/s predict {wall['predict']:7.1f} (arrays "
          f"{wall['predict_arrays']:7.1f}), bare {wall['bare']:7.1f}: ratio {row['ratio']:.3f} (arrays "
          f"{row['ratio_arrays']:.3f}); per CPU second: ratio {row['cpu_ratio']:.3f} (arrays "
          f"{row['cpu_ratio_arrays']:.3f}); medtune.predict end to end {end_to_end[0]:7.1f}", flush=True)
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--architectures", nargs="+", help="only these architectures' cases")
    parser.add_argument("--images", type=int, nargs=2, metavar=("N28", "N224"),
                        help="images per measurement at 28 and 224 px (default: 2048 and 256)")
    parser.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's own)")
    parser.add_argument("--out", default=str(RESULT))
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory(prefix="medtune-predict-bench-") as tmp:
        for architecture, size, n in CASES:
            if args.architectures and architecture not in args.architectures:
                continue
            if args.images is not None:
                n = args.images[0] if size == 28 else args.images[1]
            rows.append(measure(architecture, size, n, args.batch_size, args.repeats, Path(tmp)))
    result = {"date": date.today().isoformat(), "target_ratio": TARGET, "device": "cpu",
              "torch_threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
              "command": " ".join(["benchmarks/predict_throughput.py", *(argv if argv is not None else sys.argv[1:])]),
              "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
