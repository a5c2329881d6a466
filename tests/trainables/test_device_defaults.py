"""Per-device defaults: ``auto`` resolves by device kind, explicit values win, and no GPU is needed to ask."""

from __future__ import annotations

import copy

import pytest
import torch

from medtune.trainables.config import TrialConfig, check_value, parse_param
from medtune.trainables.device_defaults import (
    DEVICE_DEFAULTS,
    configure_backends,
    defaults_for,
    resolved,
)
from medtune.trainables.factories import build_optimizer, fused_on, make_batches, precision_for
from medtune.trainables.loop import Precision

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def no_cuda_please():
    raise AssertionError("resolving asked CUDA")


def test_a_bare_config_is_auto_for_every_device_setting():
    cfg = TrialConfig()
    assert (cfg.channels_last, cfg.amp_dtype, cfg.cudnn_benchmark, cfg.eval_batch_size) == ("auto",) * 4


def test_cpu_keeps_what_it_had_channels_last_float32_and_256_image_eval_batches():
    r = resolved(TrialConfig(batch_size=32), CPU, bf16_supported=no_cuda_please)
    assert r.channels_last is True and r.amp_dtype is None and r.cudnn_benchmark is False
    assert r.eval_batch_size == 256
    assert resolved(TrialConfig(batch_size=512), "cpu").eval_batch_size == 512  # never below a training batch


def test_cuda_defaults_resolve_without_a_gpu():
    r = resolved(TrialConfig(batch_size=64), CUDA, bf16_supported=lambda: True)
    assert r.channels_last is False and r.amp_dtype == torch.bfloat16 and r.cudnn_benchmark is True
    assert r.eval_batch_size == 256  # 4 x 64
    assert resolved(TrialConfig(batch_size=128), CUDA, bf16_supported=lambda: True).eval_batch_size == 512
    assert resolved(TrialConfig(batch_size=8), CUDA, bf16_supported=lambda: True).eval_batch_size == 256
    assert resolved(TrialConfig(batch_size=512), CUDA, bf16_supported=lambda: True).eval_batch_size == 1024
    assert resolved(TrialConfig(batch_size=2048), CUDA, bf16_supported=lambda: True).eval_batch_size == 2048
    assert resolved(TrialConfig(), CUDA, bf16_supported=lambda: False).amp_dtype == torch.float16


def test_bf16_support_is_asked_only_when_it_decides_the_answer():
    for cfg in (TrialConfig(amp=False), TrialConfig(amp_dtype="float16"), TrialConfig(amp_dtype="bfloat16")):
        resolved(cfg, CUDA, bf16_supported=no_cuda_please)
    assert resolved(TrialConfig(amp=False), CUDA, bf16_supported=no_cuda_please).amp_dtype is None
    # The table itself asks the device nothing.
    assert defaults_for(CUDA) is DEVICE_DEFAULTS["cuda"] and defaults_for("cuda:1") is DEVICE_DEFAULTS["cuda"]
    assert defaults_for("meta").channels_last is False  # an unmeasured device: torch's own defaults


@pytest.mark.parametrize("device", [CPU, CUDA])
def test_explicit_values_win_on_every_device(device):
    cfg = TrialConfig(channels_last=True, amp_dtype="float16", cudnn_benchmark=False, eval_batch_size=48)
    r = resolved(cfg, device, bf16_supported=no_cuda_please)
    assert r.channels_last is True and r.cudnn_benchmark is False and r.eval_batch_size == 48
    assert r.amp_dtype == (torch.float16 if device.type == "cuda" else None)  # never autocast on the CPU
    assert resolved(TrialConfig(channels_last=False), device, bf16_supported=lambda: True).channels_last is False


def test_precision_follows_the_resolved_dtype():
    assert Precision.for_dtype(CPU, torch.bfloat16).dtype is None  # the CPU stays float32
    bf16 = Precision.for_dtype(CUDA, torch.bfloat16)
    assert bf16.dtype == torch.bfloat16 and bf16.scaler is None
    assert Precision.for_dtype(CUDA, None).dtype is None
    cpu = precision_for(TrialConfig(), CPU)
    assert cpu.dtype is None and cpu.scaler is None


def test_cudnn_benchmark_is_set_for_cuda_only():
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        configure_backends(TrialConfig(), CPU)
        assert torch.backends.cudnn.benchmark is False
        configure_backends(TrialConfig(), CUDA)
        assert torch.backends.cudnn.benchmark is True
        configure_backends(TrialConfig(cudnn_benchmark=False), CUDA)
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = before


def test_batches_take_the_resolved_layout_and_eval_batch():
    import numpy as np

    from medtune.trainables.data import SplitArrays

    split = SplitArrays(images=np.zeros((300, 28, 28, 1), dtype=np.uint8), labels=np.zeros(300, dtype=np.int64))
    cfg = TrialConfig(batch_size=16)
    train = make_batches(cfg, split, train=True, device=CPU)
    evaluate = make_batches(cfg, split, train=False, device=CPU)
    assert train.batch_size == 16 and evaluate.batch_size == 256 and train.channels_last and evaluate.channels_last
    off = make_batches(TrialConfig(batch_size=16, channels_last=False, eval_batch_size=100), split, train=False,
                       device=CPU)
    assert off.batch_size == 100 and not off.channels_last


