"""Space-file validation: every bad input gets its own specific error, before Ray starts."""

from __future__ import annotations

import copy
from pathlib import Path

import optuna
import pytest
import yaml

from medtune.search.spec.loader import apply_overrides, load_spec
from medtune.search.spec.space import DefineByRunSpace, Distribution
from medtune.search.spec.sweep_spec import SpecError, validate_spec

REPO = Path(__file__).resolve().parents[3]

GOOD = {
    "name": "t",
    "data": {"source": "pneumoniamnist", "image_size": 28},
    "metric": {"name": "val_loss", "mode": "min"},
    "search": {"num_samples": 4, "max_concurrent": 2, "sampler": {"name": "tpe", "seed": 0},
               "scheduler": {"name": "asha", "max_t": 3, "grace_period": 1, "reduction_factor": 2}},
    "resources": {"cpu": 1, "gpu": 0},
    "space": {
        "architecture": {"choice": ["simple_cnn", "resnet18"]},
        "frozen_depth": {"int": [0, 4]},
        "dropout": {"uniform": [0.3, 0.5]},
        "batch_size": {"choice": [16, 32]},
        "lr": {"loguniform": [1e-4, 1e-2]},
    },
    "fixed": {"pretrained": "none", "optimizer": "adamw"},
    "mlflow": {"tracking_uri": "sqlite:///mlruns.db", "artifact_location": "./mlartifacts"},
    "storage": "./ray_results",
}


