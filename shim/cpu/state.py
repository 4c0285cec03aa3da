"""The CPU manager's state: the kubelet's cpumanager/state, without any file behind it."""

from __future__ import annotations

import msgspec

from shim.cpuset import CPUSet


# A msgspec Struct rather than a dataclass: the OCI hook imports this module on every container
# start, and creating a dataclass costs about a millisecond (a Struct, microseconds).
class CPUState(msgspec.Struct, weakref=True):
    """Default (shared) cpuset, exclusive assignments per pod and container, and KEP-5526 pod
    entries (the pod-level "bubble" per pod uid). Mutable: policies update it in place;
    ``copy()`` gives a snapshot to roll back to."""

    default_cpuset: CPUSet = msgspec.field(default_factory=CPUSet)
    assignments: dict[str, dict[str, CPUSet]] = msgspec.field(default_factory=dict)
    pod_entries: dict[str, CPUSet] = msgspec.field(default_factory=dict)

    def copy(self) -> CPUState:
        return CPUState(
            default_cpuset=self.default_cpuset,
            assignments={pod: dict(containers) for pod, containers in self.assignments.items()},
            pod_entries=dict(self.pod_entries),
        )

    def get_cpuset(self, pod_uid: str, container: str) -> CPUSet | None:
        return self.assignments.get(pod_uid, {}).get(container)

    def set_cpuset(self, pod_uid: str, container: str, cpus: CPUSet) -> None:
        self.assignments.setdefault(pod_uid, {})[container] = cpus

    def delete(self, pod_uid: str, container: str) -> None:
        containers = self.assignments.get(pod_uid)
        if containers is None:
            return
        containers.pop(container, None)
        if not containers:
            del self.assignments[pod_uid]

    def cpuset_or_default(self, pod_uid: str, container: str) -> CPUSet:
        found = self.get_cpuset(pod_uid, container)
        return self.default_cpuset if found is None else found
