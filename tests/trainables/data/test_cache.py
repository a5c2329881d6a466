"""The decode-once cache: memo, then disk, then a decode; invalidated by a changed source or a broken
entry; and two processes that start together decode once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from data_helpers import PNEUMONIA_NPZ, folder_cfg, needs_real_data
from helpers import REPO, make_kermany
from PIL import Image

from medtune.trainables.data import DataConfig, cache_stats, clear_memo, load_splits

pytestmark = pytest.mark.usefixtures("isolated_data")


def test_cache_hits_memo_then_disk_and_size_decodes_anew(kermany, tmp_path):
    cfg = folder_cfg(kermany, tmp_path)
    first = load_splits(cfg)
    assert cache_stats()["decodes"] == 1
    second = load_splits(cfg)
    assert cache_stats()["decodes"] == 1 and cache_stats()["memo_hits"] == 1
    clear_memo()
    third = load_splits(cfg)
    stats = cache_stats()
    assert stats["decodes"] == 1 and stats["disk_hits"] == 1
    assert isinstance(third.train.images, np.memmap) and not third.train.images.flags.writeable
    for a in (second, third):
        assert np.array_equal(a.train.images, first.train.images) and a.fingerprint == first.fingerprint
    load_splits(folder_cfg(kermany, tmp_path, image_size=16))
    assert cache_stats()["decodes"] == 2
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert len(entries) == 2 and all(e.startswith("chest_xray-") for e in entries)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp")]
    assert {p.name for p in (tmp_path / "cache" / entries[0]).iterdir()} >= {"meta.json", "train_images.npy"}


@needs_real_data
def test_npz_cache_and_env_cache_dir(tmp_path):
    cfg = DataConfig("pneumoniamnist", data_dir=str(PNEUMONIA_NPZ.parent))  # cache_dir from MEDTUNE_CACHE_DIR
    load_splits(cfg)
    clear_memo()
    load_splits(cfg)
    assert cache_stats()["decodes"] == 1 and cache_stats()["disk_hits"] == 1
    assert any((tmp_path / "env-cache").glob("pneumoniamnist-28px-*/meta.json"))


def test_changed_source_invalidates_cache(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=3)
    cfg = folder_cfg(root, tmp_path)
    load_splits(cfg)
    Image.new("L", (40, 40), 200).save(root / "train" / "NORMAL" / "extra.png")
    s = load_splits(cfg)
    assert cache_stats()["decodes"] == 2 and len(s.train) == 7


def test_broken_cache_entry_is_rebuilt(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=3)
    cfg = folder_cfg(root, tmp_path)
    load_splits(cfg)
    entry = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    (entry / "test_images.npy").unlink()
    clear_memo()
    s = load_splits(cfg)
    assert cache_stats()["decodes"] == 2 and len(s.test) == 6


def test_concurrent_processes_decode_once(tmp_path):
    root = make_kermany(tmp_path / "k", per_class=20)
    script = textwrap.dedent(f"""
        import json
        from medtune.trainables.data import DataConfig, load_splits, cache_stats
        s = load_splits(DataConfig({str(root)!r}, image_size=48, cache_dir={str(tmp_path / 'cache')!r}))
        print(json.dumps([cache_stats()["decodes"], s.fingerprint]))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, cwd=REPO) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert sorted(r[0] for r in results) == [0, 1] and results[0][1] == results[1][1]
