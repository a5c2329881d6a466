"""End to end: a real Ray Tune + Optuna TPE + ASHA sweep on real chest X-rays, logged to MLflow.

One sweep runs for the whole module (about a minute on 2 cores); the tests read what it left:
Ray results, the MLflow store and the best-config file.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

import medtune
from medtune.search.spec.loader import load_spec
from medtune.search.spec.sweep_spec import SpecError, validate_spec

pytestmark = pytest.mark.slow

MAX_T = 3
NUM_SAMPLES = 6


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, pneumoniamnist_path):
    import ray

    from medtune.search.run.ray_node import init_ray

    root = tmp_path_factory.mktemp("sweep")
    raw = {
        "name": "e2e",
        "data": {"source": "pneumoniamnist", "image_size": 28, "train_subset": 500, "val_subset": 200},
        "metric": {"name": "val_loss", "mode": "min"},
        "search": {"num_samples": NUM_SAMPLES, "max_concurrent": 2, "sampler": {"name": "tpe", "seed": 0},
                   "scheduler": {"name": "asha", "max_t": MAX_T, "grace_period": 1, "reduction_factor": 2}},
        "resources": {"cpu": 1, "gpu": 0},
        "space": {
            "architecture": {"choice": ["simple_cnn", "mobilenetv2_100"]},
            "frozen_depth": {"int": [0, 2]},
            "dropout": {"uniform": [0.3, 0.5]},
            "batch_size": {"choice": [32, 64]},
            "lr": {"loguniform": [5e-4, 5e-3]},
        },
        "fixed": {"pretrained": "imagenet", "optimizer": "adamw"},
        "mlflow": {"tracking_uri": f"sqlite:///{root}/mlruns.db", "artifact_location": str(root / "artifacts"),
                   "registered_model_name": "medtune-e2e-sweep"},
        "storage": str(root / "ray_results"),
    }
    spec = validate_spec(raw, source="e2e.yaml")
    init_ray(num_cpus=2, log_to_driver=False)  # the node `medtune sweep` starts, its slower timers included
    try:
        outcome = medtune.sweep(raw, name="e2e-run")  # the Python API: a dict, as a notebook builds it
        yield spec, outcome, root
    finally:
        ray.shutdown()


def test_every_trial_ran_and_asha_stopped_some_early(sweep):
    spec, outcome, _ = sweep
    assert len(outcome.entries) == NUM_SAMPLES
    assert all(e.error is None for e in outcome.entries), [e.error for e in outcome.entries]
    epochs = [e.epochs_run for e in outcome.entries]
    assert all(1 <= n <= MAX_T for n in epochs)
    assert sum(epochs) < NUM_SAMPLES * MAX_T, epochs  # ASHA stopped at least one trial early
    architectures = {e.config["architecture"] for e in outcome.entries}
    assert architectures == {"simple_cnn", "mobilenetv2_100"}
    # Frozen depth never exceeds what the sampled architecture has.
    from medtune.trainables.models import get_architecture

    for e in outcome.entries:
        assert e.config["frozen_depth"] <= get_architecture(e.config["architecture"]).num_stages


def test_leaderboard_is_sorted_and_the_best_model_is_good(sweep):
    _, outcome, _ = sweep
    values = [e.best_value for e in outcome.entries]
    assert values == sorted(values)
    assert outcome.entries[0].metrics_at_best["val_auc"] > 0.9


def test_mlflow_holds_one_parent_and_one_child_per_trial(sweep):
    from mlflow import MlflowClient

    spec, outcome, root = sweep
    client = MlflowClient(tracking_uri=spec.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name("e2e")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == outcome.parent_run_id]
    assert len(parents) == 1 and parents[0].info.run_id == outcome.parent_run_id
    assert len(children) == NUM_SAMPLES == len(runs) - 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    for tag in ("medtune.space_hash", "medtune.data_fingerprint", "version.ray", "version.optuna", "version.timm",
                "mlflow.source.name", "mlflow.source.type", "mlflow.user"):
        assert parent.data.tags.get(tag), tag
    installed = version("medtune")
    assert all(run.data.tags.get("medtune.version") == installed for run in runs)  # MLflow's context on every run
    assert all(child.data.tags["mlflow.source.name"] == parent.data.tags["mlflow.source.name"] for child in children)
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"leaderboard.csv", "best_config.yaml",
                                                                          "space.yaml", "plots"}
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    # Optuna's views draw the study's COMPLETE trials (ASHA's stops are PRUNED there): they need two.
    complete = sum(e.epochs_run == MAX_T for e in outcome.entries)
    views = ("optimization_history", "parallel_coordinates", "param_importances") if complete >= 2 else ()
    assert plots == {f"plots/{name}.png" for name in ("learning_curves", *views)}, (plots, complete)

    epochs_by_trial = {e.trial_id: e.epochs_run for e in outcome.entries}
    outcomes = set()
    for child in children:
        params = child.data.params
        for key in ("architecture", "frozen_depth", "dropout", "batch_size", "lr", "optimizer", "epochs"):
            assert key in params, key
        assert "data_dir" not in params and "weights_dir" not in params
        history = client.get_metric_history(child.info.run_id, "val_loss")
        trial_id = child.data.tags["medtune.trial_id"]
        assert sorted(m.step for m in history) == list(range(1, epochs_by_trial[trial_id] + 1))
        assert child.info.status == "FINISHED"
        outcomes.add(child.data.tags["medtune.outcome"])
        artifacts = [a.path for a in client.list_artifacts(child.info.run_id, "best_checkpoint")]
        assert "best_checkpoint/model.safetensors" in artifacts
    assert outcomes == {"completed", "stopped_early"}
    # numbered as the Optuna study numbers its trials (optuna-dashboard, the plots): 00, 01, ...
    assert sorted(int(child.info.run_name.split()[0]) for child in children) == list(range(NUM_SAMPLES))


def test_best_checkpoint_artifact_is_lean_and_loads_without_unpickling(sweep):
    import mlflow
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.train import build_trial_model
    from medtune.trainables.weights_export import load_exported

    spec, outcome, root = sweep
    mlflow.set_tracking_uri(spec.mlflow.tracking_uri)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=spec.mlflow.tracking_uri)
    child = client.search_runs([client.get_experiment_by_name("e2e").experiment_id],
                               filter_string=f"tags.medtune.trial_id = '{outcome.entries[0].trial_id}'")[0]
    local = mlflow.artifacts.download_artifacts(run_id=child.info.run_id, artifact_path="best_checkpoint",
                                                dst_path=str(root / "dl"))
    # Weights, config and metrics only (safetensors + JSON): the optimizer state stays in Ray's checkpoint.
    assert sorted(p.name for p in Path(local).iterdir()) == ["checkpoint.json", "model.safetensors"]
    weights, meta = load_exported(local)
    assert not any(name.startswith(("optimizer", "exp_avg")) for name in weights)
    model = build_trial_model(TrialConfig.from_dict(meta["config"]), len(meta["class_names"]))
    model.load_state_dict(weights)  # every weight there, nothing else
    # The best of the epochs that were checkpointed (a trial checkpoints at most every 5 s, plus
    # its first and last epoch), and the run says which one that was.
    assert meta["epoch"] == int(child.data.tags["medtune.best_checkpoint_epoch"])
    assert meta["epoch"] in (1, outcome.entries[0].best_epoch, outcome.entries[0].epochs_run)
    assert meta["metrics"]["epoch"] == meta["epoch"] \
        and meta["config"]["architecture"] == outcome.entries[0].config["architecture"]


def test_best_config_round_trips_as_a_space_file(sweep):
    spec, outcome, _ = sweep
    best = load_spec(outcome.best_config_path)
    assert best.space == {} and best.search.num_samples == 1
    winner = outcome.entries[0]
    for key in spec.space:
        assert best.fixed[key] == winner.config[key]
    assert best.provenance["trial_id"] == winner.trial_id
    assert best.provenance["best_epoch"] == winner.best_epoch


def test_gpu_request_on_a_cluster_without_gpus_is_refused(sweep):
    from medtune.search.run.preflight import check_cluster_resources

    spec, _, _ = sweep
    raw = dict(spec.raw, resources={"cpu": 1, "gpu": 1})
    with pytest.raises(SpecError) as info:
        check_cluster_resources(validate_spec(raw, source="gpu.yaml"))
    assert "resources.gpu" in str(info.value) and "Ray cluster has 0" in str(info.value)


# ------------------------------------------------------------------ best (from MLflow) and final
@pytest.fixture(scope="module")
def best_file(sweep, tmp_path_factory):
    from medtune.cli import main

    spec, outcome, root = sweep
    path = tmp_path_factory.mktemp("best") / "best.yaml"
    assert main(["best", "e2e", "--tracking-uri", spec.mlflow.tracking_uri, "--top", "2", "-o", str(path)]) == 0
    return path


def test_best_from_mlflow_agrees_with_the_sweeps_own_leaderboard(sweep, best_file):
    spec, outcome, _ = sweep
    best = load_spec(best_file)
    winner = outcome.entries[0]
    assert best.provenance["trial_id"] == winner.trial_id
    assert best.provenance["best_epoch"] == winner.best_epoch
    assert best.provenance["parent_run_id"] == outcome.parent_run_id
    assert best.provenance["best_value"] == pytest.approx(winner.best_value)
    for key in spec.space:
        assert best.fixed[key] == winner.config[key], key
    assert [c["architecture"] for c in best.provenance["top_configs"]] == \
        [e.config["architecture"] for e in outcome.entries[:2]]


def test_best_can_rank_by_another_metric(sweep, tmp_path):
    from medtune.cli import main

    spec, outcome, _ = sweep
    best_acc = max(
        ((r.metrics_dataframe["val_acc"].max(), (r.metrics or {}).get("trial_id")) for r in outcome.results),
        key=lambda t: t[0])
    out = tmp_path / "by_acc.yaml"
    assert main(["best", "e2e", "--tracking-uri", spec.mlflow.tracking_uri, "--metric", "val_acc", "-o", str(out)]) == 0
    doc = load_spec(out)
    assert doc.provenance["metric"] == "val_acc"
    assert doc.provenance["best_value"] == pytest.approx(best_acc[0])


@pytest.fixture(scope="module")
def final_outcome(sweep, best_file, tmp_path_factory):
    return medtune.final(best_file, ensemble=2, register="medtune-e2e", out=tmp_path_factory.mktemp("final"))


@pytest.fixture(scope="module")
def final_run(final_outcome):
    return final_outcome.out_dir


def test_the_final_runs_report_html_shows_report_json_in_a_browser_and_is_logged_with_it(sweep, final_outcome,
                                                                                          browser, tmp_path):
    """The real final run's page in Chromium (the page itself: tests/search/results/test_report_html.py)."""
    import json

    from report_page import OpenedPage, assert_images_drawn, assert_numbers_match_report_json, assert_self_contained

    from mlflow import MlflowClient

    spec, _, _ = sweep
    summary = final_outcome.report()
    opened = OpenedPage(browser, final_outcome.html)
    try:
        assert_self_contained(opened)
        assert_images_drawn(opened, expected=4)  # ROC, confusion, calibration and the real Grad-CAM grid
        assert_numbers_match_report_json(opened, summary)
        assert opened.page.locator("#mlflow-run").inner_text() == final_outcome.run_id
    finally:
        opened.close()
    client = MlflowClient(tracking_uri=spec.mlflow.tracking_uri)
    logged = Path(client.download_artifacts(final_outcome.run_id, "report/report.html", str(tmp_path / "dl")))
    assert logged.read_bytes() == final_outcome.html.read_bytes()
    assert json.loads((final_outcome.out_dir / "report.json").read_text()) == summary


