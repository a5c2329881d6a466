"""A trained model as one self-describing folder: what ``medtune predict`` and the MLflow model read.

A model that leaves medtune must carry everything needed to turn a raw image into the decision
the report made, or its user rebuilds the preprocessing by hand and guesses the threshold. So a
bundle holds, in plain files that load without unpickling anything:

* ``model.safetensors``: the weights (safetensors: tensors only, no code);
* ``medtune_model.json``: the trial config the model trained with (architecture, head, image size,
  channels: what ``make_batches`` builds its input from), the class names with the positive class
  last, the image size and channel counts, medtune's version and, for a ``medtune final`` model,
  the operating point: its rule, threshold (calibrated scale), raw threshold, the model's own
  balanced point (``balanced-1se`` starts there) and the Platt map; or, with more than two
  classes, the rule, training class shares and whether the loss was class-weighted;
* ``heldout.npz`` (two classes): the calibrated held-out scores and labels the threshold was chosen
  on, so that another operating point (``sensitivity:0.90``) can be chosen at prediction time by
  the same rule code, with the same numbers ``medtune final`` would have used.

A sweep trial's ``best_checkpoint/`` artifact (``weights_export``: ``model.safetensors`` plus
``checkpoint.json``) reads as a bundle without an operating point: probabilities and the argmax.

No MLflow here (``medtune.search.tracking`` logs the folder); torch only when a model is built.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from medtune.trainables.models import TransferModel

#: The bundle's description file; its presence is what makes a folder a bundle.
BUNDLE_FILE = "medtune_model.json"
#: The weights, under the same name ``weights_export`` gives a trial's checkpoint export.
WEIGHTS_FILE = "model.safetensors"
#: The held-out scores and labels a two-class model's threshold was chosen on.
HELDOUT_FILE = "heldout.npz"
#: What ``format`` says; ``format_version`` goes up when a reader of an older bundle would misread a newer one.
BUNDLE_FORMAT = "medtune-model"
BUNDLE_FORMAT_VERSION = 1
#: Trial-config keys that are one machine's folders, never part of what a model is.
MACHINE_KEYS = ("data_dir", "cache_dir", "weights_dir")


class BundleError(ValueError):
    """A folder that is not a model medtune can load, or one from an incompatible medtune; the
    message names the folder and what was expected."""


def medtune_version() -> str:
    """The installed distribution's version, ``unknown`` from a bare checkout."""
    try:
        return version("medtune")
    except PackageNotFoundError:
        return "unknown"


def major_version(text: str) -> str | None:
    """``"1"`` of ``"1.4.2"``; None when ``text`` is not a version (``unknown``)."""
    head = str(text).split(".", 1)[0]
    return head if head.isdigit() else None


@dataclass(frozen=True)
class HeldOut:
    """The calibrated held-out scores (positive class) and 0/1 labels a threshold is chosen on."""

    scores: np.ndarray
    labels: np.ndarray
    raw_scores: np.ndarray | None = None


@dataclass(frozen=True)
class ModelBundle:
    """What a bundle's JSON says, plus its held-out scores; ``folder`` is where it was read from.

    ``operating_point`` is None for a model without one (a sweep trial's checkpoint). Two classes:
    keys ``rule``, ``threshold``, ``raw_threshold``, ``anchor``, ``calibration``; more: ``rule``,
    ``class_priors``, ``class_weighted``."""

    config: dict[str, Any]
    class_names: tuple[str, ...]
    kind: str  # "final" or "sweep-trial"
    medtune_version: str = "unknown"
    operating_point: dict[str, Any] | None = None
    heldout: HeldOut | None = field(default=None, repr=False)
    provenance: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    #: What the data path decoded the training images to: 1 (grey) or 3 (colour).
    image_channels: int = 1

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def multilabel(self) -> bool:
        """Whether the model scores multi-label findings (a sigmoid per output, a threshold per finding)."""
        return bool((self.operating_point or {}).get("multilabel"))

    @property
    def binary(self) -> bool:
        return self.num_classes == 2 and not self.multilabel

    @property
    def positive_class(self) -> str | None:
        """Two classes: the last one, which every score and threshold is about."""
        return self.class_names[-1] if self.binary else None

    @property
    def image_size(self) -> int:
        return int(self.config.get("image_size", 28))

    @property
    def architecture(self) -> str:
        return str(self.config.get("architecture"))

    def describe(self) -> str:
        """One line: which model, at what size, deciding how."""
        point = self.operating_point or {}
        how = f"operating point {point.get('rule')}" + (
            f" (threshold {point['threshold']:.4g})" if self.binary and point.get("threshold") is not None else "")
        return (f"{self.kind} model {self.architecture} at {self.image_size} px, classes {list(self.class_names)}, "
                + (how if self.operating_point else "no operating point (argmax)"))


