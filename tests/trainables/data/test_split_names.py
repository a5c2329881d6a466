"""Split folders named as public sets name them (``Training/``, ``valid/``, ``TESTING/``), two
folders for one split refused, and the summary saying which folder was taken for which split."""

from __future__ import annotations

import pytest
from data_helpers import folder_cfg
from helpers import make_kermany

from medtune.trainables.data import DataError, inspect_source, load_splits
from medtune.trainables.data.split_names import describe_split_sources, split_of

pytestmark = pytest.mark.usefixtures("isolated_data")


@pytest.mark.parametrize("name, split", [("train", "train"), ("Training", "train"), ("TRAIN", "train"),
                                         ("val", "val"), ("Valid", "val"), ("validation", "val"),
                                         ("test", "test"), ("Testing", "test"), (" test ", "test"),
                                         ("dev", None), ("trainings", None)])
def test_split_names(name, split):
    assert split_of(name) == split


def test_training_validation_testing_folders_load(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=4, splits=("Training", "VALIDATION", "testing"))
    splits = load_splits(folder_cfg(root, tmp_path))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 8, 8)
    summary = inspect_source(folder_cfg(root, tmp_path))
    assert summary["split_folders"] == {"train": "Training", "val": "VALIDATION", "test": "testing"}
    assert describe_split_sources(summary, None) == "train <- Training/, val <- VALIDATION/, test <- testing/"


def test_training_and_testing_without_val_need_val_fraction(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=5, splits=("Training", "Testing"))
    with pytest.raises(DataError, match="val_fraction") as err:
        inspect_source(folder_cfg(root, tmp_path))
    assert "Training/" in str(err.value)
    summary = inspect_source(folder_cfg(root, tmp_path, val_fraction=0.2))
    assert describe_split_sources(summary, 0.2) == ("train <- Training/, val <- 0.2 of train, carved "
                                                    "(data.val_fraction), test <- Testing/")
    assert len(load_splits(folder_cfg(root, tmp_path, val_fraction=0.2)).val) == 2


def test_two_folders_for_one_split_are_refused(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=2)
    make_kermany(root, per_class=2, splits=("Training",))
    for call in (inspect_source, load_splits):
        with pytest.raises(DataError, match="all name the train split") as err:
            call(folder_cfg(root, tmp_path))
        assert "Training/" in str(err.value) and "train/" in str(err.value)


def test_a_missing_split_lists_the_accepted_names(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=2, splits=("Training", "holdout"))
    with pytest.raises(DataError, match="missing split folder") as err:
        inspect_source(folder_cfg(root, tmp_path))
    assert "test/testing" in str(err.value) and "holdout" in str(err.value)


def test_a_nested_root_with_training_folders_gets_the_hint(tmp_path):
    make_kermany(tmp_path / "outer" / "brain", per_class=1, splits=("Training", "Testing"))
    with pytest.raises(DataError, match="Did you mean") as err:
        inspect_source(folder_cfg(tmp_path / "outer", tmp_path))
    assert str(tmp_path / "outer" / "brain") in str(err.value)


def test_array_sources_say_nothing_about_folders():
    assert describe_split_sources({"kind": "npz"}, 0.1) == ""
    assert describe_split_sources({"split_values": {"train": ["Train"], "test": ["TEST", "test"]}}, None) == (
        "train <- rows 'Train', test <- rows 'TEST'/'test'")
