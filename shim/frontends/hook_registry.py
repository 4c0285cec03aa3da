"""The containers the embedded-mode hook pinned, kept in ``<state-dir>/podshim_containers.json``.

Embedded mode has no reconcile loop: a container on the node's shared pool keeps the CPUs it
was given at creation. When a later admission takes exclusive CPUs from that pool (or a
release gives them back), the hook re-applies every registered container whose placement
changed (:func:`refresh`). The registry remembers, per pod, the Pod itself (so a pod whose
file left ``--pod-dir`` can still be re-placed) and, per container, the cgroup string, the init
pid and the cpus/mems last written. Written atomically through FileCheckpointStore, under the
state-directory lock like the kubelet-format state files.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

import msgspec

from shim.messages import Admitted, ApplyFailed
from shim.pod import Pod

if TYPE_CHECKING:
    from shim.actors.base import CheckpointStore
    from shim.runtime.node import Node

REGISTRY_NAME = "podshim_containers.json"
VERSION = 1
# A re-apply that fails with one of these means the container's cgroup is gone (it exited
# without a poststop, e.g. the runtime crashed): forget it instead of retrying forever.
_GONE = (errno.ENOENT, errno.ESRCH)


class RegistryError(RuntimeError):
    """The registry file cannot be read (one line naming it)."""


class ContainerRecord(msgspec.Struct, kw_only=True):
    """One pinned container: where it lives and what it was last given."""

    cgroup: str
    pid: int | None = None
    cpus: str = ""
    mems: str = ""


class PodRecord(msgspec.Struct, kw_only=True):
    """A pod with at least one pinned container."""

    pod: Pod
    containers: dict[str, ContainerRecord] = msgspec.field(default_factory=dict)


class RegistryFile(msgspec.Struct, kw_only=True):
    """The file's schema. ``pod_dir_pods``: the registered pods whose spec came from the daemon's
    ``--pod-dir`` (the daemon releases such a pod once its file is gone and none of its
    containers is left); the embedded hook keeps the list as it found it."""

    version: int = VERSION
    pods: dict[str, PodRecord] = msgspec.field(default_factory=dict)
    pod_dir_pods: list[str] = msgspec.field(default_factory=list)


# A msgspec Struct rather than a dataclass: the OCI hook imports this module on every container
# start, and creating a dataclass costs about a millisecond (a Struct, microseconds).
class Registry(msgspec.Struct, weakref=True):
    """The registry in memory; ``save`` writes it back only if something changed."""

    pods: dict[str, PodRecord] = msgspec.field(default_factory=dict)
    changed: bool = False
    pod_dir_pods: set[str] = msgspec.field(default_factory=set)

    @classmethod
    def load(cls, store: CheckpointStore, *, where: str = REGISTRY_NAME) -> Registry:
        text = store.load(REGISTRY_NAME)
        if text is None:
            return cls()
        try:
            document = msgspec.json.decode(text, type=RegistryFile)
        except (msgspec.DecodeError, msgspec.ValidationError) as err:
            raise RegistryError(f"{where}: corrupt registry: {err}") from None
        if document.version != VERSION:
            raise RegistryError(f"{where}: unsupported registry version {document.version}")
        return cls(pods=dict(document.pods), pod_dir_pods=set(document.pod_dir_pods))

    def text(self) -> str:
        """The file's content (marks of pods no longer registered are dropped)."""
        marks = sorted(self.pod_dir_pods & self.pods.keys())
        return msgspec.json.encode(RegistryFile(pods=self.pods, pod_dir_pods=marks)).decode()

    def save(self, store: CheckpointStore) -> None:
        if not self.changed:
            return
        store.save(REGISTRY_NAME, self.text())
        self.changed = False

    def get(self, pod_uid: str, container: str) -> ContainerRecord | None:
        record = self.pods.get(pod_uid)
        return None if record is None else record.containers.get(container)

    def record(self, pod: Pod, container: str, entry: ContainerRecord) -> None:
        found = self.pods.get(pod.uid)
        if found is None:
            found = self.pods[pod.uid] = PodRecord(pod=pod)
        found.pod = pod
        found.containers[container] = entry
        self.changed = True

    def forget(self, pod_uid: str, container: str) -> bool:
        found = self.pods.get(pod_uid)
        if found is None or container not in found.containers:
            return False
        del found.containers[container]
        if not found.containers:
            del self.pods[pod_uid]
        self.changed = True
        return True


def refresh(node: Node, registry: Registry, *, skip: tuple[str, str] | None = None) -> list[str]:
    """Re-apply the registered containers whose cpus or mems changed; returns one warning line
    per container that could not be re-applied (the caller's own container is not at stake).

    Each registered pod is re-admitted on ``node``, which restores its assignments from the
    state (no new allocation) and yields the current placement of its containers.
    """
    warnings: list[str] = []
    for uid in list(registry.pods):
        record = registry.pods[uid]
        outcome = node.admit(record.pod)
        if not isinstance(outcome, Admitted):
            warnings.append(f"registered pod {record.pod.name} ({uid}) no longer admits: {outcome.message}")
            continue
        wanted = {c.name: c for c in outcome.containers}
        for name, entry in list(record.containers.items()):
            assignment = wanted.get(name)
            if (uid, name) == skip or assignment is None:
                continue
            if (assignment.cpus, assignment.mems) == (entry.cpus, entry.mems):
                continue
            # pid None: the cpuset write moves every task of the cgroup; the recorded pid may
            # have been reused by now.
            result = node.container_created(uid, name, entry.cgroup, None)
            if isinstance(result, ApplyFailed):
                if result.errno in _GONE:
                    registry.forget(uid, name)
                    continue
                warnings.append(f"re-applying {name} of pod {uid} at {result.path}: {result.message}")
                continue
            entry.cpus, entry.mems = assignment.cpus, assignment.mems
            registry.changed = True
    return warnings


__all__ = ["REGISTRY_NAME", "ContainerRecord", "PodRecord", "Registry", "RegistryError", "refresh"]
