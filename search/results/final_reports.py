"""The numbers of ``medtune final``: the test report of the best model and of the ensemble's mean.

Two classes: each member's scores are calibrated on its held-out (or out-of-fold) scores first
(``final_calibration``), the operating point is chosen on the calibrated held-out scores by a rule
(``medtune.trainables.operating_point``), then applied to the calibrated test scores once
(``medtune.trainables.binary_report``). More classes: the predicted class is read at an operating
point (``balanced`` or ``prior``) and there is no threshold (``medtune.trainables.multiclass_report``);
graded classes (``data.task: ordinal``) add the kappa and grade error of the predicted grade.
Either way every metric carries a 95% bootstrap interval over test images, and an ensemble
averages its members' (calibrated) probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medtune.search.results.final_members import FinalMember
from medtune.search.spec.sweep_spec import SpecError

#: ``threshold_source`` of a multi-class report, which has no threshold.
NO_THRESHOLD = "none: with more than two classes the predicted class is read at an operating point"
#: The option that names the rule (``--threshold`` is its old name).
OPTION = "--operating-point"


def check_operating_point(rule: str, source: str) -> None:
    """An unknown rule is bad input, found before anything trains (``auto`` always passes)."""
    from medtune.trainables.operating_point import parse_operating_point

    try:
        parse_operating_point(rule)
    except ValueError as exc:
        raise SpecError(source, [(OPTION, f"{exc} (--threshold is the same option's old name)")]) from None


#: The old name of ``check_operating_point``.
check_threshold_rule = check_operating_point


def check_threshold_applies(rule: str, class_names: tuple[str, ...], source: str, multilabel: bool = False) -> None:
    """With more than two classes only ``auto``, ``balanced`` and ``prior`` apply: a threshold does not.
    Multi-label findings take every two-class rule (each finding gets its own threshold by it)."""
    from medtune.trainables.operating_point import parse_multiclass_operating_point

    if len(class_names) <= 2 or multilabel:
        return
    try:
        parse_multiclass_operating_point(rule)
    except ValueError:
        raise SpecError(source, [(OPTION, f"{rule!r}: a threshold applies to two-class tasks; this one has "
                                  f"{len(class_names)} classes and predicts the most probable one (its operating "
                                  "points: auto, balanced, prior)")]) from None


def build_reports(members: list[FinalMember], data: Any, rule: str, threshold_source: str,
                  ordinal: bool = False) -> tuple[list[Any], str]:
    """The best model's report, then (K > 1 members) the ensemble's; and where the threshold came
    from, completed with the rule ``auto`` chose. ``ordinal``: the classes are grades (``data.task``)."""
    from medtune.trainables.operating_point import AUTO, parse_multiclass_operating_point, parse_operating_point

    auto = str(rule).strip().lower() == AUTO
    if getattr(data, "multilabel", False):  # one threshold per finding, by the two-class rule
        label = parse_operating_point(rule).label
        return multilabel_reports(members, data, label), threshold_source + (f"; rule auto: {label}" if auto else "")
    if members[0].test_scores.ndim == 2:
        chosen = parse_multiclass_operating_point(rule)
        source = f"{NO_THRESHOLD}, {chosen}" + ("; rule auto: " + chosen if auto else "")
        return multiclass_reports(members, data, chosen, ordinal=ordinal), source
    label = parse_operating_point(rule).label
    if auto:
        threshold_source += f"; rule auto: {label}"
    return binary_reports(members, data, label), threshold_source


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    return np.mean(arrays, axis=0)


def binary_reports(members: list[FinalMember], data: Any, rule: str) -> list[Any]:
    """Reports on the members' calibrated scores (``final_calibration``; members not calibrated are
    taken as they are), with the uncalibrated test scores and the maps for the report's calibration."""
    from medtune.trainables.binary_report import build_report

    val_labels, test_labels = members[0].val_labels, data.test.labels
    best = members[0]
    anchors = [member_anchor(m, data.train.labels) for m in members]
    reports = [build_report("best model", best.val_scores, val_labels, best.test_scores, test_labels,
                            data.class_names, threshold_rule=rule, calibration=best.calibration,
                            raw_test_scores=best.uncalibrated_test_scores, anchor=anchors[0])]
    if len(members) > 1:
        maps = [m.calibration for m in members]
        reports.append(build_report(
            f"ensemble of {len(members)}", _mean([m.val_scores for m in members]), val_labels,
            _mean([m.test_scores for m in members]), test_labels, data.class_names, threshold_rule=rule,
            calibration=None if any(c is None for c in maps) else maps,
            raw_test_scores=_mean([m.uncalibrated_test_scores for m in members]), anchor=float(np.mean(anchors))))
    return reports