def test_the_python_api_returns_what_the_files_and_mlflow_hold(sweep, best_file, final_outcome, tmp_path):
    """medtune.sweep / best / final: typed results that agree with leaderboard.csv, best_config.yaml
    and report.json (the CLI prints from these same objects)."""
    import json

    import pandas as pd

    import mlflow

    spec, outcome, _ = sweep
    frame = outcome.leaderboard_frame()
    local = mlflow.artifacts.download_artifacts(run_id=outcome.parent_run_id, artifact_path="leaderboard.csv",
                                                dst_path=str(tmp_path), tracking_uri=spec.mlflow.tracking_uri)
    logged = pd.read_csv(local).set_index("rank")
    assert list(frame.columns) == list(logged.columns)
    assert list(frame["trial_id"]) == list(logged["trial_id"]) and outcome.best.trial_id == frame["trial_id"].iloc[0]
    assert frame["best_val_loss"].tolist() == pytest.approx(logged["best_val_loss"].tolist())
    assert outcome.best_config()["provenance"]["trial_id"] == outcome.best.trial_id

    found = medtune.best("e2e", spec.mlflow.tracking_uri, top=2, output=None)
    assert found.path is None and found.best.trial_id == outcome.best.trial_id
    from medtune.search.spec.loader import read_yaml

    assert found.config == read_yaml(best_file)["fixed"]

    report = json.loads(final_outcome.html.with_name("report.json").read_text())
    assert final_outcome.report() == report and final_outcome.html.stat().st_size > 0
    for name, (value, low, high) in final_outcome.metrics().items():
        assert [value, low, high] == [report["reports"][0]["metrics"][name]["value"],
                                      *report["reports"][0]["metrics"][name]["ci95"]], name


