"""The canary of ``search/run/_ray_compat.py``: Ray's private parts that medtune uses are where they were.

Each entry of the adapter is checked twice, in-process and without a Ray cluster: that the private
attribute or module it reads exists with the shape it expects on the installed Ray and Optuna
(each failure names it), and that the adapter's function does its job once. Run this first when
raising the ``ray`` or ``optuna`` pin in ``pyproject.toml``; a failure here says which internal
moved before any sweep breaks on it. ``test_no_other_module_reaches_into_ray`` keeps the adapter
the only place that does.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import ipaddress
import logging
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import ray
from optuna.trial import TrialState
from packaging.requirements import Requirement
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from medtune.search.run import _ray_compat as compat

REPO = Path(__file__).resolve().parents[3]
VERSIONS = (f"installed Ray {ray.__version__}, Optuna {optuna.__version__}; the adapter was checked on "
            f"Ray {compat.CHECKED_RAY}, Optuna {compat.CHECKED_OPTUNA}")


def _attr(owner: Any, name: str) -> Any:
    """``owner.<name>``, failing with the attribute's full name and the versions when it is gone."""
    where = owner.__name__ if isinstance(owner, type) or inspect.ismodule(owner) else type(owner).__qualname__
    assert hasattr(owner, name), f"Ray internal moved: {where}.{name} is gone ({VERSIONS})"
    return getattr(owner, name)


# --- the versions ---------------------------------------------------------------------------------


def test_the_installed_and_the_checked_versions_are_within_the_pins():
    pins = {Requirement(d).name: Requirement(d).specifier
            for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    for name, installed, checked in (("ray", ray.__version__, compat.CHECKED_RAY),
                                     ("optuna", optuna.__version__, compat.CHECKED_OPTUNA)):
        assert pins[name].contains(installed), f"{name} {installed} is outside pyproject's pin {pins[name]}"
        assert pins[name].contains(checked), f"the adapter's CHECKED_{name.upper()} {checked} is outside {pins[name]}"


# --- ASHA -----------------------------------------------------------------------------------------


def _asha(mode: str | None = "min") -> ASHAScheduler:
    scheduler = ASHAScheduler(time_attr="epoch", max_t=8, grace_period=1, reduction_factor=2)
    if mode:
        scheduler.set_search_properties("val_loss", mode)
    return scheduler


def _report(scheduler: ASHAScheduler, trial_id: str, epoch: int, loss: float) -> str:
    trial = SimpleNamespace(trial_id=trial_id)
    scheduler.on_trial_add(None, trial)
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "val_loss": loss})


def test_asha_keeps_its_rungs_where_the_adapter_reads_them():
    scheduler = _asha()
    brackets = _attr(scheduler, "_brackets")
    assert isinstance(brackets, list) and len(brackets) == 1, f"ASHAScheduler._brackets: {brackets!r}"
    rungs = _attr(brackets[0], "_rungs")
    assert [milestone for milestone, _ in rungs] == [8, 4, 2, 1], f"_Bracket._rungs: {rungs!r} ({VERSIONS})"
    assert all(isinstance(recorded, dict) and not recorded for _, recorded in rungs), rungs
    assert callable(_attr(brackets[0], "cutoff"))
    assert _attr(scheduler, "_num_stopped") == 0
    assert _attr(scheduler, "_metric_op") == -1.0 and _attr(_asha("max"), "_metric_op") == 1.0
    assert _attr(_asha(None), "_metric_op") is None
    assert _attr(scheduler, "_reduction_factor") == 2

    # ASHA still records metric * sign in those very dicts, and counts its stops in _num_stopped.
    assert _report(scheduler, "a", 1, 0.2) == TrialScheduler.CONTINUE
    assert rungs[-1][1] == {"a": -0.2}, f"_Bracket._rungs no longer holds what ASHA records ({VERSIONS})"
    assert _report(scheduler, "b", 1, 0.5) == TrialScheduler.STOP
    assert scheduler._num_stopped == 1
    # A value put into a rung's dict is one ASHA cuts against (what AshaRungs.set_state relies on).
    rungs[-1][1].update({"x": -0.1, "y": -0.1})
    assert _report(scheduler, "c", 1, 0.18) == TrialScheduler.STOP  # CONTINUE against a and b alone