# --- writing ------------------------------------------------------------------------------------


def _json_number(value: Any) -> float | None:
    """A JSON-able float: NaN and infinities as None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def model_config(config: dict[str, Any]) -> dict[str, Any]:
    """The trial config as a bundle keeps it: every key, the machine's folders blanked."""
    from medtune.trainables.config import TrialConfig

    values = TrialConfig.from_dict(dict(config)).to_dict()
    return {**values, **{key: None for key in MACHINE_KEYS}}


def write_bundle(folder: str | Path, model: "torch.nn.Module", config: dict[str, Any],
                 class_names: tuple[str, ...] | list[str], *, kind: str = "final",
                 operating_point: dict[str, Any] | None = None, heldout: HeldOut | None = None,
                 provenance: dict[str, Any] | None = None, image_channels: int = 1) -> Path:
    """Write ``model``'s bundle into ``folder`` (created; files in it replaced) and return it.

    ``operating_point`` (see ``ModelBundle``) and ``heldout`` come from ``medtune final``'s report;
    a sweep trial's model has neither. ``image_channels`` is what the data path decoded its images
    to (the last axis of a split's images: 1 grey, 3 colour)."""
    from safetensors.torch import save_file

    from medtune.trainables.config import TrialConfig
    from medtune.trainables.factories import input_channels
    from medtune.trainables.models import get_architecture

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model_config(config)
    names = [str(c) for c in class_names]
    # Own, contiguous CPU copies: safetensors refuses tensors that share memory.
    weights = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    if heldout is not None:
        arrays = {"scores": np.asarray(heldout.scores, dtype=np.float64),
                  "labels": np.asarray(heldout.labels, dtype=np.int64)}
        if heldout.raw_scores is not None:
            arrays["raw_scores"] = np.asarray(heldout.raw_scores, dtype=np.float64)
        np.savez(folder / HELDOUT_FILE, **arrays)
    info = get_architecture(cfg["architecture"])
    trial = TrialConfig.from_dict(cfg)
    document = {
        "format": BUNDLE_FORMAT, "format_version": BUNDLE_FORMAT_VERSION, "medtune_version": medtune_version(),
        "kind": kind, "architecture": cfg["architecture"], "class_names": names,
        "positive_class": names[-1] if len(names) == 2 else None,
        "image_size": int(cfg["image_size"]),
        # What the data path decoded the images to (1: grey) and what the model's stem takes (grey
        # repeated for a pretrained RGB stem); the rest of the preprocessing is rebuilt from ``config``.
        "image_channels": int(image_channels), "model_channels": input_channels(trial),
        "input_size": max(int(cfg["image_size"]), info.min_input_size),
        "normalization": {"mean": list(info.mean), "std": list(info.std)},
        "weights": WEIGHTS_FILE, "heldout": HELDOUT_FILE if heldout is not None else None,
        "operating_point": _clean(operating_point), "provenance": dict(provenance or {}), "config": cfg,
    }
    (folder / BUNDLE_FILE).write_text(json.dumps(document, indent=1, default=_json_default))
    return folder


def _clean(value: Any) -> Any:
    """JSON-able copy: numpy values as Python ones, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return _json_number(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _json_default(value: Any) -> Any:
    return _clean(value) if isinstance(value, (np.generic, np.ndarray)) else str(value)


# --- reading ------------------------------------------------------------------------------------


def is_bundle(folder: str | Path) -> bool:
    return (Path(folder) / BUNDLE_FILE).is_file()


def is_trial_export(folder: str | Path) -> bool:
    """A sweep trial's ``best_checkpoint/`` artifact (``weights_export``)."""
    from medtune.trainables.weights_export import META_FILE

    return (Path(folder) / WEIGHTS_FILE).is_file() and (Path(folder) / META_FILE).is_file()


def read_bundle(folder: str | Path) -> ModelBundle:
    """The bundle in ``folder`` (or the sweep trial export there), checked against this medtune.

    Raises ``BundleError`` for a folder that is neither, a bundle of a newer format or of another
    medtune major version (its config keys and preprocessing may mean other things there)."""
    folder = Path(folder)
    if is_bundle(folder):
        return _read_medtune_bundle(folder)
    if is_trial_export(folder):
        return _read_trial_export(folder)
    raise BundleError(f"{folder}: not a medtune model; expected a folder with {BUNDLE_FILE} and {WEIGHTS_FILE} "
                      f"(medtune final's model/ folder) or a sweep trial's best_checkpoint/ ({WEIGHTS_FILE} and "
                      "checkpoint.json)")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: cannot read it as JSON ({exc})") from None
    if not isinstance(document, dict):
        raise BundleError(f"{path}: expected a JSON object, got {type(document).__name__}")
    return document


