"""CSV manifests: paths relative to the CSV (PNG, JPEG and DICOM), one categorical label column,
split values spelled any accepted way, patient groups kept whole, every path kept inside the
CSV's folder, and each bad setting a ``DataSettingError`` naming its ``data.`` key."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from data_helpers import folder_cfg
from PIL import Image
from pydicom.data import get_testdata_file

from medtune.trainables.data import DataConfig, DataError, inspect_source, load_splits
from medtune.trainables.data.errors import DataSettingError
from medtune.trainables.data.loading import check_leakage

pytestmark = pytest.mark.usefixtures("isolated_data")

COLUMNS = {"path_column": "image", "label_columns": "finding", "split_column": "fold"}


def _image(path: Path, value: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    pixels = np.clip(value + rng.integers(-20, 20, (24, 24)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path.name


def make_manifest(root: Path, per_split: dict[str, int] | None = None, patients: bool = False,
                  extra_rows: list[dict[str, str]] | None = None) -> Path:
    """images/<class>/<n>.png|jpg and labels.csv (image, finding, fold[, patient]); class 'mass' bright."""
    per_split = per_split or {"Train": 12, "VALID": 6, "test": 6}
    rows, n = [], 0
    for fold, count in per_split.items():
        for i in range(count):
            finding = ("normal", "mass")[i % 2]
            ext = (".png", ".jpg")[n % 2]
            relative = f"images/{finding}/{n:03d}{ext}"
            _image(root / relative, 60 + 120 * (finding == "mass") + n % 7)
            row = {"image": relative, "finding": finding, "fold": fold}
            if patients:
                row["patient"] = f"P{n // 3:03d}"  # three images per patient
            rows.append(row)
            n += 1
    rows += extra_rows or []
    header = list(rows[0]) + [k for k in (extra_rows or [{}])[0] if k not in rows[0]]
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return root / "labels.csv"


def test_a_manifest_loads_like_a_folder(tmp_path):
    manifest = make_manifest(tmp_path / "set")
    splits = load_splits(folder_cfg(manifest, tmp_path, **COLUMNS))
    assert splits.class_names == ("normal", "mass")  # 'normal' is a negative finding: 'mass' is positive (last)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 6, 6)
    means = splits.train.images.reshape(12, -1).mean(axis=1)
    assert (means[splits.train.labels == 1] > 150).all() and (means[splits.train.labels == 0] < 100).all()
    summary = inspect_source(folder_cfg(manifest, tmp_path, **COLUMNS))
    assert summary["kind"] == "manifest" and summary["split_values"] == {"train": ["Train"], "val": ["VALID"],
                                                                        "test": ["test"]}
    assert summary["counts"]["test"] == {"normal": 3, "mass": 3}


def test_label_columns_may_be_a_list_of_one_and_integer_labels_sort_numerically(tmp_path):
    root = tmp_path / "set"
    rows = [{"image": _image(root / f"{i}.png", 20 * i), "grade": str(g), "fold": fold}
            for i, (g, fold) in enumerate([(10, "train"), (2, "train"), (0, "train"), (2, "test"), (10, "test"),
                                           (0, "test"), (0, "val"), (2, "val"), (10, "val")])]
    with open(root / "grades.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "grade", "fold"])
        writer.writeheader()
        writer.writerows(rows)
    cfg = folder_cfg(root / "grades.csv", tmp_path, path_column="image", label_columns=["grade"], split_column="fold")
    assert cfg.label_columns == "grade" and cfg.label_column_names == ("grade",)
    assert inspect_source(cfg)["class_names"] == ["0", "2", "10"]


def test_several_label_columns_are_a_multi_label_task_and_commas_in_a_name_are_refused():
    assert DataConfig("labels.csv", label_columns=["Effusion", "Mass"]).label_columns == "Effusion,Mass"
    with pytest.raises(DataError, match="must not contain ','"):
        DataConfig("labels.csv", path_column="a,b")


def _with_path(tmp_path: Path, value: str) -> Path:
    return make_manifest(tmp_path / "set", extra_rows=[{"image": value, "finding": "mass", "fold": "train"}])


@pytest.mark.parametrize("value", ["../outside.png", "images/../../outside.png", "/etc/hostname", "C:\\x.png",
                                   "\\\\server\\share\\x.png"])
def test_no_manifest_path_may_leave_its_folder(tmp_path, value):
    _image(tmp_path / "outside.png", 10)
    manifest = _with_path(tmp_path, value)
    for call in (inspect_source, load_splits):
        with pytest.raises(DataSettingError, match="leads outside the manifest's folder") as err:
            call(folder_cfg(manifest, tmp_path, **COLUMNS))
        assert err.value.setting == "path_column" and "line 26" in str(err.value)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    _image(tmp_path / "secret" / "x.png", 10)
    manifest = _with_path(tmp_path, "link/x.png")
    os.symlink(tmp_path / "secret", tmp_path / "set" / "link")
    with pytest.raises(DataSettingError, match="leads outside"):
        inspect_source(folder_cfg(manifest, tmp_path, **COLUMNS))


@pytest.mark.parametrize("change, setting, needle", [
    ({"path_column": None}, "path_column", "needs data.path_column"),
    ({"label_columns": "diagnosis"}, "label_columns", "no column 'diagnosis'"),
    ({"split_column": None}, "split_column", "no test split"),
    ({"group_column": "patient"}, "group_column", "no column 'patient'"),
])
def test_missing_settings_and_columns_name_the_setting(tmp_path, change, setting, needle):
    manifest = make_manifest(tmp_path / "set")
    with pytest.raises(DataSettingError, match=needle) as err:
        inspect_source(folder_cfg(manifest, tmp_path, **(COLUMNS | change)))
    assert err.value.setting == setting and f"(data.{setting})" in str(err.value)


def test_bad_rows_name_their_line(tmp_path):
    manifest = make_manifest(tmp_path / "set", extra_rows=[{"image": "images/mass/000.png", "finding": "mass",
                                                            "fold": "holdout"}])
    with pytest.raises(DataSettingError, match="line 26: split 'holdout'") as err:
        inspect_source(folder_cfg(manifest, tmp_path, **COLUMNS))
    assert err.value.setting == "split_column"
    manifest = make_manifest(tmp_path / "set2", extra_rows=[{"image": "images/mass/000.png", "finding": " ",
                                                             "fold": "train"}])
    with pytest.raises(DataSettingError, match="line 26: no label") as err:
        inspect_source(folder_cfg(manifest, tmp_path, **COLUMNS))
    assert err.value.setting == "label_columns"


def test_missing_files_count_as_unreadable_until_too_many(tmp_path):
    manifest = make_manifest(tmp_path / "set", per_split={"train": 60, "val": 20, "test": 20})
    (tmp_path / "set" / "images" / "mass" / "001.jpg").unlink()
    with pytest.warns(UserWarning, match="1 of 100 images"):
        splits = load_splits(folder_cfg(manifest, tmp_path, max_bad_fraction=0.05, **COLUMNS))
    assert len(splits.train) == 59
    shutil.rmtree(tmp_path / "set" / "images" / "normal")
    with pytest.raises(DataSettingError, match="51 of 100 image paths") as err:
        inspect_source(folder_cfg(manifest, tmp_path, **COLUMNS))
    assert err.value.setting == "path_column"


def test_manifest_settings_on_another_source_are_refused(tmp_path):
    from helpers import make_kermany

    root = make_kermany(tmp_path / "k", per_class=2)
    with pytest.raises(DataSettingError, match="applies to CSV manifests") as err:
        inspect_source(folder_cfg(root, tmp_path, group_column="patient"))
    assert err.value.setting == "group_column"


def test_a_changed_label_column_is_not_read_from_a_stale_cache(tmp_path):
    manifest = make_manifest(tmp_path / "set")
    header, *rows = manifest.read_text().splitlines()
    flipped = [row + (",normal" if ",mass," in row else ",mass") for row in rows]
    manifest.write_text("\n".join([header + ",flipped", *flipped]) + "\n")
    first = load_splits(folder_cfg(manifest, tmp_path, **COLUMNS))
    flipped = load_splits(folder_cfg(manifest, tmp_path, **(COLUMNS | {"label_columns": "flipped"})))
    assert np.array_equal(first.train.labels, 1 - flipped.train.labels)


def test_groups_are_carved_whole_and_crossing_groups_are_reported(tmp_path):
    manifest = make_manifest(tmp_path / "set", per_split={"train": 60, "test": 12}, patients=True)
    cfg = folder_cfg(manifest, tmp_path, val_fraction=0.2, group_column="patient", **COLUMNS)
    splits = load_splits(cfg)
    assert splits.train.groups is not None and not set(splits.train.groups) & set(splits.val.groups)
    assert inspect_source(cfg)["groups"] == 24
    assert not any(f.check == "groups across splits" for f in check_leakage(cfg).findings)
    # Patient P020's third image is moved to test: the given splits now share a patient.
    lines = manifest.read_text().splitlines()
    moved = next(i for i, line in enumerate(lines) if line.endswith(",P019"))
    lines[moved] = lines[moved].replace(",train,", ",test,")
    manifest.write_text("\n".join(lines) + "\n")
    finding = next(f for f in check_leakage(cfg).findings if f.check == "groups across splits")
    assert finding.count == 1 and "P019" in finding.message and "test" in finding.message
    ungrouped = load_splits(folder_cfg(manifest, tmp_path, val_fraction=0.2, **COLUMNS))
    assert ungrouped.train.groups is None and ungrouped.fingerprint != load_splits(cfg).fingerprint


def test_dicom_rows_are_read(tmp_path):
    root = tmp_path / "set"
    rows = []
    for i, fold in enumerate(["train"] * 4 + ["val"] * 2 + ["test"] * 2):
        label = ("ct", "mr")[i % 2]
        target = root / "dicom" / f"{i}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(get_testdata_file("CT_small.dcm" if label == "ct" else "MR_small.dcm"), target)
        rows.append(f"dicom/{i}.dcm,{label},{fold}")
    (root / "labels.csv").write_text("image,finding,fold\n" + "\n".join(rows) + "\n")
    splits = load_splits(folder_cfg(root / "labels.csv", tmp_path, **COLUMNS))
    assert splits.class_names == ("ct", "mr") and len(splits.train) == 4 and splits.train.images.std() > 0


def test_a_manifest_that_is_no_csv_text_names_the_file(tmp_path):
    (tmp_path / "labels.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="not UTF-8"):
        inspect_source(folder_cfg(tmp_path / "labels.csv", tmp_path, **COLUMNS))
    (tmp_path / "labels.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        inspect_source(folder_cfg(tmp_path / "labels.csv", tmp_path, **COLUMNS))


@pytest.mark.slow
def test_a_manifest_on_s3_is_staged_with_its_folder(tmp_path, s3_server, monkeypatch):
    import boto3

    manifest = make_manifest(tmp_path / "set")
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                      aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key)
    bucket = f"medtune-manifest-{tmp_path.name.lower().replace('_', '-')[-20:]}"
    s3.create_bucket(Bucket=bucket)
    for path in (tmp_path / "set").rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"study/{path.relative_to(tmp_path / 'set').as_posix()}")
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    remote = load_splits(DataConfig(f"s3://{bucket}/study/labels.csv", image_size=16,
                                    cache_dir=str(tmp_path / "node"), **COLUMNS))
    local = load_splits(DataConfig(str(manifest), image_size=16, cache_dir=str(tmp_path / "local"), **COLUMNS))
    assert np.array_equal(remote.train.images, local.train.images) and remote.class_names == local.class_names
