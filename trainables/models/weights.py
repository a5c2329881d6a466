"""Finding, reading and loading pretrained backbone weights without running pickled code.

Local files are read with ``torch.load(weights_only=True)`` or safetensors, so a weights file can
never execute code. Files whose keys are not timm's get a *key adapter*, registered per file
name in ``KEY_ADAPTERS`` (see ``register_key_adapter``). After adapting, the first conv is
converted to the model's ``in_chans`` with timm's ``adapt_input_conv`` and the load is checked:
no unexpected keys, no missing keys except the classifier (which medtune replaces), no shape
mismatches.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from timm.models import adapt_input_conv
from torch import Tensor, nn

__all__ = [
    "WEIGHTS_DIR_ENV",
    "WeightsUnavailableError",
    "WeightsFileError",
    "KeyAdapter",
    "KEY_ADAPTERS",
    "register_key_adapter",
    "resolve_weights_dir",
    "find_local_weights",
    "read_state_dict",
    "load_backbone_weights",
    "map_by_order",
]

WEIGHTS_DIR_ENV = "MEDTUNE_WEIGHTS_DIR"

StateDict = dict[str, Tensor]
# (state dict as read from the file, expected shapes of a 3-channel timm model, in order) -> timm keys
KeyAdapter = Callable[[StateDict, Mapping[str, torch.Size]], StateDict]
KEY_ADAPTERS: dict[str, KeyAdapter] = {}


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights were asked for but neither a local file nor timm's hub could supply them."""


class WeightsFileError(ValueError):
    """A weights file exists but cannot be used (unsafe pickle, wrong keys or shapes)."""


def register_key_adapter(file_name: str) -> Callable[[KeyAdapter], KeyAdapter]:
    """Decorator: use ``fn`` to translate the keys of weights files named ``file_name``."""

    def deco(fn: KeyAdapter) -> KeyAdapter:
        KEY_ADAPTERS[file_name] = fn
        return fn

    return deco


