"""ASHA's rungs survive ``medtune resume``: the callback's state fills a fresh scheduler's rungs.

The end-to-end check (a driver SIGKILLed after the first rung filled, then resumed) is in
tests/search/run/test_resume.py, which reads the ``asha_rungs.json`` the resumed sweep writes.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from medtune.search.run.asha_rungs import AshaRungs, rungs_document


def _scheduler() -> ASHAScheduler:
    scheduler = ASHAScheduler(time_attr="epoch", max_t=8, grace_period=1, reduction_factor=2)
    scheduler.set_search_properties("val_loss", "min")
    return scheduler


def _report(scheduler: ASHAScheduler, trial_id: str, epoch: int, loss: float) -> str:
    trial = SimpleNamespace(trial_id=trial_id)
    if trial_id not in scheduler._trial_info:
        scheduler.on_trial_add(None, trial)
    return scheduler.on_trial_result(None, trial, {"epoch": epoch, "val_loss": loss})


def test_a_restored_scheduler_continues_the_cutoffs_it_had():
    before = _scheduler()
    for trial_id, loss in (("a", 0.2), ("b", 0.3), ("c", 0.4), ("d", 0.5)):
        _report(before, trial_id, 1, loss)
    state = json.loads(json.dumps(AshaRungs(before).get_state()))  # plain numbers only

    fresh, restored = _scheduler(), _scheduler()
    AshaRungs(restored).set_state(state)
    # A worse trial after the resume: a fresh scheduler lets it pass the first milestone unopposed,
    # the restored one compares it with the four values recorded before the interruption.
    assert _report(fresh, "e", 1, 0.45) == TrialScheduler.CONTINUE
    assert _report(restored, "e", 1, 0.45) == TrialScheduler.STOP
    assert _report(restored, "f", 1, 0.1) == TrialScheduler.CONTINUE
    assert set(restored._brackets[0]._rungs[-1][1]) == {"a", "b", "c", "d", "e", "f"}


def test_state_from_other_milestones_fills_nothing():
    before = _scheduler()
    _report(before, "a", 1, 0.2)
    other = ASHAScheduler(time_attr="epoch", max_t=9, grace_period=3, reduction_factor=3)
    other.set_search_properties("val_loss", "min")
    AshaRungs(other).set_state(AshaRungs(before).get_state())
    assert all(not recorded for _, recorded in other._brackets[0]._rungs)


def test_the_rungs_document_is_in_the_metrics_own_sign_and_ascending():
    scheduler = _scheduler()
    for trial_id, loss in (("a", 0.2), ("b", 0.4)):
        _report(scheduler, trial_id, 1, loss)
    doc = rungs_document(scheduler, "val_loss", "epoch")
    first = doc["brackets"][0]["rungs"][0]
    assert first["milestone"] == 1 and first["trials"] == {"a": 0.2, "b": 0.4}
    assert 0.2 < first["cutoff"] < 0.4  # ASHA's percentile, on losses rather than negated losses
    assert [r["milestone"] for r in doc["brackets"][0]["rungs"]] == [1, 2, 4, 8]