def check_compatible(written_by: str, where: str, running: str | None = None) -> None:
    """A bundle written by another medtune major version is refused: its config keys, preprocessing
    and decision rules are not promised to mean the same. Unknown versions (a bare checkout) pass."""
    running = running or medtune_version()
    theirs, ours = major_version(written_by), major_version(running)
    if theirs is not None and ours is not None and theirs != ours:
        raise BundleError(f"{where}: written by medtune {written_by}, this is medtune {running}; a model from "
                          f"another major version cannot be loaded. Use medtune {theirs}.x to predict with it, or "
                          "retrain it with this version (medtune final)")


def _read_medtune_bundle(folder: Path) -> ModelBundle:
    document = _read_json(folder / BUNDLE_FILE)
    where = str(folder / BUNDLE_FILE)
    if document.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where}: format {document.get('format')!r}; expected {BUNDLE_FORMAT!r}")
    check_compatible(str(document.get("medtune_version", "unknown")), where)
    if int(document.get("format_version", 0)) > BUNDLE_FORMAT_VERSION:
        raise BundleError(f"{where}: bundle format {document.get('format_version')} is newer than this medtune "
                          f"reads ({BUNDLE_FORMAT_VERSION}); upgrade medtune")
    if not (folder / WEIGHTS_FILE).is_file():
        raise BundleError(f"{folder}: {WEIGHTS_FILE} is missing beside {BUNDLE_FILE}")
    names = tuple(str(c) for c in document.get("class_names") or ())
    if len(names) < 2 or not isinstance(document.get("config"), dict):
        raise BundleError(f"{where}: expected class_names (at least 2) and a config object")
    heldout = None
    if document.get("heldout"):
        with np.load(folder / str(document["heldout"]), allow_pickle=False) as z:
            heldout = HeldOut(z["scores"], z["labels"], z["raw_scores"] if "raw_scores" in z else None)
    return ModelBundle(config=dict(document["config"]), class_names=names, kind=str(document.get("kind", "final")),
                       medtune_version=str(document.get("medtune_version", "unknown")),
                       operating_point=document.get("operating_point"), heldout=heldout,
                       provenance=dict(document.get("provenance") or {}), folder=folder,
                       image_channels=int(document.get("image_channels") or 1))


def _read_trial_export(folder: Path) -> ModelBundle:
    from medtune.trainables.weights_export import META_FILE

    meta = _read_json(folder / META_FILE)
    names = tuple(str(c) for c in meta.get("class_names") or ())
    if len(names) < 2 or not isinstance(meta.get("config"), dict):
        raise BundleError(f"{folder / META_FILE}: expected class_names (at least 2) and a config object")
    provenance = {"epoch": meta.get("epoch"), "exported_fold": meta.get("exported_fold")}
    return ModelBundle(config=dict(meta["config"]), class_names=names, kind="sweep-trial", operating_point=None,
                       provenance=provenance, folder=folder)


def rebuild_model(config: dict[str, Any], num_classes: int, state: dict[str, "torch.Tensor"]) -> "TransferModel":
    """The trained network from its trial config and weights, built without any download: the
    architecture from random init (``pretrained: none``) with the stem it trained with (three
    channels for a pretrained run), then overwritten by ``state``. In eval mode, on the CPU."""
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.factories import build_trial_model, input_channels

    trained = TrialConfig.from_dict({k: v for k, v in config.items() if k not in MACHINE_KEYS})
    skeleton = TrialConfig.from_dict({**trained.to_dict(), "pretrained": "none", "channels": input_channels(trained),
                                      "weights_dir": None})
    model = build_trial_model(skeleton, num_classes)
    model.load_state_dict(state)
    return model.eval()


def load_model(bundle: ModelBundle) -> "TransferModel":
    """The bundle's network (CPU, eval mode), its weights read without unpickling."""
    from safetensors.torch import load_file

    if bundle.folder is None:
        raise BundleError("this bundle was not read from a folder; its weights are not known")
    try:
        state = load_file(str(bundle.folder / WEIGHTS_FILE))
        return rebuild_model(bundle.config, bundle.num_classes, state)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise BundleError(f"{bundle.folder / WEIGHTS_FILE}: cannot load the weights into a "
                          f"{bundle.architecture} with {bundle.num_classes} classes ({exc})") from None
