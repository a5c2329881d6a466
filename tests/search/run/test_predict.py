"""``medtune predict`` and the MLflow model, the way users reach them: after a real ``medtune final``.

One final run per module (a synthetic two-class npz, ``simple_cnn``, two epochs, a real sqlite
MLflow store with the model registered), then: the CLI on a folder of PNGs written from its test
images gives ``test_predictions.csv``'s probabilities and decisions; the npz, the registered model
and a trial's checkpoint give the same; ``mlflow.pyfunc.load_model`` in a fresh process and
``mlflow models serve`` on loopback answer PNGs; another operating point is chosen at prediction
time; and bad input is refused by name (exit status 2), without credentials and without a
half-written CSV.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import free_port, subprocess_env
from PIL import Image

import medtune
from medtune.cli import main
from medtune.search.spec.sweep_spec import SpecError

REGISTERED = "predict-cnn"


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """28 px noise; the positive class (label 1) has a bright patch: learnt in two epochs."""
    labels = (np.arange(n) % 3 == 0).astype(np.int64)  # a third positive: the classes are not balanced
    images = rng.integers(0, 90, (n, 28, 28), dtype=np.uint8)
    images[labels == 1, 8:20, 6:22] += 110
    return images, labels


@pytest.fixture(scope="module")
def final(tmp_path_factory):
    """One real ``medtune final`` (MLflow on, registered), and the test images as PNG files."""
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 240), ("val", 90), ("test", 60)):
        images, labels = _blobs(rng, n)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.reshape(-1, 1).astype(np.uint8)
    npz = root / "blobs.npz"
    np.savez_compressed(npz, **arrays)
    uri = f"sqlite:///{root}/mlruns.db"
    space = {"name": "blobs", "data": {"source": str(npz), "image_size": 28},
             "search": {"scheduler": {"name": "fifo", "unit": "epochs", "max_t": 2}, "num_samples": 1},
             "space": {}, "fixed": {"architecture": "simple_cnn", "pretrained": "none", "lr": 0.003, "batch_size": 32},
             "mlflow": {"tracking_uri": uri, "experiment": "blobs", "artifact_location": str(root / "artifacts")},
             "storage": str(root / "ray")}
    outcome = medtune.final(space, out=root / "final", register=REGISTERED)
    pngs = root / "pngs"
    for i, image in enumerate(arrays["test_images"]):  # in subfolders, as a clinic's export might be
        path = pngs / f"batch{i // 25}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_png(image))
    (pngs / ".DS_Store").write_bytes(b"junk")  # hidden files are skipped, as training skips them
    (pngs / "notes.txt").write_text("not an image")
    with open(root / "final" / "test_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    report = json.loads((root / "final" / "report.json").read_text())["reports"][0]
    return SimpleNamespace(root=root, npz=npz, uri=uri, outcome=outcome, pngs=pngs, test=arrays["test_images"],
                           raw=np.array([float(r["best_model_raw_score"]) for r in rows]),
                           score=np.array([float(r["best_model_score"]) for r in rows]), report=report)


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    return np.array([float(r[name]) for r in rows])


@pytest.mark.slow
def test_final_writes_a_bundle_and_logs_an_mlflow_model_that_takes_images(final):
    import mlflow
    from mlflow import MlflowClient

    document = json.loads((final.outcome.model_dir / "medtune_model.json").read_text())
    assert document["kind"] == "final" and document["class_names"] == ["0", "1"]
    assert document["operating_point"]["threshold"] == final.report["threshold"]
    assert document["operating_point"]["rule"] == final.report["threshold_rule"] == "balanced-1se"
    client = MlflowClient(tracking_uri=final.uri)
    artifacts = {a.path for a in client.list_artifacts(final.outcome.run_id, "report")}
    assert "report/report.json" in artifacts and "report/model" not in artifacts  # the bundle is logged once
    assert client.get_model_version_by_alias(REGISTERED, "champion").run_id == final.outcome.run_id
    mlflow.set_tracking_uri(final.uri)
    info = mlflow.models.get_model_info(f"models:/{REGISTERED}@champion")
    described = info.metadata["medtune_model"]
    assert described["positive_class"] == "1" and described["image_size"] == 28
    assert described["rule"] == "balanced-1se" and described["medtune_version"] == medtune.__version__
    assert info.metadata["medtune_operating_point"]["threshold"] == final.report["threshold"]
    assert [c["name"] for c in info.signature.outputs.to_dict()] == [
        "prob_0", "prob_1", "predicted_class", "score", "threshold", "decision"]


@pytest.mark.slow
def test_predict_on_a_folder_of_pngs_gives_finals_own_test_predictions(final, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(final.outcome.out_dir), str(final.pngs), "--out", str(out)]) == 0
    assert f"60 of 60 images scored (decided by balanced-1se at threshold {final.report['threshold']:.4g})" \
        in capsys.readouterr().out
    rows = _read(out)
    assert list(rows[0]) == ["path", "prob_0", "prob_1", "predicted_class", "score", "threshold", "decision"]
    assert [r["path"] for r in rows] == [f"batch{i // 25}/{i:03d}.png" for i in range(60)]  # no hidden or .txt file
    assert np.allclose(_column(rows, "prob_1"), final.raw, atol=1e-5)
    assert np.allclose(_column(rows, "prob_0") + _column(rows, "prob_1"), 1.0, atol=1e-6)
    assert np.allclose(_column(rows, "score"), final.score, atol=1e-5)
    decision = _column(rows, "decision").astype(int)
    assert np.array_equal(decision, (final.score >= final.report["threshold"]).astype(int))
    assert [r["predicted_class"] for r in rows] == [str(d) for d in decision]


@pytest.mark.slow
def test_the_npz_test_split_and_the_registered_model_predict_the_same(final):
    by_npz = medtune.predict(final.outcome.out_dir, final.npz).frame()
    assert list(by_npz.columns[:2]) == ["index", "label"] and len(by_npz) == 60  # the npz's own labels beside
    assert np.allclose(by_npz["prob_1"], final.raw, atol=1e-5)
    for uri in (f"models:/{REGISTERED}@champion", f"models:/{REGISTERED}/1"):
        by_uri = medtune.predict(uri, final.npz, tracking_uri=final.uri).frame()
        assert np.allclose(by_uri["prob_1"], final.raw, atol=1e-5), uri
        assert by_uri["decision"].tolist() == by_npz["decision"].tolist(), uri


@pytest.mark.slow
def test_an_s3_prefix_is_staged_and_scored_as_the_same_local_folder(final, s3_server, tmp_path, monkeypatch):
    import boto3

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MEDTUNE_CACHE_DIR", str(tmp_path / "cache"))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="medtune-predict")
    for path in sorted((final.pngs / "batch0").glob("*.png"))[:5]:
        s3.upload_file(str(path), "medtune-predict", f"new-xrays/{path.name}")
    remote = medtune.predict(final.outcome.out_dir, "s3://medtune-predict/new-xrays/").frame()
    local = medtune.predict(final.outcome.out_dir, final.pngs / "batch0").frame().head(5)
    assert remote["path"].tolist() == local["path"].tolist() == [f"{i:03d}.png" for i in range(5)]
    assert np.allclose(remote["prob_1"], local["prob_1"], atol=1e-6)


@pytest.mark.slow
def test_another_operating_point_is_chosen_at_prediction_time_on_the_held_out_scores(final):
    auto = medtune.predict(final.outcome.model_dir, final.npz, operating_point="auto")
    assert auto.threshold == final.report["threshold"]  # the same rule on the same scores: final's threshold
    screening = medtune.predict(final.outcome.model_dir, final.npz, operating_point="sensitivity:0.90")
    assert screening.rule == "sensitivity:0.90"
    assert screening.threshold == final.report["by_rule"]["sensitivity:0.90"]["threshold"]
    frame = screening.frame()
    assert np.array_equal(frame["decision"].to_numpy(), (frame["score"] >= screening.threshold).astype(int))
    fixed = medtune.predict(final.outcome.model_dir, final.npz, threshold=0.3).frame()
    assert set(fixed["threshold"]) == {0.3}
    assert np.array_equal(fixed["decision"].to_numpy(), (fixed["score"] >= 0.3).astype(int))


@pytest.mark.slow
def test_grad_cam_writes_one_heat_map_per_image(final, tmp_path):
    outcome = medtune.predict(final.outcome.out_dir, final.pngs / "batch0", gradcam=tmp_path / "cams")
    maps = sorted(p.relative_to(tmp_path / "cams").as_posix() for p in (tmp_path / "cams").rglob("*.png"))
    assert maps == [f"{i:03d}.png.png" for i in range(25)] and outcome.gradcam_dir == tmp_path / "cams"
    with Image.open(tmp_path / "cams" / "000.png.png") as picture:
        assert picture.mode == "RGB" and min(picture.size) >= 224


@pytest.mark.slow
def test_the_mlflow_model_predicts_in_a_fresh_process(final):
    code = """
