"""Pre-flight checks: everything about a sweep's input that can be wrong, found before a trial runs.

Each check raises ``SpecError`` naming the space file's key (``data.source``, ``storage``,
``resources.gpu``, ``-o``...) so the user fixes it in one pass and no cluster time is spent on it:
the data (its layout, that it has something to learn, its unreadable images, decoded once into
the node's cache, and its leakage and shortcuts, read from that cache: ``check_leaks``), the
results storage (``storage.check_storage``), the output paths, a Ray job's temporary working
copy, the tracking server and the cluster's resources. ``prepare_sweep`` runs
them in order for ``medtune sweep`` and ``resume``; ``medtune validate`` runs the ones that need
no cluster.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from medtune.search.locations import is_remote
from medtune.search.run.storage import check_storage
from medtune.search.run.trial_values import trial_fixed_values
from medtune.search.spec.advice import small_data_warnings
from medtune.search.spec.gpu_advice import gpu_warnings
from medtune.search.spec.sweep_spec import SpecError, SweepSpec, resolve_cv
from medtune.search.tracking.client import check_tracking_server
from medtune.trainables.data import DataConfig, DataError, inspect_source, load_splits
from medtune.trainables.data.errors import DataSettingError, TooManyBadImages
from medtune.trainables.data.leakage import LeakReport
from medtune.trainables.data.loading import check_leakage, mode_summary

log = logging.getLogger(__name__)


def prepare_sweep(spec: SweepSpec) -> tuple[SweepSpec, str]:
    """Every check, in the order that spends the least on bad input, then the data decoded and Ray
    started. Returns the spec with its data-dependent settings resolved, and the data fingerprint."""
    check_not_in_job_copy(spec)
    if spec.mlflow.enabled:
        check_tracking_server(spec.mlflow.tracking_uri, spec.source)
    spec, summary = resolved_spec(spec)
    for warning in small_data_warnings(spec, summary):
        log.warning(warning)
    check_storage(spec)
    fingerprint = prepare_data(spec)
    for line in leak_lines(check_leaks(spec)):
        log.warning(line)
    from medtune.search.run.ray_node import init_ray  # Ray loads only once the input is known to be good

    init_ray()
    check_cluster_resources(spec)
    return spec, fingerprint


def check_data(spec: SweepSpec) -> dict[str, Any]:
    """Cheap checks of the data source (no decoding); raises ``SpecError`` naming ``data.source``."""
    data = DataConfig.from_trial_values(_trial_base_with_env(spec))
    try:
        summary = inspect_source(data)
    except DataError as exc:
        raise SpecError(spec.source, [(data_key(exc), str(exc))]) from None
    problems = learnable_problems(summary)
    if problems:
        raise SpecError(spec.source, [("data.source", p) for p in problems])
    return summary


def data_key(exc: DataError) -> str:
    """The space file's key a data error is about: the setting it names, else ``data.source``."""
    if isinstance(exc, DataSettingError):
        return f"data.{exc.setting}"
    return "data.positive_class" if "positive_class=" in str(exc) else "data.source"


def learnable_problems(summary: dict[str, Any]) -> list[str]:
    """Why trials could not learn from or be ranked on this data: a single class, or a class with no
    image in train or val (every trial would report val_auc NaN and no configuration would win)."""
    names = summary.get("class_names", [])
    if len(names) < 2:
        return [f"{summary.get('source')}: found {len(names)} class ({', '.join(map(str, names)) or 'none'}); "
                "expected at least two classes to tell apart"]
    out = []
    for split in ("train", "val"):
        counts = summary.get("planned", {}).get(split, {})
        empty = [name for name in names if counts.get(name, 0) == 0]
        if empty:
            out.append(f"{summary.get('source')}: the {split} split has no images of class "
                       f"{', '.join(map(repr, empty))} "
                       f"(counts: {', '.join(f'{n} {counts.get(n, 0)}' for n in names)}); "
                       "expected every class in train and val")
    return out


def resolved_spec(spec: SweepSpec) -> tuple[SweepSpec, dict[str, Any]]:
    """The data checked (``check_data``) and ``search.cv: auto`` decided from its val split."""
    summary = check_data(spec)
    val_counts = {k: v for k, v in summary.get("planned", {}).get("val", {}).items() if k != "total"}
    return resolve_cv(spec, val_counts), summary


def prepare_data(spec: SweepSpec, summary: dict[str, Any] | None = None) -> str:
    """Decode the data into the node's cache now; returns its fingerprint for MLflow.

    Unreadable images are only found by decoding: too many of them is bad input, named by the
    space file's key (``data.max_bad_fraction``), not a traceback in the first trial. The data's
    mode (colour or grey) is also only known once decoded: it is added to ``summary`` when given
    (``medtune validate``'s data summary).
    """
    base = _trial_base_with_env(spec)
    sizes = [base["image_size"]] if "image_size" not in spec.space else list(spec.space["image_size"].values)
    fingerprint = ""
    for size in sizes:
        try:
            splits = load_splits(DataConfig.from_trial_values(base | {"image_size": size}))
        except TooManyBadImages as exc:
            raise SpecError(spec.source, [("data.max_bad_fraction", f"{exc} (data.max_bad_fraction)")]) from None
        except DataError as exc:
            raise SpecError(spec.source, [(data_key(exc), str(exc))]) from None
        fingerprint = splits.fingerprint
        if summary is not None:
            summary.update(mode_summary(splits))
    return fingerprint


