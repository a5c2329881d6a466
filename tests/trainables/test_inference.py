"""Raw images to decisions without MLflow: the readers, the bundle, the predictor and the decision rules.

Untrained ``simple_cnn`` models (random weights) stand in for trained ones: what is checked is that
a raw image reaches the model exactly as the data path feeds test images, and that a bundle
decides as its operating point says. ``tests/search/run/test_predict.py`` checks the same against
a real ``medtune final`` run.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file

from medtune.trainables.calibration import ScoreCalibration
from medtune.trainables.config import TrialConfig
from medtune.trainables.data.colour import rgb_to_gray
from medtune.trainables.data.imaging import decode_file, resize_stack
from medtune.trainables.evaluate import predict_split
from medtune.trainables.factories import build_trial_model
from medtune.trainables.inference import Predictor
from medtune.trainables.model_bundle import (
    BUNDLE_FILE,
    BundleError,
    HeldOut,
    check_compatible,
    load_model,
    read_bundle,
    write_bundle,
)
from medtune.trainables.operating_point import choose_threshold, multiclass_log_offsets
from medtune.trainables.prediction_rule import ARGMAX, OperatingPointError, decision_rule
from medtune.trainables.raw_images import (
    RawImageError,
    decode_array,
    decode_bytes,
    decode_item,
    encode_png,
    list_images,
    raw_items,
)

CONFIG = {"architecture": "simple_cnn", "pretrained": "none", "image_size": 28, "batch_size": 16,
          "channels_last": False, "data_source": "synthetic", "data_dir": "/home/someone/data"}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _model(classes: int = 2, seed: int = 0, **config) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_trial_model(TrialConfig.from_dict({**CONFIG, **config}), classes).eval()


def _binary_bundle(folder: Path, **config) -> tuple[Path, torch.nn.Module]:
    rng = np.random.default_rng(1)
    labels = np.arange(60) % 2
    scores = np.clip(rng.normal(0.3 + 0.4 * labels, 0.15), 0.001, 0.999)
    calibration = {"method": "platt", "slope": 1.7, "intercept": -0.4, "fitted_on": 60, "reason": ""}
    point = {"rule": "balanced-1se", "threshold": 0.45, "raw_threshold": 0.5, "anchor": 0.5,
             "calibration": calibration}
    model = _model(**config)
    write_bundle(folder, model, {**CONFIG, **config}, ("NORMAL", "PNEUMONIA"), operating_point=point,
                 heldout=HeldOut(scores, labels))
    return folder, model


# --- readers -------------------------------------------------------------------------------------------


def test_encoded_bytes_decode_exactly_as_the_same_file_in_a_folder(tmp_path):
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (300, 420, 3), dtype=np.uint8)  # landscape colour: crop, luma, draft decoding
    for name, save in (("x.png", {"format": "PNG"}), ("x.jpeg", {"format": "JPEG", "quality": 90})):
        Image.fromarray(big).save(tmp_path / name, **save)
        data = (tmp_path / name).read_bytes()
        expected = decode_file(str(tmp_path / name), 28)[0]
        assert np.array_equal(decode_bytes(data, 28), expected), name
        assert np.array_equal(decode_item(base64.b64encode(data).decode(), 28), expected), name  # base64 text


def test_dicom_bytes_go_through_the_dicom_reader_with_its_window_and_monochrome1(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "ct.dcm"
    ds.save_as(path)
    assert np.array_equal(decode_bytes(path.read_bytes(), 28), decode_file(str(path), 28)[0])


def test_arrays_decode_as_an_npz_source_decodes_them():
    rng = np.random.default_rng(2)
    colour = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    assert np.array_equal(decode_array(colour, 28), resize_stack(rgb_to_gray(colour[None]), 28)[0])
    rgba = np.concatenate([colour, np.zeros((40, 50, 1), np.uint8)], axis=2)  # alpha dropped, as Pillow does
    assert np.array_equal(decode_array(rgba, 28), decode_array(colour, 28))
    grey = colour[..., 0]
    assert np.array_equal(decode_array(grey[..., None], 28), resize_stack(grey[None], 28)[0])
    assert np.array_equal(decode_array(grey.astype(np.int64), 28), decode_array(grey, 28))  # JSON gives int64


@pytest.mark.parametrize("array, message", [
    (np.zeros((28, 28, 2), np.uint8), "2 channels cannot be converted"),
    (np.zeros((28, 28, 5), np.uint8), "5 channels cannot be converted"),
    (np.zeros((28, 28), np.float32), "expected an integer"),
    (np.full((28, 28), 300), "expected 0..255"),
    (np.zeros(28, np.uint8), "expected one image"),
])
def test_arrays_that_cannot_become_a_grey_image_are_refused_by_name(array, message):
    with pytest.raises(RawImageError, match=message):
        decode_array(array, 28)


def test_a_request_may_hold_images_in_several_shapes():
    grey = np.zeros((28, 28), np.uint8)
    assert len(raw_items(pd.DataFrame({"image": [b"a", b"b"]}))) == 2
    assert raw_items(pd.DataFrame({"pixels": ["aGk="]})) == ["aGk="]  # a single column, whatever its name
    assert len(raw_items({"image": [grey, grey]})) == 2
    assert len(raw_items(grey)) == 1 and len(raw_items(np.zeros((28, 28, 3), np.uint8))) == 1
    assert len(raw_items(np.zeros((5, 28, 28), np.uint8))) == 5  # a grey batch
    assert len(raw_items(np.zeros((5, 28, 28, 3), np.uint8))) == 5
    assert raw_items(b"png") == [b"png"] and len(raw_items([grey, b"x"])) == 2
    with pytest.raises(RawImageError, match="expected an 'image' column"):
        raw_items(pd.DataFrame({"a": [1], "b": [2]}))


def test_a_folder_is_listed_as_training_lists_one(tmp_path):
    for name in ("b/2.png", "a.jpeg", "c/d/3.dcm", ".hidden.png", "._junk.png", "notes.txt", ".git/x.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert list_images(tmp_path) == ["a.jpeg", "b/2.png", "c/d/3.dcm"]


# --- the bundle ------------------------------------------------------------------------------------


def test_a_bundle_round_trips_the_model_and_keeps_no_machine_paths(tmp_path):
    folder, model = _binary_bundle(tmp_path / "model")
    document = json.loads((folder / BUNDLE_FILE).read_text())
    assert document["class_names"] == ["NORMAL", "PNEUMONIA"] and document["positive_class"] == "PNEUMONIA"
    assert document["image_size"] == 28 and document["image_channels"] == 1 and document["model_channels"] == 1
    assert document["config"]["data_dir"] is None and "/home/someone" not in (folder / BUNDLE_FILE).read_text()
    assert document["operating_point"]["rule"] == "balanced-1se" and document["heldout"] == "heldout.npz"
    bundle = read_bundle(folder)
    assert bundle.binary and bundle.heldout is not None and len(bundle.heldout.scores) == 60
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(load_model(bundle)(x), model(x))


def test_a_bundle_of_another_major_version_or_a_newer_format_is_refused(tmp_path):
    folder, _ = _binary_bundle(tmp_path / "model")
    check_compatible("0.9.1", "here", running="0.1.0")  # same major: fine
    check_compatible("2.0.0", "here", running="unknown")  # a bare checkout cannot tell
    with pytest.raises(BundleError, match="written by medtune 1.2.0, this is medtune 0.1.0"):
        check_compatible("1.2.0", "here", running="0.1.0")
    document = json.loads((folder / BUNDLE_FILE).read_text())
    (folder / BUNDLE_FILE).write_text(json.dumps({**document, "format_version": 99}))
    with pytest.raises(BundleError, match="bundle format 99 is newer"):
        read_bundle(folder)
    with pytest.raises(BundleError, match="not a medtune model"):
        read_bundle(tmp_path)


# --- the predictor ---------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, {"architecture": "mobilenetv2_100", "pretrained": "imagenet",
                                         "channels_last": True}])  # 3-channel stem, ImageNet statistics
def test_raw_images_score_as_the_final_run_scores_its_test_split(tmp_path, config):
    from medtune.trainables.data import SplitArrays

    folder, _ = _binary_bundle(tmp_path / "model", **config)
    predictor = Predictor.from_folder(folder, batch_size=7, device=torch.device("cpu"))
    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (20, 28, 28), dtype=np.uint8)
    cfg = TrialConfig.from_dict({k: v for k, v in read_bundle(folder).config.items()})
    expected, _ = predict_split(predictor.model, cfg, SplitArrays(images[..., None], np.zeros(20, np.int64)))
    got = predictor.predict([_png(a) for a in images])  # PNG bytes, as a server receives them
    assert np.allclose(got.probabilities, expected, atol=1e-6)
    calibration = ScoreCalibration.from_dict(read_bundle(folder).operating_point["calibration"])
    assert np.allclose(got.score, calibration.apply(expected[:, 1]))
    assert np.array_equal(got.decision, got.score >= 0.45) and np.array_equal(got.predicted, got.decision)
    columns = got.columns()
    assert list(columns) == ["prob_NORMAL", "prob_PNEUMONIA", "predicted_class", "score", "threshold", "decision"]


def test_an_unreadable_image_is_listed_or_raised_by_its_position(tmp_path):
    folder, _ = _binary_bundle(tmp_path / "model")
    predictor = Predictor.from_folder(folder, batch_size=2, device=torch.device("cpu"))
    good = np.zeros((28, 28), np.uint8)
    scored = predictor.predict_items([good, b"not an image", good, np.zeros((9, 9, 2), np.uint8)])
    assert scored.rows == [0, 2] and [i for i, _ in scored.bad] == [1, 3] and len(scored.predictions) == 2
    assert "2 channels cannot be converted" in scored.bad[1][1]
    with pytest.raises(RawImageError, match="image 1: "):
        predictor.predict([good, b"not an image"])


# --- decision rules --------------------------------------------------------------------------------


def test_the_stored_a_given_and_a_chosen_operating_point(tmp_path):
    folder, _ = _binary_bundle(tmp_path / "model")
    bundle = read_bundle(folder)
    assert decision_rule(bundle).threshold == 0.45 and decision_rule(bundle).source == "stored"
    given = decision_rule(bundle, threshold=0.3)
    assert (given.rule, given.threshold, given.source) == ("fixed", 0.3, "given")
    chosen = decision_rule(bundle, "sensitivity:0.90")
    expected = choose_threshold(bundle.heldout.scores, bundle.heldout.labels, "sensitivity:0.90", 0.5)
    assert chosen.threshold == expected.value and chosen.rule == "sensitivity:0.90"
    assert (bundle.heldout.scores[bundle.heldout.labels == 1] >= chosen.threshold).mean() >= 0.9
    assert decision_rule(bundle, "cost:FN/FP=4").threshold == pytest.approx(0.2)
    with pytest.raises(OperatingPointError, match="unknown threshold rule"):
        decision_rule(bundle, "sensitivity")
    with pytest.raises(OperatingPointError, match="give one"):
        decision_rule(bundle, "auto", 0.5)


def test_a_sweep_trial_predicts_the_argmax_and_takes_only_rules_that_need_no_held_out_images(tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "best_checkpoint"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in _model().state_dict().items()}, str(folder / "model.safetensors"))
    config = TrialConfig.from_dict(CONFIG).to_dict()
    (folder / "checkpoint.json").write_text(json.dumps({"epoch": 3, "config": config, "class_names": ["a", "b"]}))
    bundle = read_bundle(folder)
    assert bundle.kind == "sweep-trial" and bundle.operating_point is None
    assert decision_rule(bundle).rule == ARGMAX and decision_rule(bundle).threshold is None
    assert decision_rule(bundle, "prior").threshold == 0.5 and decision_rule(bundle, threshold=0.2).threshold == 0.2
    with pytest.raises(OperatingPointError, match="chosen on held-out scores, and this sweep-trial model carries none"):
        decision_rule(bundle, "sensitivity:0.90")
    got = Predictor(bundle, device=torch.device("cpu")).predict([np.zeros((28, 28), np.uint8)])
    assert list(got.columns()) == ["prob_a", "prob_b", "predicted_class"]


def test_more_than_two_classes_decide_by_the_stored_offsets_and_refuse_a_threshold(tmp_path):
    priors = [0.6, 0.3, 0.1]
    folder = write_bundle(tmp_path / "model", _model(3), CONFIG, ("x", "y", "z"),
                          operating_point={"rule": "prior", "class_priors": priors, "class_weighted": True})
    bundle = read_bundle(folder)
    stored = decision_rule(bundle)
    assert np.allclose(stored.offsets, multiclass_log_offsets("prior", np.array(priors), True))
    assert decision_rule(bundle, "balanced").offsets is None  # a class-weighted model's balanced point: argmax
    with pytest.raises(OperatingPointError, match="applies to two-class models; this one has 3 classes"):
        decision_rule(bundle, threshold=0.5)
    probs = np.array([[0.3, 0.35, 0.35]])
    assert stored.apply(probs)[0].tolist() == [0]  # the prior shift moves the call to the common class


def test_bundles_copy_as_plain_files(tmp_path):
    """A bundle is a folder of plain files: copied anywhere, it loads and predicts the same."""
    folder, _ = _binary_bundle(tmp_path / "model")
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    image = [np.full((28, 28), 100, np.uint8)]
    a = Predictor.from_folder(folder, device=torch.device("cpu")).predict(image)
    b = Predictor.from_folder(copy, device=torch.device("cpu")).predict(image)
    assert np.array_equal(a.probabilities, b.probabilities)


def test_png_encoding_is_lossless():
    image = np.random.default_rng(5).integers(0, 255, (28, 28), dtype=np.uint8)
    assert np.array_equal(decode_bytes(encode_png(image), 28), image)




# --- colour models ------------------------------------------------------------------------------


def _colour_bundle(folder: Path) -> Path:
    """A model trained on colour images: the data path pinned ``channels`` to 3 (``with_data_channels``)."""
    write_bundle(folder, _model(channels=3), {**CONFIG, "channels": 3}, ("a", "b"), image_channels=3)
    return folder


def test_a_colour_model_scores_colour_pngs_as_the_final_run_scores_its_colour_test_split(tmp_path):
    from medtune.trainables.data import SplitArrays

    predictor = Predictor.from_folder(_colour_bundle(tmp_path / "model"), batch_size=5, device=torch.device("cpu"))
    assert predictor.channels == 3
    images = np.random.default_rng(4).integers(0, 255, (12, 28, 28, 3), dtype=np.uint8)
    cfg = TrialConfig.from_dict(read_bundle(predictor.bundle.folder).config)
    expected, _ = predict_split(predictor.model, cfg, SplitArrays(images, np.zeros(12, np.int64)))
    from_png = predictor.predict([_png(a) for a in images])
    from_arrays = predictor.predict(list(images))
    assert np.allclose(from_png.probabilities, expected, atol=1e-6)
    assert np.allclose(from_arrays.probabilities, expected, atol=1e-6)
    luma = rgb_to_gray(images)  # what a grey reader would have made of them: the scores differ
    assert not np.allclose(predictor.predict(list(luma)).probabilities, expected, atol=1e-3)


def test_a_colour_model_reads_a_grey_image_as_three_equal_channels(tmp_path):
    grey = np.random.default_rng(6).integers(0, 255, (40, 40), dtype=np.uint8)
    decoded = decode_item(_png(grey), 28, channels=3)
    assert decoded.shape == (28, 28, 3)
    assert np.array_equal(decoded[..., 0], decoded[..., 2])
    assert np.array_equal(decoded[..., 1], decode_item(_png(grey), 28))  # the grey reader's pixels
    rgba = np.dstack([np.random.default_rng(7).integers(0, 255, (28, 28, 3), dtype=np.uint8),
                      np.full((28, 28), 9, dtype=np.uint8)])
    assert np.array_equal(decode_item(rgba, 28, channels=3), rgba[..., :3])  # alpha dropped, colour kept


def test_a_grey_model_still_reads_colour_as_luma(tmp_path):
    rgb = np.random.default_rng(8).integers(0, 255, (28, 28, 3), dtype=np.uint8)
    assert np.array_equal(decode_item(rgb, 28), rgb_to_gray(rgb[None])[0])


def test_a_bundle_of_another_channel_count_is_refused(tmp_path):
    folder = write_bundle(tmp_path / "model", _model(), CONFIG, ("a", "b"), image_channels=2)
    with pytest.raises(BundleError, match="2-channel images; expected one of \\(1, 3\\)"):
        Predictor.from_folder(folder, device=torch.device("cpu"))
