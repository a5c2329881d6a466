"""Model layer: registry, simple_cnn in timm, stage freezing, head, channels, input sizes."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable

import pytest
import timm
import torch
from torch import nn

from medtune.trainables.models import (
    ArchitectureInfo,
    TransferModel,
    UnknownArchitectureError,
    build_model,
    get_architecture,
    list_architectures,
    resolve_frozen_depth,
    resolve_weights_dir,
)

ARCHS = list_architectures()
NUM_CLASSES = 3
DROPOUT = 0.37


@pytest.fixture(scope="module")
def model_of() -> Callable[[str], TransferModel]:
    """One 1-channel TransferModel per architecture for the whole module (vgg16_bn takes ~3 s)."""
    cache: dict[str, TransferModel] = {}

    def get(arch: str) -> TransferModel:
        if arch not in cache:
            torch.manual_seed(0)
            cache[arch] = build_model(arch, num_classes=NUM_CLASSES, in_chans=1, dropout=DROPOUT)
        model = cache[arch]
        model.set_frozen_depth(0)
        model.train()
        model.zero_grad(set_to_none=True)
        return model

    return get


def _input(arch: str, in_chans: int = 1, batch: int = 2, size: int | None = None) -> torch.Tensor:
    size = size or max(get_architecture(arch).min_input_size, 16)
    return torch.randn(batch, in_chans, size, size)


def _bn_modules(model: TransferModel) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    return {n: m for n, m in model.backbone.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


# --- registry -------------------------------------------------------------------------------


def test_architecture_list() -> None:
    assert ARCHS == [
        "simple_cnn",
        "densenet121",
        "vgg16_bn",
        "resnet18",
        "resnet50",
        "inception_v3",
        "mobilenetv2_100",
        "tf_efficientnet_lite0",
    ]
    for arch in ARCHS:
        info = get_architecture(arch)
        assert isinstance(info, ArchitectureInfo)
        assert info.name == info.timm_name == arch
        assert timm.is_model(info.timm_name)
        assert len(info.mean) == len(info.std) == 3
        assert info.has_imagenet_weights == (arch != "simple_cnn")


def test_paper_names_map_one_to_one() -> None:
    paper = {get_architecture(a).paper_name: a for a in ARCHS if get_architecture(a).paper_name}
    assert paper == {
        "CNN": "simple_cnn",
        "DenseNet": "densenet121",
        "VGG-16": "vgg16_bn",
        "ResNet": "resnet50",
        "InceptionNet": "inception_v3",
    }


def test_preprocessing_follows_timm_cfg() -> None:
    assert get_architecture("tf_efficientnet_lite0").mean == (0.5, 0.5, 0.5)
    assert get_architecture("tf_efficientnet_lite0").std == (0.5, 0.5, 0.5)
    assert get_architecture("resnet18").mean == pytest.approx((0.485, 0.456, 0.406))
    assert get_architecture("mobilenetv2_100").std == pytest.approx((0.229, 0.224, 0.225))


def test_unknown_architecture() -> None:
    with pytest.raises(UnknownArchitectureError) as err:
        get_architecture("resnet1000")
    assert isinstance(err.value, KeyError)
    assert "resnet1000" in str(err.value) and all(a in str(err.value) for a in ARCHS)
    with pytest.raises(UnknownArchitectureError):
        build_model("resnet1000", num_classes=2, in_chans=1, dropout=0.0)


# --- simple_cnn is a timm model ----------------------------------------------------------------


def test_simple_cnn_through_timm() -> None:
    m = timm.create_model("simple_cnn", num_classes=0, in_chans=1).eval()
    assert m.num_features == 128
    assert [f["module"] for f in m.feature_info] == ["blocks.0", "blocks.1", "blocks.2"]
    assert [f["num_chs"] for f in m.feature_info] == [32, 64, 128]
    assert [f["reduction"] for f in m.feature_info] == [2, 4, 8]
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert m.forward_features(x).shape == (2, 128, 3, 3)
        assert m(x).shape == (2, 128)
        m.reset_classifier(5)
        assert isinstance(m.get_classifier(), nn.Linear) and m(x).shape == (2, 5)
        feats = timm.create_model("simple_cnn", features_only=True, in_chans=1)(x)
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 14, 14), (64, 7, 7), (128, 3, 3)]
    with pytest.raises(RuntimeError):
        timm.create_model("simple_cnn", pretrained=True)  # no weights exist


def test_simple_cnn_reregisters_quietly() -> None:
    import medtune.trainables.models.simple_cnn as mod

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(mod)
    assert timm.create_model("simple_cnn", num_classes=0, in_chans=3)(torch.randn(2, 3, 8, 8)).shape == (2, 128)


# --- stages and freezing ----------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_stages_cover_backbone(arch: str, model_of: Callable[[str], TransferModel]) -> None:
    model = model_of(arch)
    info = get_architecture(arch)
    stages = model.stage_of_parameters()
    assert model.num_stages == info.num_stages
    assert list(stages) == [n for n, _ in model.backbone.named_parameters()]
    assert set(stages.values()) == set(range(1, info.num_stages + 1)), "every stage owns parameters"
    order = list(stages.values())
    assert order == sorted(order), "stages follow registration order"


@pytest.mark.parametrize(
    ("arch", "name", "stage"),
    [
        ("resnet18", "conv1.weight", 1),
        ("resnet18", "bn1.bias", 1),
        ("resnet18", "layer1.0.conv1.weight", 2),
        ("resnet18", "layer4.1.bn2.weight", 5),
        ("densenet121", "features.conv0.weight", 1),
        ("densenet121", "features.transition1.conv.weight", 3),
        ("densenet121", "features.norm5.weight", 5),
        ("vgg16_bn", "features.40.weight", 5),
        ("vgg16_bn", "pre_logits.fc2.weight", 5),
        ("inception_v3", "Conv2d_3b_1x1.conv.weight", 2),
        ("inception_v3", "Mixed_7a.branch3x3_1.conv.weight", 5),
        ("mobilenetv2_100", "conv_stem.weight", 1),
        ("mobilenetv2_100", "blocks.3.0.conv_pw.weight", 4),
        ("mobilenetv2_100", "blocks.5.0.conv_pw.weight", 5),
        ("tf_efficientnet_lite0", "conv_head.weight", 5),
        ("tf_efficientnet_lite0", "bn2.weight", 5),
        ("simple_cnn", "blocks.1.4.weight", 2),
    ],
)
def test_stage_boundaries(arch: str, name: str, stage: int, model_of: Callable[[str], TransferModel]) -> None:
    assert model_of(arch).stage_of_parameters()[name] == stage


@pytest.mark.parametrize("arch", ARCHS)
def test_frozen_depth_freezes_exactly_its_stages(arch: str, model_of: Callable[[str], TransferModel]) -> None:
    model = model_of(arch)
    stages = model.stage_of_parameters()
    head = {f"head.{n}" for n, _ in model.head.named_parameters()}
    everything = {n for n, _ in model.named_parameters()}
    previous: set[str] | None = None
    for depth in range(model.num_stages + 1):
        model.set_frozen_depth(depth)
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
        assert frozen == {f"backbone.{n}" for n, s in stages.items() if s <= depth}
        trainable = {id(p) for p in model.trainable_parameters()}
        assert trainable == {id(p) for n, p in model.named_parameters() if n not in frozen}
        assert head.isdisjoint(frozen)
        if previous is not None:
            assert previous < frozen, f"depth {depth} must freeze strictly more than depth {depth - 1}"
        previous = frozen
        if depth == 0:
            assert not frozen
    assert everything - frozen == head, "frozen_depth == num_stages trains only the head"
    with pytest.raises(ValueError):
        model.set_frozen_depth(model.num_stages + 1)


@pytest.mark.parametrize("arch", ["simple_cnn", "mobilenetv2_100"])
def test_build_model_frozen_depth_matches(arch: str, model_of: Callable[[str], TransferModel]) -> None:
    stages = model_of(arch).stage_of_parameters()
    for depth in range(get_architecture(arch).num_stages + 1):
        m = build_model(arch, num_classes=2, in_chans=1, dropout=0.0, frozen_depth=depth)
        assert m.frozen_depth == depth
        assert {n for n, p in m.backbone.named_parameters() if not p.requires_grad} == {
            n for n, s in stages.items() if s <= depth
        }
    with pytest.raises(ValueError, match=arch):
        build_model(arch, num_classes=2, in_chans=1, dropout=0.0, frozen_depth=99)


@pytest.mark.parametrize("arch", ARCHS)
def test_frozen_batchnorm_stays_fixed(arch: str, model_of: Callable[[str], TransferModel]) -> None:
    model = model_of(arch)
    depth = 2
    model.set_frozen_depth(depth)
    model.eval()
    model.train()  # a second .train() must not wake frozen stages
    stage = model.stage_of_parameters()
    bns = _bn_modules(model)
    frozen_bn = {n for n in bns if stage[f"{n}.weight"] <= depth}
    assert frozen_bn and frozen_bn != set(bns)
    for n, bn in bns.items():
        assert bn.training == (n not in frozen_bn), n
    assert model.head.training
    before = {n: (bn.running_mean.clone(), bn.running_var.clone()) for n, bn in bns.items()}
    model(_input(arch, size=max(get_architecture(arch).min_input_size, 32))).sum().backward()
    for n, bn in bns.items():
        changed = not torch.equal(before[n][0], bn.running_mean) or not torch.equal(before[n][1], bn.running_var)
        assert changed == (n not in frozen_bn), f"{n}: frozen={n in frozen_bn} but stats changed={changed}"
    for n, p in model.backbone.named_parameters():
        assert (p.grad is None) == (stage[n] <= depth), n
    assert all(p.grad is not None for p in model.head.parameters())


def test_full_freeze_puts_backbone_in_eval(model_of: Callable[[str], TransferModel]) -> None:
    model = model_of("tf_efficientnet_lite0")
    model.set_frozen_depth(model.num_stages)
    model.train()
    assert not any(m.training for m in model.backbone.modules())
    assert all(m.training for m in model.head.modules())
    model.set_frozen_depth(0)
    assert all(m.training for m in model.backbone.modules())


# --- head, channels, input sizes ---------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_head(arch: str, model_of: Callable[[str], TransferModel]) -> None:
    model = model_of(arch)
    assert isinstance(model.head, nn.Sequential) and len(model.head) == 2
    assert isinstance(model.head[0], nn.Dropout) and model.head[0].p == DROPOUT
    assert isinstance(model.head[1], nn.Linear) and model.head[1].out_features == NUM_CLASSES
    model.eval()
    with torch.no_grad():
        assert model.backbone(_input(arch)).shape == (2, model.head[1].in_features)


@pytest.mark.parametrize("arch", ARCHS)
def test_one_channel_forward(arch: str, model_of: Callable[[str], TransferModel]) -> None:
    model = model_of(arch).eval()
    with torch.no_grad():
        assert model(_input(arch, in_chans=1, batch=3)).shape == (3, NUM_CLASSES)


@pytest.mark.parametrize("arch", ARCHS)
def test_three_channel_forward(arch: str) -> None:
    model = build_model(arch, num_classes=2, in_chans=3, dropout=0.1).eval()
    with torch.no_grad():
        assert model(_input(arch, in_chans=3, batch=3)).shape == (3, 2)
    with pytest.raises(RuntimeError):
        model(_input(arch, in_chans=1))


def test_in_chans_must_be_1_or_3() -> None:
    with pytest.raises(ValueError, match="in_chans"):
        build_model("simple_cnn", num_classes=2, in_chans=2, dropout=0.0)


@pytest.mark.parametrize("arch", ARCHS)
def test_min_input_size_is_exact(arch: str, model_of: Callable[[str], TransferModel]) -> None:
    size = get_architecture(arch).min_input_size
    model = model_of(arch).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, size, size)).shape == (2, NUM_CLASSES)
        if size > 1:
            with pytest.raises(RuntimeError):
                model(torch.randn(2, 1, size - 1, size - 1))


# --- resolve_frozen_depth / resolve_weights_dir ------------------------------------------------


def test_resolve_frozen_depth_fraction() -> None:
    assert resolve_frozen_depth("resnet18") == 0
    assert [resolve_frozen_depth("resnet18", frozen_fraction=f) for f in (0, 0.1, 0.3, 0.5, 0.7, 0.9, 1)] == [
        0, 1, 2, 3, 4, 5, 5,
    ]
    assert resolve_frozen_depth("simple_cnn", frozen_fraction=0.5) == 2  # 1.5 rounds half up
    assert resolve_frozen_depth("simple_cnn", frozen_fraction=1.0) == 3
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            resolve_frozen_depth("resnet18", frozen_fraction=bad)


def test_resolve_frozen_depth_int() -> None:
    assert resolve_frozen_depth("vgg16_bn", frozen_depth=5) == 5
    for bad in (-1, 6):
        with pytest.raises(ValueError, match=r"vgg16_bn.*0\.\.5"):
            resolve_frozen_depth("vgg16_bn", frozen_depth=bad)
    with pytest.raises(ValueError):
        resolve_frozen_depth("vgg16_bn", frozen_depth=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        resolve_frozen_depth("vgg16_bn", frozen_depth=1, frozen_fraction=0.2)
    with pytest.raises(UnknownArchitectureError):
        resolve_frozen_depth("nope", frozen_depth=0)


def test_resolve_weights_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("MEDTUNE_WEIGHTS_DIR", raising=False)
    assert resolve_weights_dir() is None
    monkeypatch.setenv("MEDTUNE_WEIGHTS_DIR", str(tmp_path / "env"))
    assert resolve_weights_dir() == tmp_path / "env"
    assert resolve_weights_dir(str(tmp_path / "arg")) == tmp_path / "arg"