def problems_of(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        validate_spec(raw, source="bad.yaml")
    assert "bad.yaml" in str(info.value)
    return info.value.problems


def with_change(path: str, value) -> dict:
    raw = copy.deepcopy(GOOD)
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


def test_good_spec_validates_into_one_object():
    spec = validate_spec(copy.deepcopy(GOOD), source="good.yaml")
    assert spec.metric.name == "val_loss" and spec.search.scheduler.max_t == 3
    assert set(spec.space) == {"architecture", "frozen_depth", "dropout", "batch_size", "lr"}
    base = spec.trial_base()
    assert base["epochs"] == 3 and base["data_source"] == "pneumoniamnist" and base["image_size"] == 28
    assert "lr" not in base  # sampled keys are never overwritten by shared values


@pytest.mark.parametrize("shipped", sorted(p.name for p in (REPO / "spaces").glob("*.yaml")))
def test_shipped_space_files_validate(shipped):
    spec = load_spec(REPO / "spaces" / shipped)
    assert spec.name


@pytest.mark.parametrize(
    "path, value, where, words",
    [
        ("colour", "blue", "colour", "unknown section"),
        ("search.num_sample", 3, "search.num_sample", "unknown key"),
        ("search.scheduler.nam", "asha", "search.scheduler.nam", "unknown key"),
        ("space.learning_rate", {"uniform": [0.1, 0.2]}, "space.learning_rate", "unknown trial key"),
        ("fixed.epochs", 3, "fixed.epochs", "search.scheduler.max_t"),
        ("search.num_samples", "many", "search.num_samples", "expected an integer"),
        ("search.num_samples", 0, "search.num_samples", ">= 1"),
        ("search.time_budget_s", 0, "search.time_budget_s", "> 0"),
        ("search.time_budget_s", "30m", "search.time_budget_s", "expected a number"),
        ("resources.gpu", "one", "resources.gpu", "expected a number"),
        ("fixed.batch_size", 8.5, "fixed.batch_size", "expected int"),
        ("fixed.class_weighted", "yes", "fixed.class_weighted", "expected bool"),
        ("space.dropout", {"uniform": [0.5, 0.3]}, "space.dropout.uniform", "low > high"),
        ("space.dropout", {"uniform": [0.3, 1.5]}, "space.dropout.uniform", "[0, 1)"),
        ("space.lr", {"loguniform": [-1e-3, 1e-2]}, "space.lr.loguniform", "> 0"),
        ("space.lr", {"uniform": [0.0, 1e-2]}, "space.lr.uniform", "must be > 0"),
        ("fixed.lr", -0.1, "fixed.lr", "must be > 0"),
        ("space.lr", {"normal": [0, 1]}, "space.lr", "exactly one of"),
        ("space.lr", {"uniform": [1e-3]}, "space.lr.uniform", "[low, high]"),
        ("space.batch_size", {"int": [8, "32"]}, "space.batch_size.int", "integer"),
        ("space.architecture", {"choice": ["resnet18", "alexnet"]}, "space.architecture.choice",
         "unknown architecture 'alexnet'"),
        ("metric.name", "val_f2", "metric.name", "not reported by the trainable"),
        ("metric.mode", "max", "metric.mode", "mode must be 'min'"),
        ("search.sampler.name", "cmaes", "search.sampler.name", "must be one of"),
        ("search.scheduler.grace_period", 5, "search.scheduler.grace_period", "<= max_t"),
        ("data.source", None, "data.source", "required"),
        ("data.val_fraction", 1.5, "data.val_fraction", "[0.01, 0.9]"),
        ("name", "a/b", "name", "must not contain"),
        ("fixed.optimizer", "adam", "fixed.optimizer", "must be one of"),
        ("fixed.pretrained", "/no/such/weights.pth", "fixed.pretrained", "not found"),
    ],
)
def test_each_bad_input_names_its_key(path, value, where, words):
    problems = problems_of(with_change(path, value))
    assert any(p == where and words in m for p, m in problems), problems


@pytest.mark.parametrize("value", [None, 0, 1, 2, 7, 8, 0.005, 0.01, 0.5, 0.9, 0.95, 1.0, 2.0, True, "", "x"])
def test_the_data_section_is_held_to_the_data_layers_own_settings(value):
    """One table (``DATA_SETTINGS``): a value the data section refuses, a ``DataConfig`` refuses too."""
    from medtune.trainables.data import DataConfig, DataError
    from medtune.trainables.data.config import DATA_SETTINGS

    for setting in DATA_SETTINGS:
        try:
            validate_spec(with_change(f"data.{setting.name}", value), source="s.yaml")
            spec_ok = True
        except SpecError as exc:
            assert all(p == f"data.{setting.name}" for p, _ in exc.problems), exc.problems
            spec_ok = False
        try:
            DataConfig(**{"source": "pneumoniamnist", setting.name: value})
            data_ok = True
        except DataError:
            data_ok = False
        if setting.name == "positive_class" and isinstance(value, (int, float)) and not spec_ok:
            continue  # a space file takes a class by name or index only; a DataConfig keeps any value as text
        assert spec_ok == data_ok, (setting.name, value)


def test_the_data_section_reaches_every_trial_and_comes_back_the_same():
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.data import DataConfig

    raw = with_change("data", {"source": "x.npz", "image_size": 32, "val_fraction": 0.2, "split_seed": 3,
                               "train_subset": 100, "val_subset": 40, "max_bad_fraction": 0.1, "positive_class": 1})
    spec = validate_spec(raw)
    base = spec.trial_base()
    assert base["data_positive_class"] == "1" and base["image_size"] == 32
    assert DataConfig.from_trial_values(base) == spec.data
    assert DataConfig.from_trial(TrialConfig.from_dict({k: v for k, v in base.items() if k != "lr"})) == spec.data


def test_frozen_depth_beyond_an_architectures_stages_is_rejected():
    problems = problems_of(with_change("space.frozen_depth", {"int": [4, 5]}))
    assert any(p == "space.frozen_depth.int" and "simple_cnn" in m for p, m in problems), problems


def test_frozen_depth_and_fraction_together_are_rejected():
    problems = problems_of(with_change("fixed.frozen_fraction", 0.5))
    assert any("not both" in m for _, m in problems)


def test_all_problems_are_reported_at_once():
    raw = with_change("space.lr", {"loguniform": [0, 1]})
    raw["search"]["num_samples"] = -1
    raw["typo"] = 1
    assert len(problems_of(raw)) == 3


def test_grid_sampler_needs_choices_and_matching_samples():
    raw = with_change("search.sampler", {"name": "grid"})
    problems = problems_of(raw)
    assert any(p == "space.frozen_depth" and "grid" in m for p, m in problems)


def test_grid_sampler_valid_when_sizes_match():
    raw = with_change("search.sampler", {"name": "grid"})
    raw["space"] = {"architecture": {"choice": ["simple_cnn", "resnet18"]}, "batch_size": {"choice": [16, 32, 64]}}
    raw["search"]["num_samples"] = 6
    assert validate_spec(raw).search.sampler.name == "grid"
    raw["search"]["num_samples"] = 5
    assert problems_of(raw) == [("search.num_samples", "the grid has 6 points: set num_samples to 6, got 5")]


def test_metric_mode_defaults_to_the_metrics_direction():
    raw = copy.deepcopy(GOOD)
    raw["metric"] = {"name": "val_auc"}
    assert validate_spec(raw).metric.mode == "max"


def test_overrides_win_over_the_file_and_are_typed(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    spec = load_spec(path, ["search.num_samples=7", "space.lr={loguniform: [1.0e-3, 1.0e-2]}",
                            "fixed.optimizer=sgd", "search.scheduler.max_t=5"])
    assert spec.search.num_samples == 7
    assert spec.space["lr"] == Distribution("loguniform", (1e-3, 1e-2))
    assert spec.fixed["optimizer"] == "sgd" and spec.search.scheduler.max_t == 5
    with pytest.raises(SpecError) as info:
        load_spec(path, ["search.num_samples=zero"])
    assert ("search.num_samples" in str(info.value)) and "expected an integer" in str(info.value)


def test_malformed_overrides_are_rejected():
    with pytest.raises(SpecError) as info:
        apply_overrides({"search": {"num_samples": 1}}, ["search.num_samples", "search.num_samples.x=1"], "f.yaml")
    messages = str(info.value)
    assert "KEY=VALUE" in messages and "not a mapping" in messages


def test_missing_file_and_bad_yaml_name_the_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nspace: {lr: [1, 2\n")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert str(bad) in str(info.value) and "line" in str(info.value) and "not valid YAML" in str(info.value)


def test_yaml_tags_that_build_python_objects_are_refused(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(evil)


def test_define_by_run_space_clips_frozen_depth_to_each_architecture():
    spec = validate_spec(copy.deepcopy(GOOD))
    from medtune.search.spec.sweep_spec import trial_stage_counts

    counts = trial_stage_counts(spec)
    space = DefineByRunSpace(spec.space, {"epochs": 3}, counts)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"simple_cnn": set(), "resnet18": set()}
    for _ in range(120):
        trial = study.ask()
        fixed = space(trial)
        assert fixed == {"epochs": 3}
        params = trial.params
        assert 0 <= params["frozen_depth"] <= min(4, counts[params["architecture"]])
        seen[params["architecture"]].add(params["frozen_depth"])
        study.tell(trial, 0.0)
    assert max(seen["simple_cnn"]) == counts["simple_cnn"] < 4
    assert max(seen["resnet18"]) == 4