import base64, io, json, sys
import numpy as np, pandas as pd
import mlflow
from PIL import Image
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
images = np.load(sys.argv[3])["test_images"]
def png(a):
    buffer = io.BytesIO(); Image.fromarray(a).save(buffer, format="PNG"); return buffer.getvalue()
as_bytes = model.predict(pd.DataFrame({"image": [png(a) for a in images]}))
as_base64 = model.predict(pd.DataFrame({"image": [base64.b64encode(png(a)).decode() for a in images]}))
as_arrays = model.predict(images)
colour = model.predict([np.repeat(images[0][..., None], 3, axis=2)])
screening = model.predict(images, params={"operating_point": "sensitivity:0.90"})
print(json.dumps({"bytes": as_bytes.to_dict("list"), "base64": as_base64.to_dict("list"),
                  "arrays": as_arrays.to_dict("list"), "colour": colour.to_dict("list"),
                  "screening": float(screening["threshold"][0])}))
"""
    out = subprocess.run([sys.executable, "-c", code, final.uri, f"models:/{REGISTERED}@champion", str(final.npz)],
                         capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for form in ("bytes", "base64", "arrays"):
        assert np.allclose(got[form]["prob_1"], final.raw, atol=1e-5), form
        assert np.allclose(got[form]["score"], final.score, atol=1e-5), form
        assert got[form]["decision"] == (final.score >= final.report["threshold"]).astype(int).tolist(), form
    assert got["colour"]["prob_1"][0] == pytest.approx(final.raw[0], abs=1e-5)  # equal R, G, B: the same grey
    assert got["screening"] == final.report["by_rule"]["sensitivity:0.90"]["threshold"]


@pytest.mark.slow
def test_mlflow_models_serve_answers_a_png_over_http(final, tmp_path):
    port = free_port()
    env = subprocess_env(MLFLOW_TRACKING_URI=final.uri)
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
                                   f"models:/{REGISTERED}@champion", "--env-manager", "local", "-h", "127.0.0.1",
                                   "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{base}/ping", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.5)
        images = [base64.b64encode(_png(final.test[i])).decode() for i in range(3)]
        payload = {"dataframe_split": {"columns": ["image"], "data": [[b] for b in images]}}
        answer = _post(f"{base}/invocations", payload)["predictions"]
        assert [round(row["prob_1"], 5) for row in answer] == [round(v, 5) for v in final.raw[:3]]
        decisions = (final.score[:3] >= final.report["threshold"]).astype(int).tolist()
        assert [row["decision"] for row in answer] == decisions
        fixed = _post(f"{base}/invocations", {"dataframe_records": [{"image": images[0]}],
                                              "params": {"threshold": 0.2}})
        assert fixed["predictions"][0]["threshold"] == 0.2
        with pytest.raises(urllib.error.HTTPError) as refused:  # a 2-channel array: named, not a crash
            _post(f"{base}/invocations", {"inputs": np.zeros((1, 8, 8, 2), int).tolist()})
        assert "2 channels cannot be converted" in refused.value.read().decode()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


@pytest.mark.slow
def test_the_sweeps_best_model_is_logged_the_same_way_and_predicts_the_argmax(final, tmp_path):
    """``SweepRun.log_best_model`` with Tune's result objects stood in for: a trial checkpoint (the
    final member's own) becomes an MLflow model on the sweep's run, without an operating point."""
    from contextlib import contextmanager

    import mlflow
    from medtune.search.tracking.client import mlflow_client
    from medtune.search.tracking.sweep_run import SweepRun
    from medtune.trainables.weights_export import export_weights

    checkpoint = final.outcome.out_dir / "member0" / "best"

    class Result:
        metrics = {"trial_id": "t1"}

        def get_best_checkpoint(self, metric, mode):
            @contextmanager
            def as_directory():
                yield str(checkpoint)
            return SimpleNamespace(as_directory=as_directory)

    client = mlflow_client(final.uri)
    experiment = client.create_experiment("sweep-best", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(experiment).info.run_id
    spec = SimpleNamespace(name="blobs", metric=SimpleNamespace(name="val_auc", mode="max"),
                           mlflow=SimpleNamespace(registered_model_name=None))
    SweepRun(client, run_id, experiment, final.uri).log_best_model(spec, "t1", [Result()])
    uri = client.get_run(run_id).data.tags["medtune.best_model_uri"]
    mlflow.set_tracking_uri(final.uri)
    frame = mlflow.pyfunc.load_model(uri).predict(final.test[:5])
    assert list(frame.columns) == ["prob_0", "prob_1", "predicted_class"]
    assert frame["predicted_class"].tolist() == [str(int(p > 0.5)) for p in frame["prob_1"]]
    # a trial run's best_checkpoint/ artifact (weights_export), by its runs:/ URI and as a folder
    export_weights(checkpoint, tmp_path / "best_checkpoint")
    client.log_artifacts(run_id, str(tmp_path / "best_checkpoint"), artifact_path="best_checkpoint")
    by_run = medtune.predict(f"runs:/{run_id}/best_checkpoint", final.npz, tracking_uri=final.uri).frame()
    by_folder = medtune.predict(tmp_path / "best_checkpoint", final.npz).frame()
    assert np.allclose(by_run["prob_1"], by_folder["prob_1"]) and "score" not in by_run


# --- bad input -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A bundle of an untrained model: enough for every refusal, no training."""
    import torch

    from medtune.trainables.config import TrialConfig
    from medtune.trainables.factories import build_trial_model
    from medtune.trainables.model_bundle import write_bundle

    config = {"architecture": "simple_cnn", "pretrained": "none", "image_size": 28, "data_source": "synthetic"}
    torch.manual_seed(0)
    model = build_trial_model(TrialConfig.from_dict(config), 2)
    return write_bundle(tmp_path_factory.mktemp("bundle") / "model", model, config, ("NORMAL", "PNEUMONIA"),
                        operating_point={"rule": "prior", "threshold": 0.5, "raw_threshold": 0.5, "anchor": 0.5,
                                         "calibration": None})


