"""The Memory manager's state: the kubelet's memorymanager/state, without any file behind it.

Sizes are bytes. Resource names are ``memory`` and ``hugepages-<size>`` (e.g. ``hugepages-2Mi``).
"""

from __future__ import annotations

import msgspec

# The records are msgspec Structs rather than dataclasses: the OCI hook imports this module on
# every container start, and creating a dataclass costs about a millisecond (a Struct, microseconds).

MEMORY = "memory"


class MemoryTable(msgspec.Struct, weakref=True):
    """One resource on one NUMA node: total, reserved for the system, allocatable to pods,
    currently reserved by pods (``reserved``) and still free (``free``)."""

    total: int
    system_reserved: int
    allocatable: int
    reserved: int
    free: int

    def copy(self) -> MemoryTable:
        return MemoryTable(self.total, self.system_reserved, self.allocatable, self.reserved, self.free)


class NUMANodeState(msgspec.Struct, weakref=True):
    """One NUMA node: how many containers (or pod entries) use it, its memory tables per
    resource, and the group of NUMA nodes (``cells``) its assignments span."""

    number_of_assignments: int
    memory_map: dict[str, MemoryTable]
    cells: list[int] | None

    def copy(self) -> NUMANodeState:
        return NUMANodeState(
            number_of_assignments=self.number_of_assignments,
            memory_map={name: table.copy() for name, table in self.memory_map.items()},
            cells=None if self.cells is None else list(self.cells),
        )


MachineState = dict[int, NUMANodeState]


class Block(msgspec.Struct, weakref=True):
    """A slice of one resource (``type``) of ``size`` bytes placed on the NUMA nodes ``numa_affinity``."""

    numa_affinity: list[int] | None
    type: str
    size: int

    def copy(self) -> Block:
        return Block(None if self.numa_affinity is None else list(self.numa_affinity), self.type, self.size)


def copy_machine_state(machine: MachineState) -> MachineState:
    return {node: state.copy() for node, state in machine.items()}


def copy_blocks(blocks: list[Block]) -> list[Block]:
    return [block.copy() for block in blocks]


class MemoryState(msgspec.Struct, weakref=True):
    """Machine state, per-container memory blocks (pod uid -> container name -> blocks) and
    KEP-5526 pod entries (pod uid -> the pod-level blocks). Mutable: policies update it in place;
    ``copy()`` gives a deep snapshot to roll back to."""

    machine_state: MachineState = msgspec.field(default_factory=dict)
    assignments: dict[str, dict[str, list[Block]]] = msgspec.field(default_factory=dict)
    pod_entries: dict[str, list[Block]] = msgspec.field(default_factory=dict)

    def copy(self) -> MemoryState:
        return MemoryState(
            machine_state=copy_machine_state(self.machine_state),
            assignments={
                pod: {name: copy_blocks(blocks) for name, blocks in containers.items()}
                for pod, containers in self.assignments.items()
            },
            pod_entries={pod: copy_blocks(blocks) for pod, blocks in self.pod_entries.items()},
        )

    def get_blocks(self, pod_uid: str, container: str) -> list[Block] | None:
        return self.assignments.get(pod_uid, {}).get(container)

    def set_blocks(self, pod_uid: str, container: str, blocks: list[Block]) -> None:
        self.assignments.setdefault(pod_uid, {})[container] = blocks

    def delete(self, pod_uid: str, container: str) -> None:
        containers = self.assignments.get(pod_uid)
        if containers is None:
            return
        containers.pop(container, None)
        if not containers:
            del self.assignments[pod_uid]