def multilabel_reports(members: list[FinalMember], data: Any, rule: str) -> list[Any]:
    """Reports on multi-label findings (``medtune.trainables.multilabel_report``): each finding's
    threshold from the held-out scores by ``rule``; an ensemble averages its members' probabilities."""
    from medtune.trainables.multilabel_report import build_multilabel_report

    weighted = bool(members[0].config.get("class_weighted", True))
    common = {"threshold_rule": rule, "train_labels": data.train.labels, "class_weighted": weighted}
    names, val_labels, test_labels = tuple(data.class_names), members[0].val_labels, data.test.labels
    reports = [build_multilabel_report("best model", members[0].val_scores, val_labels, members[0].test_scores,
                                       test_labels, names, **common)]
    if len(members) > 1:
        reports.append(build_multilabel_report(
            f"ensemble of {len(members)}", _mean([m.val_scores for m in members]), val_labels,
            _mean([m.test_scores for m in members]), test_labels, names, **common))
    return reports


def member_anchor(member: FinalMember, train_labels: np.ndarray) -> float:
    """The member's own balanced point (``model_anchor``) on the scale its decisions are taken on:
    through its calibration map when it has one."""
    from medtune.trainables.operating_point import model_anchor

    raw = model_anchor(bool(member.config.get("class_weighted", True)), float(np.mean(np.asarray(train_labels) == 1)))
    return raw if member.calibration is None else float(member.calibration.apply(np.array([raw]))[0])


def multiclass_reports(members: list[FinalMember], data: Any, rule: str = "auto", ordinal: bool = False) -> list[Any]:
    """Reports at operating point ``rule``; the priors are the final model's training labels' class
    shares, and the best member's ``class_weighted`` says which way round the shift goes. ``ordinal``
    adds the test kappa and grade error (``medtune.trainables.ordinal``)."""
    from medtune.trainables.multiclass_report import build_multiclass_report
    from medtune.trainables.operating_point import class_priors

    labels, names = data.test.labels, tuple(data.class_names)
    priors = class_priors(data.train.labels, len(names))
    weighted = bool(members[0].config.get("class_weighted", True))
    reports = [build_multiclass_report("best model", members[0].test_scores, labels, names, rule=rule, priors=priors,
                                       class_weighted=weighted, ordinal=ordinal)]
    if len(members) > 1:
        mean = _mean([m.test_scores for m in members])
        reports.append(build_multiclass_report(f"ensemble of {len(members)}", mean, labels, names, rule=rule,
                                               priors=priors, class_weighted=weighted, ordinal=ordinal))
    return reports


def report_markdown(reports: list[Any], title: str) -> str:
    """``report.md``'s table (also printed): the two-class or the multi-class layout."""
    from medtune.trainables.binary_report import report_markdown as binary_markdown
    from medtune.trainables.multiclass_report import MulticlassReport, multiclass_markdown
    from medtune.trainables.multilabel_report import MultilabelReport, multilabel_markdown

    if isinstance(reports[0], MultilabelReport):
        return multilabel_markdown(reports, title)
    if isinstance(reports[0], MulticlassReport):
        return multiclass_markdown(reports, title)
    return binary_markdown(reports, title)
