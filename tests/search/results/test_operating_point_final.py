"""``medtune final`` calibrates before it decides: the steps after training, on synthetic member scores.

The failure this guards against: a class-weighted breast-ultrasound model whose final scores had
collapsed toward 0; ``--threshold auto`` chose 0.5 and missed half the malignant cases. Here the
final run's own steps (``final_calibration``, ``final_reports``, ``final_artifacts``, the MLflow
tags and model metadata) run on real ``FinalMember`` objects whose scores are drawn that way; the
CLI and API tests check that the rule is named ``--operating-point`` (``--threshold`` still works)
and that a bad rule is refused before anything trains.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import medtune
from medtune.search.results.final_artifacts import write_artifacts
from medtune.search.results.final_calibration import calibrate_members
from medtune.search.results.final_members import FinalMember
from medtune.search.results.final_reports import build_reports, check_threshold_applies
from medtune.search.spec.sweep_spec import SpecError

#: Its fixture calibrates and reports several members with bootstrap intervals: out of the fast loop.
pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[3] / "spaces" / "demo.yaml"
CLASSES = ("benign", "malignant")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _collapsed(rng: np.random.Generator, labels: np.ndarray, shift: float = 0.0) -> np.ndarray:
    """Scores squeezed toward 0: negatives around 0.001, positives around 0.01 (a float32 softmax)."""
    return _sigmoid(rng.normal(np.where(labels == 1, -4.5, -7.0) + shift, 1.0)).astype(np.float32)


@pytest.fixture(scope="module")
def collapsed():
    """Two members (an ensemble) with collapsed scores, calibrated by the final run's step."""
    rng = np.random.default_rng(26)
    val_labels = (rng.random(300) < 0.3).astype(np.int64)
    test_labels = (rng.random(500) < 0.3).astype(np.int64)
    raw = [FinalMember(config={"architecture": "simple_cnn", "class_weighted": True}, model=None,
                       val_scores=_collapsed(rng, val_labels, shift), test_scores=_collapsed(rng, test_labels, shift),
                       val_labels=val_labels, epochs=3) for shift in (0.0, 0.5)]
    data = SimpleNamespace(train=SimpleNamespace(labels=np.zeros(600, dtype=np.int64)),
                           test=SimpleNamespace(labels=test_labels), class_names=CLASSES)
    members = calibrate_members(raw)
    reports, source = build_reports(members, data, "auto", "held-out 0.5 of val (300 images)")
    return SimpleNamespace(raw=raw, members=members, data=data, reports=reports, source=source)


def test_members_keep_their_raw_scores_beside_the_calibrated_ones(collapsed):
    for raw, member in zip(collapsed.raw, collapsed.members):
        assert member.calibration.method == "platt" and member.calibration.fitted_on == 300
        assert np.array_equal(member.raw_test_scores, raw.test_scores)
        assert np.allclose(member.test_scores, member.calibration.apply(raw.test_scores))
        assert np.allclose(member.val_scores, member.calibration.apply(raw.val_scores))
    assert calibrate_members(collapsed.members)[0] is collapsed.members[0]  # never calibrated twice


def test_auto_on_collapsed_scores_keeps_both_rates_where_raw_one_half_misses_the_positives(collapsed):
    best = collapsed.reports[0]
    assert collapsed.source == "held-out 0.5 of val (300 images); rule auto: balanced-1se"
    assert best.threshold_rule == "balanced-1se"
    # The class-weighted model's own point (raw 0.5) is far off on held-out data: the threshold left it.
    assert best.raw_threshold < 0.05 and best.threshold == best.by_rule["balanced-1se"]["threshold"]
    assert min(best.metrics["sensitivity"], best.metrics["specificity"]) > 0.75
    assert best.metrics_at_half["sensitivity"] < 0.05  # the raw scores at 0.5: nearly every image negative
    low, high = best.intervals["balanced_accuracy"]
    assert low <= best.metrics["balanced_accuracy"] <= high and low > 0.75
    assert best.ece["after"] < best.ece["before"] and best.brier["after"] < best.brier["before"]
    calibration = collapsed.members[0].calibration
    assert best.raw_threshold == pytest.approx(calibration.raw_threshold(best.threshold))
    assert best.raw_threshold < 0.05
    raw_decisions = collapsed.members[0].raw_test_scores.astype(np.float64) >= best.raw_threshold
    assert np.array_equal(raw_decisions, collapsed.members[0].test_scores >= best.threshold)