def _refused(capsys, *argv: str) -> str:
    assert main(["predict", *argv]) == 2
    return capsys.readouterr().err


def test_a_model_uri_that_names_nothing_is_refused_without_the_stores_credentials(bundle, tmp_path, capsys):
    port = free_port()  # nothing listens there
    err = _refused(capsys, "models:/no-such-model@champion", str(tmp_path), "--tracking-uri",
                   f"http://alice:s3cret@127.0.0.1:{port}")
    assert "MODEL: models:/no-such-model@champion: no model there" in err and f"127.0.0.1:{port}" in err
    assert "s3cret" not in err and "alice" not in err
    err = _refused(capsys, str(tmp_path / "nowhere"), str(tmp_path))
    assert "no such folder, and not an MLflow model URI" in err
    err = _refused(capsys, "models:/x/1", str(tmp_path), "--tracking-uri", f"sqlite:///{tmp_path}/none.db")
    assert "no MLflow store there" in err and not (tmp_path / "none.db").exists()


def test_a_model_from_another_major_version_is_refused(bundle, tmp_path, capsys):
    old = shutil.copytree(bundle, tmp_path / "old")
    document = json.loads((old / "medtune_model.json").read_text())
    (old / "medtune_model.json").write_text(json.dumps({**document, "medtune_version": "99.0.0"}))
    image = tmp_path / "x.png"
    image.write_bytes(_png(np.zeros((28, 28), np.uint8)))
    err = _refused(capsys, str(old), str(image))
    assert "written by medtune 99.0.0" in err and "another major version" in err


