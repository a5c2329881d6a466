"""Starting or joining Ray for a sweep, and the timers of the node medtune starts itself.

A sweep joins the cluster in ``RAY_ADDRESS`` (as under ``ray job submit``) as it is configured;
otherwise it starts a fresh in-process node that listens on loopback only.
That local node is on a laptop or workstation where
Ray's daemons share a few cores with the trials, so its periodic timers are slowed: with Ray's
defaults the raylet syncs its resource view every 100 ms, checks for GC every 100 ms and reads
memory usage every 250 ms, and on 2 cores each of those wake-ups preempts one of torch's OpenMP
threads while the other waits at the next barrier. ``benchmarks/ray_daemons.py`` measured the bare
training loop 1.08-1.12x slower beside an idle stock node and 1.00-1.03x beside one with these
timers (two runs on 2 cores).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from medtune.search.run._ray_compat import ray_cluster_constant, stop_propagating_env_vars, system_config_kwargs

#: Raylet/GCS settings of the node medtune starts itself (Ray's defaults: 100, 100, 250, 10000 ms).
#: A user's own ``RAY_<name>`` environment variable for any of them wins.
LOCAL_NODE_SYSTEM_CONFIG: dict[str, int] = {
    "raylet_report_resources_period_milliseconds": 1000,
    "raylet_check_gc_period_milliseconds": 1000,
    "memory_monitor_refresh_ms": 1000,
    "metrics_report_interval_ms": 60000,
}


def local_node_system_config() -> dict[str, int]:
    """LOCAL_NODE_SYSTEM_CONFIG without the keys the user set as ``RAY_<name>`` in the environment."""
    return {key: value for key, value in LOCAL_NODE_SYSTEM_CONFIG.items() if f"RAY_{key}" not in os.environ}


#: Variables Ray Tune copies from the driver into every trial actor's runtime environment, which
#: Ray's runtime-env agent then writes in plain text to ``runtime_env_agent.log`` on each node.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")


def keep_credentials_out_of_runtime_envs() -> None:
    """Stop Ray Tune from passing the driver's AWS credentials to trials as runtime-env variables.

    Trials of a node medtune starts inherit the driver's environment anyway (the raylet is its
    child); the nodes of a cluster take credentials from their own environment or AWS config chain
    (cluster/README.md). Passed as a runtime env, the secret would be logged on every node.
    A Ray without Tune's list of propagated variables does not propagate them this way.
    """
    stop_propagating_env_vars(CREDENTIAL_VARIABLES)


#: Ray's switch for "this machine may join a cluster". Off, Ray takes 127.0.0.1 as the node's
#: address and every daemon (GCS, raylet, workers, agents) listens on loopback only; on Linux it is
#: on by default, and ``ray.init(_node_ip_address="127.0.0.1")`` is rewritten to the network address.
LOOPBACK_ONLY_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def local_node_on_loopback() -> Iterator[None]:
    """While a node starts in here, it is made to serve this machine only: nothing listens on the network.

    Ray's daemons inherit the variable (and its workers inherit theirs); this process read it into a
    constant when Ray was imported, so that is switched too. Both are put back afterwards, so a
    ``ray start`` run later from this process is unaffected. A user's own setting of the variable wins.
    """
    if LOOPBACK_ONLY_VARIABLE in os.environ:
        yield
        return
    os.environ[LOOPBACK_ONLY_VARIABLE] = "0"
    try:
        with ray_cluster_constant(False):
            yield
    finally:
        del os.environ[LOOPBACK_ONLY_VARIABLE]


def init_ray(num_cpus: int | None = None, log_to_driver: bool = True) -> None:
    """Join the cluster in RAY_ADDRESS (as under ``ray job submit``), else start Ray in-process.

    ``num_cpus`` only applies to a node started here (benchmarks pin it); a joined cluster keeps
    the resources its nodes were started with, and its own system config.
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's newer console output ignores a passed-in CLIReporter and hides the searched
    # parameters; the classic table shows them (architecture, frozen_depth, lr, ...) next to the
    # metrics, sorted by the objective. A user's own RAY_AIR_NEW_OUTPUT setting wins.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    keep_credentials_out_of_runtime_envs()
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=log_to_driver)
    else:
        # "local": always a fresh in-process instance, never a stale or foreign one on this machine.
        with local_node_on_loopback():
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver,
                     **system_config_kwargs(local_node_system_config()))
