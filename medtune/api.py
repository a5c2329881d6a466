"""The functions behind ``medtune sweep|resume|best|final|predict|validate``, callable from Python.

Each takes what its command takes (a space file or a dict instead of a path, a mapping of
overrides instead of ``--set`` strings) and returns a typed result instead of printing. The CLI
calls these same functions, so a notebook and a terminal run exactly the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from medtune.search.results.final_outcome import FinalOutcome
from medtune.search.results.leaderboard import LeaderboardEntry
from medtune.search.results.predictions import PredictOutcome
from medtune.search.run.outcome import SweepOutcome
from medtune.search.spec.loader import Overrides, dump_yaml, load_space
from medtune.search.spec.sweep_spec import BEST_CONFIG_FILE, DEFAULT_TRACKING_URI, SweepSpec
from medtune.trainables.data.leakage import LeakReport

Space = str | Path | Mapping[str, Any] | SweepSpec


def sweep(space: Space, overrides: Overrides = (), *, name: str | None = None,
          best_config: str | Path | None = None) -> SweepOutcome:
    """Run a sweep (``medtune sweep``): Ray joins ``RAY_ADDRESS`` if set, else starts locally.

    Returns the ranked leaderboard (``.entries``, ``.leaderboard_frame()``), the best configuration
    file (``.best_config_path``, ``.best_config()``), the MLflow parent run and Tune's ResultGrid.
    Bad input raises ``medtune.search.spec.sweep_spec.SpecError`` before any trial starts.
    """
    spec = load_space(space, overrides)  # a bad space file fails here, before Ray and torch are imported
    from medtune.search.run.sweep import run_sweep

    return run_sweep(spec, run_name=name, best_config_out=best_config)


def resume(run_folder: str | Path, *, best_config: str | Path | None = None) -> SweepOutcome:
    """Continue a sweep whose driver died or whose job was stopped (``medtune resume``)."""
    from medtune.search.run.sweep import resume_sweep

    return resume_sweep(str(run_folder), best_config_out=best_config)


@dataclass
class BestConfig:
    """The best configuration of a finished sweep, as ``medtune best`` writes it."""

    document: dict[str, Any]  # the best_config.yaml document: a space with every value fixed, plus provenance
    entries: list[LeaderboardEntry] = field(repr=False)  # every trial, best first
    path: Path | None = None  # where it was written, when it was

    @property
    def config(self) -> dict[str, Any]:
        """The winning hyperparameters (the document's ``fixed`` section)."""
        return dict(self.document.get("fixed", {}))

    @property
    def best(self) -> LeaderboardEntry:
        return self.entries[0]


def best(experiment: str, tracking_uri: str | None = None, *, metric: str | None = None, mode: str | None = None,
         run: str | None = None, top: int = 5, output: str | Path | None = BEST_CONFIG_FILE) -> BestConfig:
    """The best configuration of the newest finished sweep of ``experiment`` (or of parent run
    ``run``), read from MLflow; written to ``output`` unless that is ``None``."""
    from medtune.search.results.best import best_from_mlflow

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    document, entries = best_from_mlflow(experiment, uri, metric=metric, mode=mode, parent_run_id=run, top=top)
    path = dump_yaml(document, output) if output is not None else None
    return BestConfig(document, entries, path)


def final(space: "Space | BestConfig", overrides: Overrides = (), *, epochs: str = "budget",
          operating_point: str = "auto", threshold: str | None = None, ensemble: int = 1,
          register: str | None = None, out: str | Path | None = None) -> FinalOutcome:
    """Train a configuration on train + val, evaluate it once on test, report (``medtune final``).

    ``space`` is usually a best_config.yaml (or ``BestConfig.document``). ``operating_point`` is the
    decision rule (``medtune final --operating-point``: ``auto``, ``balanced``, ``prior``,
    ``youden-mid``, ``sensitivity:0.90``, ``cost:FN/FP=5``, a number, ...; see
    ``medtune.trainables.operating_point``); ``threshold`` is its old name, still accepted. The
    result holds the reports (``.metrics()``, ``.report()``: report.json), the output folder with
    report.html, and the MLflow run and model.
    """
    from medtune.search.run.final import run_final

    if isinstance(space, BestConfig):
        space = space.document
    return run_final(load_space(space, overrides), epochs=epochs, ensemble=ensemble, register=register,
                     out_dir=out, operating_point=operating_point, threshold=threshold)


@dataclass
class Validation:
    """What ``medtune validate`` found: the validated spec with its data resolved, a summary of
    the data (images per split and class), the warnings about a valid but risky sweep, and the
    leakage and shortcut checks' report (``leaks.findings``, each also a warning; ``leaks.dropped``
    under ``data.on_leak: drop``)."""

    spec: SweepSpec
    data_summary: Any
    warnings: list[str]
    leaks: LeakReport | None = None


def validate(space: Space, overrides: Overrides = ()) -> Validation:
    """Check a space, its data and its storage without running anything (``medtune validate``).
    The data is decoded into the node's cache, which the sweep then reuses; bad input raises
    ``medtune.search.spec.sweep_spec.SpecError``."""
    spec = load_space(space, overrides)  # a bad space file fails here, before Ray and torch are imported
    from medtune.search.run.preflight import check_leaks, leak_lines, prepare_data, resolved_spec
    from medtune.search.run.storage import check_storage
    from medtune.search.spec.advice import small_data_warnings, weights_warnings
    from medtune.search.spec.gpu_advice import local_gpu_warnings

    spec, summary = resolved_spec(spec)
    check_storage(spec)
    prepare_data(spec, summary)  # finds unreadable images; adds the data's mode (colour or grey) to the summary
    leaks = check_leaks(spec)  # on the cache prepare_data filled; data.on_leak: error raises SpecError
    return Validation(spec, summary, weights_warnings(spec) + local_gpu_warnings(spec)
                      + small_data_warnings(spec, summary) + leak_lines(leaks), leaks)


def predict(model: str | Path, images: str | Path, *, out: str | Path | None = None,
            gradcam: str | Path | None = None, batch_size: int | None = None, operating_point: str | None = None,
            threshold: float | None = None, tracking_uri: str | None = None,
            max_bad_fraction: float | None = None) -> PredictOutcome:
    """Score new images with a trained model (``medtune predict``; docs/predict.md).

    ``model`` is a ``medtune final`` output folder (or its ``model/``), a sweep trial's
    ``best_checkpoint/`` folder, or an MLflow model URI (``models:/NAME@champion``,
    ``models:/NAME/3``, ``runs:/ID/...``; the store is ``tracking_uri``, else
    ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns.db``). ``images`` is an image file (JPEG, PNG,
    DICOM), a folder of them (recursive), an ``.npz`` (its ``test_images``, else ``images``) or an
    ``s3://`` prefix. The model decides at its stored operating point unless ``operating_point``
    (a rule, chosen on its held-out scores: ``sensitivity:0.90``) or ``threshold`` (a number on the
    calibrated scale) says otherwise. Returns the rows (``.frame()``: path or index, ``prob_<class>``,
    ``predicted_class``, and for two classes ``score``, ``threshold``, ``decision``) and the
    unreadable images (``.bad``); writes them to ``out`` (CSV) and heat maps to ``gradcam`` when
    given. ``batch_size`` None is 64. Bad input raises ``SpecError`` naming ``MODEL``, ``INPUT`` or
    the option.
    """
    from medtune.search.run.predict import run_predict

    return run_predict(model, images, out=out, gradcam=gradcam, batch_size=batch_size,
                       operating_point=operating_point, threshold=threshold, tracking_uri=tracking_uri,
                       max_bad_fraction=max_bad_fraction)
