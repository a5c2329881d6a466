"""Data on S3 is staged once per node, even when two trials start together.

A small Kermany-layout folder is uploaded to a real S3-compatible server on 127.0.0.1 (moto in
server mode). Two processes sharing one cache folder (two trials on one node) load it at the
same time: together they download each object exactly once. A later load downloads nothing, a
changed object is fetched again alone, and the arrays match those of the same folder read locally.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import make_kermany, subprocess_env

pytestmark = pytest.mark.slow

LOADER = textwrap.dedent("""
    import json, sys
    from medtune.trainables.data import DataConfig, load_splits, staging_stats
    splits = load_splits(DataConfig(sys.argv[1], image_size=16, cache_dir=sys.argv[2]))
    print(json.dumps({**staging_stats(), "train": int(len(splits.train.labels)), \
"sum": int(splits.train.images.sum())}))
""")


@pytest.fixture()
def bucket_with_folder(tmp_path, s3_server):
    import boto3

    local = make_kermany(tmp_path / "chest_xray", per_class=6)
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1",
                      aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key)
    bucket = f"medtune-data-{tmp_path.name.lower().replace('_', '-')[-20:]}"
    s3.create_bucket(Bucket=bucket)
    files = [p for p in local.rglob("*") if p.is_file()]
    for path in files:
        s3.upload_file(str(path), bucket, f"chest_xray/{path.relative_to(local).as_posix()}")
    return s3, bucket, local, files


def _load_in_processes(n: int, uri: str, cache: Path, env: dict[str, str]) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, "-c", LOADER, uri, str(cache)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_two_concurrent_loads_stage_each_object_once(tmp_path, s3_server, bucket_with_folder):
    from medtune.trainables.data import DataConfig, load_splits

    s3, bucket, local, files = bucket_with_folder
    uri = f"s3://{bucket}/chest_xray/"
    env = subprocess_env(**s3_server.env)
    cache = tmp_path / "node-cache"

    first = _load_in_processes(2, uri, cache, env)
    assert sum(r["downloaded"] for r in first) == len(files), first
    assert sorted(r["skipped"] for r in first) == [0, len(files)], first  # the second waited, then skipped all
    reference = load_splits(DataConfig(str(local), image_size=16, cache_dir=str(tmp_path / "local-cache")))
    for r in first:
        assert r["train"] == len(reference.train.labels) and r["sum"] == int(reference.train.images.sum())

    again = _load_in_processes(1, uri, cache, env)[0]
    assert again["downloaded"] == 0 and again["skipped"] == len(files)

    changed = next(p for p in files if p.suffix == ".png")
    key = f"chest_xray/{changed.relative_to(local).as_posix()}"
    s3.put_object(Bucket=bucket, Key=key, Body=changed.read_bytes() + b"\0")  # new size and ETag
    after_change = _load_in_processes(1, uri, cache, env)[0]
    assert after_change["downloaded"] == 1 and after_change["skipped"] == len(files) - 1


def test_missing_bucket_is_a_clear_data_error(s3_server, monkeypatch, tmp_path):
    from medtune.trainables.data import DataConfig, DataError, inspect_source

    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DataError) as info:
        inspect_source(DataConfig("s3://no-such-medtune-bucket/chest_xray/", cache_dir=str(tmp_path)))
    message = str(info.value)
    assert "s3://no-such-medtune-bucket/chest_xray/" in message and "NoSuchBucket" in message
    assert s3_server.secret_key not in message
