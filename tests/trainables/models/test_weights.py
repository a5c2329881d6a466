"""Pretrained weights: local files, the torchvision MobileNetV2 key adapter, safety, offline errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F

from medtune.trainables.models import WeightsFileError, WeightsUnavailableError, build_model

REPO = Path(__file__).resolve().parents[3]
WEIGHTS = Path(os.environ.get("MEDTUNE_SHARED_DIR", REPO.parent / "shared")) / "weights"
MOBILENET = WEIGHTS / "mobilenet_v2_imagenet_features.pth"
LITE0 = WEIGHTS / "tf_efficientnet_lite0_imagenet.pth"

needs_weights = pytest.mark.skipif(
    not (MOBILENET.is_file() and LITE0.is_file()), reason=f"shared ImageNet weights not found in {WEIGHTS}"
)


def _features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model.backbone(x)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test here may reach the hub; huggingface_hub reads HF_HUB_OFFLINE at import, so patch both."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"), raising=False)  # no cached hits
    monkeypatch.delenv("MEDTUNE_WEIGHTS_DIR", raising=False)


# --- MobileNetV2: torchvision features file -> timm mobilenetv2_100 ----------------------------


@needs_weights
def test_mobilenet_adapter_matches_torchvision() -> None:
    import torchvision

    tv = torchvision.models.mobilenet_v2(weights=None).features
    sd = torch.load(MOBILENET, map_location="cpu", weights_only=True)
    tv.load_state_dict({k.removeprefix("features."): v for k, v in sd.items()})
    tv.eval()

    ours = build_model("mobilenetv2_100", num_classes=2, in_chans=3, dropout=0.0, pretrained=str(MOBILENET))
    torch.manual_seed(0)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = F.adaptive_avg_pool2d(tv(x), 1).flatten(1)
    got = _features(ours, x)
    assert got.shape == expected.shape == (2, 1280)
    assert (got - expected).abs().max().item() < 1e-4


@needs_weights
def test_mobilenet_imagenet_from_weights_dir_one_channel() -> None:
    """One channel = the three-channel model fed the gray image three times (summed first conv)."""
    gray = build_model("mobilenetv2_100", num_classes=2, in_chans=1, dropout=0.0, pretrained="imagenet",
                       weights_dir=WEIGHTS)
    rgb = build_model("mobilenetv2_100", num_classes=2, in_chans=3, dropout=0.0, pretrained="imagenet",
                      weights_dir=WEIGHTS)
    x = torch.randn(2, 1, 64, 64)
    assert (_features(gray, x) - _features(rgb, x.repeat(1, 3, 1, 1))).abs().max().item() < 1e-4


@needs_weights
def test_adapter_rejects_the_wrong_model(tmp_path: Path) -> None:
    sd = torch.load(MOBILENET, map_location="cpu", weights_only=True)
    sd.pop("features.18.1.num_batches_tracked")  # one tensor short: cannot map by order
    bad = tmp_path / MOBILENET.name
    torch.save(sd, bad)
    with pytest.raises(WeightsFileError, match="tensors in the file"):
        build_model("mobilenetv2_100", num_classes=2, in_chans=3, dropout=0.0, pretrained=str(bad))
    with pytest.raises(WeightsFileError, match="mobilenet_v2_imagenet_features.pth"):
        build_model("resnet18", num_classes=2, in_chans=3, dropout=0.0, pretrained=str(MOBILENET))


# --- EfficientNet-Lite0: timm keys with classifier --------------------------------------------


@needs_weights
@pytest.mark.parametrize("in_chans", [1, 3])
def test_efficientnet_lite0_local_file(in_chans: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDTUNE_WEIGHTS_DIR", str(WEIGHTS))  # found through the env var
    model = build_model("tf_efficientnet_lite0", num_classes=2, in_chans=in_chans, dropout=0.2, pretrained="imagenet")
    sd = torch.load(LITE0, map_location="cpu", weights_only=True)
    stem = sd["conv_stem.weight"]
    expected_stem = stem if in_chans == 3 else stem.sum(dim=1, keepdim=True)
    assert torch.allclose(model.backbone.conv_stem.weight, expected_stem)
    assert torch.equal(model.backbone.bn2.running_var, sd["bn2.running_var"])
    assert model.head[1].out_features == 2


@needs_weights
def test_efficientnet_lite0_features_equal_timm_imagenet_model() -> None:
    """Our backbone equals timm's own 1000-class model loaded from the file, up to the classifier."""
    ref = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    ref.load_state_dict(torch.load(LITE0, map_location="cpu", weights_only=True))
    ref.eval()
    ours = build_model("tf_efficientnet_lite0", num_classes=2, in_chans=3, dropout=0.0, pretrained=str(LITE0))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = ref.forward_head(ref.forward_features(x), pre_logits=True)
    assert torch.allclose(_features(ours, x), expected, atol=1e-5)


