"""Resource isolation level and the CFS quota decision (spec cpu-manager.md §9.8).

``container``: the container's CPUs are its own (CFS quota off when the gate
DisableCPUQuotaWithExclusiveCPUs is on); ``pod``: a KEP-5526 pod shared pool (quota kept);
``host``: the node's shared pool (quota kept).
"""

from __future__ import annotations

from typing import Literal

from shim.cpu.state import CPUState
from shim.pod import CPU, Container, Pod

IsolationLevel = Literal["container", "pod", "host"]
CPUQuota = Literal["unlimited", "limited"]


def qualifies_for_exclusive_cpus(container: Container) -> bool:
    """Container-equivalent Guaranteed with an integral cpu *limit* (the kubelet's test for
    the isolation level, which looks at the limit where allocation looks at the request)."""
    return container.is_guaranteed_equivalent() and container.limit(CPU) % 1000 == 0


def isolation_level(state: CPUState, pod: Pod, container: Container, *, pod_level_managers: bool) -> IsolationLevel:
    """GetResourceIsolationLevel. ``pod_level_managers`` is the PodLevelResourceManagers gate."""
    if state.get_cpuset(pod.uid, container.name) is None:
        return "host"
    if pod_level_managers and pod.has_pod_level_resources() and not qualifies_for_exclusive_cpus(container):
        return "pod"
    return "container"


def container_cpu_quota(level: IsolationLevel, *, disable_quota_with_exclusive_cpus: bool) -> CPUQuota:
    """The container cgroup's CFS quota: unlimited only for exclusive CPUs, with the gate on."""
    return "unlimited" if disable_quota_with_exclusive_cpus and level == "container" else "limited"


def pod_cpu_quota(state: CPUState, pod: Pod, *, pod_level_managers: bool,
                  disable_quota_with_exclusive_cpus: bool) -> CPUQuota:
    """The pod cgroup's (and sandbox's) quota: unlimited iff any container has exclusive CPUs."""
    if not disable_quota_with_exclusive_cpus:
        return "limited"
    for container in pod.all_containers():
        if isolation_level(state, pod, container, pod_level_managers=pod_level_managers) == "container":
            return "unlimited"
    return "limited"