def test_the_ensemble_averages_calibrated_probabilities_and_has_no_single_raw_threshold(collapsed):
    ensemble = collapsed.reports[1]
    mean = np.mean([m.test_scores for m in collapsed.members], axis=0)
    labels = collapsed.data.test.labels
    assert ensemble.confusion["tp"] == int(((mean >= ensemble.threshold) & (labels == 1)).sum())
    assert np.isnan(ensemble.raw_threshold)
    assert ensemble.calibration_map == [m.calibration.to_dict() for m in collapsed.members]


def test_by_rule_has_a_row_for_every_reported_rule(collapsed):
    by_rule = collapsed.reports[0].by_rule
    assert list(by_rule) == ["balanced-1se", "youden-mid", "youden", "balanced", "prior", "sensitivity:0.90",
                             "specificity:0.90", "cost:FN/FP=5"]
    assert by_rule[collapsed.reports[0].threshold_rule]["threshold"] == collapsed.reports[0].threshold
    assert by_rule["prior"]["threshold"] == 0.5 and by_rule["cost:FN/FP=5"]["threshold"] == pytest.approx(1 / 6)
    val = collapsed.members[0]
    sens = ((val.val_scores >= by_rule["sensitivity:0.90"]["threshold"]) & (val.val_labels == 1)).sum()
    assert sens / (val.val_labels == 1).sum() >= 0.9  # the target is met on the held-out images
    chosen, _ = build_reports(collapsed.members, collapsed.data, "specificity:0.95", "x")
    assert chosen[0].threshold_rule == "specificity:0.95" and "specificity:0.95" in chosen[0].by_rule


