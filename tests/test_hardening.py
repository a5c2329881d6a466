"""Bad input caught before anything runs, and no path from a space file or a bucket escaping its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.cli import EXIT_BAD_INPUT, main
from medtune.search.spec.loader import load_spec
from medtune.search.spec.sweep_spec import SpecError

DEMO = Path(__file__).resolve().parents[1] / "spaces" / "demo.yaml"


def test_a_key_given_twice_is_rejected_with_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("name: a\ndata: {source: pneumoniamnist}\nsearch:\n  num_samples: 4\n  max_concurrent: 1\n"
                    "  num_samples: 400\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems == [("search.num_samples", "given twice (lines 4 and 6); expected each key once")]


def test_a_section_given_twice_is_rejected(tmp_path, capsys):
    path = tmp_path / "sections.yaml"
    path.write_text(DEMO.read_text() + "\nsearch: {num_samples: 400}\n")
    assert main(["validate", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{path}: 1 problem" in err and "- search: given twice" in err


def test_a_space_file_that_is_not_utf8_gets_a_message_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    assert main(["validate", str(path)]) == EXIT_BAD_INPUT
    assert "not UTF-8 text" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "c:\\d"])
def test_a_run_name_that_would_leave_the_storage_folder_is_rejected(tmp_path, capsys, pneumoniamnist_path, name):
    storage = tmp_path / "results"
    code = main(["sweep", str(DEMO), "--name", name, "--set", f"storage={storage}",
                 "--set", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"])
    assert code == EXIT_BAD_INPUT
    assert "--name: must not contain" in capsys.readouterr().err
    assert not storage.exists() and not (tmp_path / "x").exists()


def test_an_experiment_name_with_a_path_is_rejected(capsys):
    assert main(["validate", str(DEMO), "--set", "mlflow.experiment=../elsewhere"]) == EXIT_BAD_INPUT
    assert "mlflow.experiment: must not contain" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["data/../../../../escaped.txt", "data/train/../../../escaped.txt"])
def test_an_s3_key_with_dot_dot_cannot_write_outside_the_staging_cache(tmp_path, s3_server, monkeypatch, key):
    import boto3

    from medtune.trainables.data import DataError
    from medtune.trainables.data.staging import stage_s3

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    bucket = f"escape-{tmp_path.name.lower().replace('_', '-')[-20:]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="data/train/NORMAL/a.jpeg", Body=b"x")
    s3.put_object(Bucket=bucket, Key=key, Body=b"evil")
    assert key in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}  # the store kept the key as is
    cache = tmp_path / "deep" / "er" / "cache"
    with pytest.raises(DataError, match="resolves outside the staging cache"):
        stage_s3(f"s3://{bucket}/data/", cache)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (cache / "s3" / bucket / "data" / "train" / "NORMAL" / "a.jpeg").exists()  # nothing written at all


@pytest.mark.parametrize("content, expected", [
    ("{not json", "medtune_sweep.json: not readable JSON"),
    ('{"run_name": "x"}', "medtune_sweep.json: spec: missing"),
    ("[1, 2]", "medtune_sweep.json: spec: missing"),
])
def test_resume_of_a_damaged_sweep_record_gets_a_message(tmp_path, capsys, content, expected):
    (tmp_path / "medtune_sweep.json").write_text(content)
    assert main(["resume", str(tmp_path)]) == EXIT_BAD_INPUT
    assert expected in capsys.readouterr().err


def test_an_unreachable_tracking_server_is_found_before_data_or_ray(tmp_path, capsys, monkeypatch):
    import time

    from helpers import free_port

    uri = f"http://medtune:sentinel-password@127.0.0.1:{free_port()}"
    # A data source that does not exist: had the sweep got as far as the data, it would say so instead.
    started = time.monotonic()
    code = main(["sweep", str(DEMO), "--set", "data.source=/nonexistent/data.npz",
                 "--set", f"mlflow.tracking_uri={uri}",
                 "--set", f"storage={tmp_path / 'results'}"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and time.monotonic() - started < 30
    assert "mlflow.tracking_uri: the MLflow tracking server at http://127.0.0.1:" in err and "does not answer" in err
    assert "sentinel-password" not in err and "/nonexistent" not in err
    assert not (tmp_path / "results").exists()
    import ray

    assert not ray.is_initialized()


def test_best_from_a_dead_tracking_server_gets_a_message(capsys):
    from helpers import free_port

    code = main(["best", "pneumonia-demo", "--tracking-uri", f"http://u:sentinel-password@127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "--tracking-uri: the MLflow tracking server" in err
    assert "sentinel-password" not in err


def _npz(path: Path, train_labels, val_labels) -> Path:
    import numpy as np

    def images(n: int):
        return np.random.default_rng(0).integers(0, 255, (n, 28, 28), dtype=np.uint8)

    np.savez(path, train_images=images(len(train_labels)), train_labels=np.array(train_labels, dtype=np.uint8)[:, None],
             val_images=images(len(val_labels)), val_labels=np.array(val_labels, dtype=np.uint8)[:, None],
             test_images=images(4), test_labels=np.array([0, 1, 0, 1], dtype=np.uint8)[:, None])
    return path


@pytest.mark.parametrize("train, val, expected", [
    ([0] * 20, [0] * 6, "the train split has no images of class '1'"),
    ([0, 1] * 10, [0] * 6, "the val split has no images of class '1'"),
])
def test_data_a_sweep_cannot_learn_from_is_rejected_by_validate(tmp_path, capsys, train, val, expected):
    data = _npz(tmp_path / "d.npz", train, val)
    assert main(["validate", str(DEMO), "--set", f"data.source={data}"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "data.source:" in err and expected in err


def test_an_empty_val_class_folder_is_rejected(tmp_path, capsys):
    from helpers import make_kermany

    root = make_kermany(tmp_path / "chest_xray", per_class=3)
    for image in (root / "val" / "NORMAL").iterdir():
        image.unlink()
    assert main(["validate", str(DEMO), "--set", f"data.source={root}",
                 "--set", "data.image_size=16"]) == EXIT_BAD_INPUT
    assert "the val split has no images of class 'NORMAL'" in capsys.readouterr().err


@pytest.mark.parametrize("output, expected", [
    ("{blocker}/best.yaml", "is not a writable folder"),  # a file where the folder should be
    ("{tmp}", "exists and is a folder"),
])
def test_an_unwritable_output_path_is_found_before_training(tmp_path, capsys, output, expected):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = output.format(blocker=blocker, tmp=tmp_path)
    code = main(["sweep", str(DEMO), "-o", out, "--set", "data.source=/nonexistent.npz",
                 "--set", f"storage={tmp_path / 'results'}", "--set", "mlflow.enabled=false"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "-o: " in err and expected in err
    assert "/nonexistent.npz" not in err  # found before the data was looked at


def test_final_out_that_is_a_file_is_found_before_training(tmp_path, capsys):
    blocker = tmp_path / "report"
    blocker.write_text("a file")
    code = main(["final", str(DEMO), "--out", str(blocker), "--set", "space={}", "--set", "mlflow.enabled=false"])
    assert code == EXIT_BAD_INPUT and "--out: " in capsys.readouterr().err


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_a_sweep_that_ends_early_leaves_its_parent_run_failed_with_the_reason(tmp_path, monkeypatch,
                                                                               pneumoniamnist_path, failure):
    import medtune.search.run.preflight
    import medtune.search.run.ray_node
    import medtune.search.run.sweep
    from mlflow import MlflowClient

    def broken_tuner(*args, **kwargs):
        raise failure("stopped by the test")

    monkeypatch.setattr(medtune.search.run.sweep, "sweep_tuner", broken_tuner)
    monkeypatch.setattr(medtune.search.run.ray_node, "init_ray", lambda: None)  # no Ray needed to fail here
    monkeypatch.setattr(medtune.search.run.preflight, "check_cluster_resources", lambda spec: None)
    spec = load_spec(DEMO, ["name=ends-early", "data.train_subset=100", "data.val_subset=300",
                            f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db", f"storage={tmp_path / 'results'}",
                            f"mlflow.artifact_location={tmp_path / 'art'}"])
    with pytest.raises(failure):
        medtune.search.run.sweep.run_sweep(spec, run_name="early")
    client = MlflowClient(f"sqlite:///{tmp_path}/m.db")
    (parent,) = client.search_runs([client.get_experiment_by_name("ends-early").experiment_id])
    assert parent.info.status == "FAILED"
    assert parent.data.tags["medtune.failure"] == f"{failure.__name__}: stopped by the test"


def test_mlflow_environment_variables_come_after_the_space_file_and_before_the_defaults(tmp_path, monkeypatch):
    from medtune.search.spec.sweep_spec import validate_spec

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    raw = {"name": "n", "data": {"source": "pneumoniamnist"}}
    spec = validate_spec(raw, "s.yaml")
    assert spec.mlflow.tracking_uri == "http://127.0.0.1:5999" and spec.experiment_name == "from-env"
    spec = validate_spec({**raw, "mlflow": {"tracking_uri": "sqlite:///x.db", "experiment": "mine"}}, "s.yaml")
    assert spec.mlflow.tracking_uri == "sqlite:///x.db" and spec.experiment_name == "mine"
    from medtune.cli import build_parser

    assert build_parser().parse_args(["best", "e"]).tracking_uri == "http://127.0.0.1:5999"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME")
    spec = validate_spec(raw, "s.yaml")
    assert spec.mlflow.tracking_uri == "sqlite:///mlruns.db" and spec.experiment_name == "n"


def test_too_many_unreadable_images_are_reported_by_validate_with_the_yaml_key(tmp_path, capsys):
    from helpers import make_kermany

    root = make_kermany(tmp_path / "chest_xray", per_class=6)
    for image in sorted((root / "train" / "NORMAL").iterdir())[:3]:
        image.write_bytes(b"not an image")
    args = ["validate", str(DEMO), "--set", f"data.source={root}", "--set", "data.image_size=16",
            "--set", f"storage={tmp_path / 'results'}"]
    assert main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "- data.max_bad_fraction: 3 of 36 images" in err and "DataConfig" not in err
    assert main([*args, "--set", "data.max_bad_fraction=0.2"]) == 0


def test_images_in_subfolders_of_a_class_folder_are_read_as_that_class(tmp_path):
    import shutil

    from helpers import make_kermany

    from medtune.trainables.data import DataConfig, inspect_source, load_splits

    root = make_kermany(tmp_path / "chest_xray", per_class=4)
    nested = root / "train" / "NORMAL" / "more" / "deeper"
    nested.mkdir(parents=True)
    for image in sorted((root / "train" / "NORMAL").glob("*.*"))[:2]:
        shutil.copy(image, nested / f"copy_{image.name}")
    (root / "train" / "NORMAL" / ".hidden").mkdir()
    shutil.copy(next((root / "train" / "NORMAL").glob("*.png")), root / "train" / "NORMAL" / ".hidden" / "x.png")
    summary = inspect_source(DataConfig(str(root), image_size=16, cache_dir=str(tmp_path / "cache")))
    assert summary["counts"]["train"] == {"NORMAL": 6, "PNEUMONIA": 4}
    splits = load_splits(DataConfig(str(root), image_size=16, cache_dir=str(tmp_path / "cache")))
    assert int((splits.train.labels == 0).sum()) == 6


def test_results_inside_a_ray_jobs_temporary_copy_are_refused(tmp_path, monkeypatch):
    from medtune.search.run.preflight import check_not_in_job_copy

    copy = tmp_path / "session_x" / "runtime_resources" / "working_dir_files" / "_ray_pkg_abc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    with pytest.raises(SpecError) as info:
        check_not_in_job_copy(load_spec(DEMO))  # storage ./ray_results, sqlite:///mlruns.db
    assert [key for key, _ in info.value.problems] == ["storage", "mlflow.tracking_uri"]
    assert "deletes with the job" in str(info.value)
    safe = load_spec(DEMO, [f"storage={tmp_path / 'results'}", f"mlflow.tracking_uri=sqlite:///{tmp_path}/m.db"])
    check_not_in_job_copy(safe)
    monkeypatch.chdir(tmp_path)
    check_not_in_job_copy(load_spec(DEMO))  # not in a job: relative paths are the user's folder


def test_tiny_images_are_kept_with_a_warning_that_counts_them(tmp_path):
    from helpers import make_kermany
    from PIL import Image

    from medtune.trainables.data import DataConfig, load_splits

    root = make_kermany(tmp_path / "chest_xray", per_class=4)
    Image.new("L", (1, 1), 128).save(root / "train" / "NORMAL" / "dot.png")
    Image.new("L", (12, 40), 128).save(root / "test" / "PNEUMONIA" / "sliver.png")
    cfg = DataConfig(str(root), image_size=16, cache_dir=str(tmp_path / "cache"))
    for _ in range(2):  # decoded, then from the cache: the warning comes both times
        with pytest.warns(UserWarning, match=r"2 of 26 images .* smaller than 16 px on a side") as record:
            splits = load_splits(cfg)
        assert "dot.png" in str(record[0].message) and "sliver.png" in str(record[0].message)
    assert len(splits.train.labels) == 9
