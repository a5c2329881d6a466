"""The data settings' validation, and where data and cache folders resolve (argument, environment, default)."""

from __future__ import annotations

import pytest

from medtune.trainables.data import DataConfig, DataError, resolve_cache_dir, resolve_data_dir

pytestmark = pytest.mark.usefixtures("isolated_data")


def test_resolve_dirs_precedence(tmp_path, monkeypatch):
    assert resolve_data_dir(str(tmp_path / "x")) == tmp_path / "x"
    assert resolve_data_dir() == tmp_path / "env-data"
    monkeypatch.delenv("MEDTUNE_DATA_DIR")
    assert resolve_data_dir().parts[-2:] == ("medtune", "data")
    assert resolve_cache_dir() == tmp_path / "env-cache"
    monkeypatch.delenv("MEDTUNE_CACHE_DIR")
    assert resolve_cache_dir(str(tmp_path / "y")) == tmp_path / "y"
    assert resolve_cache_dir().name == "medtune"


@pytest.mark.parametrize("kw", [dict(image_size=0), dict(val_fraction=1.0), dict(val_fraction=0), dict(train_subset=0),
                                dict(max_bad_fraction=2), dict(split_seed=1.5), dict(source="")])
def test_config_validation(kw):
    args = {"source": "pneumoniamnist", **kw}
    with pytest.raises(DataError, match=next(iter(kw))):
        DataConfig(**args)


def test_config_accepts_paths(tmp_path):
    cfg = DataConfig(tmp_path, cache_dir=tmp_path / "c")
    assert cfg.source == str(tmp_path) and cfg.cache_dir == str(tmp_path / "c")
