"""``medtune validate`` names the data's mode: colour or grey, decided when the data is decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import medtune

DEMO = str(Path(__file__).resolve().parents[3] / "spaces" / "demo.yaml")


def _npz(path: Path, colour: bool) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 40), ("val", 20), ("test", 20)):
        shape = (n, 16, 16, 3) if colour else (n, 16, 16)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("colour", "expected"), [(True, {"mode": "colour", "channels": 3, "colour_images": 80}),
                                                  (False, {"mode": "grey", "channels": 1, "colour_images": 0})])
def test_validate_reports_the_mode(tmp_path, monkeypatch, colour, expected):
    monkeypatch.setenv("MEDTUNE_CACHE_DIR", str(tmp_path / "cache"))
    source = _npz(tmp_path / "data.npz", colour)
    checked = medtune.validate(DEMO, {"data.source": str(source), "data.image_size": 16,
                                      "storage": str(tmp_path / "results")})
    assert {k: checked.data_summary[k] for k in expected} == expected
