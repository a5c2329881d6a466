"""Colour end to end: a task whose classes differ only in hue is learned on the colour path and not
on the grey one; ``channels: auto`` follows the data; the final Grad-CAM figure draws colour.

The synthetic images share one luminance texture distribution and differ only by a colour offset
orthogonal to the luma weights (its luma is zero): read as grey levels (``channels: 1``, what every
colour image was before issue 28) the two classes are the same pictures, so a model can only guess.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medtune.trainables.config import TrialConfig
from medtune.trainables.data import DataConfig, load_splits
from medtune.trainables.data.colour import LUMA_WEIGHTS, rgb_to_gray
from medtune.trainables.factories import build_trial_model, input_channels, with_data_channels
from medtune.trainables.reporters import LocalReporter
from medtune.trainables.train import run_training

SIZE = 16
#: A reddish/greenish offset with zero luma: 0.299 * 60 - 0.587 * 30.56 = 0.
HUE = np.array([60.0, -60.0 * 0.299 / 0.587, 0.0])


def _hue_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(n) % 2
    luma = rng.uniform(70, 180, (n, SIZE, SIZE, 1))
    amplitude = rng.uniform(0.6, 1.0, (n, 1, 1, 1)) * np.where(labels == 1, 1.0, -1.0)[:, None, None, None]
    images = np.clip(np.rint(luma + amplitude * HUE), 0, 255).astype(np.uint8)
    return images, labels.astype(np.uint8)


def write_hue_task(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 320), ("val", 160), ("test", 160)):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = _hue_images(n, rng)
    np.savez_compressed(path, **arrays)
    return path


def test_the_hue_offset_has_no_luma_so_the_grey_classes_look_alike(tmp_path):
    assert abs(float(HUE @ LUMA_WEIGHTS)) < 1e-4
    images, labels = _hue_images(400, np.random.default_rng(1))
    grey = rgb_to_gray(images).reshape(400, -1).mean(axis=1)
    assert abs(grey[labels == 0].mean() - grey[labels == 1].mean()) < 1.0  # levels of 255
    red_minus_green = images[..., 0].astype(float).mean(axis=(1, 2)) - images[..., 1].mean(axis=(1, 2))
    assert (red_minus_green[labels == 1] > 40).all() and (red_minus_green[labels == 0] < -40).all()


def test_channels_auto_follows_the_data():
    plain = TrialConfig.from_dict({"architecture": "simple_cnn", "pretrained": "none"})
    pretrained = TrialConfig.from_dict({"architecture": "mobilenetv2_100", "pretrained": "imagenet"})
    assert [input_channels(plain), input_channels(plain, colour=True)] == [1, 3]
    assert [input_channels(pretrained), input_channels(pretrained, colour=True)] == [3, 3]
    for explicit in (1, 3):
        cfg = TrialConfig.from_dict({"architecture": "simple_cnn", "channels": explicit})
        assert input_channels(cfg) == input_channels(cfg, colour=True) == explicit
        assert with_data_channels(cfg, colour=True) is cfg
    assert with_data_channels(plain, colour=False) is plain  # grey data: the config untouched
    assert with_data_channels(plain, colour=True).channels == 3


@pytest.fixture(scope="module")
def hue_runs(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("hue")
    source = write_hue_task(folder / "hue.npz")
    base = {"architecture": "simple_cnn", "pretrained": "none", "image_size": SIZE, "epochs": 4, "batch_size": 32,
            "lr": 3e-3, "optimizer": "adamw", "dropout": 0.0, "seed": 0, "channels_last": False,
            "data_source": str(source), "cache_dir": str(folder / "cache")}
    runs = {}
    for name, channels in (("colour", "auto"), ("grey", 1)):
        reporter = LocalReporter(folder / name, num_threads=2)
        runs[name] = run_training({**base, "channels": channels}, reporter)
    return runs


@pytest.mark.slow
def test_a_hue_only_task_is_learned_in_colour_and_not_in_grey(hue_runs):
    colour, grey = hue_runs["colour"], hue_runs["grey"]
    assert colour.data.colour and colour.config.channels == 3  # auto on colour data: three channels, pinned
    assert colour.model.backbone(torch.zeros(1, 3, SIZE, SIZE)).shape[0] == 1  # a three-channel stem
    assert colour.history[-1]["val_auc"] >= 0.95, colour.history[-1]["val_auc"]
    assert abs(grey.history[-1]["val_auc"] - 0.5) <= 0.12, grey.history[-1]["val_auc"]


@pytest.mark.slow
def test_the_pinned_config_rebuilds_the_colour_model_without_the_data(hue_runs):
    colour = hue_runs["colour"]
    rebuilt = build_trial_model(TrialConfig.from_dict(colour.config.to_dict()), 2)
    rebuilt.load_state_dict(colour.model.state_dict())  # raises if the stem had another channel count


@pytest.mark.slow
def test_the_final_gradcam_figure_shows_the_images_in_colour(hue_runs, tmp_path):
    from medtune.search.results.final_gradcam import gradcam_figure
    from medtune.search.results.final_members import FinalMember

    colour = hue_runs["colour"]
    data = load_splits(DataConfig.from_trial(colour.config))
    scores = np.linspace(0.05, 0.95, len(data.test.labels))
    member = FinalMember(config=colour.config.to_dict(), model=colour.model.eval(), val_scores=scores,
                         test_scores=scores)
    path = tmp_path / "gradcam.png"
    gradcam_figure(member, 0.5, data, path, per_group=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_cam_grid_draws_colour_images_in_colour_and_grey_ones_in_grey():
    from medtune.search.results.final_gradcam import Caption, _close, _draw_cam_grid

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (SIZE, SIZE, 1), dtype=np.uint8)
    heat = rng.random((SIZE, SIZE)).astype(np.float32)
    fig = _draw_cam_grid([colour, grey], [heat, heat], [Caption("a", True), Caption("b", False)], fontsize=8,
                         ticks=None, title="t", note="n")
    try:
        drawn = [ax.get_images()[0] for ax in fig.axes[:2]]
        assert np.array_equal(np.asarray(drawn[0].get_array()), colour)
        assert np.asarray(drawn[1].get_array()).shape == (SIZE, SIZE) and drawn[1].get_cmap().name == "gray"
    finally:
        _close(fig)
