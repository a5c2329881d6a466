"""A multi-label trial's per-finding AUCs (``val_auc_<finding>``) reach MLflow beside the table's metrics."""

from __future__ import annotations

from medtune.search.tracking.trial_runs import metric_batch


def test_each_findings_auc_is_logged_and_bookkeeping_is_not():
    result = {"val_auc": 0.8, "val_auc_sem": 0.01, "val_auc_effusion": 0.9, "val_auc_mass_sem": 0.02,
              "val_auc_nodule": float("nan"), "epoch": 3, "trial_id": "x"}
    names = {m.key: m.value for m in metric_batch(result, step=3)}
    assert names == {"val_auc": 0.8, "val_auc_sem": 0.01, "val_auc_effusion": 0.9, "val_auc_mass_sem": 0.02}
