"""The final model's test report when a task has more than two classes.

There is no decision threshold to choose: the predicted class is the most probable one, read at
an operating point (``medtune.trainables.operating_point``): ``balanced`` (the classes weighted
equally, what a class-weighted loss trains for) or ``prior`` (at the training class shares). The
probabilities and the AUCs are the model's either way; only the predicted class changes, so the
report shows accuracy and balanced accuracy side by side and both operating points' numbers
(``by_rule``). The
headline metrics are accuracy, balanced accuracy (the mean of the per-class recalls, which a
majority class cannot inflate) and the macro one-vs-rest ROC AUC (the same number trials report
as ``val_auc``), each with a 95% percentile bootstrap interval over test images, as in the
two-class report (``medtune.trainables.binary_report``). Per class: sensitivity (its recall), specificity (the
recall of "not this class") and its one-vs-rest AUC, plus the K x K confusion matrix (rows: true
class, columns: predicted). A task of graded classes (``data.task: ordinal``) adds the
quadratic-weighted kappa and the mean absolute grade error of the predicted grade
(``medtune.trainables.ordinal``) to the headline metrics, intervals and operating points alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from medtune.trainables.bootstrap import BOOTSTRAP_SAMPLES, CI_LEVEL, percentile_bootstrap
from medtune.trainables.operating_point import (
    DEFAULT_MULTICLASS_OPERATING_POINT,
    MULTICLASS_RULES,
    describe_multiclass_rule,
    multiclass_log_offsets,
    parse_multiclass_operating_point,
    predict_classes,
)
from medtune.trainables.ordinal import grade_metrics

HEADLINE = ("accuracy", "balanced_accuracy", "roc_auc")
#: The headline metrics of graded classes: how far the predicted grade is from the true one too.
ORDINAL_HEADLINE = (*HEADLINE, "qwk", "mae")
#: ``task`` of a report on unordered classes and on grades.
CLASSIFICATION, ORDINAL = "classification", "ordinal"
#: What ``by_rule`` gives of each operating point (and, for graded classes, ``ORDINAL_BY_RULE`` too).
BY_RULE = ("accuracy", "balanced_accuracy")
ORDINAL_BY_RULE = ("qwk", "mae")
#: What a report on grades says of its two extra metrics.
ORDINAL_NOTE = ("The classes are grades in the order listed: qwk is Cohen's kappa with quadratic weights and mae the "
                "mean absolute grade error, both of the predicted grade.")
#: The rule of a report built before operating points (the plain argmax).
ARGMAX_RULE = "argmax"


def confusion_matrix(probs: np.ndarray, labels: np.ndarray, classes: int,
                     offsets: np.ndarray | None = None) -> np.ndarray:
    """K x K counts of the predicted class (rows: true class, columns: predicted): the most probable
    one, or the argmax of log-probabilities + ``offsets`` (an operating point's prior shift)."""
    predicted = predict_classes(probs, offsets)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def _macro_auc(probs: np.ndarray, labels: np.ndarray, classes: int) -> float:
    if len(np.unique(labels)) < classes:  # a class missing from the sample: its one-vs-rest AUC is undefined
        return math.nan
    return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=list(range(classes))))


def headline_metrics(probs: np.ndarray, labels: np.ndarray, classes: int,
                     matrix: np.ndarray | None = None, offsets: np.ndarray | None = None,
                     ordinal: bool = False) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro one-vs-rest AUC (``ordinal``: and ``qwk``, ``mae`` of the
    predicted grade); ``matrix`` is the confusion matrix of ``probs`` and ``labels`` (at ``offsets``)
    when the caller has it already."""
    if matrix is None:
        matrix = confusion_matrix(probs, labels, classes, offsets)
    support = matrix.sum(axis=1)
    recalls = np.diag(matrix)[support > 0] / support[support > 0]
    metrics = {"accuracy": float(np.trace(matrix) / max(len(labels), 1)),
               "balanced_accuracy": float(recalls.mean()) if len(recalls) else math.nan,
               "roc_auc": _macro_auc(probs, labels, classes)}
    return (metrics | grade_metrics(matrix)) if ordinal else metrics


def per_class_metrics(probs: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
                      matrix: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Each class against the rest: sensitivity, specificity, AUC and its number of test images."""
    if matrix is None:
        matrix = confusion_matrix(probs, labels, len(class_names))
    total = matrix.sum()
    out = {}
    for k, name in enumerate(class_names):
        tp = matrix[k, k]
        fn = matrix[k].sum() - tp
        fp = matrix[:, k].sum() - tp
        tn = total - tp - fn - fp
        is_k = labels == k
        auc = float(roc_auc_score(is_k, probs[:, k])) if 0 < is_k.sum() < len(labels) else math.nan
        out[name] = {"sensitivity": float(tp / (tp + fn)) if tp + fn else math.nan,
                     "specificity": float(tn / (tn + fp)) if tn + fp else math.nan,
                     "roc_auc": auc, "n": int(is_k.sum())}
    return out


