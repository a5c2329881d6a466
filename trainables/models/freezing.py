"""Backbone stages from timm's ``feature_info``, and freezing the first k of them.

One rule for every architecture, so ``frozen_depth`` means the same thing across a sweep:

* The stage taps are the ``feature_info`` module names (resnet: act1, layer1..4; densenet121:
  features.norm0, denseblock1..3, norm5; vgg16_bn: features.5/12/22/32/42/43; inception_v3:
  Conv2d_2b_3x3, Conv2d_4a_3x3, Mixed_5d, Mixed_6e, Mixed_7c; mobilenetv2_100 and
  tf_efficientnet_lite0: blocks.0/1/2/4/6; simple_cnn: blocks.0/1/2).
* Modules are ordered by ``named_modules()`` (registration order). A tap's stage *ends* with the
  last module of the tap's subtree. A parameter belongs to the first stage ending at or after
  its module, so a stage also owns everything between the previous tap and itself (resnet's
  conv1/bn1 sit in the act1 stage, densenet's transitions in the next block's stage).
* Taps that would own no parameters are dropped (vgg16_bn's final max pool features.43), so
  every stage owns parameters.
* Parameters after the last tap (the "neck": EfficientNet/MobileNetV2 conv_head/bn2, VGG's
  pre_logits ConvMlp) join the last stage, so ``frozen_depth == num_stages`` freezes the whole
  backbone and only medtune's new head trains.

Resulting ``num_stages``: simple_cnn 3; every other architecture 5 (vgg16_bn's stage 5 is its last
conv block plus pre_logits).

A module is in stage s when its whole subtree ends in stage s; frozen modules are kept in eval
mode by ``TransferModel.train`` so BatchNorm running statistics of frozen stages stay fixed.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left
from dataclasses import dataclass

from torch import nn

from .registry import get_architecture

__all__ = ["StagePlan", "feature_taps", "plan_stages", "apply_frozen_depth", "frozen_modules", "resolve_frozen_depth"]


@dataclass(frozen=True)
class StagePlan:
    """Stage assignment of one backbone: stages are numbered 1..num_stages."""

    taps: tuple[str, ...]  # the feature_info module that closes each kept stage
    param_stage: dict[str, int]  # parameter name -> stage
    module_stage: dict[str, int]  # module name -> stage its subtree ends in ("" is the root)

    @property
    def num_stages(self) -> int:
        return len(self.taps)


def feature_taps(model: nn.Module) -> list[str]:
    """Module names of the model's timm ``feature_info`` (list of dicts or ``FeatureInfo``)."""
    info = getattr(model, "feature_info", None)
    if info is None:
        raise ValueError(f"{type(model).__name__} has no feature_info; cannot define stages")
    if hasattr(info, "module_name"):  # timm.models.FeatureInfo (features_only models)
        return list(info.module_name())
    return [str(fi["module"]) for fi in info]


def _subtree_ends(model: nn.Module) -> tuple[dict[str, int], dict[str, int]]:
    """Registration index of every module and the index of the last module in its subtree."""
    index: dict[str, int] = {}
    end: dict[str, int] = {}
    for i, (name, _) in enumerate(model.named_modules()):
        index[name] = end[name] = i
        # named_modules is a pre-order walk, so the latest descendant seen is the subtree's end.
        parts = name.split(".") if name else []
        for depth in range(len(parts)):
            end[".".join(parts[:depth])] = i
    return index, end


def plan_stages(model: nn.Module) -> StagePlan:
    """Assign every parameter and module of ``model`` to a stage (rules in the module docstring)."""
    taps = feature_taps(model)
    index, end = _subtree_ends(model)
    missing = [t for t in taps if t not in end]
    if missing:
        raise ValueError(f"feature_info modules {missing} are not modules of {type(model).__name__}")
    tap_ends = [end[t] for t in taps]
    if tap_ends != sorted(tap_ends):
        raise ValueError(f"feature_info modules of {type(model).__name__} are not in registration order: {taps}")

    def owner_index(param_name: str) -> int:
        return index[param_name.rpartition(".")[0]]

    # Drop taps whose span owns no parameters (before the neck joins the last stage).
    owning = {bisect_left(tap_ends, owner_index(n)) for n, _ in model.named_parameters()}
    kept = [i for i in range(len(taps)) if i in owning]
    if not kept:
        raise ValueError(f"no parameters of {type(model).__name__} fall inside its feature_info stages")
    kept_ends = [tap_ends[i] for i in kept]
    last = len(kept)

    def stage_at(i: int) -> int:
        return min(bisect_left(kept_ends, i) + 1, last)

    return StagePlan(
        taps=tuple(taps[i] for i in kept),
        param_stage={n: stage_at(owner_index(n)) for n, _ in model.named_parameters()},
        module_stage={n: stage_at(end[n]) for n in index},
    )


def apply_frozen_depth(model: nn.Module, plan: StagePlan, depth: int) -> None:
    """Stages 1..depth stop requiring grad; the rest require it again (depth may go up or down)."""
    if not 0 <= depth <= plan.num_stages:
        raise ValueError(f"frozen_depth {depth} outside 0..{plan.num_stages}")
    for name, param in model.named_parameters():
        param.requires_grad_(plan.param_stage[name] > depth)


def frozen_modules(model: nn.Module, plan: StagePlan, depth: int) -> list[nn.Module]:
    """Outermost modules lying wholly in stages 1..depth (their ``.eval()`` covers the subtree)."""
    out: list[nn.Module] = []
    covered: list[str] = []
    for name, module in model.named_modules():
        if plan.module_stage[name] > depth:
            continue
        if any(name.startswith(c + ".") for c in covered):
            continue
        covered.append(name)
        out.append(module)
    return out


def resolve_frozen_depth(arch: str, frozen_depth: int | None = None, frozen_fraction: float | None = None) -> int:
    """Turn a search-space value into a stage count for ``arch``.

    Give at most one: an int in 0..num_stages, or a fraction in [0, 1] that is scaled by
    num_stages and rounded half up (0.5 of 5 stages -> 3), so fraction sweeps work the same for
    architectures with different stage counts. Neither means 0 (fine-tune everything).
    """
    info = get_architecture(arch)
    n = info.num_stages
    if frozen_depth is not None and frozen_fraction is not None:
        raise ValueError("give frozen_depth or frozen_fraction, not both "
                         f"(got {frozen_depth!r} and {frozen_fraction!r})")
    if frozen_fraction is not None:
        if isinstance(frozen_fraction, bool) or not (0.0 <= float(frozen_fraction) <= 1.0):
            raise ValueError(f"frozen_fraction must be a number in [0, 1], got {frozen_fraction!r}")
        return min(n, math.floor(float(frozen_fraction) * n + 0.5 + 1e-9))
    if frozen_depth is None:
        return 0
    if isinstance(frozen_depth, bool):
        raise ValueError(f"frozen_depth must be an int, got {frozen_depth!r}")
    try:
        depth = operator.index(frozen_depth)  # ints and numpy ints; floats are refused
    except TypeError:
        raise ValueError(f"frozen_depth must be an int, got {frozen_depth!r}") from None
    if not 0 <= depth <= n:
        raise ValueError(f"frozen_depth {depth} out of range for {arch}: it has {n} stages, so use 0..{n}")
    return depth