def test_final_reports_on_test_with_intervals_and_logs_a_linked_run(sweep, final_run):
    import json

    from mlflow import MlflowClient

    spec, outcome, _ = sweep
    report = json.loads((final_run / "report.json").read_text())
    assert [r["name"] for r in report["reports"]] == ["best model", "ensemble of 2"]
    single = report["reports"][0]
    assert single["n_test"] == 624  # the whole official test split, once
    for name, m in single["metrics"].items():
        low, high = m["ci95"]
        assert low <= m["value"] <= high, name
    assert report["train_images"] == 500 + 100 and report["calibration_images"] == 100
    for name in ("report.md", "roc_curve.png", "confusion_matrix.png", "gradcam.png", "test_predictions.csv"):
        assert (final_run / name).stat().st_size > 0, name

    client = MlflowClient(tracking_uri=spec.mlflow.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("e2e").experiment_id],
                              filter_string="tags.`medtune.kind` = 'final'")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["medtune.sweep_parent_run_id"] == outcome.parent_run_id
    assert run.data.metrics["test_roc_auc"] == pytest.approx(single["metrics"]["roc_auc"]["value"])
    assert run.data.metrics["test_roc_auc_ci_low"] <= run.data.metrics["test_roc_auc"] \
        <= run.data.metrics["test_roc_auc_ci_high"]
    assert "ensemble_test_roc_auc" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.json", "report/roc_curve.png", "report/gradcam.png"} <= artifacts
    versions = client.search_model_versions("name = 'medtune-e2e'")
    assert len(versions) == 1 and versions[0].run_id == run.info.run_id


