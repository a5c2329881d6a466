"""``data.positive_class``: which class of a two-class task sensitivity, the threshold and the ROC
are about, and a default that never scores the absence of a finding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medtune.search.run.preflight import check_data
from medtune.search.spec.loader import load_space
from medtune.search.spec.sweep_spec import SpecError
from medtune.trainables.binary_report import build_report, report_markdown
from medtune.trainables.data import DataConfig, load_splits
from medtune.trainables.data.classes import order_with_positive_last, positive_index
from medtune.trainables.data.errors import DataError
from medtune.trainables.metrics import classification_metrics


@pytest.mark.parametrize("names, expected", [
    (("normal", "pneumonia"), 1),              # PneumoniaMNIST: unchanged
    (("NORMAL", "PNEUMONIA"), 1),              # the Kermany folders
    (("abnormal", "normal"), 0),               # sorted folders put "normal" last: not the finding
    (("malignant", "normal, benign"), 0),      # BreastMNIST: label 0 is the finding
    (("benign", "malignant"), 1),
    (("0", "1"), 1),                           # no names: the last, as before
    (("healthy", "no finding"), 1),            # both negative-sounding: no guess, the last
])
def test_the_default_positive_class_is_the_finding(names, expected):
    assert positive_index(names, None, "x") == expected


def test_a_name_or_an_index_chooses_it_and_anything_else_is_a_clear_error():
    names = ("benign", "malignant")
    assert positive_index(names, "benign", "x") == 0 and positive_index(names, "MALIGNANT", "x") == 1
    assert positive_index(names, "0", "x") == 0 and positive_index(names, 1, "x") == 1
    with pytest.raises(DataError, match=r"positive_class='tumour' is not one of its classes.*'benign', 'malignant'"):
        positive_index(names, "tumour", "data.npz")
    with pytest.raises(DataError, match="applies to two-class tasks; this one has 3 classes"):
        positive_index(("a", "b", "c"), "a", "data.npz")
    assert positive_index(("a", "b", "c"), None, "x") is None


def test_moving_the_positive_class_last_relabels_consistently():
    names, lookup = order_with_positive_last(("malignant", "normal, benign"), None, "x")
    assert names == ("normal, benign", "malignant")
    assert lookup[np.array([0, 1, 1, 0])].tolist() == [1, 0, 0, 1]
    assert order_with_positive_last(("normal", "pneumonia"), None, "x") == (("normal", "pneumonia"), None)


def _folder(root: Path) -> Path:
    """A Kermany-layout folder whose class folders sort as abnormal, normal: bright images are abnormal."""
    for split, n in (("train", 6), ("val", 4), ("test", 4)):
        for cls, value in (("abnormal", 220), ("normal", 30)):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                Image.new("L", (16, 16), value + i).save(folder / f"{i}.png")
    return root


def test_a_folder_whose_finding_sorts_first_scores_the_finding(tmp_path):
    root = _folder(tmp_path / "data")
    splits = load_splits(DataConfig(str(root), image_size=16, cache_dir=str(tmp_path / "c")))
    assert splits.class_names == ("normal", "abnormal")
    bright = splits.test.images.reshape(len(splits.test.labels), -1).mean(axis=1) > 128
    assert (splits.test.labels == 1).tolist() == bright.tolist()  # label 1 (positive) = the abnormal images
    chosen = load_splits(DataConfig(str(root), image_size=16, cache_dir=str(tmp_path / "c"), positive_class="normal"))
    assert chosen.class_names == ("abnormal", "normal") and (chosen.test.labels == 1).tolist() == (~bright).tolist()
    assert chosen.fingerprint != splits.fingerprint  # the labels the model sees differ


@pytest.mark.slow  # trains twice
def test_sensitivity_and_specificity_swap_when_the_positive_class_changes(tmp_path):
    root = _folder(tmp_path / "data")
    p_abnormal: list[float] = []
    results = {}
    for positive in ("abnormal", "normal"):
        splits = load_splits(DataConfig(str(root), image_size=16, cache_dir=str(tmp_path / "c"),
                                        positive_class=positive))
        bright = splits.test.images.reshape(len(splits.test.labels), -1).mean(axis=1) > 128
        if not p_abnormal:  # one fixed "model": its probability that each test image is abnormal
            missed, false_alarms = 0, 0  # it misses 2 of the 4 abnormal images and flags 1 of the 4 normal ones
            for b in bright:
                if b:
                    p_abnormal.append(0.3 if missed < 2 else 0.8)
                    missed += 1
                else:
                    p_abnormal.append(0.7 if false_alarms < 1 else 0.2)
                    false_alarms += 1
        p = np.array(p_abnormal)
        p_positive = p if positive == "abnormal" else 1 - p
        results[positive] = classification_metrics(np.stack([1 - p_positive, p_positive], axis=1), splits.test.labels)
        report = build_report("m", p_positive, splits.test.labels, p_positive, splits.test.labels, splits.class_names,
                              threshold_rule="0.5")
        assert f"Positive class: **{positive}**" in report_markdown([report], "t")
    assert results["abnormal"]["sensitivity"] == pytest.approx(results["normal"]["specificity"])
    assert results["abnormal"]["specificity"] == pytest.approx(results["normal"]["sensitivity"])
    assert (results["abnormal"]["sensitivity"], results["abnormal"]["specificity"]) == (0.5, 0.75)


def test_the_space_file_key_is_checked_before_any_trial(tmp_path):
    root = _folder(tmp_path / "data")
    spec = load_space({"name": "pc", "data": {"source": str(root), "image_size": 16, "positive_class": "tumour"},
                       "mlflow": {"enabled": False}})
    with pytest.raises(SpecError) as err:
        check_data(spec)
    assert "data.positive_class" in str(err.value) and "'abnormal', 'normal'" in str(err.value)
    ok = load_space({"name": "pc", "data": {"source": str(root), "image_size": 16, "positive_class": 1},
                     "mlflow": {"enabled": False}})
    assert ok.trial_base()["data_positive_class"] == "1"  # an index travels as text, into every trial's params
    assert check_data(ok)["class_names"] == ["abnormal", "normal"]