def test_the_asha_entries():
    scheduler = _asha()
    _report(scheduler, "a", 1, 0.2)
    _report(scheduler, "b", 1, 0.5)
    (bracket,) = compat.asha_brackets(scheduler)
    assert bracket is scheduler._brackets[0]
    assert compat.bracket_rungs(bracket) is bracket._rungs
    assert compat.bracket_rungs(bracket)[-1] == (1, {"a": -0.2, "b": -0.5})
    assert compat.bracket_cutoff(bracket, {"a": 1.0, "b": 3.0}) == 2.0  # the 50th percentile at factor 2
    assert compat.bracket_cutoff(bracket, {}) is None
    assert compat.asha_num_stopped(scheduler) == 1
    compat.set_asha_num_stopped(scheduler, 5)
    assert scheduler._num_stopped == 5 and compat.asha_num_stopped(scheduler) == 5
    assert compat.asha_metric_sign(scheduler) == -1.0 and compat.asha_metric_sign(_asha("max")) == 1.0
    assert compat.asha_metric_sign(_asha(None)) is None
    assert compat.asha_reduction_factor(scheduler) == 2


def test_a_moved_internal_fails_naming_it():
    scheduler = _asha()
    del scheduler._brackets
    with pytest.raises(compat.RayInternalsMoved, match=r"AsyncHyperBandScheduler\._brackets .*Ray 2\.60\.0"):
        compat.asha_brackets(scheduler)
    assert not issubclass(compat.RayInternalsMoved, AttributeError)  # getattr(x, name, None) must not hide it


# --- OptunaSearch ---------------------------------------------------------------------------------


def _optuna_search(**kwargs: Any) -> OptunaSearch:
    return OptunaSearch(space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)}, metric="val_auc",
                        mode="max", sampler=optuna.samplers.RandomSampler(seed=0), **kwargs)


def test_optuna_search_keeps_its_study_and_trials_where_the_adapter_reads_them():
    assert _attr(OptunaSearch(), "_ot_study") is None  # before Tune gives it a space
    searcher = _optuna_search()
    study, trials = _attr(searcher, "_ot_study"), _attr(searcher, "_ot_trials")
    told = _attr(searcher, "_completed_trials")
    assert isinstance(study, optuna.Study), f"OptunaSearch._ot_study: {study!r} ({VERSIONS})"
    assert trials == {} and told == set(), (trials, told)
    searcher.suggest("t1")
    assert isinstance(trials["t1"], optuna.Trial) and trials["t1"].number == 0, f"OptunaSearch._ot_trials: {trials!r}"
    searcher.on_trial_result("t1", {"val_auc": 0.8, "training_iteration": 1})
    searcher.on_trial_complete("t1", {"val_auc": 0.9, "training_iteration": 2})
    assert told == {"t1"}, f"OptunaSearch._completed_trials: {told!r} ({VERSIONS})"
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].value == 0.9
    # The public parts medtune reads instead of _metric / _mode, and the searcher inside the limiter.
    assert searcher.metric == "val_auc" and searcher.mode == "max"
    assert ConcurrencyLimiter(searcher, max_concurrent=1).searcher is searcher


def test_the_optuna_search_entries():
    searcher = _optuna_search()
    assert compat.optuna_search_study(OptunaSearch()) is None
    assert compat.optuna_search_study(searcher) is searcher._ot_study
    searcher.suggest("t1")
    searcher.suggest("t2")
    assert compat.optuna_search_trials(searcher) is searcher._ot_trials
    assert compat.optuna_search_trials(searcher)["t2"].number == 1
    told = compat.optuna_search_told(searcher)
    told.add("t1")  # a trial marked as told is one OptunaSearch no longer tells
    searcher.on_trial_complete("t1", {"val_auc": 0.9})
    compat.optuna_search_study(searcher).tell(compat.optuna_search_trials(searcher)["t2"], None,
                                              state=TrialState.PRUNED)
    assert [t.state for t in compat.optuna_search_study(searcher).trials] == [TrialState.RUNNING, TrialState.PRUNED]


# --- a restored Tuner -----------------------------------------------------------------------------


class RememberingCallback(tune.Callback):
    """A callback with state (module level: ``tuner.pkl`` must unpickle it)."""

    def __init__(self) -> None:
        self.state: dict | None = None

    def get_state(self) -> dict:
        return {"seen": 1}

    def set_state(self, state: dict) -> None:
        self.state = state


