"""``data.task`` in the space file: its values, and ``val_qwk`` as the objective of ordinal tasks only."""

from __future__ import annotations

import numpy as np
import pytest

from medtune.search.spec.sweep_spec import SpecError, validate_spec


def _raw(task: str | None = None, metric: str = "val_auc", source: str = "pneumoniamnist") -> dict:
    data = {"source": source} | ({"task": task} if task is not None else {})
    return {"name": "t", "data": data, "metric": {"name": metric},
            "space": {"lr": {"loguniform": [1e-4, 1e-2]}}, "fixed": {"pretrained": "none"}}


def _problems(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        validate_spec(raw, source="s.yaml")
    return info.value.problems


@pytest.mark.parametrize("task", ["auto", "classification", "ordinal"])
def test_each_task_validates_and_reaches_every_trial(task):
    spec = validate_spec(_raw(task))
    assert spec.data.task == task and spec.trial_base()["data_task"] == task


def test_the_task_defaults_to_auto():
    assert validate_spec(_raw()).data.task == "auto"


@pytest.mark.parametrize("value", ["graded", "Ordinal", 3, ["ordinal"]])
def test_a_bad_task_names_data_task_and_its_values(value):
    problems = _problems(_raw(value))
    assert len(problems) == 1 and problems[0][0] == "data.task", problems
    assert "ordinal" in problems[0][1] or "expected" in problems[0][1]


@pytest.mark.parametrize("metric, mode", [("val_qwk", "max"), ("val_mae", "min")])
def test_kappa_and_grade_error_are_objectives_of_ordinal_tasks(metric, mode):
    assert validate_spec(_raw("ordinal", metric)).metric.mode == mode


@pytest.mark.parametrize("task", [None, "auto", "classification"])
def test_kappa_is_refused_as_the_objective_of_unordered_classes(task):
    problems = _problems(_raw(task, "val_qwk"))
    assert [p for p, _ in problems] == ["metric.name"]
    assert "reported only when data.task is 'ordinal'" in problems[0][1]


def test_a_wrong_mode_for_kappa_is_still_named():
    raw = _raw("ordinal", "val_qwk")
    raw["metric"]["mode"] = "min"
    assert [p for p, _ in _problems(raw)] == ["metric.mode"]


def test_ordinal_on_two_classes_is_refused_by_the_data_check_naming_data_task(tmp_path):
    from medtune.search.run.preflight import check_data

    path = tmp_path / "two.npz"
    images = np.zeros((8, 28, 28), np.uint8)
    labels = np.array([0, 1] * 4, np.uint8)
    np.savez(path, train_images=images, train_labels=labels, val_images=images, val_labels=labels,
             test_images=images, test_labels=labels)
    with pytest.raises(SpecError) as info:
        check_data(validate_spec(_raw("ordinal", source=str(path))))
    assert info.value.problems[0][0] == "data.task" and "at least 3 graded classes" in info.value.problems[0][1]
    assert check_data(validate_spec(_raw("auto", source=str(path))))["num_classes"] == 2
