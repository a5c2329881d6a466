"""The bad-input catalogue: every case runs the real CLI and must exit 2 naming the key at fault.

Space-file cases go through ``medtune validate`` with ``--set`` on the shipped demo space; data,
storage, tracking and command cases build what they need in a temporary folder. None of them may
reach training: a case that trained would take seconds instead of milliseconds, and would exit 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from medtune.cli import EXIT_BAD_INPUT, main

DEMO = str(Path(__file__).resolve().parents[3] / "spaces" / "demo.yaml")

#: (override, key the message must name) for ``medtune validate spaces/demo.yaml --set OVERRIDE``.
SPACE_CASES = [
    ("search.num_samples=0", "search.num_samples"),
    ("search.num_samples=many", "search.num_samples"),
    ("search.max_concurrent=0", "search.max_concurrent"),
    ("search.max_failures=-1", "search.max_failures"),
    ("search.checkpoints_to_keep=0", "search.checkpoints_to_keep"),
    ("search.time_budget_s=0", "search.time_budget_s"),
    ("search.time_budget_s=-5", "search.time_budget_s"),
    ("search.cv=1", "search.cv"),
    ("search.cv=maybe", "search.cv"),
    ("search.cv=true", "search.cv"),
    ("search.parallel=4", "search.parallel"),
    ("search.scheduler.name=hyperband", "search.scheduler.name"),
    ("search.scheduler.unit=hours", "search.scheduler.unit"),
    ("search.scheduler.max_t=0", "search.scheduler.max_t"),
    ("search.scheduler.grace_period=0", "search.scheduler.grace_period"),
    ("search.scheduler.grace_period=100000", "search.scheduler.grace_period"),
    ("search.scheduler.reduction_factor=1", "search.scheduler.reduction_factor"),
    ("search.scheduler.brackets=2", "search.scheduler.brackets"),
    ("search.sampler.name=cmaes", "search.sampler.name"),
    ("search.sampler.n_startup_trials=-1", "search.sampler.n_startup_trials"),
    ("search.sampler.seed=zero", "search.sampler.seed"),
    ("metric.name=val_f1", "metric.name"),
    ("metric.mode=min", "metric.mode"),
    ("metric.mode=sideways", "metric.mode"),
    ("resources.cpu=-1", "resources.cpu"),
    ("resources.gpu=1.5", "resources.gpu"),
    ("resources.gpu=-0.5", "resources.gpu"),
    ("data.image_size=4", "data.image_size"),
    ("data.val_fraction=0.95", "data.val_fraction"),
    ("data.train_subset=1", "data.train_subset"),
    ("data.val_subset=1", "data.val_subset"),
    ("data.max_bad_fraction=2", "data.max_bad_fraction"),
    ("data.source=", "data.source"),
    ("data.channels=3", "data.channels"),
    ("data.on_leak=maybe", "data.on_leak"),
    ("data.on_leak=[warn]", "data.on_leak"),
    ("data.task=graded", "data.task"),
    ("metric.name=val_qwk", "metric.name"),  # the demo's classes are not grades (data.task: auto)
    ("data.path_column=3", "data.path_column"),
    ("data.label_columns=[Mass, Mass]", "data.label_columns"),  # one column named twice
    ("data.label_columns=[]", "data.label_columns"),
    ("data.split_column=a,b", "data.split_column"),
    ("data.group_column=[patient]", "data.group_column"),
    ("name=", "name"),
    ("name=a/b", "name"),
    ("name=..", "name"),
    ("mlflow.enabled=maybe", "mlflow.enabled"),
    ("mlflow.experiment=../x", "mlflow.experiment"),
    ("mlflow.server=x", "mlflow.server"),
    ("storage=", "storage"),
    ("space.lr={loguniform: [0, 1]}", "space.lr.loguniform"),
    ("space.lr={uniform: [1]}", "space.lr"),
    ("space.dropout={uniform: [0.3, 1.5]}", "space.dropout.uniform"),
    ("space.architecture={choice: [resnet9000]}", "space.architecture.choice"),
    ("space.batch_size={choice: []}", "space.batch_size"),
    ("space.epochs={int: [1, 3]}", "space.epochs"),
    ("space.frozen_depth={int: [9, 10]}", "space.frozen_depth.int"),
    ("space.momentum={choice: [0.9, 1.5]}", "space.momentum.choice"),
    ("fixed.optimizer=rmsprop", "fixed.optimizer"),
    ("fixed.pretrained=/nonexistent/weights.pth", "fixed.pretrained"),
    ("fixed.lr=-1", "fixed.lr"),
    ("fixed.cv_folds=3", "fixed.cv_folds"),
    ("fixed.data_source=x.npz", "fixed.data_source"),
    ("fixed.frozen_fraction=0.5", "space.frozen_depth"),
    ("fixed.lr=0.001", "space.lr"),  # given in both space and fixed
    ("fixed.weight_decay=1e-4", "fixed.weight_decay"),  # YAML 1.1 reads 1e-4 (no dot) as a string
    ("fixed.channels_last=sometimes", "fixed.channels_last"),  # auto, true or false
    ("fixed.amp_dtype=fp8", "fixed.amp_dtype"),
    ("fixed.eval_batch_size=0", "fixed.eval_batch_size"),
    ("search.sampler.name=grid", "space.frozen_depth"),  # the grid sampler needs choices only
    ("surprise=1", "surprise"),
]


@pytest.mark.parametrize("override, key", SPACE_CASES, ids=[c[0] for c in SPACE_CASES])
def test_space_file_case(override, key, capsys):
    assert main(["validate", DEMO, "--set", override]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"- {key}" in err, err


def _npz(path: Path, train_labels: list[int], val_labels: list[int]) -> Path:
    def images(n: int) -> np.ndarray:
        return np.random.default_rng(0).integers(0, 255, (n, 28, 28), dtype=np.uint8)

    np.savez(path, train_images=images(len(train_labels)), train_labels=np.array(train_labels, np.uint8)[:, None],
             val_images=images(len(val_labels)), val_labels=np.array(val_labels, np.uint8)[:, None],
             test_images=images(4), test_labels=np.array([0, 1, 0, 1], np.uint8)[:, None])
    return path


def _kermany(tmp: Path, per_class: int = 3) -> Path:
    from helpers import make_kermany

    return make_kermany(tmp / "chest_xray", per_class=per_class)


def _one_class(tmp: Path) -> list[str]:
    return ["validate", DEMO, "--set", f"data.source={_npz(tmp / 'one.npz', [0] * 10, [0] * 4)}"]


def _missing_val_class(tmp: Path) -> list[str]:
    return ["validate", DEMO, "--set", f"data.source={_npz(tmp / 'val.npz', [0, 1] * 5, [0] * 4)}"]


def _empty_val_folder(tmp: Path) -> list[str]:
    root = _kermany(tmp)
    for image in (root / "val" / "NORMAL").iterdir():
        image.unlink()
    return ["validate", DEMO, "--set", f"data.source={root}", "--set", "data.image_size=16"]


def _bad_images(tmp: Path) -> list[str]:
    root = _kermany(tmp, per_class=6)
    for image in sorted((root / "train" / "NORMAL").iterdir())[:3]:
        image.write_bytes(b"not an image")
    return ["validate", DEMO, "--set", f"data.source={root}", "--set", "data.image_size=16"]


def _wrong_kind_of_file(tmp: Path) -> list[str]:
    (tmp / "data.txt").write_text("a,b\n")
    return ["validate", DEMO, "--set", f"data.source={tmp / 'data.txt'}"]


def _csv_without_columns(tmp: Path) -> list[str]:
    (tmp / "data.csv").write_text("a,b\n")
    return ["validate", DEMO, "--set", f"data.source={tmp / 'data.csv'}"]


def _manifest(tmp: Path, rows: str, **settings: str) -> list[str]:
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.new("L", (16, 16)).save(tmp / name)
    (tmp / "labels.csv").write_text("image,finding,fold,patient\n" + rows)
    columns = {"path_column": "image", "label_columns": "finding", "split_column": "fold"} | settings
    return ["validate", DEMO, "--set", f"data.source={tmp / 'labels.csv'}",
            *[arg for key, value in columns.items() for arg in ("--set", f"data.{key}={value}")]]


def _manifest_path_outside(tmp: Path) -> list[str]:
    return _manifest(tmp, "a.png,x,train,1\n../b.png,y,train,2\nb.png,x,test,3\n")


def _manifest_without_split_column(tmp: Path) -> list[str]:
    return _manifest(tmp, "a.png,x,train,1\nb.png,y,test,2\n", split_column="null")


def _manifest_unknown_label_column(tmp: Path) -> list[str]:
    return _manifest(tmp, "a.png,x,train,1\nb.png,y,test,2\n", label_columns="diagnosis")


def _manifest_unknown_group_column(tmp: Path) -> list[str]:
    return _manifest(tmp, "a.png,x,train,1\nb.png,y,test,2\n", group_column="subject")


def _manifest_unknown_split_value(tmp: Path) -> list[str]:
    return _manifest(tmp, "a.png,x,train,1\nb.png,y,holdout,2\n")


def _csv_setting_on_npz(tmp: Path) -> list[str]:
    return ["validate", DEMO, "--set", "data.path_column=image"]


def _two_folders_for_train(tmp: Path) -> list[str]:
    from helpers import make_kermany

    root = _kermany(tmp)
    make_kermany(root, per_class=3, splits=("Training",))
    return ["validate", DEMO, "--set", f"data.source={root}"]


def _leak_is_an_error(tmp: Path) -> list[str]:
    from leak_cases import make_leaky_folder

    root = make_leaky_folder(tmp / "brain")
    return ["validate", DEMO, "--set", f"data.source={root}", "--set", "data.image_size=16",
            "--set", "data.val_fraction=0.2", "--set", "data.on_leak=error"]


def _no_val_folder(tmp: Path) -> list[str]:
    import shutil

    root = _kermany(tmp)
    shutil.rmtree(root / "val")
    return ["validate", DEMO, "--set", f"data.source={root}"]


def _ordinal_two_classes(tmp: Path) -> list[str]:
    return ["validate", DEMO, "--set", f"data.source={_npz(tmp / 'two.npz', [0, 1] * 5, [0, 1] * 2)}",
            "--set", "data.task=ordinal"]


def _storage_under_a_file(tmp: Path) -> list[str]:
    (tmp / "file").write_text("x")
    return ["validate", DEMO, "--set", f"storage={tmp / 'file' / 'results'}"]


def _dead_server(tmp: Path) -> list[str]:
    from helpers import free_port

    return ["sweep", DEMO, "--set", f"mlflow.tracking_uri=http://127.0.0.1:{free_port()}"]


def _dead_server_best(tmp: Path) -> list[str]:
    from helpers import free_port

    return ["best", "pneumonia-demo", "--tracking-uri", f"http://127.0.0.1:{free_port()}"]


def _name_escape(tmp: Path) -> list[str]:
    return ["sweep", DEMO, "--name", "../escape", "--set", f"storage={tmp / 'r'}"]


def _output_under_a_file(tmp: Path) -> list[str]:
    (tmp / "file").write_text("x")
    return ["sweep", DEMO, "-o", str(tmp / "file" / "best.yaml"), "--set", "mlflow.enabled=false"]


def _resume_not_a_sweep(tmp: Path) -> list[str]:
    return ["resume", str(tmp)]


def _resume_damaged_record(tmp: Path) -> list[str]:
    (tmp / "medtune_sweep.json").write_text("{oops")
    return ["resume", str(tmp)]


def _final_with_a_space(tmp: Path) -> list[str]:
    return ["final", DEMO, "--set", "mlflow.enabled=false"]


def _final_ensemble_without_top(tmp: Path) -> list[str]:
    return ["final", DEMO, "--set", "space={}", "--set", "mlflow.enabled=false", "--ensemble", "3"]


def _final_best_without_epoch(tmp: Path) -> list[str]:
    return ["final", DEMO, "--set", "space={}", "--set", "mlflow.enabled=false", "--epochs", "best"]


def _final_bad_threshold(tmp: Path) -> list[str]:
    return ["final", DEMO, "--set", "space={}", "--set", "mlflow.enabled=false", "--threshold", "median"]


def _final_bad_operating_point(tmp: Path) -> list[str]:
    return ["final", DEMO, "--set", "space={}", "--set", "mlflow.enabled=false", "--operating-point", "sensitivity:2"]


def _final_out_is_a_file(tmp: Path) -> list[str]:
    (tmp / "out").write_text("x")
    return ["final", DEMO, "--set", "space={}", "--set", "mlflow.enabled=false", "--out", str(tmp / "out")]


def _missing_file(tmp: Path) -> list[str]:
    return ["validate", str(tmp / "nowhere.yaml")]


def _not_utf8(tmp: Path) -> list[str]:
    (tmp / "latin1.yaml").write_bytes("name: caf\u00e9\n".encode("latin-1"))
    return ["validate", str(tmp / "latin1.yaml")]


def _not_yaml(tmp: Path) -> list[str]:
    (tmp / "broken.yaml").write_text("name: [unclosed\n")
    return ["validate", str(tmp / "broken.yaml")]


def _duplicate_key(tmp: Path) -> list[str]:
    (tmp / "twice.yaml").write_text(Path(DEMO).read_text() + "\nstorage: ./elsewhere\n")
    return ["validate", str(tmp / "twice.yaml")]


def _not_a_mapping(tmp: Path) -> list[str]:
    (tmp / "list.yaml").write_text("- a\n- b\n")
    return ["validate", str(tmp / "list.yaml")]


def _set_without_equals(tmp: Path) -> list[str]:
    return ["validate", DEMO, "--set", "search.num_samples"]


def _set_bad_yaml(tmp: Path) -> list[str]:
    return ["validate", DEMO, "--set", "space.lr={loguniform: [1"]


def _set_through_a_value(tmp: Path) -> list[str]:
    return ["validate", DEMO, "--set", "search.num_samples.deeper=3"]


OTHER_CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("data: one class", _one_class, "data.source"),
    ("data: a class missing from val", _missing_val_class, "data.source"),
    ("data: empty val class folder", _empty_val_folder, "data.source"),
    ("data: too many unreadable images", _bad_images, "data.max_bad_fraction"),
    ("data: a text file", _wrong_kind_of_file, "data.source"),
    ("data: a csv file without its columns named", _csv_without_columns, "data.path_column"),
    ("data: a manifest path leaving its folder", _manifest_path_outside, "data.path_column"),
    ("data: a manifest without a split column", _manifest_without_split_column, "data.split_column"),
    ("data: a manifest without the label column", _manifest_unknown_label_column, "data.label_columns"),
    ("data: a manifest without the group column", _manifest_unknown_group_column, "data.group_column"),
    ("data: a manifest split value that names no split", _manifest_unknown_split_value, "data.split_column"),
    ("data: a CSV setting on an npz source", _csv_setting_on_npz, "data.path_column"),
    ("data: train/ and Training/ both", _two_folders_for_train, "data.source"),
    ("data: copies across splits with on_leak error", _leak_is_an_error, "data.on_leak"),
    ("data: no val folder", _no_val_folder, "data.source"),
    ("data: ordinal grades on two classes", _ordinal_two_classes, "data.task"),
    ("data: missing source", lambda tmp: ["validate", DEMO, "--set", f"data.source={tmp / 'none'}"], "data.source"),
    ("storage: under a file", _storage_under_a_file, "storage"),
    ("tracking: dead server (sweep)", _dead_server, "mlflow.tracking_uri"),
    ("tracking: dead server (best)", _dead_server_best, "--tracking-uri"),
    ("cli: --name ../escape", _name_escape, "--name"),
    ("cli: -o under a file", _output_under_a_file, "-o"),
    ("cli: resume a folder that is no sweep", _resume_not_a_sweep, "<run>"),
    ("cli: resume a damaged record", _resume_damaged_record, "medtune_sweep.json"),
    ("cli: final with a space", _final_with_a_space, "space"),
    ("cli: final --ensemble without top configs", _final_ensemble_without_top, "provenance.top_configs"),
    ("cli: final --epochs best without best epoch", _final_best_without_epoch, "provenance.best_epoch"),
    ("cli: final --threshold median", _final_bad_threshold, "--operating-point"),  # --threshold: its old name
    ("cli: final --operating-point sensitivity:2", _final_bad_operating_point, "--operating-point"),
    ("cli: final --out is a file", _final_out_is_a_file, "--out"),
    ("file: missing", _missing_file, "<file>"),
    ("file: not UTF-8", _not_utf8, "<file>"),
    ("file: not YAML", _not_yaml, "line 2, column 1"),
    ("file: duplicate key", _duplicate_key, "storage"),
    ("file: not a mapping", _not_a_mapping, "<top>"),
    ("--set without =", _set_without_equals, "--set search.num_samples"),
    ("--set with bad YAML", _set_bad_yaml, "--set space.lr"),
    ("--set through a value", _set_through_a_value, "--set search.num_samples.deeper"),
]


@pytest.mark.parametrize("builder, key", [c[1:] for c in OTHER_CASES], ids=[c[0] for c in OTHER_CASES])
def test_data_storage_tracking_and_command_case(builder, key, tmp_path, capsys, pneumoniamnist_path):
    code = main(builder(tmp_path))
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert f"- {key}" in err, err


def test_the_catalogue_has_at_least_sixty_cases():
    assert len(SPACE_CASES) + len(OTHER_CASES) >= 60
