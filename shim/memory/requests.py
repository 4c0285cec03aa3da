"""Which pods the Static policy handles and how much memory they ask for (spec §3).

Sizes are bytes; the result maps ``memory`` / ``hugepages-<size>`` to amounts.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from shim.memory.errors import MemoryManagerError
from shim.memory.machine import is_memory_resource
from shim.pod import Container, Pod
from shim.quantity import INT64_MAX

POD_LEVEL_RESOURCES = "PodLevelResources"
POD_LEVEL_RESOURCE_MANAGERS = "PodLevelResourceManagers"
# The kubelet's defaults: PodLevelResources is beta (on), PodLevelResourceManagers alpha (off).
DEFAULT_GATES = {POD_LEVEL_RESOURCES: True, POD_LEVEL_RESOURCE_MANAGERS: False}

Requests = dict[str, int]


# A msgspec Struct, not a dataclass: the OCI hook imports this module on every container start.
class Gates(msgspec.Struct, frozen=True):
    """The two feature gates the Memory manager reads."""

    pod_level_resources: bool = True
    pod_level_resource_managers: bool = False

    @classmethod
    def of(cls, gates: Mapping[str, bool] | None) -> Gates:
        merged = {**DEFAULT_GATES, **(gates or {})}
        return cls(merged[POD_LEVEL_RESOURCES], merged[POD_LEVEL_RESOURCE_MANAGERS])


def pod_level_set(pod: Pod) -> bool:
    """``spec.resources`` sets a resource that pod-level resources support (cpu, memory, huge pages)."""
    if pod.resources is None:
        return False
    names = set(pod.resources.requests) | set(pod.resources.limits)
    return any(name == "cpu" or is_memory_resource(name) for name in names)


def is_pod_level(pod: Pod, gates: Gates) -> bool:
    """Handled with the pod budget (KEP-5526). Like the kubelet, only PodLevelResourceManagers is read here."""
    return gates.pod_level_resource_managers and pod_level_set(pod)


def pod_level_unsupported(pod: Pod, gates: Gates) -> bool:
    """A pod-level pod on a kubelet whose gates are off: admitted without alignment."""
    return not (gates.pod_level_resource_managers and gates.pod_level_resources) and pod_level_set(pod)


def is_guaranteed(pod: Pod, gates: Gates) -> bool:
    return pod.qos_class(pod_level_resources=gates.pod_level_resources) == "Guaranteed"


def _as_int64(amount: int) -> int:
    if amount > INT64_MAX:
        raise MemoryManagerError("[memorymanager] failed to represent quantity as int64")
    return amount


def container_requests(pod: Pod, container: Container, gates: Gates) -> Requests:
    """The container's memory and huge page requests; in a pod-level pod only a container that
    is Guaranteed on its own asks for anything (the others share the pod's pool)."""
    if is_pod_level(pod, gates) and not container.is_guaranteed_equivalent():
        return {}
    return {
        name: _as_int64(amount) for name, amount in container.resources.requests.items() if is_memory_resource(name)
    }


def pod_requests(pod: Pod, gates: Gates) -> Requests:
    """getPodRequestedResources: the pod budget for pod-level pods, else the sidecar-aware
    effective request (long-running containers vs. the largest init container moment)."""
    if is_pod_level(pod, gates):
        assert pod.resources is not None
        return {
            name: _as_int64(amount)
            for name, amount in pod.resources.requests.items()
            if is_memory_resource(name) and amount > 0
        }
    init_peak: Requests = {}
    sidecars: Requests = {}
    for container in pod.init_containers:
        for name, amount in container_requests(pod, container, gates).items():
            init_peak.setdefault(name, 0)
            if container.is_sidecar:
                sidecars[name] = sidecars.get(name, 0) + amount
            elif sidecars.get(name, 0) + amount > init_peak[name]:
                init_peak[name] = sidecars.get(name, 0) + amount
    apps: Requests = {}
    for container in pod.containers:
        for name, amount in container_requests(pod, container, gates).items():
            apps[name] = apps.get(name, 0) + amount
    return {name: max(total + sidecars.get(name, 0), init_peak.get(name, 0)) for name, total in apps.items()}
