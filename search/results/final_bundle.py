"""``model/`` of ``medtune final``'s output folder: the best model as a bundle that predicts as the report decided.

The bundle (``medtune.trainables.model_bundle``) holds the best member's weights and trial config,
the class names (positive last), and the operating point of its report: two classes, the rule,
the threshold on the calibrated scale and on the raw one, the model's own balanced point (the
anchor of ``balanced-1se``) and the Platt map, plus the calibrated held-out scores and labels the
threshold was chosen on (``heldout.npz``), so ``medtune predict --operating-point sensitivity:0.90``
chooses another threshold on the very scores ``medtune final`` used. More classes: the rule, the
training class shares and whether the loss was class-weighted. Multi-label findings: the rule and
each finding's threshold on the model's own sigmoid scores.

An ensemble's report decides on the mean of its members' probabilities; the bundle is the best
model alone (as the logged MLflow model always was), at the best model's operating point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medtune.search.results.final_members import FinalMember
from medtune.search.spec.sweep_spec import SweepSpec

#: The bundle's folder inside the output folder.
MODEL_FOLDER = "model"
#: Provenance keys of a best_config.yaml that the bundle keeps (where the model came from).
PROVENANCE_KEYS = ("sweep", "experiment", "parent_run_id", "trial_id", "space_hash")


def bundle_operating_point(report: Any) -> dict[str, Any]:
    """The best model's operating point, as the bundle stores it (see ``ModelBundle``)."""
    if hasattr(report, "per_finding"):  # multi-label findings: a threshold per finding
        return {"rule": str(report.threshold_rule), "multilabel": True,
                "thresholds": {name: float(t) for name, t in report.thresholds.items()}}
    if hasattr(report, "per_class"):  # more than two classes
        return {"rule": str(report.threshold_rule), "class_priors": report.class_priors,
                "class_weighted": bool(report.class_weighted)}
    calibration = report.calibration_map if isinstance(report.calibration_map, dict) else None
    return {"rule": str(report.threshold_rule), "threshold": float(report.threshold),
            "raw_threshold": float(report.raw_threshold), "anchor": float(report.anchor), "calibration": calibration}


def write_final_bundle(out: Path, member: FinalMember, report: Any, data: Any, spec: SweepSpec,
                       threshold_source: str) -> Path:
    """Write ``out/model/``: ``member``'s model at ``report``'s operating point, with ``data``'s class
    names and image channels; returns the folder."""
    import numpy as np

    from medtune.trainables.model_bundle import HeldOut, write_bundle

    binary = member.test_scores.ndim == 1
    heldout = HeldOut(member.val_scores, member.val_labels, member.raw_val_scores) if binary else None
    provenance = {key: spec.provenance.get(key) for key in PROVENANCE_KEYS if spec.provenance.get(key) is not None}
    provenance.update(name=spec.name, threshold_source=threshold_source)
    images = np.asarray(data.test.images)
    return write_bundle(out / MODEL_FOLDER, member.model, member.config, tuple(data.class_names), kind="final",
                        operating_point=bundle_operating_point(report), heldout=heldout, provenance=provenance,
                        image_channels=int(images.shape[-1]) if images.ndim == 4 else 1)
