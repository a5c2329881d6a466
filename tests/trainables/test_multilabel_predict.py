"""``medtune predict`` on a multi-label bundle: each finding's sigmoid probability against its own
stored threshold, a given threshold for every finding, and a rule it cannot choose refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtune.trainables.config import TrialConfig
from medtune.trainables.factories import build_trial_model
from medtune.trainables.inference import Predictor
from medtune.trainables.model_bundle import read_bundle, write_bundle
from medtune.trainables.prediction_rule import UNSCORED_THRESHOLD, OperatingPointError, decision_rule

CONFIG = {"architecture": "simple_cnn", "pretrained": "none", "image_size": 28, "batch_size": 16,
          "channels_last": False, "data_source": "synthetic"}
FINDINGS = ("effusion", "mass", "hernia")


def _bundle(tmp_path):
    torch.manual_seed(0)
    model = build_trial_model(TrialConfig.from_dict(CONFIG), len(FINDINGS)).eval()
    point = {"rule": "balanced-1se", "multilabel": True, "thresholds": {"effusion": 0.2, "mass": 0.9}}  # no hernia
    return read_bundle(write_bundle(tmp_path / "model", model, CONFIG, FINDINGS, operating_point=point)), model


def test_each_finding_is_decided_at_its_own_threshold_on_its_sigmoid(tmp_path):
    bundle, model = _bundle(tmp_path)
    assert bundle.multilabel and not bundle.binary
    rule = decision_rule(bundle)
    assert rule.thresholds == (0.2, 0.9, UNSCORED_THRESHOLD) and rule.rule == "balanced-1se"
    images = np.random.default_rng(0).integers(0, 255, (5, 28, 28), dtype=np.uint8)
    got = Predictor(bundle, device=torch.device("cpu")).predict_arrays(images)
    probs = got.probabilities
    assert probs.shape == (5, 3) and not np.allclose(probs.sum(axis=1), 1.0)  # sigmoids, not a softmax
    columns = got.columns()
    assert list(columns)[:3] == ["prob_effusion", "prob_mass", "prob_hernia"]
    assert np.array_equal(columns["decision_mass"], (probs[:, 1] >= 0.9).astype(int))
    assert columns["findings"][0] == ";".join(n for n, p, t in zip(FINDINGS, probs[0], (0.2, 0.9, 0.5)) if p >= t)
    assert "predicted_class" not in columns


def test_a_given_threshold_applies_to_every_finding_and_a_rule_is_refused(tmp_path):
    bundle, _ = _bundle(tmp_path)
    assert decision_rule(bundle, threshold=0.3).thresholds == (0.3, 0.3, 0.3)
    with pytest.raises(OperatingPointError, match="chosen per finding by medtune final"):
        decision_rule(bundle, "sensitivity:0.9")