def trainable(config: dict) -> None:
    """The trial function of the Tuner below (never run)."""


def test_a_tuner_keeps_its_callbacks_and_searcher_where_the_adapter_reads_them(tmp_path):
    searcher = ConcurrencyLimiter(_optuna_search(), max_concurrent=1)
    callback = RememberingCallback()
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=1),
                       run_config=tune.RunConfig(name="canary", storage_path=str(tmp_path), callbacks=[callback]))
    internal = _attr(tuner, "_local_tuner")
    assert _attr(internal, "_tune_config").search_alg is searcher, f"TunerInternal._tune_config ({VERSIONS})"
    assert internal.get_run_config().callbacks == [callback], f"TunerInternal.get_run_config() ({VERSIONS})"
    assert compat.restored_tuner_parts(tuner) == ([callback], searcher)

    restored = tune.Tuner.restore(str(tmp_path / "canary"), trainable=trainable)
    callbacks, search_alg = compat.restored_tuner_parts(restored)
    assert [type(c) for c in callbacks] == [RememberingCallback] and callbacks[0] is not callback  # unpickled
    assert isinstance(search_alg, ConcurrencyLimiter) and isinstance(search_alg.searcher, OptunaSearch)
    assert compat.optuna_search_study(search_alg.searcher) is not None


# --- the node medtune starts ----------------------------------------------------------------------


def test_tune_still_copies_credentials_into_trial_runtime_envs_through_the_set_the_adapter_trims(monkeypatch):
    class_cache = importlib.import_module("ray.tune.execution.class_cache")
    assert isinstance(_attr(class_cache, "ENV_VARS_TO_PROPAGATE"), set)
    cache = _attr(class_cache, "_ActorClassCache")
    # _ActorClassCache.get reads the set at call time and builds the actor's runtime env from it.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-secret")
    monkeypatch.setattr(class_cache.ray, "remote", lambda **options: lambda cls: options)
    monkeypatch.setattr(class_cache, "ENV_VARS_TO_PROPAGATE", {"AWS_SECRET_ACCESS_KEY", "RAY_CHDIR_TO_TRIAL_DIR"})
    assert cache().get(RememberingCallback)["runtime_env"]["env_vars"]["AWS_SECRET_ACCESS_KEY"] == "canary-secret"

    assert compat.propagated_env_vars() is class_cache.ENV_VARS_TO_PROPAGATE
    assert compat.stop_propagating_env_vars(["AWS_SECRET_ACCESS_KEY"]) is True
    assert class_cache.ENV_VARS_TO_PROPAGATE == {"RAY_CHDIR_TO_TRIAL_DIR"}
    assert "AWS_SECRET_ACCESS_KEY" not in cache().get(RememberingCallback)["runtime_env"]["env_vars"]


def test_ray_reads_the_cluster_switch_the_adapter_sets_at_node_start():
    from medtune.search.run.ray_node import LOOPBACK_ONLY_VARIABLE

    ray_constants = importlib.import_module("ray._private.ray_constants")
    services = importlib.import_module("ray._private.services")
    assert isinstance(_attr(ray_constants, "ENABLE_RAY_CLUSTER"), bool)
    assert _attr(ray_constants, "ENABLE_RAY_CLUSTERS_ENV_VAR") == LOOPBACK_ONLY_VARIABLE
    assert "ray_constants.ENABLE_RAY_CLUSTER" in inspect.getsource(_attr(services, "get_node_ip_address")), \
        f"ray._private.services.get_node_ip_address no longer reads ENABLE_RAY_CLUSTER at call time ({VERSIONS})"

    was = ray_constants.ENABLE_RAY_CLUSTER
    with compat.ray_cluster_constant(False):
        assert ray_constants.ENABLE_RAY_CLUSTER is False
        if not ray.is_initialized():  # a started node answers with its own address
            assert ipaddress.ip_address(services.get_node_ip_address()).is_loopback
    assert ray_constants.ENABLE_RAY_CLUSTER is was


def test_ray_init_takes_the_system_config_keyword():
    worker = importlib.import_module("ray._private.worker")
    assert 'kwargs.pop("_system_config"' in inspect.getsource(worker), f"ray.init(_system_config=) is gone ({VERSIONS})"
    assert compat.system_config_kwargs({"memory_monitor_refresh_ms": 1000}) == {
        "_system_config": {"memory_monitor_refresh_ms": 1000}}