def test_fused_optimizer_only_where_the_parameters_are_on_cuda():
    from medtune.trainables.factories import build_trial_model

    model = build_trial_model(TrialConfig(), num_classes=2)
    assert fused_on(list(model.parameters())) is None
    for optimizer in ("adamw", "sgd"):
        opt = build_optimizer(TrialConfig(optimizer=optimizer), model)
        assert opt.param_groups[0]["fused"] is None  # the CPU keeps its optimizer
    meta = [torch.nn.Parameter(torch.empty(2, device="meta"))]
    assert fused_on(meta) is None and fused_on([]) is None

    class OnCuda:
        device = CUDA

    assert fused_on([OnCuda(), OnCuda()]) is True
    assert fused_on([OnCuda(), meta[0]]) is None


def test_a_checkpoint_keeps_the_restoring_devices_fused_setting():
    """A CPU checkpoint restored where the step is fused (and back) keeps the restoring optimizer's choice."""
    from medtune.trainables.factories import build_trial_model
    from medtune.trainables.folds import FoldRun

    model = build_trial_model(TrialConfig(), num_classes=2)
    saved = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    model(torch.zeros(2, 1, 28, 28)).sum().backward()
    saved.step()
    run = FoldRun(model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3), lr_schedule=None,
                  criterion=torch.nn.CrossEntropyLoss(), train_batches=None, val_batches=None, val_rows=None)
    run.restore({"model": model.state_dict(), "optimizer": copy.deepcopy(saved.state_dict())})
    assert run.optimizer.param_groups[0]["fused"] is None
    run.optimizer.step()  # the unfused step works on the restored state
    # And the other way: an unfused checkpoint restored into a fused optimizer (CPU-fused stands in for CUDA).
    run.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    run.restore({"model": model.state_dict(), "optimizer": copy.deepcopy(saved.state_dict() | {
        "param_groups": [{**g, "fused": None} for g in saved.state_dict()["param_groups"]]})})
    assert run.optimizer.param_groups[0]["fused"] is True
    run.optimizer.step()


@pytest.mark.parametrize("key, good, bad, words", [
    ("channels_last", ["auto", True, False], ["yes", 1, None], ["auto, true or false", "expected str or bool",
                                                                "must not be null"]),
    ("cudnn_benchmark", ["auto", True, False], ["on", 0], ["auto, true or false", "expected str or bool"]),
    ("amp_dtype", ["auto", "bfloat16", "float16"], ["fp16", True], ["must be one of", "expected str"]),
    ("eval_batch_size", ["auto", 1, 1024], [0, -8, "big", 2.5, True], ["auto or an integer > 0"] * 3
     + ["expected str or int"] * 2),
])
def test_trial_keys_take_auto_or_an_explicit_value(key, good, bad, words):
    for value in good:
        assert check_value(key, value) is None, value
        assert parse_param(key, str(value)) == value  # as MLflow params bring it back
    for value, word in zip(bad, words):
        msg = check_value(key, value)
        assert msg and word in msg, (value, msg)


SPACE = {
    "name": "t",
    "data": {"source": "pneumoniamnist", "image_size": 28},
    "search": {"num_samples": 2, "scheduler": {"name": "asha", "max_t": 2, "grace_period": 1}},
    "space": {"lr": {"loguniform": [1e-4, 1e-2]}},
    "fixed": {"pretrained": "none"},
}


def test_space_files_take_auto_and_explicit_values_and_name_the_key_of_a_bad_one():
    from medtune.search.spec.sweep_spec import SpecError, validate_spec

    raw = copy.deepcopy(SPACE)
    raw["fixed"].update(amp_dtype="bfloat16", cudnn_benchmark="auto", eval_batch_size=512)
    raw["space"]["channels_last"] = {"choice": ["auto", True, False]}
    spec = validate_spec(raw, source="good.yaml")
    base = spec.trial_base()
    assert base["eval_batch_size"] == 512 and base["cudnn_benchmark"] == "auto" and base["amp_dtype"] == "bfloat16"
    for key, value, words in [("channels_last", "sometimes", "auto, true or false"),
                              ("amp_dtype", "fp8", "must be one of"),
                              ("cudnn_benchmark", 1, "expected str or bool"),
                              ("eval_batch_size", 0, "auto or an integer > 0")]:
        raw = copy.deepcopy(SPACE)
        raw["fixed"][key] = value
        with pytest.raises(SpecError) as info:
            validate_spec(raw, source="bad.yaml")
        assert any(p == f"fixed.{key}" and words in m for p, m in info.value.problems), info.value.problems
    raw = copy.deepcopy(SPACE)
    raw["space"]["eval_batch_size"] = {"choice": ["auto", 0]}
    with pytest.raises(SpecError) as info:
        validate_spec(raw, source="bad.yaml")
    assert any(p == "space.eval_batch_size.choice" for p, _ in info.value.problems), info.value.problems
