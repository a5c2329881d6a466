"""What kind of task a data set's labels make (``data.task``), checked against its classes.

``auto`` (the default) and ``classification`` read the labels as unordered classes: two make a
binary task, more a multi-class one. ``ordinal`` says the classes are grades on one scale
(diabetic retinopathy 0-4, Kellgren-Lawrence 0-4): trials then also report how far the predicted
grade is from the true one (``medtune.trainables.ordinal``). ``auto`` never guesses ``ordinal``
from integer class names: that would change what a sweep reports, and maybe optimises, behind the
user's back (MedMNIST's tissue types are numbered too).

``multilabel`` says each image has any number of findings (ChestMNIST's 14, a CSV manifest's
several 0/1 columns): labels are (N, L) 0/1 and trials train a sigmoid head
(``medtune.trainables.multilabel``). Unlike grades, ``auto`` does detect it, because the labels'
shape says it without guessing: an .npz whose labels are (N, L) with L > 1 or a manifest with
several label columns. ``classification`` or ``ordinal`` on such data, and ``multilabel`` on
single-label data, are refused rather than silently trained as something else.

The grade order is the class index order, which every source fixes before a trial starts: an
.npz's label values, a CSV manifest's labels sorted numerically when they are all integers, a
folder's class folders sorted by name. So a folder whose names sort differently as text and as
numbers (``2`` after ``10``) is refused here rather than trained on a scrambled scale, and a
task of two classes is refused too: two grades are a binary task, whose metrics already say it all.
"""

from __future__ import annotations

import re

from .errors import DataSettingError

AUTO, CLASSIFICATION, ORDINAL, MULTILABEL = "auto", "classification", "ordinal", "multilabel"
#: What ``data.task`` may say.
TASKS = (AUTO, CLASSIFICATION, ORDINAL, MULTILABEL)
#: Fewer grades than this are a binary task (kappa and grade error add nothing to its report).
MIN_ORDINAL_CLASSES = 3

_LEADING_INTEGER = re.compile(r"\s*(-?\d+)")


def leading_integers(class_names: tuple[str, ...]) -> list[int] | None:
    """Each name's leading integer (``3``, ``3_severe``), or None when some name has none."""
    matches = [_LEADING_INTEGER.match(name) for name in class_names]
    return None if any(m is None for m in matches) else [int(m.group(1)) for m in matches if m]


def grade_order(class_names: tuple[str, ...]) -> str:
    """The grades from lowest to highest as an ordinal task reads them: ``0 < 1 < 2 < 3 < 4``."""
    return " < ".join(class_names)


def check_task(class_names: tuple[str, ...], task: str, where: str, multilabel: bool = False) -> None:
    """Refuse ``data.task: ordinal`` on classes that are no scale: fewer than three, or numbered
    names whose class index order is not their numeric order; and a task that the labels' shape
    contradicts (``multilabel``: the labels are (N, L) 0/1 findings). ``DataSettingError`` naming ``task``."""
    if multilabel and task not in (AUTO, MULTILABEL):
        raise DataSettingError("task", f"{where}: the labels are multi-label (each image has any number of the "
                                       f"{len(class_names)} findings {', '.join(class_names)}), which data.task: "
                                       f"{task} cannot read; use data.task: multilabel or auto")
    if task == MULTILABEL and not multilabel:
        raise DataSettingError("task", f"{where}: data.task: multilabel needs labels with several 0/1 findings per "
                                       "image (an .npz's (N, L) labels, a CSV manifest's several data.label_columns); "
                                       f"this data has one label per image ({', '.join(class_names)}): use "
                                       "data.task: auto")
    if task != ORDINAL:
        return
    if len(class_names) < MIN_ORDINAL_CLASSES:
        raise DataSettingError("task", f"{where}: data.task: ordinal needs at least {MIN_ORDINAL_CLASSES} graded "
                                       f"classes; this data has {len(class_names)} ({', '.join(class_names)}), a "
                                       "binary task: use data.task: auto")
    numbers = leading_integers(class_names)
    if numbers is not None and numbers != sorted(numbers):
        raise DataSettingError("task", f"{where}: data.task: ordinal reads the grades in class index order, "
                                       f"{grade_order(class_names)}, which is not their numeric order; name the "
                                       "class folders so they sort as the grades do (00, 01, ..., 10), or list the "
                                       "images in a CSV manifest (integer labels sort numerically)")