def resolve_weights_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Where local weights live: the explicit argument, else $MEDTUNE_WEIGHTS_DIR, else None."""
    value = explicit if explicit not in (None, "") else os.environ.get(WEIGHTS_DIR_ENV) or None
    return Path(value).expanduser() if value is not None else None


def find_local_weights(weights_dir: Path | None, file_names: tuple[str, ...]) -> Path | None:
    """The first of ``file_names`` present in ``weights_dir`` (None if no dir or no file)."""
    if weights_dir is None:
        return None
    for name in file_names:
        candidate = weights_dir / name
        if candidate.is_file():
            return candidate
    return None


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """Read a state dict from .safetensors or a torch file, refusing anything but tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: object = load_file(str(path), device="cpu")
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise WeightsFileError(
                f"refusing to load {path}: it is not a plain tensor state dict (torch.load with "
                f"weights_only=True rejected it; medtune never unpickles code). Re-save it as a "
                f"state dict of tensors or as .safetensors. {_unpickler_detail(e)}"
            ) from e
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):  # common checkpoint wrappers
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsFileError(f"{path} does not hold a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def _unpickler_detail(error: Exception) -> str:
    """The line of torch's long weights_only message that says what was refused."""
    lines = [ln.strip() for ln in str(error).splitlines()]
    detail = next((ln for ln in lines if "Unsupported global" in ln), lines[0] if lines else "")
    return re.sub(r"\x1b\[[0-9;]*m", "", detail)


def map_by_order(source: StateDict, target: Mapping[str, torch.Size], *, origin: str) -> StateDict:
    """Rename ``source`` onto ``target``'s keys one to one, in order, checking every shape.

    The tensor kind (weight, bias, running_mean, ...) must match too, which catches a shifted
    order that happens to agree in shape.
    """
    if len(source) != len(target):
        raise WeightsFileError(f"{origin}: {len(source)} tensors in the file, the model expects {len(target)}")
    out: StateDict = {}
    for (src_key, tensor), (dst_key, shape) in zip(source.items(), target.items()):
        if tensor.shape != shape or src_key.rpartition(".")[2] != dst_key.rpartition(".")[2]:
            raise WeightsFileError(
                f"{origin}: tensor {src_key} {tuple(tensor.shape)} does not match "
                f"{dst_key} {tuple(shape)} at the same position"
            )
        out[dst_key] = tensor
    return out


@register_key_adapter("mobilenet_v2_imagenet_features.pth")
def torchvision_mobilenet_v2_features(state_dict: StateDict, target: Mapping[str, torch.Size]) -> StateDict:
    """torchvision ``mobilenet_v2().features.*`` -> timm ``mobilenetv2_100``.

    Both hold the same 312 tensors in the same order: features.0 = conv_stem/bn1,
    features.1..17 = blocks, features.18 = conv_head/bn2.
    """
    if not all(k.startswith("features.") for k in state_dict):
        raise WeightsFileError("expected torchvision mobilenet_v2 'features.*' keys only")
    return map_by_order(state_dict, target, origin="mobilenet_v2_imagenet_features.pth")


def _pretrained_shapes(backbone: nn.Module, first_conv: str | None, in_chans: int,
                       base_chans: int) -> dict[str, torch.Size]:
    """The backbone's state-dict shapes as a ``base_chans``-input (ImageNet) model would have them."""
    shapes = {k: v.shape for k, v in backbone.state_dict().items()}
    key = f"{first_conv}.weight" if first_conv else None
    if key in shapes and in_chans != base_chans:
        o, i, *hw = shapes[key]
        shapes[key] = torch.Size([o, i * base_chans // in_chans, *hw])
    return shapes


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike[str], *, in_chans: int) -> None:
    """Load a local weights file into a timm backbone built with ``num_classes=0``.

    Uses the file's key adapter if one is registered for its name, converts the first conv to
    ``in_chans`` (timm's ``adapt_input_conv``: summed for 1 channel), drops the source classifier
    and loads strictly otherwise.
    """
    path = Path(path)
    cfg = dict(getattr(backbone, "pretrained_cfg", None) or {})
    first_conv = cfg.get("first_conv")
    first_conv = first_conv[0] if isinstance(first_conv, (tuple, list)) else first_conv
    base_chans = int((cfg.get("input_size") or (3,))[0])
    state_dict = read_state_dict(path)

    adapter = KEY_ADAPTERS.get(path.name)
    if adapter is not None:
        try:
            state_dict = adapter(state_dict, _pretrained_shapes(backbone, first_conv, in_chans, base_chans))
        except WeightsFileError as e:
            raise WeightsFileError(f"{path} does not fit {type(backbone).__name__}: {e}") from e

    expected = backbone.state_dict()
    conv_key = f"{first_conv}.weight" if first_conv else None
    if conv_key in state_dict and conv_key in expected and state_dict[conv_key].shape != expected[conv_key].shape:
        try:
            state_dict[conv_key] = adapt_input_conv(in_chans, state_dict[conv_key], base_chans=base_chans)
        except (AssertionError, NotImplementedError, RuntimeError, ValueError) as e:
            raise WeightsFileError(
                f"{path}: cannot adapt {conv_key} {tuple(state_dict[conv_key].shape)} to "
                f"{tuple(expected[conv_key].shape)} ({in_chans} input channels): {e}"
            ) from e

    classifiers = cfg.get("classifier") or ()
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    head_keys = {f"{c}.{p}" for c in classifiers for p in ("weight", "bias")}
    for key in head_keys - expected.keys():
        state_dict.pop(key, None)  # the ImageNet classifier; medtune adds its own head

    hint = "" if adapter else (f" (no key adapter is registered for file name {path.name!r}; "
                               f"known: {sorted(KEY_ADAPTERS)})")
    unexpected = sorted(state_dict.keys() - expected.keys())
    missing = sorted(expected.keys() - state_dict.keys() - head_keys)
    if unexpected or missing:
        raise WeightsFileError(
            f"{path} does not fit {type(backbone).__name__}{hint}: "
            f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''} ({len(unexpected)}), "
            f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)})"
        )
    wrong = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if v.shape != expected[k].shape
    ]
    if wrong:
        raise WeightsFileError(f"{path} has tensors of the wrong shape: {'; '.join(wrong[:5])}")
    backbone.load_state_dict(state_dict, strict=True)  # keys were checked above; strict guards the checks
