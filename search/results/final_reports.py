"""The numbers of ``medtune final``: the test report of the best model and of the ensemble's mean.

Two classes: the decision threshold is chosen on the held-out (or out-of-fold) scores by a rule
(``medtune.trainables.binary_report.choose_threshold``), then applied to test once
(``medtune.trainables.binary_report``). More classes: the most probable class is predicted and there is no
threshold (``medtune.trainables.multiclass_report``). Either way every metric carries a 95%
bootstrap interval over test images, and an ensemble averages its members' probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medtune.search.results.final_training import FinalMember
from medtune.search.spec.sweep_spec import SpecError

#: ``threshold_source`` of a multi-class report, which has no threshold.
NO_THRESHOLD = "none: with more than two classes the most probable class is predicted"


def default_threshold_rule(config: dict[str, Any]) -> str:
    """``auto``: 0.5 for a class-weighted model, else ``youden-mid`` on held-out scores.

    A class-weighted loss already trains the model for balanced class priors, where a calibrated
    score's best sensitivity + specificity is at 0.5; choosing the threshold again on a few hundred
    held-out images adds their noise, and on a test split shifted from val the held-out point can
    sit far from 0.5 and cost accuracy. Without class weights 0.5 reflects the training
    prevalence, so the threshold is chosen on held-out scores.
    """
    return "0.5" if config.get("class_weighted", True) else "youden-mid"


def check_threshold_rule(rule: str, source: str) -> None:
    """An unknown threshold rule is bad input, found before anything trains (``auto`` always passes)."""
    from medtune.trainables.binary_report import choose_threshold

    if rule == "auto":
        return
    try:
        choose_threshold(np.array([0.2, 0.8]), np.array([0, 1]), rule)
    except ValueError as exc:
        raise SpecError(source, [("--threshold", str(exc))]) from None


def check_threshold_applies(rule: str, class_names: tuple[str, ...], source: str) -> None:
    """A threshold rule other than ``auto`` on a task with more than two classes is refused."""
    if len(class_names) > 2 and rule != "auto":
        raise SpecError(source, [("--threshold", f"{rule!r}: a threshold applies to two-class tasks; this one "
                                  f"has {len(class_names)} classes and predicts the most probable one")])


def build_reports(members: list[FinalMember], data: Any, rule: str, threshold_source: str) -> tuple[list[Any], str]:
    """The best model's report, then (K > 1 members) the ensemble's; and where the threshold came
    from, completed with the rule ``auto`` chose."""
    if members[0].test_scores.ndim == 2:
        return multiclass_reports(members, data), NO_THRESHOLD
    if rule == "auto":
        rule = default_threshold_rule(members[0].config)
        chosen = "0.5, the model was trained with class weights" if rule == "0.5" else rule
        threshold_source += f"; rule auto: {chosen}"
    return binary_reports(members, data, rule), threshold_source


def binary_reports(members: list[FinalMember], data: Any, rule: str) -> list[Any]:
    from medtune.trainables.binary_report import build_report

    val_labels, test_labels = members[0].val_labels, data.test.labels
    reports = [build_report("best model", members[0].val_scores, val_labels, members[0].test_scores, test_labels,
                            data.class_names, threshold_rule=rule)]
    if len(members) > 1:
        val_mean = np.mean([m.val_scores for m in members], axis=0)
        test_mean = np.mean([m.test_scores for m in members], axis=0)
        reports.append(build_report(f"ensemble of {len(members)}", val_mean, val_labels, test_mean, test_labels,
                                    data.class_names, threshold_rule=rule))
    return reports


def multiclass_reports(members: list[FinalMember], data: Any) -> list[Any]:
    from medtune.trainables.multiclass_report import build_multiclass_report

    labels, names = data.test.labels, tuple(data.class_names)
    reports = [build_multiclass_report("best model", members[0].test_scores, labels, names)]
    if len(members) > 1:
        mean = np.mean([m.test_scores for m in members], axis=0)
        reports.append(build_multiclass_report(f"ensemble of {len(members)}", mean, labels, names))
    return reports


def report_markdown(reports: list[Any], title: str) -> str:
    """``report.md``'s table (also printed): the two-class or the multi-class layout."""
    from medtune.trainables.multiclass_report import MulticlassReport, multiclass_markdown
    from medtune.trainables.binary_report import report_markdown as binary_markdown

    if isinstance(reports[0], MulticlassReport):
        return multiclass_markdown(reports, title)
    return binary_markdown(reports, title)
