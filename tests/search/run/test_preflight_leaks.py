"""The leakage and shortcut checks in ``medtune validate`` (CLI and API) and before a sweep: the
splits line, one warning per finding, ``on_leak: drop`` and ``error``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from leak_cases import BYTE_COPIES, make_leaky_folder

import medtune
from medtune.cli import EXIT_BAD_INPUT, main
from medtune.search.run.preflight import check_leaks, leak_lines
from medtune.search.spec.loader import load_space
from medtune.search.spec.sweep_spec import SpecError

DEMO = str(Path(__file__).resolve().parents[3] / "spaces" / "demo.yaml")


@pytest.fixture()
def leaky(tmp_path) -> list[str]:
    root = make_leaky_folder(tmp_path / "brain")
    return [f"data.source={root}", "data.image_size=16", "data.val_fraction=0.2", f"storage={tmp_path / 'r'}"]


def _args(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def test_validate_prints_the_split_folders_and_every_finding(leaky, capsys):
    assert main(["validate", DEMO, *_args(leaky)]) == 0
    out = capsys.readouterr().out
    assert "  splits: train <- Training/, val <- 0.2 of train, carved (data.val_fraction), test <- Testing/" in out
    assert "leakage and shortcut checks (data.on_leak: warn): 48 train, 12 val, 25 test images checked" in out
    assert f"warning: data: exact duplicates across splits: {BYTE_COPIES + 1} of 25 test images" in out
    assert "warning: data: shortcut: storage mode: 'L' is 100% of train's glioma" in out


def test_the_api_returns_the_report(leaky):
    checked = medtune.validate(DEMO, leaky)
    checks = [f.check for f in checked.leaks.findings]
    assert checks[:2] == ["exact duplicates across splits", "near duplicates across splits"]
    assert "shortcut: storage mode" in checks and checked.leaks.checked["test"] == 25
    assert all(line in checked.warnings for line in leak_lines(checked.leaks))


def test_on_leak_drop_says_what_it_left_out(leaky, capsys):
    assert main(["validate", DEMO, *_args(leaky + ["data.on_leak=drop"])]) == 0
    out = capsys.readouterr().out
    assert f"data.on_leak: drop: left out {BYTE_COPIES + 1} test images that are exact copies" in out
    assert "exact duplicates across splits" not in out and "21 test images checked" in out


def test_on_leak_error_names_each_finding(leaky, capsys):
    assert main(["validate", DEMO, *_args(leaky + ["data.on_leak=error"])]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "- data.on_leak: exact duplicates across splits:" in err
    assert "- data.on_leak: shortcut: storage mode:" in err


def test_a_sweeps_preflight_logs_the_findings_before_ray_starts(leaky, caplog, monkeypatch):
    from medtune.search.run import preflight, ray_node

    started = []
    monkeypatch.setattr(ray_node, "init_ray", lambda: started.append(True))
    monkeypatch.setattr(preflight, "check_cluster_resources", lambda spec: None)
    with caplog.at_level(logging.WARNING, logger="medtune.search.run.preflight"):
        preflight.prepare_sweep(load_space(DEMO, leaky + ["mlflow.enabled=false"]))
    assert "data: exact duplicates across splits" in caplog.text and started == [True]
    started.clear()
    with pytest.raises(SpecError, match="data.on_leak"):
        preflight.prepare_sweep(load_space(DEMO, leaky + ["mlflow.enabled=false", "data.on_leak=error"]))
    assert started == []  # refused before Ray
    with pytest.raises(SpecError, match="data.on_leak"):
        check_leaks(load_space(DEMO, leaky + ["data.on_leak=error"]))
