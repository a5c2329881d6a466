"""How a sweep starts or joins Ray: slower daemon timers on the node medtune starts, never on a cluster.

``ray.init`` is replaced by a recorder here; the end-to-end sweep (test_sweep_e2e) runs on a real
node started by the same ``init_ray``.
"""

from __future__ import annotations

import pytest

from medtune.search.run.ray_node import LOCAL_NODE_SYSTEM_CONFIG, init_ray


@pytest.fixture
def ray_init_calls(monkeypatch):
    import ray

    calls: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    for key in LOCAL_NODE_SYSTEM_CONFIG:
        monkeypatch.delenv(f"RAY_{key}", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def test_a_local_node_gets_the_slower_timers(ray_init_calls):
    init_ray(num_cpus=3, log_to_driver=False)
    (kwargs,) = ray_init_calls
    assert kwargs["address"] == "local" and kwargs["num_cpus"] == 3 and kwargs["log_to_driver"] is False
    assert kwargs["_system_config"] == LOCAL_NODE_SYSTEM_CONFIG
    assert kwargs["_system_config"]["raylet_report_resources_period_milliseconds"] > 100  # Ray's default


def test_a_users_own_ray_setting_wins(ray_init_calls, monkeypatch):
    monkeypatch.setenv("RAY_memory_monitor_refresh_ms", "250")
    init_ray()
    (kwargs,) = ray_init_calls
    assert "memory_monitor_refresh_ms" not in kwargs["_system_config"]
    assert "raylet_check_gc_period_milliseconds" in kwargs["_system_config"]


def test_joining_a_cluster_keeps_its_own_configuration(ray_init_calls, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    init_ray(num_cpus=3)
    (kwargs,) = ray_init_calls
    assert kwargs["address"] == "127.0.0.1:6379"
    assert "_system_config" not in kwargs and "num_cpus" not in kwargs


LISTENERS_OF_A_STARTED_NODE = r'''
import ipaddress, json, os, socket

import ray

from medtune.search.run.ray_node import init_ray


def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def address(hex_ip):
    raw = bytes.fromhex(hex_ip)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # /proc prints 32-bit words little-endian
    ip = ipaddress.ip_address(raw)
    return ip.ipv4_mapped or ip if ip.version == 6 else ip


init_ray(num_cpus=1, log_to_driver=False)
ray.get(ray.remote(lambda: 1).remote())  # a worker process too
inodes = set()
for pid in descendants(os.getpid()):
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        continue
listening = []
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    for line in open(table).read().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # state LISTEN, owned by the node's processes
            hex_ip, port = fields[1].split(":")
            listening.append([str(address(hex_ip)), int(port, 16)])
print("LISTENING", json.dumps(listening))
'''


@pytest.mark.slow  # starts a Ray node
def test_the_node_a_sweep_starts_listens_on_loopback_only(tmp_path):
    """Ray's daemons bind every interface by default on Linux; the node medtune starts is this machine's only."""
    import ipaddress
    import json
    import subprocess
    import sys

    from helpers import subprocess_env

    env = subprocess_env()
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    done = subprocess.run([sys.executable, "-c", LISTENERS_OF_A_STARTED_NODE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    line = next((x for x in done.stdout.splitlines() if x.startswith("LISTENING ")), None)
    assert line is not None, (done.stdout + done.stderr)[-3000:]
    listening = json.loads(line.split(" ", 1)[1])
    assert len(listening) >= 5, listening  # GCS, raylet, the driver's and a worker's core worker, agents
    assert [entry for entry in listening if not ipaddress.ip_address(entry[0]).is_loopback] == []


def test_the_loopback_switch_is_put_back_after_the_node_started(ray_init_calls):
    import os

    from ray._private import ray_constants

    init_ray()
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ and ray_constants.ENABLE_RAY_CLUSTER
