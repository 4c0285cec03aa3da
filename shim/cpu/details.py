"""CPUDetails-style queries over a CPUTopology, answered from precomputed bitmasks.

The kubelet re-scans its CPU table for every query ("CPUs in NUMA node 3", "sockets of NUMA node
1"...). Here every grouping is computed once per topology as int bitmasks (bit i = CPU i), so a
query over the free CPUs is a single ``&`` plus ``bit_count``. Indexes are cached per topology
object and never change (topologies are immutable).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator

from shim.topology.model import CPUTopology


def bits(mask: int) -> Iterator[int]:
    """The set bits of ``mask``, ascending."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _group(pairs: Iterable[tuple[int, int]]) -> dict[int, int]:
    groups: dict[int, int] = {}
    for key, cpu in pairs:
        groups[key] = groups.get(key, 0) | (1 << cpu)
    return groups


def _children(pairs: Iterable[tuple[int, int]]) -> dict[int, tuple[int, ...]]:
    found: dict[int, set[int]] = {}
    for parent, child in pairs:
        found.setdefault(parent, set()).add(child)
    return {parent: tuple(sorted(children)) for parent, children in found.items()}


class TopologyIndex:
    """Masks of every NUMA node, socket, core and uncore cache of a topology, and which
    elements contain which (as the CPU table says, not the counters)."""

    def __init__(self, topology: CPUTopology) -> None:
        self.topology = topology
        details = topology.details
        self.all_mask = sum(1 << cpu for cpu in details)
        self.numa_of = {cpu: info.numa for cpu, info in details.items()}
        self.socket_of = {cpu: info.socket for cpu, info in details.items()}
        self.core_of = {cpu: info.core for cpu, info in details.items()}
        self.uncore_of = {cpu: info.uncore for cpu, info in details.items()}
        self.numa_mask = _group((info.numa, cpu) for cpu, info in details.items())
        self.socket_mask = _group((info.socket, cpu) for cpu, info in details.items())
        self.core_mask = _group((info.core, cpu) for cpu, info in details.items())
        self.uncore_mask = _group((info.uncore, cpu) for cpu, info in details.items())
        self.numa_ids = tuple(sorted(self.numa_mask))
        self.socket_ids = tuple(sorted(self.socket_mask))
        self.sockets_in_numa = _children((info.numa, info.socket) for info in details.values())
        self.numas_in_socket = _children((info.socket, info.numa) for info in details.values())
        self.cores_in_socket = _children((info.socket, info.core) for info in details.values())
        self.cores_in_numa = _children((info.numa, info.core) for info in details.values())
        self.uncores_in_numa = _children((info.numa, info.uncore) for info in details.values())
        self.cores_in_uncore = _children((info.uncore, info.core) for info in details.values())
        self.numa_sizes = {numa: mask.bit_count() for numa, mask in self.numa_mask.items()}
        # Sibling closure: every CPU mapped to the mask of its whole core.
        self.core_mask_of = {cpu: self.core_mask[info.core] for cpu, info in details.items()}

    # Masks of groups of elements ---------------------------------------------------------
    def cpus_in_numas(self, numas: Iterable[int]) -> int:
        mask = 0
        for numa in numas:
            mask |= self.numa_mask.get(numa, 0)
        return mask

    def cpus_in_sockets(self, sockets: Iterable[int]) -> int:
        mask = 0
        for socket in sockets:
            mask |= self.socket_mask.get(socket, 0)
        return mask

    def full_cores(self, cpus: int) -> int:
        """All siblings of the given CPUs (CPUs outside the topology are dropped)."""
        mask = 0
        for cpu in bits(cpus):
            mask |= self.core_mask_of.get(cpu, 0)
        return mask

    def sockets_of_numas(self, numas: Iterable[int]) -> set[int]:
        found: set[int] = set()
        for numa in numas:
            found.update(self.sockets_in_numa.get(numa, ()))
        return found

    def numa_mask_of_cpus(self, cpus: int) -> int:
        """Bitmask of the NUMA ids that hold any of ``cpus``."""
        numas = 0
        for numa, mask in self.numa_mask.items():
            if mask & cpus:
                numas |= 1 << numa
        return numas


_INDEXES: weakref.WeakKeyDictionary[CPUTopology, TopologyIndex] = weakref.WeakKeyDictionary()


def topology_index(topology: CPUTopology) -> TopologyIndex:
    """The (cached) index of a topology."""
    # Equal topologies (same counters and CPU table) may share one index.
    index = _INDEXES.get(topology)
    if index is None:
        index = TopologyIndex(topology)
        _INDEXES[topology] = index
    return index
