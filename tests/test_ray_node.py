"""How a sweep starts or joins Ray: slower daemon timers on the node medtune starts, never on a cluster.

``ray.init`` is replaced by a recorder here; the end-to-end sweep (test_sweep_e2e) runs on a real
node started by the same ``init_ray``.
"""

from __future__ import annotations

import pytest

from search.ray_node import LOCAL_NODE_SYSTEM_CONFIG, init_ray


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
