"""The sweep's and the final run's notes (MLflow run descriptions) and their links."""

from __future__ import annotations

from types import SimpleNamespace

from medtune.search.tracking.run_notes import (
    FINALS_HEADING,
    MAX_NOTE_CHARS,
    NO_FINAL_YET,
    artifact_link,
    final_line,
    run_link,
    sweep_note,
    with_final,
)


def _entry(trial_id: str, value: float, epoch: int, outcome: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, best_value=value, best_epoch=epoch, outcome=outcome)


class _Client:
    def search_runs(self, experiment_ids, max_results, filter_string):
        assert "tags.`medtune.trial_id` = 'b'" in filter_string and "'P'" in filter_string
        return [SimpleNamespace(info=SimpleNamespace(run_id="CHILD", run_name="02 resnet18 fd1 done"))]


def _spec() -> SimpleNamespace:
    return SimpleNamespace(metric=SimpleNamespace(name="val_auc", mode="max"), space={"lr": None, "dropout": None},
                           search=SimpleNamespace(scheduler=SimpleNamespace(name="asha")))


def test_the_sweep_note_links_the_best_trial_and_only_artifacts_that_exist():
    entries = [_entry("b", 0.99, 4, "completed"), _entry("a", 0.9, 1, "stopped_early"), _entry("c", 0, 0, "failed")]
    note = sweep_note(_Client(), "7", "P", "demo-1", _spec(), entries,
                      ["leaderboard.csv", "best_config.yaml", "plots/learning_curves.png"])
    assert "3 trials" in note and "1 completed, 1 stopped early by ASHA, 1 failed" in note
    assert f"[02 resnet18 fd1 done]({run_link('7', 'CHILD')})" in note and "0.9900 at epoch 4" in note
    assert f"({artifact_link('7', 'P', 'best_config.yaml')})" in note
    assert "plots/learning_curves.png" in note and "param_importances" not in note  # not drawn: not linked
    assert note.endswith(f"{FINALS_HEADING}\n{NO_FINAL_YET}")
    assert run_link("7", "CHILD") == "#/experiments/7/runs/CHILD"  # MLflow UI's own hash route
    assert artifact_link("7", "P", "x/y.png") == "#/experiments/7/runs/P/artifacts/x/y.png"


def test_final_runs_are_appended_in_order_and_the_placeholder_goes():
    report = SimpleNamespace(metrics={"roc_auc": 0.96}, intervals={"roc_auc": (0.94, 0.98)})
    first = final_line("7", "F1", "final demo-1 resnet18 fd1", report)
    assert "[final demo-1 resnet18 fd1](#/experiments/7/runs/F1): test AUC 0.9600 (95% CI 0.9400-0.9800)" in first
    assert "(#/experiments/7/runs/F1/artifacts/report/report.html)" in first
    note = f"**Sweep**\n\n{FINALS_HEADING}\n{NO_FINAL_YET}"
    once = with_final(note, first)
    twice = with_final(once, final_line("7", "F2", "final again", report))
    assert NO_FINAL_YET not in once and once.endswith(first)
    assert twice.index("F1") < twice.index("F2") and twice.count(FINALS_HEADING) == 1
    assert with_final("**old note**", first) == f"**old note**\n\n{FINALS_HEADING}\n{first}"


def test_a_long_list_of_final_runs_keeps_the_note_under_mlflows_tag_limit():
    report = SimpleNamespace(metrics={"roc_auc": 0.9}, intervals={"roc_auc": (0.8, 0.95)})
    note = f"**Sweep**\n\n{FINALS_HEADING}\n{NO_FINAL_YET}"
    for i in range(100):
        note = with_final(note, final_line("7", f"F{i}", f"final {i}", report))
    assert len(note) <= MAX_NOTE_CHARS and note.startswith("**Sweep**") and "F99" in note \
        and "(#/experiments/7/runs/F0)" not in note
