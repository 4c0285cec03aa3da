"""The machine as podshim sees it: the kubelet's CPUTopology plus NUMA memory and devices.

Plain immutable values with no I/O; discovery (sysfs.py) and the JSON format (jsonfile.py)
build them. They are frozen msgspec Structs rather than dataclasses because the OCI hook imports
this module on every container start (a dataclass costs about a millisecond to create, a Struct
microseconds); a dict-valued field takes part in equality but not in the hash, as it did with
``field(hash=False)``.
"""

from __future__ import annotations

from functools import cached_property

import msgspec

from shim.cpuset import CPUSet


class CPUInfo(msgspec.Struct, frozen=True):
    """One logical CPU's place: the kubelet's cpuset.CPUInfo (core = lowest sibling id)."""

    socket: int
    core: int
    numa: int
    uncore: int


class CPUTopology(msgspec.Struct, frozen=True, dict=True, weakref=True):
    """The kubelet's topology.CPUTopology.

    The counters are given explicitly rather than derived from ``details``: the kubelet's own
    tests leave some of them at 0 and its algorithms branch on them (spec/cpu-manager.md §2.1).
    """

    num_cpus: int
    num_cores: int
    num_sockets: int
    num_numa_nodes: int
    num_uncore_caches: int
    details: dict[int, CPUInfo]

    def __hash__(self) -> int:
        return hash((self.num_cpus, self.num_cores, self.num_sockets, self.num_numa_nodes, self.num_uncore_caches))

    @property
    def cpus_per_core(self) -> int:
        return self.num_cpus // self.num_cores if self.num_cores else 0

    @property
    def cpus_per_socket(self) -> int:
        return self.num_cpus // self.num_sockets if self.num_sockets else 0

    @property
    def cpus_per_uncore(self) -> int:
        return self.num_cpus // self.num_uncore_caches if self.num_uncore_caches else 0

    @cached_property
    def all_cpus(self) -> CPUSet:
        return CPUSet.of(self.details)

    @classmethod
    def from_details(cls, details: dict[int, CPUInfo]) -> CPUTopology:
        """Counters derived the way the kubelet's discovery derives them."""
        return cls(
            num_cpus=len(details),
            num_cores=len({info.core for info in details.values()}),
            num_sockets=len({info.socket for info in details.values()}),
            num_numa_nodes=len({info.numa for info in details.values()}),
            num_uncore_caches=len({info.uncore for info in details.values()}),
            details=dict(details),
        )


class NUMANode(msgspec.Struct, frozen=True, weakref=True):
    """A NUMA node: its CPUs, memory (bytes), huge pages by size ("2Mi" → total bytes), and its
    row of the distance matrix, ordered like ``Topology.numa``."""

    id: int
    cpus: CPUSet
    memory: int
    hugepages: dict[str, int] = msgspec.field(default_factory=dict)
    distances: tuple[int, ...] = ()

    def __hash__(self) -> int:
        return hash((self.id, self.cpus, self.memory, self.distances))


class Device(msgspec.Struct, frozen=True, weakref=True):
    """A PCI device or network interface and the NUMA node it is attached to (None: unknown)."""

    name: str
    kind: str  # "pci" | "net"
    numa: int | None
    local_cpus: CPUSet = msgspec.field(default_factory=CPUSet)
    pci_class: str | None = None


class Topology(msgspec.Struct, frozen=True, weakref=True):
    """Everything podshim knows about the machine.

    ``numa`` is sorted by node id and includes CPU-less nodes. ``allowed_cpus``/``allowed_mems``
    come from the cpuset cgroup of the discovering process (all online CPUs/nodes otherwise).
    """

    cpu: CPUTopology
    numa: tuple[NUMANode, ...]
    allowed_cpus: CPUSet
    allowed_mems: CPUSet
    devices: tuple[Device, ...] = ()
    uncore_groups: dict[int, CPUSet] = msgspec.field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.cpu, self.numa, self.allowed_cpus, self.allowed_mems, self.devices))

    @property
    def numa_ids(self) -> list[int]:
        return [node.id for node in self.numa]

    def node(self, numa_id: int) -> NUMANode:
        for node in self.numa:
            if node.id == numa_id:
                return node
        raise KeyError(numa_id)

    def distance_rows(self) -> dict[int, list[int]]:
        """NUMA id → its row of distances, indexed by NUMA id (the kubelet indexes the matrix by
        node id); columns of ids that are not nodes hold 0."""
        ids = self.numa_ids
        width = max(ids) + 1 if ids else 0
        rows: dict[int, list[int]] = {}
        for node in self.numa:
            row = [0] * width
            for column, distance in zip(ids, node.distances, strict=False):
                row[column] = distance
            rows[node.id] = row
        return rows