def bootstrap_headline(probs: np.ndarray, labels: np.ndarray, classes: int, samples: int = BOOTSTRAP_SAMPLES,
                       seed: int = 0, level: float = CI_LEVEL, offsets: np.ndarray | None = None,
                       ordinal: bool = False) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each headline metric (test images resampled with replacement)."""
    return percentile_bootstrap(
        lambda idx: headline_metrics(probs[idx], labels[idx], classes, offsets=offsets, ordinal=ordinal),
        len(labels), samples, seed, level)


@dataclass
class MulticlassReport:
    """A multi-class model's (or ensemble's) test report; ``to_dict`` is its part of report.json.

    ``threshold_rule`` names the operating point (``balanced`` or ``prior``); ``by_rule`` gives both
    operating points' test accuracy and balanced accuracy (when the training class shares are known),
    and for graded classes (``task`` ``ordinal``) their kappa and grade error.
    """

    name: str
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    confusion: list[list[int]]
    per_class: dict[str, dict[str, float]]
    n_test: int
    class_names: tuple[str, ...]
    threshold_rule: str = ARGMAX_RULE
    threshold: float = math.nan  # none: the most probable class is predicted
    by_rule: dict[str, dict[str, float]] = field(default_factory=dict)
    class_priors: list[float] | None = None  # the training labels' class shares
    class_weighted: bool | None = None  # whether the model trained with inverse-frequency class weights
    task: str = CLASSIFICATION  # ORDINAL: the classes are grades, in class index order

    @property
    def headline(self) -> tuple[str, ...]:
        """The metrics this report leads with, in order."""
        return ORDINAL_HEADLINE if self.task == ORDINAL else HEADLINE

    def log_offsets(self) -> np.ndarray | None:
        """What the operating point adds to the log-probabilities before the argmax (None: plain argmax)."""
        if self.class_priors is None or self.threshold_rule == ARGMAX_RULE:
            return None
        return multiclass_log_offsets(self.threshold_rule, np.asarray(self.class_priors), bool(self.class_weighted))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "multiclass", "task": self.task, "name": self.name, "n_test": self.n_test,
                "class_names": list(self.class_names), "threshold_rule": self.threshold_rule,
                "confusion_matrix": self.confusion,
                "metrics": {m: {"value": self.metrics[m], "ci95": list(self.intervals[m])} for m in self.headline},
                "per_class": self.per_class,
                "by_rule": {rule: dict(values) for rule, values in self.by_rule.items()},
                "class_priors": self.class_priors, "class_weighted": self.class_weighted}


def _offsets(rule: str, priors: np.ndarray | None, class_weighted: bool) -> np.ndarray | None:
    """The operating point's log-prior shift; a rule that needs the priors without them is an error."""
    if priors is None and (rule == "balanced") != bool(class_weighted):
        raise ValueError(f"operating point {rule!r} of a model trained {'with' if class_weighted else 'without'} "
                         "class weights needs the training class priors")
    return multiclass_log_offsets(rule, priors, class_weighted)