def check_leaks(spec: SweepSpec) -> LeakReport:
    """Leakage and shortcuts in the splits trials will see (``trainables/data/leakage.py``), read from
    the decode cache ``prepare_data`` filled, at the first image size trials use. With
    ``data.on_leak: error`` any finding is bad input, named under ``data.on_leak``."""
    base = _trial_base_with_env(spec)
    size = base["image_size"] if "image_size" not in spec.space else list(spec.space["image_size"].values)[0]
    try:
        report = check_leakage(DataConfig.from_trial_values(base | {"image_size": size}))
    except DataError as exc:
        raise SpecError(spec.source, [(data_key(exc), str(exc))]) from None
    if report.findings and spec.data.on_leak == "error":
        raise SpecError(spec.source, [("data.on_leak", f"{finding} (data.on_leak: error; 'warn' reports it and goes "
                                                       "on)") for finding in report.findings])
    return report


def leak_lines(report: LeakReport) -> list[str]:
    """The report as warnings: one per finding, and what ``on_leak: drop`` left out."""
    lines = [f"data: {finding}" for finding in report.findings]
    if report.dropped:
        lines.append("data.on_leak: drop: left out " + ", ".join(f"{n} {split} images" for split, n in
                                                                report.dropped.items())
                     + " that are exact copies of an earlier split's images")
    return lines


def _trial_base_with_env(spec: SweepSpec) -> dict[str, Any]:
    base = trial_fixed_values(spec)
    base.setdefault("image_size", spec.data.image_size)
    return base


def check_output_path(path: str | Path, key: str, where: str, folder: bool = False) -> None:
    """An output file (or folder) must be creatable before any trial trains, not after the sweep.

    Its nearest existing ancestor must be a writable folder, and the path itself, if it exists,
    must be of the expected kind.
    """
    target = Path(path).expanduser().resolve()
    if target.exists() and target.is_dir() != folder:
        raise SpecError(where, [(key, f"{path} exists and is {'not ' if folder else ''}a folder; "
                                      f"expected {'a folder' if folder else 'a file path'}")])
    existing = next(p for p in (target if folder else target.parent, *target.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise SpecError(where, [(key, f"cannot write {path}: {existing} is not a writable folder")])


#: The part of a path that marks Ray's per-job copy of ``ray job submit --working-dir``.
JOB_WORKING_DIR_MARK = "runtime_resources/working_dir_files"


def check_not_in_job_copy(spec: SweepSpec, cwd: str | Path | None = None) -> None:
    """Refuse results that would live in a Ray job's temporary copy of the working directory.

    Under ``ray job submit --working-dir .`` the driver runs inside Ray's per-job copy of that
    folder, which Ray deletes with the job: a relative ``storage`` or ``sqlite:///mlruns.db`` there
    would lose the sweep's results and its MLflow store.
    """
    folder = Path(cwd or os.getcwd()).resolve()
    if JOB_WORKING_DIR_MARK not in folder.as_posix():
        return
    problems = []
    if not is_remote(spec.storage) and Path(spec.storage).expanduser().resolve().is_relative_to(folder):
        problems.append(("storage", f"{spec.storage!r} would be inside this Ray job's temporary copy of the working "
                                    f"directory ({folder}), which Ray deletes with the job; set an absolute path on "
                                    "shared storage or s3://bucket/prefix"))
    uri = spec.mlflow.tracking_uri
    relative_sqlite = uri.startswith("sqlite:///") and not uri.startswith("sqlite:////")
    relative_folder = not is_remote(uri) and not Path(uri).is_absolute()
    if spec.mlflow.enabled and (relative_sqlite or relative_folder):
        problems.append(("mlflow.tracking_uri", f"{uri!r} is a store inside this Ray job's temporary copy of the "
                                                "working directory; use a tracking server (http://...) or an "
                                                "absolute sqlite:////path on shared storage"))
    if problems:
        raise SpecError(spec.source, problems)


def check_cluster_resources(spec: SweepSpec) -> None:
    """A GPU request on a cluster without GPUs would leave every trial pending forever; GPUs that the
    sweep's concurrency leaves idle, or that a CPU-only sweep ignores, are warnings."""
    import ray

    available = ray.cluster_resources()
    problems = []
    if spec.resources.gpu > available.get("GPU", 0):
        problems.append(("resources.gpu", f"each trial asks for {spec.resources.gpu} GPU but the Ray cluster has "
                                          f"{available.get('GPU', 0):g}; set resources.gpu: 0 or add GPU nodes"))
    if spec.resources.cpu > available.get("CPU", 0):
        problems.append(("resources.cpu", f"each trial asks for {spec.resources.cpu} CPUs but the Ray cluster has "
                                          f"{available.get('CPU', 0):g}"))
    if problems:
        raise SpecError(spec.source, problems)
    for warning in gpu_warnings(spec, available.get("GPU", 0), available.get("CPU", 0), "the Ray cluster"):
        log.warning(warning)  # GPUs left idle, or GPUs a CPU-only sweep ignores (docs/gpu.md)