def test_final_model_loads_as_an_mlflow_model_and_predicts(sweep, final_run):
    import csv
    import json

    import numpy as np

    import mlflow
    from medtune.trainables.data import DataConfig, load_splits

    spec, _, _ = sweep
    mlflow.set_tracking_uri(spec.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/medtune-e2e/1")
    info = mlflow.models.get_model_info("models:/medtune-e2e/1")
    # raw images in (the test split's own pixels), the report's calibrated scores and decisions out
    test = load_splits(DataConfig("pneumoniamnist", image_size=28)).test
    frame = model.predict(np.asarray(test.images[:8])[..., 0])
    with open(final_run / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))[:8]
    assert np.allclose(frame["score"], [float(r["best_model_score"]) for r in rows], atol=1e-5)
    # the operating point travels with the model: it decides as the report did
    point = info.metadata["medtune_operating_point"]
    report = json.loads((final_run / "report.json").read_text())["reports"][0]
    assert point["rule"] == report["threshold_rule"] and point["threshold"] == report["threshold"]
    assert point["calibration"] == report["calibration_map"] and point["raw_threshold"] == report["raw_threshold"]
    assert (frame["decision"] == (frame["score"] >= report["threshold"]).astype(int)).all()


def test_report_numbers_agree_with_the_saved_predictions(final_run):
    import csv
    import json

    import numpy as np
    from sklearn.metrics import roc_auc_score

    report = json.loads((final_run / "report.json").read_text())["reports"][0]
    with open(final_run / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    labels = np.array([int(r["label"]) for r in rows])
    scores = np.array([float(r["best_model_score"]) for r in rows])
    predicted = scores >= report["threshold"]
    assert roc_auc_score(labels, scores) == pytest.approx(report["metrics"]["roc_auc"]["value"])
    assert (predicted == labels).mean() == pytest.approx(report["metrics"]["accuracy"]["value"])
    assert predicted[labels == 1].mean() == pytest.approx(report["metrics"]["sensitivity"]["value"])
    assert int((predicted & (labels == 0)).sum()) == report["confusion_matrix"]["fp"]


def test_the_sweeps_best_model_is_logged_on_the_parent_run_and_registered(sweep):
    import numpy as np

    import mlflow

    spec, outcome, _ = sweep
    client = mlflow.MlflowClient(tracking_uri=spec.mlflow.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.tags["medtune.best_model_uri"].startswith("models:/")
    versions = client.search_model_versions("name = 'medtune-e2e-sweep'")
    assert len(versions) == 1 and versions[0].run_id == outcome.parent_run_id
    mlflow.set_tracking_uri(spec.mlflow.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/medtune-e2e-sweep/1")
    frame = model.predict(np.zeros((3, 28, 28), np.uint8))  # raw images; no operating point: the argmax
    assert len(frame) == 3 and list(frame.columns) == ["prob_normal", "prob_pneumonia", "predicted_class"]


def test_models_are_named_by_role_and_architecture_with_their_params_metrics_and_aliases(sweep, final_outcome):
    from mlflow import MlflowClient

    spec, outcome, _ = sweep
    client = MlflowClient(tracking_uri=spec.mlflow.tracking_uri)
    experiment_id = client.get_experiment_by_name("e2e").experiment_id
    models = {m.name: m for m in client.search_logged_models(experiment_ids=[experiment_id])}
    best_arch = outcome.best.config["architecture"]
    final_arch = final_outcome.member_configs[0]["architecture"]
    assert set(models) == {f"sweep-best-{best_arch}", f"final-{final_arch}"}, set(models)
    sweep_best, final = models[f"sweep-best-{best_arch}"], models[f"final-{final_arch}"]
    assert str(sweep_best.status) == str(final.status) == "READY"  # finalized, not left PENDING
    # the model's own hyperparameters, not the sweep's settings (num_samples, scheduler)
    for key in spec.space:
        assert sweep_best.params[key] == str(outcome.best.config[key]), key
    assert "num_samples" not in sweep_best.params
    sweep_metrics = {m.key: m.value for m in sweep_best.metrics}
    assert {"val_loss", "val_auc", "epoch"} <= set(sweep_metrics)
    final_metrics = {m.key: m.value for m in final.metrics}
    assert final_metrics["test_roc_auc"] == pytest.approx(final_outcome.metrics()["roc_auc"][0])
    # registry aliases instead of the deprecated stages
    assert client.get_model_version_by_alias("medtune-e2e-sweep", "sweep-best").run_id == outcome.parent_run_id
    assert client.get_model_version_by_alias("medtune-e2e", "champion").run_id == final_outcome.run_id


def test_the_sweep_and_its_final_run_link_each_other_in_their_notes(sweep, final_outcome):
    from mlflow import MlflowClient

    spec, outcome, _ = sweep
    client = MlflowClient(tracking_uri=spec.mlflow.tracking_uri)
    parent = client.get_run(outcome.parent_run_id)
    final = client.get_run(final_outcome.run_id)
    experiment_id = parent.info.experiment_id
    note = parent.data.tags["mlflow.note.content"]
    best_child = client.search_runs([experiment_id], filter_string=(
        f"tags.`medtune.trial_id` = '{outcome.best.trial_id}'"))[0]
    assert f"[{best_child.info.run_name}](#/experiments/{experiment_id}/runs/{best_child.info.run_id})" in note
    assert f"(#/experiments/{experiment_id}/runs/{outcome.parent_run_id}/artifacts/best_config.yaml)" in note
    # the runs-table link opens the shared view the sweep stored: best value and searched values as columns
    from medtune.search.run.sweep import shared_view

    key, value, route = shared_view(experiment_id, outcome.parent_run_id, spec)
    assert client.get_experiment(experiment_id).tags[key] == value and f"({route})" in note
    assert "best_val_loss" in value and "params.`lr`" in value
    assert f"(#/experiments/{experiment_id}/runs/{outcome.parent_run_id}/artifacts/plots/learning_curves.png)" in note
    assert f"[{final.info.run_name}](#/experiments/{experiment_id}/runs/{final_outcome.run_id})" in note
    assert final.info.run_name == f"final e2e-run {final_outcome.member_configs[0]['architecture']} " \
                                  f"fd{final_outcome.member_configs[0]['frozen_depth']} ensemble of 2"
    final_note = final.data.tags["mlflow.note.content"]
    assert f"(#/experiments/{experiment_id}/runs/{outcome.parent_run_id})" in final_note
    assert f"(#/experiments/{experiment_id}/runs/{final_outcome.run_id}/artifacts/report/report.html)" in final_note


# ------------------------------------------------------------------ the Optuna study, read by optuna-dashboard
def test_optuna_dashboard_shows_the_sweeps_study_with_asha_stops_as_pruned(sweep, tmp_path):
    """The command the sweep prints (``optuna-dashboard <run>/optuna.journal``), run for real on 127.0.0.1."""
    import json
    import subprocess
    import sys
    import time
    import urllib.request

    from helpers import free_port, subprocess_env

    spec, outcome, root = sweep
    journal = Path(outcome.run_path) / "optuna.journal"
    port = free_port()
    dashboard = subprocess.Popen([str(Path(sys.executable).parent / "optuna-dashboard"), str(journal),
                                  "--host", "127.0.0.1", "--port", str(port), "--server", "wsgiref", "--quiet"],
                                 env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return json.loads(reply.read())

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get("/api/studies")["study_summaries"]
                break
            except OSError:
                assert dashboard.poll() is None and time.monotonic() < deadline, dashboard.communicate()[0][-2000:]
                time.sleep(0.5)
        (study,) = [s for s in studies if s["study_name"] == outcome.run_name]
        trials = get(f"/api/studies/{study['study_id']}")["trials"]
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)

    assert len(trials) == NUM_SAMPLES
    scored = [e for e in outcome.entries if e.best_epoch > 0]
    stopped = [e for e in scored if e.epochs_run < MAX_T]
    assert stopped, "ASHA stopped no trial: nothing to check"
    assert sum(t["state"] == "Pruned" for t in trials) == len(stopped)
    complete = sorted(t["values"][0] for t in trials if t["state"] == "Complete")
    assert complete == pytest.approx(sorted(e.best_value for e in scored if e.epochs_run == MAX_T))
    assert all(t["intermediate_values"] for t in trials if t["state"] == "Pruned")


def test_leaderboard_csv_opens_with_outcome_and_best_value_and_agrees_with_the_child_runs(sweep, tmp_path):
    import csv

    import mlflow
    from mlflow import MlflowClient

    spec, outcome, root = sweep
    local = mlflow.artifacts.download_artifacts(run_id=outcome.parent_run_id, artifact_path="leaderboard.csv",
                                                dst_path=str(tmp_path), tracking_uri=spec.mlflow.tracking_uri)
    with open(local, newline="") as f:
        header = next(csv.reader(f))
        f.seek(0)
        rows = list(csv.DictReader(f))
    assert header[:6] == ["rank", "trial_id", "outcome", "best_val_loss", "best_epoch", "epochs_run"]
    assert header[6:6 + len(spec.space)] == list(spec.space)  # the searched values only, none of the fixed
    client = MlflowClient(tracking_uri=spec.mlflow.tracking_uri)
    runs = client.search_runs([client.get_run(outcome.parent_run_id).info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'")
    tagged = {r.data.tags["medtune.trial_id"]: r.data.tags["medtune.outcome"] for r in runs}
    assert {row["trial_id"]: row["outcome"] for row in rows} == tagged
    assert {r.data.metrics["best_val_loss"] for r in runs} == {float(row["best_val_loss"]) for row in rows}