# --- the trial's logger (trainables/train.py: trainables never import the adapter) -----------------


def _checkpoint_chatter() -> str:
    """``CHECKPOINT_CHATTER`` of trainables/train.py, read without importing torch (this test file stays fast)."""
    tree = ast.parse((REPO / "trainables" / "train.py").read_text())
    values = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
              and [getattr(t, "id", None) for t in node.targets] == ["CHECKPOINT_CHATTER"]
              and isinstance(node.value, ast.Constant)]
    assert len(values) == 1, "trainables/train.py no longer sets CHECKPOINT_CHATTER to a string: update this canary"
    return values[0]


def test_the_checkpoint_chatter_is_logged_where_train_py_silences_it():
    CHECKPOINT_CHATTER = _checkpoint_chatter()
    try:
        module = importlib.import_module(CHECKPOINT_CHATTER)
    except ImportError:
        pytest.fail(f"trainables/train.py CHECKPOINT_CHATTER = {CHECKPOINT_CHATTER!r} is no module ({VERSIONS})")
    assert isinstance(_attr(module, "logger"), logging.Logger) and module.logger.name == CHECKPOINT_CHATTER
    source = inspect.getsource(_attr(_attr(module, "StorageContext"), "persist_current_checkpoint"))
    assert "Checkpoint successfully created" in source, \
        f"{CHECKPOINT_CHATTER} no longer logs the per-checkpoint line trainables/train.py silences ({VERSIONS})"
    trainable_module = importlib.import_module("ray.tune.trainable.trainable")
    assert _attr(trainable_module, "StorageContext") is module.StorageContext  # Tune's trials persist through it


# --- internals that older tests read directly (they fail with a plain AttributeError otherwise) ----


def test_internals_other_tests_read():
    """tests/search/run/test_asha_rungs.py (_trial_info), tests/test_small_data.py (_time_attr, _max_t)
    and tests/trainables/test_fold_racing.py (_metric) read these of ASHA; test_searcher.py reads
    OptunaSearch's _ot_study / _ot_trials, checked above."""
    scheduler = _asha()
    for name in ("_trial_info", "_time_attr", "_max_t", "_metric"):
        _attr(scheduler, name)
    assert scheduler._time_attr == "epoch" and scheduler._max_t == 8 and scheduler._metric == "val_loss"


# --- the adapter is the only place ----------------------------------------------------------------

#: Private names of Ray and Optuna objects medtune has used; only the adapter may read them.
PRIVATE_NAMES = {"_brackets", "_rungs", "_num_stopped", "_metric_op", "_reduction_factor", "_ot_study", "_ot_trials",
                 "_completed_trials", "_local_tuner", "_remote_tuner", "_tune_config", "_metric", "_mode",
                 "_trial_info", "_time_attr", "_max_t", "ENV_VARS_TO_PROPAGATE", "ENABLE_RAY_CLUSTER"}
ADAPTER = REPO / "search" / "run" / "_ray_compat.py"
#: trainables/train.py names the one private logger (its comment says why it cannot use the adapter).
ALLOWED_STRINGS = {(REPO / "trainables" / "train.py", "ray.train._internal.storage")}


def test_no_other_module_reaches_into_ray():
    private_module = re.compile(r"^(ray|optuna)(\.\w+)*\._\w+")
    found = []
    for folder in ("medtune", "search", "trainables"):
        for path in (REPO / folder).rglob("*.py"):
            if path == ADAPTER:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
                if isinstance(node, ast.ImportFrom) and node.module in ("ray", "optuna"):
                    names += [f"{node.module}.{a.name}" for a in node.names]
                found += [(path, n) for n in names if private_module.match(n)]
                if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
                    found.append((path, node.attr))
                if isinstance(node, ast.keyword) and node.arg == "_system_config":
                    found.append((path, node.arg))
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and (path, node.value) not in \
                        ALLOWED_STRINGS and (private_module.match(node.value) or node.value in PRIVATE_NAMES):
                    found.append((path, node.value))  # a private module's name, or getattr(x, "_name")
    assert not found, "Ray/Optuna internals outside search/run/_ray_compat.py: " + ", ".join(
        f"{path.relative_to(REPO)}: {name}" for path, name in found)
