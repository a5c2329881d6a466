"""Grad-CAM that shows something: a fine enough feature map, on every architecture, pointing at the
evidence.

At 28 px the last feature map of most backbones is 1x1, so ``medtune.trainables.gradcam`` takes the deepest
stage with at least 7x7 cells. These tests pin that rule, check the maps are well formed for every
registry architecture at its smallest input, and check on a synthetic task with a known answer (a
bright blob in the top-left of positive images) that a briefly trained model's map points at the
blob, through the project's own training function and the final run's figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medtune.trainables.config import TrialConfig
from medtune.trainables.data import DatasetSplits, SplitArrays
from medtune.trainables.gradcam import MIN_CELLS, choose_layer, gradcam, gradcam_with_layer
from medtune.trainables.models import build_model, get_architecture, list_architectures
from medtune.trainables.reporters import LocalReporter
from medtune.trainables.train import make_batches, run_training


def test_choose_layer_takes_the_deepest_map_with_enough_cells():
    grids = [(14, 14), (7, 7), (4, 4), (2, 2), (1, 1)]
    assert choose_layer(grids, 7) == (1, True)
    assert choose_layer(grids, 4) == (2, True)
    assert choose_layer(grids, 1) == (4, True)
    assert choose_layer([(6, 6), (3, 3)], 7) == (0, False)  # none is enough: the finest
    assert choose_layer([(7, 9), (7, 5)], 7) == (0, True)  # the smaller side decides


def test_mobilenetv2_at_28px_uses_a_7x7_stage_not_its_1x1_last_map():
    torch.manual_seed(0)
    model = build_model("mobilenetv2_100", num_classes=2, in_chans=1, dropout=0.0)
    images = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert model.eval().backbone.forward_features(images).shape[-2:] == (1, 1)
    maps, layer = gradcam_with_layer(model, images, target_class=1)
    assert layer.enough_cells and min(layer.grid) >= MIN_CELLS
    assert (layer.module, layer.stage, layer.num_stages, layer.grid) == ("blocks.1", 2, 5, (7, 7))
    assert maps.shape == (3, 28, 28)
    assert "stage 2 of 5" in layer.describe() and "7x7" in layer.describe()


def _sizes(arch: str) -> list[int]:
    low = get_architecture(arch).min_input_size
    return sorted({low, max(low, 28)})


@pytest.mark.parametrize("arch", list_architectures())
def test_maps_are_finite_in_unit_range_at_the_input_size(arch):
    torch.manual_seed(0)
    info = get_architecture(arch)
    # Fully frozen: gradients must still reach the stages (the input requires grad).
    model = build_model(arch, num_classes=2, in_chans=1, dropout=0.2, frozen_depth=info.num_stages)
    model.train()
    for size in _sizes(arch):
        maps = gradcam(model, torch.randn(2, 1, size, size), target_class=1)
        assert maps.shape == (2, size, size), (arch, size)
        assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0, (arch, size)
    assert model.training  # the caller's mode comes back
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients left behind


# --- a synthetic task with a known answer -------------------------------------------------------

SIZE = 32
BLOB_CENTRE, BLOB_SIGMA = 7.5, 2.5
BLOB_BOX = (slice(4, 12), slice(4, 12))  # the 8x8 square around the blob: 6.25% of the image


def _blob_split(n: int, seed: int) -> SplitArrays:
    """Noise images; the odd ones (class 1) carry a bright Gaussian blob in the top-left quadrant."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.normal(90.0, 30.0, (n, SIZE, SIZE))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    blob = 110.0 * np.exp(-((yy - BLOB_CENTRE) ** 2 + (xx - BLOB_CENTRE) ** 2) / (2 * BLOB_SIGMA**2))
    images[labels == 1] += blob
    return SplitArrays(np.clip(images, 0, 255).astype(np.uint8)[..., None], labels.astype(np.int64))


# 48 optimizer steps: enough for the blob, and for BatchNorm's running statistics (used by the
# eval-mode model Grad-CAM explains) to settle; fewer left some seeds with all-zero maps.
BLOB_CONFIG = {
    "architecture": "simple_cnn", "pretrained": "none", "image_size": SIZE, "epochs": 3, "batch_size": 16,
    "lr": 1e-3, "optimizer": "adamw", "dropout": 0.0, "seed": 0, "channels_last": False,
}


@pytest.fixture(scope="module")
def blob_run(tmp_path_factory: pytest.TempPathFactory):
    data = DatasetSplits(_blob_split(256, 0), _blob_split(32, 1), _blob_split(64, 2), ("plain", "blob"), "synthetic")
    outcome = run_training(BLOB_CONFIG, LocalReporter(tmp_path_factory.mktemp("blob"), num_threads=2), data=data)
    return outcome, data


@pytest.mark.slow
def test_gradcam_points_at_the_blob(blob_run):
    outcome, data = blob_run
    assert outcome.history[-1]["val_auc"] >= 0.95  # it learned the task
    images, _ = next(iter(make_batches(TrialConfig.from_dict(BLOB_CONFIG), data.test, train=False,
                                       device=torch.device("cpu"))))
    maps, layer = gradcam_with_layer(outcome.model, images, target_class=1)
    assert (layer.module, layer.grid) == ("blocks.1", (8, 8))  # 8x8 at 32 px; the last block is 4x4
    positives = maps[data.test.labels == 1]
    box = np.zeros((SIZE, SIZE), bool)
    box[BLOB_BOX] = True
    peak_inside = [m.max() > 0 and box.flat[m.argmax()] for m in positives]
    mass_share = [m[box].sum() / m.sum() if m.sum() > 0 else 0.0 for m in positives]
    assert np.mean(peak_inside) >= 0.7, f"peak in the blob for {np.mean(peak_inside):.0%} of blob images"
    assert np.median(mass_share) >= 3 * box.mean(), f"median map mass in the blob box {np.median(mass_share):.2f}"


@pytest.mark.slow
def test_final_figure_renders_the_blob_run(blob_run, tmp_path: Path):
    from medtune.search.results.final_gradcam import gradcam_figure
    from medtune.search.results.final_members import FinalMember

    outcome, data = blob_run
    batches = make_batches(TrialConfig.from_dict(BLOB_CONFIG), data.test, train=False, device=torch.device("cpu"))
    model = outcome.model.eval()
    with torch.no_grad():
        scores = torch.cat([model(x).softmax(1)[:, 1] for x, _ in batches]).numpy()
    member = FinalMember(config=dict(BLOB_CONFIG), model=model, val_scores=scores, test_scores=scores)
    path = tmp_path / "gradcam.png"
    gradcam_figure(member, 0.5, data, path, per_group=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000  # panels were drawn, not an empty canvas