@needs_weights
def test_safetensors_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    sd = torch.load(LITE0, map_location="cpu", weights_only=True)
    path = tmp_path / "lite0_from_run.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    from_st = build_model("tf_efficientnet_lite0", num_classes=2, in_chans=1, dropout=0.0, pretrained=str(path))
    from_pth = build_model("tf_efficientnet_lite0", num_classes=2, in_chans=1, dropout=0.0, pretrained=str(LITE0))
    x = torch.randn(2, 1, 32, 32)
    assert torch.equal(_features(from_st, x), _features(from_pth, x))


# --- refusals and clear errors ----------------------------------------------------------------

_CODE_RAN: list[str] = []


def _side_effect() -> dict:
    _CODE_RAN.append("pickled code ran")
    return {}


class _Payload:
    """Unpickling this calls ``_side_effect``: what a malicious weights file would do."""

    def __reduce__(self):
        return (_side_effect, ())


def test_pickled_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "extra": _Payload()}, path)
    with pytest.raises(WeightsFileError, match="weights_only"):
        build_model("resnet18", num_classes=2, in_chans=1, dropout=0.0, pretrained=str(path))
    assert not _CODE_RAN


def test_shape_mismatch_names_the_file(tmp_path: Path) -> None:
    sd = timm.create_model("resnet18", num_classes=0).state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "resnet18_broken.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsFileError, match=r"resnet18_broken\.pth.*layer1\.0\.conv1\.weight"):
        build_model("resnet18", num_classes=2, in_chans=3, dropout=0.0, pretrained=str(path))


def test_unexpected_keys_are_refused(tmp_path: Path) -> None:
    sd = timm.create_model("resnet18", num_classes=0).state_dict()
    sd["not_a_layer.weight"] = torch.zeros(3)
    path = tmp_path / "resnet18_extra.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsFileError, match="not_a_layer"):
        build_model("resnet18", num_classes=2, in_chans=1, dropout=0.0, pretrained=str(path))


def test_own_checkpoint_roundtrip_with_classifier_dropped(tmp_path: Path) -> None:
    """A timm-format file with a 1000-class classifier loads; the classifier is the only key dropped."""
    src = timm.create_model("resnet18", num_classes=1000)
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(src.state_dict(), path)
    model = build_model("resnet18", num_classes=2, in_chans=1, dropout=0.0, pretrained="imagenet", weights_dir=tmp_path)
    assert torch.allclose(model.backbone.conv1.weight, src.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(model.backbone.layer4[1].bn2.weight, src.layer4[1].bn2.weight)


def test_imagenet_offline_without_local_weights(tmp_path: Path) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    with pytest.raises(WeightsUnavailableError) as err:
        build_model("resnet18", num_classes=2, in_chans=1, dropout=0.0, pretrained="imagenet", weights_dir=empty)
    message = str(err.value)
    assert "MEDTUNE_WEIGHTS_DIR" in message and "hub" in message and "resnet18" in message
    assert "resnet18_imagenet.safetensors" in message


def test_simple_cnn_has_no_imagenet_weights() -> None:
    with pytest.raises(ValueError, match="simple_cnn"):
        build_model("simple_cnn", num_classes=2, in_chans=1, dropout=0.0, pretrained="imagenet")


def test_missing_file_or_bad_choice() -> None:
    with pytest.raises(FileNotFoundError, match="'none', 'imagenet'"):
        build_model("resnet18", num_classes=2, in_chans=1, dropout=0.0, pretrained="imagenet21k")
