"""The sweep's GPU-busy share: sampled by the driver over ``Tuner.fit`` (a stand-in sampler here, as
this machine has no GPU), printed, handed back and logged on the parent run; absent without a GPU."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from medtune.search.run import sweep as sweep_module
from medtune.search.spec.loader import load_spec
from medtune.trainables.gpu_metrics import GPU_BUSY

REPO = Path(__file__).resolve().parents[3]


class StandInSampler:
    handles = ["GPU-aaa"]

    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> float:
        self.events.append("stop")
        return 31.0


class StandInParent:
    """What ``_fit_and_finish`` asks of the parent run; records its totals when the sweep finishes it."""

    run_id, experiment_id = "parent", "0"

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.finished_with: dict[str, float] | None = None

    def finish(self, spec, entries, files, draw_plots, results):
        self.finished_with = dict(self.totals)
        return None


def fit_and_finish(tmp_path: Path, sampler, parent, fitted: list[str]):
    spec = load_spec(REPO / "spaces" / "one_gpu.yaml", ["mlflow.enabled=false"])

    def fit():
        fitted.append("fit")
        return []

    tuned = SimpleNamespace(tuner=SimpleNamespace(fit=fit), callback=lambda kind: None, search_alg=None)
    return sweep_module._fit_and_finish(tuned, spec, "run", str(tmp_path), parent, None)


def test_the_driver_samples_over_fit_prints_and_logs_the_share(tmp_path, monkeypatch, capsys):
    sampler, parent, fitted = StandInSampler(), StandInParent(), []
    monkeypatch.setattr(sweep_module, "sweep_sampler", lambda: sampler)
    outcome = fit_and_finish(tmp_path, sampler, parent, fitted)
    assert sampler.events == ["start", "stop"] and fitted == ["fit"]
    assert outcome.gpu_busy_pct == 31.0
    assert parent.finished_with == {GPU_BUSY: 31.0}
    assert "GPU busy 31% of Tuner.fit" in capsys.readouterr().out


def test_without_a_gpu_the_share_is_absent(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep_module, "sweep_sampler", lambda: None)
    parent = StandInParent()
    outcome = fit_and_finish(tmp_path, None, parent, [])
    assert outcome.gpu_busy_pct is None and parent.finished_with == {}
    assert "GPU busy" not in capsys.readouterr().out


@pytest.mark.slow  # MLflow's sqlite store: its schema migrations take 10-20 s on 2 busy cores
def test_the_parent_run_logs_its_totals(tmp_path):
    """The real parent run, on a sqlite store: the totals are metrics of the finished run."""
    pytest.importorskip("mlflow")
    from medtune.search.tracking.sweep_run import SweepRun
    from mlflow import MlflowClient

    spec = load_spec(REPO / "spaces" / "one_gpu.yaml", [f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlruns.db",
                                                        f"mlflow.artifact_location={tmp_path / 'art'}"])
    parent = SweepRun.start(spec, "gpu-run", "fingerprint")
    parent.totals[GPU_BUSY] = 31.0
    parent.finish(spec, [], [], lambda: [], [])
    run = MlflowClient(tracking_uri=spec.mlflow.tracking_uri).get_run(parent.run_id)
    assert run.data.metrics[GPU_BUSY] == 31.0 and run.info.status == "FINISHED"