def test_the_output_folder_records_calibration_and_both_scores(collapsed, tmp_path):
    spec = SimpleNamespace(name="breast", provenance={}, search=SimpleNamespace(
        scheduler=SimpleNamespace(unit="epochs"), cv=None))
    write_artifacts(tmp_path, spec, collapsed.members, collapsed.reports, collapsed.data, 3, 1.0, collapsed.source)
    summary = json.loads((tmp_path / "report.json").read_text())
    best = summary["reports"][0]
    assert best["calibration_map"] == collapsed.members[0].calibration.to_dict()
    assert best["raw_threshold"] == collapsed.reports[0].raw_threshold
    assert set(best["ece"]) == set(best["brier"]) == {"before", "after"}
    assert "balanced_accuracy" in best["metrics"]
    assert summary["calibration"]["map"]["method"] == "platt"
    assert summary["calibration"]["before"]["ece"] > summary["calibration"]["after"]["ece"]
    assert summary["threshold_source"].endswith("rule auto: balanced-1se")

    with open(tmp_path / "test_predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["label", "best_model_score", "best_model_raw_score", "member1_score", "member1_raw_score"]
    labels = np.array([int(r["label"]) for r in rows])
    scores = np.array([float(r["best_model_score"]) for r in rows])
    raw = np.array([float(r["best_model_raw_score"]) for r in rows])
    assert np.array_equal(raw, collapsed.members[0].raw_test_scores.astype(np.float64))
    predicted = scores >= best["threshold"]  # the report's numbers, recomputed from the calibrated column
    assert (predicted == labels).mean() == pytest.approx(best["metrics"]["accuracy"]["value"])
    assert predicted[labels == 1].mean() == pytest.approx(best["metrics"]["sensitivity"]["value"])

    text = (tmp_path / "report.md").read_text()
    assert "ECE on test, before -> after calibration" in text and "Platt scaling" in text
    assert "| threshold on the uncalibrated score |" in text and "sensitivity:0.90" in text

    from medtune.search.results.report_html import render_report_html

    page = render_report_html(tmp_path, summary, "t")
    assert "ECE on test, before → after" in page and "Platt scaling" in page and "balanced_accuracy" in page


def test_the_operating_point_travels_with_the_model_as_json_numbers(collapsed):
    from medtune.search.tracking.final_run import model_metadata, operating_point_tags

    best = collapsed.reports[0]
    metadata = model_metadata(best, CLASSES)["medtune_operating_point"]
    json.dumps(metadata, allow_nan=False)  # JSON-able, no NaN
    assert metadata["rule"] == "balanced-1se" and metadata["positive_class"] == "malignant"
    assert metadata["threshold"] == best.threshold and metadata["raw_threshold"] == best.raw_threshold
    cal = metadata["calibration"]
    assert cal == collapsed.members[0].calibration.to_dict()
    z = metadata["raw_logit_threshold"]
    assert _sigmoid(cal["slope"] * z + cal["intercept"]) == pytest.approx(best.threshold)
    assert _sigmoid(z) == pytest.approx(best.raw_threshold)
    tags = operating_point_tags(best)
    assert tags["medtune.operating_point"] == "balanced-1se"
    assert float(tags["medtune.threshold"]) == best.threshold
    assert float(tags["medtune.raw_threshold"]) == best.raw_threshold
    assert json.loads(tags["medtune.calibration"]) == cal


@pytest.mark.slow  # trains a final model
def test_more_than_two_classes_read_the_argmax_at_an_operating_point():
    from medtune.search.tracking.final_run import model_metadata

    rng = np.random.default_rng(3)
    labels = rng.choice(3, size=400, p=[0.7, 0.2, 0.1])
    probs = rng.dirichlet(np.ones(3), size=400)
    probs[np.arange(400), labels] += 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    members = [FinalMember(config={"class_weighted": True}, model=None, val_scores=probs, test_scores=probs)]
    data = SimpleNamespace(train=SimpleNamespace(labels=labels), test=SimpleNamespace(labels=labels),
                           class_names=("a", "b", "c"))
    assert calibrate_members(members)[0] is members[0]  # nothing to calibrate
    reports, source = build_reports(members, data, "auto", "none")
    assert reports[0].threshold_rule == "balanced" and "rule auto: balanced" in source
    assert set(reports[0].by_rule) == {"balanced", "prior"}
    prior, _ = build_reports(members, data, "prior", "none")
    assert prior[0].threshold_rule == "prior"
    assert prior[0].metrics["accuracy"] == reports[0].by_rule["prior"]["accuracy"]
    metadata = model_metadata(prior[0], ("a", "b", "c"))["medtune_operating_point"]
    json.dumps(metadata, allow_nan=False)
    assert metadata["log_probability_offsets"] == pytest.approx(list(np.log(reports[0].class_priors)))
    for rule in ("auto", "balanced", "prior"):
        check_threshold_applies(rule, ("a", "b", "c"), "s.yaml")
    with pytest.raises(SpecError) as err:
        check_threshold_applies("sensitivity:0.9", ("a", "b", "c"), "s.yaml")
    assert "- --operating-point: 'sensitivity:0.9': a threshold applies to two-class tasks" in str(err.value)


# --- the command line and the API ------------------------------------------------------------------


def test_the_cli_takes_operating_point_and_its_old_name_threshold():
    from medtune.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["final", "b.yaml"]).operating_point == "auto"
    assert parser.parse_args(["final", "b.yaml", "--operating-point", "sensitivity:0.9"]).operating_point == \
        "sensitivity:0.9"
    assert parser.parse_args(["final", "b.yaml", "--threshold", "0.3"]).operating_point == "0.3"
    final = next(a for a in parser._subparsers._group_actions[0].choices["final"]._actions
                 if a.dest == "operating_point")
    assert final.option_strings == ["--operating-point", "--threshold"]
    assert "cost:FN/FP=R" in final.help and "old name" in final.help


@pytest.mark.parametrize("option", ["--operating-point", "--threshold"])
def test_a_bad_rule_exits_2_naming_the_option_and_the_accepted_forms(option, capsys):
    from medtune.cli import EXIT_BAD_INPUT, main

    code = main(["final", str(DEMO), "--set", "space={}", "--set", "mlflow.enabled=false", option, "cost:5"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert "- --operating-point: unknown threshold rule 'cost:5'" in err
    assert "sensitivity:T" in err and "cost:FN/FP=R" in err and "--threshold is the same option's old name" in err


def test_the_api_takes_operating_point_and_threshold_as_its_alias():
    overrides = ["space={}", "mlflow.enabled=false"]
    with pytest.raises(SpecError, match="--operating-point: unknown threshold rule 'median'"):
        medtune.final(DEMO, overrides, operating_point="median")
    with pytest.raises(SpecError, match="--operating-point: unknown threshold rule 'median'"):
        medtune.final(DEMO, overrides, threshold="median")
    with pytest.raises(ValueError, match="threshold is the old name of operating_point"):
        medtune.final(DEMO, overrides, operating_point="balanced", threshold="prior")
