"""What Optuna is told about each trial: ASHA-stopped trials are PRUNED, not short COMPLETE ones.

TPE must not learn "one epoch is bad" from trials ASHA cut short; it gets their per-epoch values
as intermediate values and the PRUNED state, like Optuna's own pruners give it. Full-budget trials
are COMPLETE with their best epoch's value (what the best checkpoint is chosen by), failed ones
FAIL. The searcher's state (Optuna's study) survives a save/restore, as ``medtune resume`` needs.
"""

from __future__ import annotations

from optuna.trial import TrialState

from medtune.search.run.searcher import build_searcher
from medtune.search.run.trial_values import trial_fixed_values
from medtune.search.spec.sweep_spec import validate_spec

MAX_T = 3


def _searcher(metric: str = "val_auc", mode: str = "max"):
    spec = validate_spec({
        "name": "searcher-test",
        "data": {"source": "pneumoniamnist"},
        "metric": {"name": metric, "mode": mode},
        "search": {"num_samples": 8, "sampler": {"name": "tpe", "seed": 0},
                   "scheduler": {"name": "asha", "max_t": MAX_T, "grace_period": 1, "reduction_factor": 3}},
        "space": {"architecture": {"choice": ["simple_cnn", "resnet18"]}, "frozen_depth": {"int": [0, 5]},
                  "lr": {"loguniform": [1e-4, 1e-2]}},
    }, source="searcher.yaml")
    return build_searcher(spec, trial_fixed_values(spec))


def _run(searcher, trial_id: str, values: list[float], error: bool = False, scheduler_stopped: bool = True) -> dict:
    """Tune's calls: when the scheduler stops a trial (ASHA at a rung, and at max_t), the result it
    stopped on goes to ``on_trial_complete`` only; a trial that returns by itself had every result
    through ``on_trial_result`` first."""
    config = searcher.suggest(trial_id)
    results = [{searcher.metric: value, "epoch": epoch, "training_iteration": epoch}
               for epoch, value in enumerate(values, start=1)]
    for result in results[:-1] if scheduler_stopped and not error else results:
        searcher.on_trial_result(trial_id, result)
    searcher.on_trial_complete(trial_id, results[-1] if results else None, error=error)
    return config


def _study_trial(searcher, trial_id: str):
    number = searcher._ot_trials[trial_id].number
    return searcher._ot_study.trials[number]


def test_asha_stopped_trials_are_pruned_and_full_ones_complete_with_their_best_epoch():
    searcher = _searcher()
    _run(searcher, "stopped", [0.91])
    _run(searcher, "full", [0.90, 0.97, 0.95])
    _run(searcher, "failed", [0.80], error=True)

    _run(searcher, "returned", [0.90, 0.92, 0.91], scheduler_stopped=False)

    stopped, full, failed, returned = (_study_trial(searcher, t) for t in ("stopped", "full", "failed", "returned"))
    assert stopped.state == TrialState.PRUNED and stopped.intermediate_values == {1: 0.91}
    assert full.state == TrialState.COMPLETE and full.value == 0.97  # best epoch, not the last (0.95)
    assert full.intermediate_values == {1: 0.90, 2: 0.97, 3: 0.95}  # the epoch ASHA stopped it on included
    assert returned.state == TrialState.COMPLETE and returned.value == 0.92
    assert failed.state == TrialState.FAIL


def test_the_epoch_the_scheduler_stops_on_counts_for_the_best_value():
    searcher = _searcher()
    _run(searcher, "best-last", [0.80, 0.85, 0.99])  # its best is the result ASHA stopped it on (max_t)
    trial = _study_trial(searcher, "best-last")
    assert trial.state == TrialState.COMPLETE and trial.value == 0.99


def test_a_min_objective_is_told_with_its_smallest_epoch():
    searcher = _searcher("val_loss", "min")
    _run(searcher, "full", [0.40, 0.25, 0.30])  # best epoch 2, not the last
    _run(searcher, "stopped", [0.10])
    full, stopped = _study_trial(searcher, "full"), _study_trial(searcher, "stopped")
    assert full.state == TrialState.COMPLETE and full.value == 0.25
    assert stopped.state == TrialState.PRUNED and stopped.intermediate_values == {1: 0.10}


def test_frozen_depth_is_clipped_to_the_sampled_architecture():
    from medtune.trainables.models import get_architecture

    searcher = _searcher()
    for i in range(12):
        config = _run(searcher, f"t{i}", [0.9] * MAX_T)
        assert config["frozen_depth"] <= get_architecture(config["architecture"]).num_stages


def test_saved_searcher_restores_what_it_learned(tmp_path):
    searcher = _searcher()
    _run(searcher, "a", [0.9, 0.95, 0.96])
    _run(searcher, "b", [0.8])
    searcher.save(str(tmp_path / "searcher.pkl"))

    restored = _searcher()
    restored.restore(str(tmp_path / "searcher.pkl"))
    states = sorted(t.state.name for t in restored._ot_study.trials)
    assert states == ["COMPLETE", "PRUNED"]
    assert restored._ot_study.best_value == 0.96
    _run(restored, "c", [0.9, 0.9, 0.92])  # and it keeps going
    assert len(restored._ot_study.trials) == 3