def build_multiclass_report(name: str, test_probs: np.ndarray, test_labels: np.ndarray,
                            class_names: tuple[str, ...], seed: int = 0,
                            samples: int = BOOTSTRAP_SAMPLES, *, rule: str = DEFAULT_MULTICLASS_OPERATING_POINT,
                            priors: np.ndarray | None = None, class_weighted: bool = True,
                            ordinal: bool = False) -> MulticlassReport:
    """The report of one model's (or an ensemble's mean) test probabilities at operating point
    ``rule`` (``priors``: the training labels' class shares; ``class_weighted``: how the model
    trained; ``ordinal``: the classes are grades in index order, ``data.task: ordinal``). The
    confusion matrix is counted once and gives the headline numbers, the per-class rates and the
    matrix itself; the AUCs are the probabilities' own."""
    rule = parse_multiclass_operating_point(rule)
    classes = len(class_names)
    labels = np.asarray(test_labels, dtype=np.int64)
    offsets = _offsets(rule, priors, class_weighted)
    matrix = confusion_matrix(test_probs, labels, classes, offsets)
    by_rule = {}
    if priors is not None:
        for other in MULTICLASS_RULES:
            m = headline_metrics(test_probs, labels, classes, offsets=_offsets(other, priors, class_weighted),
                                 ordinal=ordinal)
            by_rule[other] = {k: m[k] for k in BY_RULE + (ORDINAL_BY_RULE if ordinal else ())}
    return MulticlassReport(
        name=name, metrics=headline_metrics(test_probs, labels, classes, matrix, ordinal=ordinal),
        intervals=bootstrap_headline(test_probs, labels, classes, samples=samples, seed=seed, offsets=offsets,
                                     ordinal=ordinal),
        confusion=matrix.tolist(),
        per_class=per_class_metrics(test_probs, labels, tuple(class_names), matrix), n_test=int(len(labels)),
        class_names=tuple(class_names), threshold_rule=rule, by_rule=by_rule,
        class_priors=None if priors is None else [float(p) for p in priors], class_weighted=bool(class_weighted),
        task=ORDINAL if ordinal else CLASSIFICATION)


def multiclass_markdown(reports: list[MulticlassReport], title: str) -> str:
    """Side-by-side headline metrics, then per-class metrics and the confusion matrix of each report."""
    rule = reports[0].threshold_rule
    lines = [f"# {title}", "", f"Held-out test split, evaluated once; {len(reports[0].class_names)} classes, the "
             f"predicted class is {_rule_text(rule)}. 95% percentile bootstrap intervals over test images; "
             "roc_auc is the macro one-vs-rest AUC." + (f" {ORDINAL_NOTE}" if reports[0].task == ORDINAL else ""),
             "", "| metric | " + " | ".join(r.name for r in reports) + " |",
             "| --- | " + " | ".join("---" for _ in reports) + " |"]
    for m in reports[0].headline:
        lines.append(f"| {m} | " + " | ".join(
            f"{r.metrics[m]:.3f} ({r.intervals[m][0]:.3f}-{r.intervals[m][1]:.3f})" for r in reports) + " |")
    lines.append("| operating point | " + " | ".join(r.threshold_rule for r in reports) + " |")
    lines.append("")
    for r in reports:
        if r.by_rule:
            columns = list(next(iter(r.by_rule.values())))
            lines += [f"**{r.name}**: each operating point (the probabilities and AUCs are the same)", "",
                      "| operating point | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 1) + "|"]
            lines += [f"| {rule} | " + " | ".join(f"{v[c]:.3f}" for c in columns) + " |"
                      for rule, v in r.by_rule.items()]
            lines.append("")
    for r in reports:
        lines += [f"**{r.name}**: per class (one vs rest)", "", "| class | n | sensitivity | specificity | AUC |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {name} | {v['n']} | {v['sensitivity']:.3f} | {v['specificity']:.3f} | {v['roc_auc']:.3f} |"
                  for name, v in r.per_class.items()]
        lines += ["", f"**{r.name}**: confusion matrix (rows: true, columns: predicted), n = {r.n_test}", "",
                  "| | " + " | ".join(r.class_names) + " |", "| --- " * (len(r.class_names) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                  for name, row in zip(r.class_names, r.confusion)]
        lines.append("")
    return "\n".join(lines)


def _rule_text(rule: str) -> str:
    """How the predicted class was read, for the report's lead sentence."""
    if rule == ARGMAX_RULE:
        return "the most probable one"
    return f"{describe_multiclass_rule(rule)} (operating point {rule})"
