"""``medtune predict MODEL INPUT``: a trained model's probabilities and decisions for new images, as a list of steps.

1. check what can be checked before anything loads: ``--out`` and ``--gradcam`` can be written,
   the batch size and ``--max-bad-fraction`` make sense;
2. find the model (``_model_folder``): a ``medtune final`` output folder (its ``model/``), a bundle
   folder, a sweep trial's ``best_checkpoint/``, or an MLflow model URI (``models:/NAME@champion``,
   ``models:/NAME/3``, ``runs:/ID/...``: ``tracking.model_download``); read and check its bundle;
3. the decision rule: the model's stored operating point, or ``--operating-point`` (chosen on the
   held-out scores it carries) or ``--threshold``;
4. list the images (``_image_source``): one file, a folder read recursively as training reads one
   (hidden files skipped; JPEG, PNG, DICOM), an ``.npz`` (its ``test_images``, else ``images``) or
   an ``s3://`` prefix or object, staged into the node's cache as a data source is;
5. score them batch by batch on the GPU when there is one (``medtune.trainables.inference``),
   with a progress bar; unreadable images are skipped and listed, and more of them than
   ``max_bad_fraction`` (the model's training setting unless given) is an error, as in training;
6. write the Grad-CAM heat maps (``--gradcam``), then the CSV, whole or not at all
   (``results.predictions``).

Every bad input is a ``SpecError`` naming ``MODEL``, ``INPUT`` or the option, without credentials.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medtune.search.credentials import redact_uri
from medtune.search.results.predictions import PredictOutcome
from medtune.search.spec.sweep_spec import DEFAULT_TRACKING_URI, SpecError

log = logging.getLogger(__name__)

#: What errors name as their source.
WHERE = "medtune predict"
#: Keys of the ``.npz`` arrays read, in order of preference, with their labels.
NPZ_IMAGE_KEYS = (("test_images", "test_labels"), ("images", "labels"))


@dataclass
class ImageSource:
    """The images to score: ``items`` (paths or arrays) named by ``keys`` (``key_name``: ``path``
    or ``index``), with an ``.npz``'s own ``labels`` when it has them; ``root`` names it in messages."""

    items: list[Any]
    keys: list[str]
    key_name: str
    root: str
    labels: list[Any] | None = None


def run_predict(model: str | Path, images: str | Path, *, out: str | Path | None = None,
                gradcam: str | Path | None = None, batch_size: int | None = None,
                operating_point: str | None = None, threshold: float | None = None,
                tracking_uri: str | None = None, max_bad_fraction: float | None = None) -> PredictOutcome:
    """Score every image of ``images`` with ``model`` (steps: the module docstring); ``batch_size``
    None is ``DEFAULT_BATCH_SIZE``."""
    from medtune.trainables.inference import DEFAULT_BATCH_SIZE
    from medtune.trainables.progress import progress

    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    _check_arguments(out, gradcam, batch_size, max_bad_fraction, operating_point, threshold)
    with tempfile.TemporaryDirectory(prefix="medtune-model-") as tmp:
        bundle = _read_bundle(_model_folder(model, tracking_uri, Path(tmp)))
        rule = _decision_rule(bundle, operating_point, threshold)
        source = _image_source(images)
        predictor = _predictor(bundle, rule, batch_size)  # the weights are read here, before tmp goes
    log.info("%s on %s: %d images, %s", bundle.describe(), source.root, len(source.items),
             f"decided by {rule.rule}" + (f" at threshold {rule.threshold:.4g}" if rule.threshold is not None else ""))
    with progress(total=len(source.items), desc=f"predicting {Path(source.root).name or source.root}",
                  unit="image") as bar:
        scored = predictor.predict_items(source.items, tolerate_bad=True, on_progress=bar.update)
    bad = [(source.keys[i], reason) for i, reason in scored.bad]
    limit = max_bad_fraction if max_bad_fraction is not None else float(bundle.config.get("data_max_bad_fraction",
                                                                                           0.01))
    _check_bad(source, bad, limit)
    outcome = PredictOutcome(scored.predictions, [source.keys[i] for i in scored.rows], source.key_name,
                             len(source.items), bundle.describe(),
                             labels=None if source.labels is None else [source.labels[i] for i in scored.rows],
                             bad=bad)
    if gradcam is not None:
        _write_gradcams(predictor, source, scored.rows, outcome, Path(gradcam))
    if out is not None:
        outcome.write_csv(out)
    return outcome


# --- 1. arguments ---------------------------------------------------------------------------------


