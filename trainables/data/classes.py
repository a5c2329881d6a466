"""Which class of a two-class task is the positive one (the finding sensitivity is about).

Everything downstream (metrics, thresholds, the ROC, the report, Grad-CAM) scores the *last*
class index as positive. So the positive class is chosen here, once, and moved to the last
index when labels are read; class names move with it, and every report names it.

``positive_class`` names it (a class name, or its index in the source). Without it, the last
class is positive, unless that class is named like a negative finding ("normal", "negative",
"healthy", "benign", "no finding"): then the other one is. That keeps PneumoniaMNIST's
``pneumonia`` and a folder's ``PNEUMONIA``, and makes ``abnormal``/``normal`` folders and
BreastMNIST (label 0 ``malignant``, 1 ``normal, benign``) score the finding, not its absence.
"""

from __future__ import annotations

import re

import numpy as np

from .errors import DataError

_NEGATIVE_WORDS = re.compile(r"\b(normal|negative|healthy|benign|no[ _-]?finding|absent)\b", re.IGNORECASE)


def positive_index(class_names: tuple[str, ...], positive_class: str | int | None, where: str) -> int | None:
    """Index (in the source's order) of the positive class; None for more than two classes."""
    if len(class_names) != 2:
        if positive_class is not None:
            raise DataError(f"{where}: positive_class={positive_class!r} applies to two-class tasks; this one has "
                            f"{len(class_names)} classes ({', '.join(class_names)})")
        return None
    if positive_class is None:
        last_is_negative = bool(_NEGATIVE_WORDS.search(class_names[1]))
        first_is_negative = bool(_NEGATIVE_WORDS.search(class_names[0]))
        return 0 if last_is_negative and not first_is_negative else 1
    text = str(positive_class).strip()
    if text in class_names:
        return class_names.index(text)
    folded = [name.lower() for name in class_names]
    if text.lower() in folded:
        return folded.index(text.lower())
    if re.fullmatch(r"\d+", text) and int(text) < len(class_names):
        return int(text)
    raise DataError(f"{where}: positive_class={positive_class!r} is not one of its classes; expected a name "
                    f"({', '.join(repr(n) for n in class_names)}) or an index (0 or 1)")


def order_with_positive_last(class_names: tuple[str, ...], positive_class: str | int | None,
                             where: str) -> tuple[tuple[str, ...], np.ndarray | None]:
    """(class names in training order, old label -> new label lookup or None when unchanged)."""
    index = positive_index(class_names, positive_class, where)
    if index is None or index == len(class_names) - 1:
        return class_names, None
    order = [i for i in range(len(class_names)) if i != index] + [index]
    lookup = np.empty(len(class_names), dtype=np.int64)
    lookup[order] = np.arange(len(class_names))
    return tuple(class_names[i] for i in order), lookup
