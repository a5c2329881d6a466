"""Multi-label data (``data.task: multilabel``): (N, L) 0/1 labels from an .npz, several 0/1 columns of
a CSV manifest and ChestMNIST by name; ``auto`` detects them; carving stratifies on one key per row."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from data_helpers import folder_cfg, write_npz
from helpers import MULTILABEL_FINDINGS, make_multilabel_npz, multilabel_arrays
from PIL import Image

from medtune.trainables.data import DataConfig, DataError, inspect_source, load_splits
from medtune.trainables.data.errors import DataSettingError
from medtune.trainables.data.medmnist import MEDMNIST, is_multilabel
from medtune.trainables.data.splits import carve_val, kfold_indices, stratum_key

pytestmark = pytest.mark.usefixtures("isolated_data")


def test_an_npz_of_n_by_l_labels_is_detected_as_multi_label(tmp_path):
    npz = make_multilabel_npz(tmp_path / "marks.npz")
    cfg = folder_cfg(npz, tmp_path, image_size=28)
    summary = inspect_source(cfg)
    assert summary["task"] == "multilabel" and summary["num_classes"] == 3
    assert set(summary["counts"]["train"]) == {"label_0", "label_1", "label_2"}  # positives per finding
    splits = load_splits(cfg)
    assert splits.multilabel and splits.train.labels.shape == (96, 3) and splits.train.labels.dtype == np.int64
    assert splits.class_names == ("label_0", "label_1", "label_2")
    assert load_splits(folder_cfg(npz, tmp_path, image_size=28, task="multilabel")).fingerprint == splits.fingerprint


def test_a_task_the_labels_contradict_is_refused_naming_data_task(tmp_path):
    npz = make_multilabel_npz(tmp_path / "marks.npz")
    with pytest.raises(DataSettingError, match="data.task: classification cannot read") as err:
        inspect_source(folder_cfg(npz, tmp_path, task="classification"))
    assert err.value.setting == "task"
    single = write_npz(tmp_path / "single.npz", **{k: (v[:, 0] if k.endswith("labels") else v)
                                                   for k, v in multilabel_arrays().items()})
    with pytest.raises(DataSettingError, match="data.task: multilabel needs labels with several"):
        inspect_source(folder_cfg(single, tmp_path, task="multilabel"))
    with pytest.raises(DataSettingError, match="data.positive_class applies to two-class tasks") as pos:
        inspect_source(folder_cfg(npz, tmp_path, positive_class="label_0"))
    assert pos.value.setting == "positive_class"


def test_multi_label_npz_values_must_be_zero_or_one(tmp_path):
    arrays = multilabel_arrays()
    arrays["train_labels"] = arrays["train_labels"] * 2
    with pytest.raises(DataError, match="must be 0/1 integers"):
        inspect_source(folder_cfg(write_npz(tmp_path / "bad.npz", **arrays), tmp_path))


def test_chestmnist_is_multi_label_with_its_fourteen_findings():
    info = MEDMNIST["chestmnist"]
    assert is_multilabel(info) and len(info.class_names) == 14 and "pneumothorax" in info.class_names


def test_stratum_key_is_the_rarest_finding_or_none():
    labels = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1], [0, 1, 0]])  # counts 3, 3, 1
    key, strata = stratum_key(labels, 3)
    assert strata == 4 and key.tolist() == [0, 0, 3, 2, 1]  # ties: the lower index; none: 3
    assert stratum_key(np.array([0, 1, 1]), 2)[0].tolist() == [0, 1, 1]  # single-label: unchanged


def test_carving_and_folds_spread_every_finding(tmp_path):
    labels = multilabel_arrays(n=(300, 1, 1))["train_labels"].astype(np.int64)
    train, val = carve_val(labels, 0.2, 0, 3)
    assert len(val) == pytest.approx(60, abs=2) and not set(train) & set(val)
    rarest = int(np.argmin(labels.sum(axis=0)))
    key = stratum_key(labels, 3)[0]
    assert abs((key[val] == rarest).mean() - (key == rarest).mean()) < 0.01  # the key is stratified exactly
    assert np.all(labels[val].sum(axis=0) > 0)  # and every finding reaches val
    held = kfold_indices(labels, 5, 0)
    assert sorted(np.concatenate(held).tolist()) == list(range(300))


def _png(path, value: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16), value, dtype=np.uint8)).save(path)
    return path.name


def _findings_csv(root, bad: str | None = None):
    rows = []
    for i in range(24):
        split = ("train", "train", "train", "val", "test", "train")[i % 6]
        effusion, mass = i % 2, (i // 2) % 2
        rows.append({"image": f"img/{i}.png", "Effusion": str(effusion), "Mass": str(mass), "fold": split})
        _png(root / "img" / f"{i}.png", 40 + 100 * effusion + 60 * mass)
    if bad is not None:
        rows[0]["Mass"] = bad
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "labels.csv"


def test_a_manifest_with_several_zero_one_columns_is_multi_label(tmp_path):
    manifest = _findings_csv(tmp_path / "set")
    cfg = folder_cfg(manifest, tmp_path, path_column="image", label_columns=["Effusion", "Mass"],
                     split_column="fold", image_size=16)
    summary = inspect_source(cfg)
    assert summary["task"] == "multilabel" and summary["class_names"] == ["Effusion", "Mass"]
    splits = load_splits(cfg)
    assert splits.multilabel and splits.class_names == ("Effusion", "Mass")
    assert splits.train.labels.shape == (16, 2)
    assert splits.train.labels[:4].tolist() == [[0, 0], [1, 0], [0, 1], [1, 0]]  # rows 0, 1, 2, 5


def test_a_manifest_finding_that_is_not_zero_or_one_names_label_columns(tmp_path):
    manifest = _findings_csv(tmp_path / "set", bad="maybe")
    cfg = folder_cfg(manifest, tmp_path, path_column="image", label_columns=["Effusion", "Mass"],
                     split_column="fold")
    with pytest.raises(DataSettingError, match="'maybe' in column 'Mass'") as err:
        inspect_source(cfg)
    assert err.value.setting == "label_columns"


def test_label_columns_may_list_several_but_not_one_twice():
    assert DataConfig("labels.csv", label_columns=["Effusion", "Mass"]).label_column_names == ("Effusion", "Mass")
    with pytest.raises(DataError, match="named twice"):
        DataConfig("labels.csv", label_columns=["Mass", "Mass"])


def test_findings_names_come_from_the_file_name_when_it_is_chestmnist(tmp_path):
    arrays = multilabel_arrays(n=(20, 6, 6))
    wide = {k: (np.tile(v, (1, 5))[:, :14] if k.endswith("labels") else v) for k, v in arrays.items()}
    summary = inspect_source(folder_cfg(write_npz(tmp_path / "chestmnist.npz", **wide), tmp_path))
    assert summary["class_names"] == list(MEDMNIST["chestmnist"].class_names)
    assert MULTILABEL_FINDINGS == ("left_mark", "centre_mark", "right_mark")


def test_the_leakage_checks_run_on_multi_label_data(tmp_path):
    from medtune.trainables.data.loading import check_leakage

    arrays = multilabel_arrays()
    arrays["test_images"][:3] = arrays["train_images"][:3]  # three test images copy training images
    report = check_leakage(folder_cfg(write_npz(tmp_path / "m.npz", **arrays), tmp_path, image_size=28))
    assert report.checked == {"train": 96, "val": 32, "test": 48}
    assert any("3 of 48 test images" in finding.message for finding in report.findings)
