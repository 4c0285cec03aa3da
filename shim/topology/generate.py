"""Synthetic topologies from a few parameters (examples, tests, benchmarks).

CPU numbering follows Linux on x86 by default: the first thread of every core in the machine
comes first, then the second threads ("linux"); "sequential" puts a core's threads next to
each other instead. Core ids follow the kubelet (lowest thread id of the core).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from shim.cpuset import CPUSet
from shim.topology.model import CPUInfo, CPUTopology, NUMANode, Topology

GiB = 1024**3


def default_distances(sockets: int, numa_per_socket: int, *, local: int = 10, near: int = 11,
                      remote: int = 21) -> list[list[int]]:
    """``local`` on the diagonal, ``near`` between nodes of one socket, ``remote`` across sockets."""
    count = sockets * numa_per_socket
    return [
        [local if a == b else near if a // numa_per_socket == b // numa_per_socket else remote for b in range(count)]
        for a in range(count)
    ]


def generate(
    *,
    sockets: int = 1,
    numa_per_socket: int = 1,
    cores_per_socket: int = 4,
    threads_per_core: int = 1,
    memory_per_numa: int = 64 * GiB,
    hugepages_per_numa: Mapping[str, int] | None = None,
    distances: Sequence[Sequence[int]] | None = None,
    uncore: Literal["socket", "numa"] = "socket",
    numbering: Literal["linux", "sequential"] = "linux",
) -> Topology:
    """A symmetric machine: ``sockets`` × ``numa_per_socket`` nodes, cores split evenly.

    ``hugepages_per_numa`` maps a page size ("2Mi", "1Gi") to the bytes of huge pages per node;
    ``uncore`` says whether one L3 spans a socket or a NUMA node.
    """
    if min(sockets, numa_per_socket, cores_per_socket, threads_per_core) < 1:
        raise ValueError("sockets, numa_per_socket, cores_per_socket and threads_per_core must be >= 1")
    if cores_per_socket % numa_per_socket:
        raise ValueError(f"{cores_per_socket} cores per socket do not split over {numa_per_socket} NUMA nodes")
    node_count = sockets * numa_per_socket
    matrix = [list(row) for row in distances] if distances is not None else default_distances(sockets, numa_per_socket)
    if len(matrix) != node_count or any(len(row) != node_count for row in matrix):
        raise ValueError(f"distances must be a {node_count}x{node_count} matrix")
    total_cores = sockets * cores_per_socket
    cores_per_numa = cores_per_socket // numa_per_socket
    details: dict[int, CPUInfo] = {}
    for core in range(total_cores):
        socket = core // cores_per_socket
        numa = socket * numa_per_socket + (core % cores_per_socket) // cores_per_numa
        if numbering == "linux":
            threads = [thread * total_cores + core for thread in range(threads_per_core)]
        else:
            threads = [core * threads_per_core + thread for thread in range(threads_per_core)]
        for cpu in threads:
            details[cpu] = CPUInfo(
                socket=socket, core=min(threads), numa=numa, uncore=socket if uncore == "socket" else numa
            )
    hugepages = dict(hugepages_per_numa or {})
    nodes = tuple(
        NUMANode(
            id=node,
            cpus=CPUSet.of(cpu for cpu, info in details.items() if info.numa == node),
            memory=memory_per_numa,
            hugepages=dict(hugepages),
            distances=tuple(matrix[node]),
        )
        for node in range(node_count)
    )
    uncore_groups: dict[int, CPUSet] = {}
    for cpu, info in sorted(details.items()):
        uncore_groups[info.uncore] = uncore_groups.get(info.uncore, CPUSet()) | CPUSet.of((cpu,))
    return Topology(
        cpu=CPUTopology.from_details(dict(sorted(details.items()))),
        numa=nodes,
        allowed_cpus=CPUSet.of(details),
        allowed_mems=CPUSet.of(range(node_count)),
        uncore_groups=uncore_groups,
    )