def test_images_whose_channels_cannot_be_converted_are_refused_by_name(bundle, tmp_path, capsys):
    np.savez(tmp_path / "two.npz", images=np.zeros((3, 28, 28, 2), np.uint8))
    err = _refused(capsys, str(bundle), str(tmp_path / "two.npz"))
    assert "INPUT" in err and "shape (3, 28, 28, 2)" in err and "cannot be converted" in err


def test_an_empty_folder_and_a_file_that_is_no_image_are_refused(bundle, tmp_path, capsys):
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    (tmp_path / "empty" / ".hidden" / "x.png").write_bytes(b"")
    assert "no images in it or its subfolders" in _refused(capsys, str(bundle), str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("x")
    assert "a .txt file; expected an image" in _refused(capsys, str(bundle), str(tmp_path / "notes.txt"))


def test_an_output_that_cannot_be_written_is_refused_before_anything_loads(bundle, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    image = tmp_path / "x.png"
    image.write_bytes(_png(np.zeros((28, 28), np.uint8)))
    err = _refused(capsys, str(bundle), str(image), "--out", str(tmp_path / "file" / "predictions.csv"))
    assert "--out: cannot write" in err and "is not a writable folder" in err
    with pytest.raises(SpecError, match="--batch-size: expected a whole number >= 1"):
        medtune.predict(bundle, image, batch_size=0)


def test_unreadable_images_are_listed_and_too_many_leave_the_old_csv_untouched(bundle, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "good.png").write_bytes(_png(np.full((40, 30), 120, np.uint8)))
    (folder / "broken.png").write_bytes(b"\x89PNG truncated")
    out = tmp_path / "predictions.csv"
    out.write_text("the previous run's rows\n")
    err = _refused(capsys, str(bundle), str(folder), "--out", str(out))
    assert "1 of 2 images of" in err and "broken.png" in err and "max_bad_fraction=0.01" in err
    assert out.read_text() == "the previous run's rows\n" and [p.name for p in tmp_path.iterdir()
                                                                  if p.name.startswith(".")] == []
    assert main(["predict", str(bundle), str(folder), "--out", str(out), "--max-bad-fraction", "0.5"]) == 0
    assert [r["path"] for r in _read(out)] == ["good.png"]


def test_operating_points_that_do_not_apply_are_refused_by_option(bundle, tmp_path, capsys):
    image = tmp_path / "x.png"
    image.write_bytes(_png(np.zeros((28, 28), np.uint8)))
    err = _refused(capsys, str(bundle), str(image), "--operating-point", "sensitivity:0.90")
    assert "--operating-point: operating point 'sensitivity:0.90' is chosen on held-out scores" in err
    assert "unknown threshold rule" in _refused(capsys, str(bundle), str(image), "--operating-point", "best")
    assert "a threshold must be" in _refused(capsys, str(bundle), str(image), "--threshold", "1.5")
