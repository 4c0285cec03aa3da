"""generateCPUTopologyHints: which NUMA masks could hold a CPU request (spec cpu-manager.md §8.1).

Same masks, same order and same "preferred" flags as the kubelet, which walks every subset of
NUMA nodes. Here the subset order is computed once per NUMA count, CPU counts of all subsets are
built by doubling a table (one list comprehension per NUMA node), and hint objects are
reused, so a call is a few list comprehensions and C-level passes over the subsets.
"""

from __future__ import annotations

import functools
import operator
import weakref
from itertools import combinations, compress

from shim.cpu.details import TopologyIndex, topology_index
from shim.cpuset import CPUSet
from shim.topology.model import CPUTopology
from shim.topology_manager.bitmask import Bitmask
from shim.topology_manager.hint import TopologyHint


@functools.cache
def subset_order(count: int) -> tuple[int, ...]:
    """Position masks of every non-empty subset of ``count`` items in the kubelet's
    IterateBitMasks order: by size, then lexicographically by positions."""
    order: list[int] = []
    for size in range(1, count + 1):
        for combo in combinations(range(count), size):
            mask = 0
            for position in combo:
                mask |= 1 << position
            order.append(mask)
    return tuple(order)


# Far beyond any CPU count or request, so a subset missing a required node never qualifies.
_MISSING_REQUIRED = 1 << 40


def _subset_sums(values: list[int], required: int) -> list[int]:
    """Sum of ``values`` over every subset (index = position mask), built by doubling so the
    work happens in list comprehensions. Subsets missing a ``required`` position get a large
    negative total, so one threshold test also checks "contains the reusable CPUs' nodes"."""
    penalty = _MISSING_REQUIRED
    sums = [-penalty * required.bit_count()]
    for position, value in enumerate(values):
        step = value + penalty if required >> position & 1 else value
        sums += [total + step for total in sums]
    return sums


class _HintTable:
    """Per-topology data for hint generation: NUMA positions, capacities, cached hint objects."""

    def __init__(self, index: TopologyIndex) -> None:
        self.index = index
        self.numa_ids = index.numa_ids
        self.count = len(self.numa_ids)
        self.position = {numa: pos for pos, numa in enumerate(self.numa_ids)}
        sizes = sorted((index.numa_sizes[numa] for numa in self.numa_ids), reverse=True)
        self.best_capacity: list[int] = []  # most CPUs any k NUMA nodes can hold, k = 1..N
        running = 0
        for size in sizes:
            running += size
            self.best_capacity.append(running)
        self.order = subset_order(self.count)
        self.pick_in_order = operator.itemgetter(*self.order) if self.order else None
        self._hints: dict[tuple[int, bool], TopologyHint] = {}
        self._sockets: dict[int, int] = {}
        self._rows: dict[tuple[int, bool], list[TopologyHint]] = {}

    def min_affinity_size(self, request: int) -> int:
        for size, capacity in enumerate(self.best_capacity, start=1):
            if capacity >= request:
                return size
        return self.count

    def hint(self, positions: int, preferred: bool) -> TopologyHint:
        key = (positions, preferred)
        found = self._hints.get(key)
        if found is None:
            value = 0
            for pos, numa in enumerate(self.numa_ids):
                if positions >> pos & 1:
                    value |= 1 << numa
            found = TopologyHint(Bitmask(value), preferred)
            self._hints[key] = found
        return found

    def row(self, min_size: int, align_by_socket: bool) -> list[TopologyHint]:
        """The hint object of every subset (in order), preferred per ``min_size``; cached."""
        key = (min_size, align_by_socket)
        found = self._rows.get(key)
        if found is None:
            topology = self.index.topology
            per_socket = topology.num_numa_nodes // topology.num_sockets if topology.num_sockets else 0
            min_sockets = (min_size + per_socket - 1) // per_socket if per_socket else -1
            found = []
            for positions in self.order:
                preferred = positions.bit_count() == min_size
                if align_by_socket and per_socket and self.sockets_spanned(positions) == min_sockets:
                    preferred = True
                found.append(self.hint(positions, preferred))
            self._rows[key] = found
        return found

    def sockets_spanned(self, positions: int) -> int:
        found = self._sockets.get(positions)
        if found is None:
            numas = [numa for pos, numa in enumerate(self.numa_ids) if positions >> pos & 1]
            found = len(self.index.sockets_of_numas(numas))
            self._sockets[positions] = found
        return found

    def per_numa(self, cpus: int) -> list[int]:
        """CPUs of ``cpus`` per NUMA position; CPUs unknown to the topology count for NUMA 0,
        as the kubelet's zero-valued CPUInfo does."""
        index = self.index
        counts = [(cpus & index.numa_mask[numa]).bit_count() for numa in self.numa_ids]
        unknown = (cpus & ~index.all_mask).bit_count()
        if unknown and 0 in self.position:
            counts[self.position[0]] += unknown
        return counts

    def numa_positions_of(self, cpus: int) -> int:
        index = self.index
        positions = 0
        for pos, numa in enumerate(self.numa_ids):
            if cpus & index.numa_mask[numa]:
                positions |= 1 << pos
        if cpus & ~index.all_mask:
            # Unknown CPUs sit on NUMA 0 for the kubelet; no NUMA 0 means no mask can hold them.
            positions |= 1 << self.position[0] if 0 in self.position else 1 << self.count
        return positions


_TABLES: weakref.WeakKeyDictionary[CPUTopology, _HintTable] = weakref.WeakKeyDictionary()


def _table(topology: CPUTopology) -> _HintTable:
    table = _TABLES.get(topology)
    if table is None:
        table = _HintTable(topology_index(topology))
        _TABLES[topology] = table
    return table


def generate_cpu_topology_hints(topology: CPUTopology, available: CPUSet, reusable: CPUSet, request: int, *,
                                align_by_socket: bool = False) -> list[TopologyHint]:
    """Every NUMA mask whose available (plus reusable) CPUs cover ``request``; preferred when
    the mask is as narrow as the narrowest mask the machine could ever use, or, with
    ``align-by-socket``, when it spans the minimal number of sockets."""
    table = _table(topology)
    if table.count == 0:
        return []
    min_size = table.min_affinity_size(request)
    reuse_positions = table.numa_positions_of(reusable.mask)
    if reuse_positions >> table.count:
        return []  # reusable CPUs the kubelet places on a NUMA node 0 that does not exist
    sums = _subset_sums(table.per_numa(available.mask), reuse_positions)
    assert table.pick_in_order is not None
    in_order: tuple[int, ...] = table.pick_in_order(sums) if len(table.order) > 1 else (sums[table.order[0]],)
    needed = request - len(reusable)
    return list(compress(table.row(min_size, align_by_socket), map(needed.__le__, in_order)))