def _check_arguments(out: str | Path | None, gradcam: str | Path | None, batch_size: int,
                     max_bad_fraction: float | None, operating_point: str | None, threshold: float | None) -> None:
    from medtune.search.run.preflight import check_output_path

    problems = []
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        problems.append(("--batch-size", f"expected a whole number >= 1, got {batch_size!r}"))
    if max_bad_fraction is not None and not 0 <= float(max_bad_fraction) <= 1:
        problems.append(("--max-bad-fraction", f"expected a share in [0, 1], got {max_bad_fraction!r}"))
    if operating_point is not None and threshold is not None:
        problems.append(("--threshold", f"given with --operating-point {operating_point!r}; give one of them"))
    if problems:
        raise SpecError(WHERE, problems)
    if out is not None:
        check_output_path(out, "--out", WHERE)
    if gradcam is not None:
        check_output_path(gradcam, "--gradcam", WHERE, folder=True)


# --- 2. the model ----------------------------------------------------------------------------------


def _model_folder(model: str | Path, tracking_uri: str | None, tmp: Path) -> Path:
    """The bundle's folder: found in a local folder, or downloaded from MLflow into ``tmp``."""
    from medtune.search.tracking.model_download import MODEL_KEY, bundle_folder, download_model, is_model_uri
    from medtune.trainables.model_bundle import BUNDLE_FILE, is_bundle, is_trial_export

    text = str(model).strip()
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise SpecError(WHERE, [(MODEL_KEY, f"{path}: a file; expected a folder (medtune final's output folder, "
                                                "its model/, or a trial's best_checkpoint/) or an MLflow model URI")])
        for candidate in (path, path / "model"):
            if is_bundle(candidate) or is_trial_export(candidate):
                return candidate
        if (path / "MLmodel").is_file():  # an MLflow model downloaded by hand
            return bundle_folder(path, str(path), WHERE)
        raise SpecError(WHERE, [(MODEL_KEY, f"{path}: no medtune model in it; expected medtune final's output folder "
                                            f"(with model/{BUNDLE_FILE}), a model folder with {BUNDLE_FILE}, or a "
                                            "trial's best_checkpoint/ (model.safetensors and checkpoint.json)")])
    if not is_model_uri(text):
        raise SpecError(WHERE, [(MODEL_KEY, f"{path}: no such folder, and not an MLflow model URI "
                                            "(models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH)")])
    store = _tracking_uri(tracking_uri)
    return download_model(text, store, tmp, WHERE)


def _tracking_uri(given: str | None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns.db``; a local store
    must exist (MLflow would create an empty one and then find no model in it)."""
    from medtune.search.tracking.client import resolved_tracking_uri

    uri = resolved_tracking_uri(given or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise SpecError(WHERE, [("--tracking-uri", f"{redact_uri(uri)}: no MLflow store there; name the store the "
                                                   "model was logged to (--tracking-uri or MLFLOW_TRACKING_URI)")])
    return uri


def _read_bundle(folder: Path) -> Any:
    from medtune.search.tracking.model_download import MODEL_KEY
    from medtune.trainables.model_bundle import BundleError, read_bundle

    try:
        return read_bundle(folder)
    except BundleError as exc:
        raise SpecError(WHERE, [(MODEL_KEY, str(exc))]) from None


def _predictor(bundle: Any, rule: Any, batch_size: int) -> Any:
    from medtune.search.tracking.model_download import MODEL_KEY
    from medtune.trainables.inference import Predictor
    from medtune.trainables.model_bundle import BundleError

    try:
        return Predictor(bundle, rule=rule, batch_size=batch_size)
    except BundleError as exc:
        raise SpecError(WHERE, [(MODEL_KEY, str(exc))]) from None


def _decision_rule(bundle: Any, operating_point: str | None, threshold: float | None) -> Any:
    from medtune.trainables.prediction_rule import OperatingPointError, decision_rule

    try:
        return decision_rule(bundle, operating_point, threshold)
    except OperatingPointError as exc:
        key = "--threshold" if threshold is not None else "--operating-point"
        raise SpecError(WHERE, [(key, str(exc))]) from None


# --- 4. the images ---------------------------------------------------------------------------------


def _image_source(images: str | Path) -> ImageSource:
    """The images ``images`` names (see the module docstring); ``SpecError`` naming ``INPUT`` otherwise."""
    from medtune.trainables.data import DataError, resolve_cache_dir
    from medtune.trainables.data.staging import is_s3_uri, stage_s3

    text = str(images).strip()
    shown = text
    if is_s3_uri(text):
        try:
            path = stage_s3(text, resolve_cache_dir(None))
        except DataError as exc:
            raise SpecError(WHERE, [("INPUT", str(exc))]) from None
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise SpecError(WHERE, [("INPUT", f"{path}: does not exist; expected an image (JPEG, PNG, DICOM), a "
                                              "folder of them, an .npz or an s3:// prefix")])
    if path.is_dir():
        return _folder_source(path, shown)
    if path.suffix.lower() == ".npz":
        return _npz_source(path, shown)
    from medtune.trainables.raw_images import is_image_file

    if not is_image_file(path):
        raise SpecError(WHERE, [("INPUT", f"{shown}: a {path.suffix or 'suffix-less'} file; expected an image (.jpeg, "
                                          ".jpg, .png, .dcm, .dicom), a folder of them, an .npz or an s3:// prefix")])
    return ImageSource([path], [shown], "path", shown)


def _folder_source(folder: Path, shown: str) -> ImageSource:
    from medtune.trainables.raw_images import list_images

    relative = list_images(folder)
    if not relative:
        raise SpecError(WHERE, [("INPUT", f"{shown}: no images in it or its subfolders; expected JPEG, PNG or DICOM "
                                          "files (.jpeg, .jpg, .png, .dcm, .dicom; hidden files are skipped)")])
    return ImageSource([folder / r for r in relative], relative, "path", shown)


def _npz_source(path: Path, shown: str) -> ImageSource:
    """An ``.npz``'s ``test_images`` (a MedMNIST-style file: its test split), else its ``images``."""
    from medtune.trainables.raw_images import ARRAY_CHANNELS

    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            found = next(((i, lab) for i, lab in NPZ_IMAGE_KEYS if i in keys), None)
            if found is None:
                raise SpecError(WHERE, [("INPUT", f"{shown}: no test_images or images array (found "
                                                  f"{sorted(keys)}); expected a MedMNIST-style .npz or one with an "
                                                  "'images' array (N, H, W) or (N, H, W, C)")])
            image_key, label_key = found
            array = z[image_key]
            labels = _npz_labels(np.asarray(z[label_key]).reshape(len(array), -1)) if label_key in keys else None
    except (OSError, ValueError) as exc:
        raise SpecError(WHERE, [("INPUT", f"{shown}: cannot read it as an .npz of arrays ({exc})")]) from None
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[3] not in ARRAY_CHANNELS):
        raise SpecError(WHERE, [("INPUT", f"{shown}[{image_key}]: shape {array.shape}; expected (N, H, W) or "
                                          "(N, H, W, C) with C = 1, 3 (RGB) or 4 (RGBA): other channel counts "
                                          "cannot be converted to the model's input")])
    if len(array) == 0:
        raise SpecError(WHERE, [("INPUT", f"{shown}[{image_key}]: no images")])
    return ImageSource(list(array), [str(i) for i in range(len(array))], "index", f"{shown}[{image_key}]", labels)


