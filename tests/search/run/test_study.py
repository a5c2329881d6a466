"""The sweep's Optuna study: where it is stored, what TPE is told, and the plots drawn from it.

The real tool reads it in tests/search/run/test_sweep_e2e.py (``optuna-dashboard`` on the sweep's journal).
"""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from medtune.search.results.plots import optuna_plots
from medtune.search.run.searcher import build_searcher
from medtune.search.run.study import JOURNAL_NAME, open_storage, searcher_study, study_location
from medtune.search.spec.sweep_spec import SpecError, validate_spec

RAW = {
    "name": "study", "data": {"source": "pneumoniamnist"}, "metric": {"name": "val_auc", "mode": "max"},
    "search": {"num_samples": 6, "scheduler": {"name": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2}},
    "space": {"lr": {"loguniform": [1e-4, 1e-2]}, "dropout": {"uniform": [0.1, 0.5]},
              "batch_size": {"choice": [32, 64]}},
    "fixed": {"architecture": "simple_cnn", "pretrained": "none"},
}


@pytest.mark.parametrize("value, ok", [("sqlite:///optuna.db", True), ("postgresql://db/optuna", True),
                                       ("runs/optuna.journal", True), ("memory", True),
                                       ("s3://bucket/optuna.journal", False),
                                       ("postgresql://optuna:secret@db/optuna", False)])
def test_the_storage_setting_is_checked_before_anything_starts(value, ok):
    raw = {**RAW, "search": {**RAW["search"], "sampler": {"storage": value}}}
    if ok:
        assert validate_spec(raw).search.sampler.storage == value
    else:
        with pytest.raises(SpecError) as err:
            validate_spec(raw)
        assert [key for key, _ in err.value.problems] == ["search.sampler.storage"]
        assert "secret" not in str(err.value)


def test_the_default_study_is_a_journal_in_a_local_run_folder(tmp_path):
    assert study_location(None, str(tmp_path / "run")) == str(tmp_path / "run" / JOURNAL_NAME)
    assert study_location(None, "s3://bucket/sweeps/run") is None  # no append-only file on S3
    assert study_location("memory", str(tmp_path)) is None
    assert study_location("sqlite:///o.db", str(tmp_path)).startswith("sqlite:////")  # absolute, as trials see it


def _run_trials(searcher, plan):
    """Tune's calls for each trial: suggest, each result but the one ASHA stopped it on, then complete
    with that one (epochs_total: its plan)."""
    for trial_id, values in plan:
        assert searcher.suggest(trial_id) is not None
        results = [{"val_auc": value, "epoch": epoch, "epochs_total": 4, "training_iteration": epoch}
                   for epoch, value in enumerate(values, start=1)]
        for result in results[:-1]:
            searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, results[-1])


def test_the_journal_holds_what_tpe_was_told(tmp_path):
    location = study_location(None, str(tmp_path / "run"))
    searcher = build_searcher(validate_spec(RAW), {"architecture": "simple_cnn"}, location, study_name="run")
    _run_trials(searcher, [("a", [0.6]), ("b", [0.7, 0.9, 0.8, 0.85]), ("c", [0.65, 0.66]),
                           ("d", [0.8, 0.82, 0.9, 0.95])])

    study = optuna.load_study(study_name="run", storage=open_storage(location))  # a reader of its own
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.COMPLETE, TrialState.PRUNED,
                                               TrialState.COMPLETE]
    assert [t.value for t in study.trials if t.state == TrialState.COMPLETE] == [0.9, 0.95]  # best, not last
    assert study.trials[2].intermediate_values == {1: 0.65, 2: 0.66}
    assert searcher_study(searcher).study_name == "run"


def test_the_plots_are_drawn_from_the_complete_trials_of_the_study(tmp_path):
    searcher = build_searcher(validate_spec(RAW), {"architecture": "simple_cnn"})
    _run_trials(searcher, [("a", [0.6]), ("b", [0.7, 0.9, 0.8, 0.85]), ("c", [0.8, 0.81, 0.83, 0.84]),
                           ("d", [0.8, 0.82, 0.9, 0.95])])
    paths = optuna_plots(searcher.study, validate_spec(RAW), tmp_path)
    assert {p.name for p in paths} == {"optimization_history.png", "parallel_coordinates.png", "param_importances.png"}
    assert all(p.stat().st_size > 5000 for p in paths)