# --- 5. unreadable images --------------------------------------------------------------------------


def _check_bad(source: ImageSource, bad: list[tuple[str, str]], limit: float) -> None:
    """More unreadable images than ``limit`` of them is an error; fewer are skipped with one warning."""
    from medtune.trainables.data.folder import MAX_NAMED

    if not bad:
        return
    named = "; ".join(f"{key} ({reason})" for key, reason in bad[:MAX_NAMED])
    more = f" and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
    text = f"{len(bad)} of {len(source.items)} images of {source.root} are unreadable: {named}{more}"
    if len(bad) > limit * len(source.items):
        raise SpecError(WHERE, [("INPUT", f"{text}; that is more than max_bad_fraction={limit:g}. Fix or remove "
                                          "them, or raise --max-bad-fraction")])
    log.warning("%s; skipped them", text)


def _npz_labels(labels: np.ndarray) -> list[Any]:
    """Each row's label: the class index, or multi-label findings' 0/1 values ``;``-joined (``1;0;1``)."""
    if labels.shape[1] == 1:
        return labels[:, 0].tolist()
    return [";".join(str(int(v)) for v in row) for row in labels]


# --- 6. Grad-CAM ------------------------------------------------------------------------------------


def _write_gradcams(predictor: Any, source: ImageSource, rows: list[int], outcome: PredictOutcome,
                    folder: Path) -> None:
    """One heat map per scored image (``results.prediction_gradcam``); a failure is a warning: the
    predictions still count."""
    from medtune.search.results.prediction_gradcam import heatmap_path, write_heatmap
    from medtune.trainables.raw_images import decode_item, stack

    try:
        folder.mkdir(parents=True, exist_ok=True)
        binary = predictor.bundle.binary
        predicted = outcome.predictions.predicted
        size = predictor.image_size
        for start in range(0, len(rows), predictor.batch_size):
            chunk = rows[start:start + predictor.batch_size]
            images = stack([decode_item(source.items[i], size, channels=predictor.channels) for i in chunk], size,
                           predictor.channels)
            if predictor.channels == 1:
                images = images[..., 0]
            if predictor.bundle.multilabel:  # the map of each image's most probable finding
                targets = outcome.predictions.probabilities[start:start + len(chunk)].argmax(axis=1)
            else:
                targets = np.full(len(chunk), predictor.bundle.num_classes - 1) if binary else \
                    predicted[start:start + len(chunk)]
            maps, _ = predictor.gradcam(images, targets)
            for i, image, heat in zip(chunk, images, maps):
                write_heatmap(heatmap_path(folder, source.keys[i], source.key_name), image, heat)
        outcome.gradcam_dir = folder
    except Exception as exc:  # interpretability must not lose finished predictions
        log.warning("Grad-CAM failed: %s", exc)
