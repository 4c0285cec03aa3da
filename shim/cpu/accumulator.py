"""The kubelet's cpuAccumulator: the free CPUs, what is still needed, and the topology orders.

Spec: cpu-manager.md §7.2. Every order is a list of ids sorted by the number of *free* CPUs in
the element, ties by smaller id; orders are nested (NUMA-first or sockets-first, decided by the
topology's counters). Duplicates are kept on purpose: an element under two parents appears twice,
exactly as the kubelet lists it.
"""

from __future__ import annotations

from typing import Literal

from shim.cpu.details import TopologyIndex, bits, topology_index
from shim.cpuset import CPUSet
from shim.topology.model import CPUTopology

Strategy = Literal["packed", "spread"]


class CPUAccumulator:
    """Accumulates ``num_cpus`` CPUs out of ``available`` (restricted to the topology's CPUs)."""

    def __init__(self, topology: CPUTopology, available: CPUSet, num_cpus: int, strategy: Strategy = "packed") -> None:
        self.topology = topology
        self.index: TopologyIndex = topology_index(topology)
        self.free = available.mask & self.index.all_mask
        self.need = num_cpus
        self.result_mask = 0
        self.strategy = strategy
        self.numa_first = topology.num_sockets >= topology.num_numa_nodes

    # state ----------------------------------------------------------------------------------
    @property
    def result(self) -> CPUSet:
        return CPUSet(self.result_mask)

    @property
    def free_set(self) -> CPUSet:
        return CPUSet(self.free)

    def take(self, cpus: CPUSet) -> None:
        self.take_mask(cpus.mask)

    def take_mask(self, mask: int) -> None:
        # The kubelet subtracts |S| even when S overlaps the result (spec §7.2).
        self.result_mask |= mask
        self.free &= ~self.result_mask
        self.need -= mask.bit_count()

    def needs_at_least(self, count: int) -> bool:
        return self.need >= count

    def is_satisfied(self) -> bool:
        return self.need < 1

    def is_failed(self) -> bool:
        return self.need > self.free.bit_count()

    # orders ---------------------------------------------------------------------------------
    def _sorted(self, ids: list[int], masks: dict[int, int]) -> list[int]:
        free = self.free
        return sorted(ids, key=lambda i: ((free & masks[i]).bit_count(), i))

    def _nested(self, parents: list[int], parent_masks: dict[int, int], children: dict[int, tuple[int, ...]],
                child_masks: dict[int, int]) -> list[int]:
        """For each parent in order: its children with free CPUs inside that parent, sorted."""
        free = self.free
        out: list[int] = []
        for parent in parents:
            inside = free & parent_masks[parent]
            found = [child for child in children.get(parent, ()) if inside & child_masks[child]]
            out.extend(self._sorted(found, child_masks))
        return out

    def sorted_numa_nodes(self) -> list[int]:
        index = self.index
        if self.numa_first:
            present = [numa for numa in index.numa_ids if self.free & index.numa_mask[numa]]
            return self._sorted(present, index.numa_mask)
        return self._nested(self.sorted_sockets(), index.socket_mask, index.numas_in_socket, index.numa_mask)

    def sorted_sockets(self) -> list[int]:
        index = self.index
        if self.numa_first:
            return self._nested(self.sorted_numa_nodes(), index.numa_mask, index.sockets_in_numa, index.socket_mask)
        present = [socket for socket in index.socket_ids if self.free & index.socket_mask[socket]]
        return self._sorted(present, index.socket_mask)

    def sorted_cores(self) -> list[int]:
        index = self.index
        if self.numa_first:
            return self._nested(self.sorted_sockets(), index.socket_mask, index.cores_in_socket, index.core_mask)
        return self._nested(self.sorted_numa_nodes(), index.numa_mask, index.cores_in_numa, index.core_mask)

    def sorted_uncore_caches(self) -> list[int]:
        index = self.index
        return self._nested(self.sorted_numa_nodes(), index.numa_mask, index.uncores_in_numa, index.uncore_mask)

    def sorted_cpus(self) -> list[int]:
        """Packed: core by core in core order; spread: socket by socket, ascending ids."""
        index = self.index
        out: list[int] = []
        if self.strategy == "packed":
            for core in self.sorted_cores():
                out.extend(bits(self.free & index.core_mask[core]))
        else:
            for socket in self.sorted_sockets():
                out.extend(bits(self.free & index.socket_mask[socket]))
        return out

    # free (whole) elements --------------------------------------------------------------------
    def free_numa_nodes(self) -> list[int]:
        masks = self.index.numa_mask
        return [numa for numa in self.sorted_numa_nodes() if masks[numa] & ~self.free == 0]

    def free_sockets(self) -> list[int]:
        # The kubelet compares with the CPUsPerSocket counter, not the socket's real size.
        per_socket = self.topology.cpus_per_socket
        masks = self.index.socket_mask
        return [s for s in self.sorted_sockets() if (self.free & masks[s]).bit_count() == per_socket]

    def free_cores(self) -> list[int]:
        per_core = self.topology.cpus_per_core
        masks = self.index.core_mask
        return [c for c in self.sorted_cores() if (self.free & masks[c]).bit_count() == per_core]

    def free_uncore_caches(self) -> list[int]:
        masks = self.index.uncore_mask
        return [u for u in self.sorted_uncore_caches() if masks[u] & ~self.free == 0]

    def free_cpus(self) -> list[int]:
        return self.sorted_cpus()

    # taking whole elements --------------------------------------------------------------------
    def _take_whole(self, ids: list[int], masks: dict[int, int]) -> None:
        for element in ids:
            cpus = masks[element]
            if self.needs_at_least(cpus.bit_count()):
                self.take_mask(cpus)

    def take_full_numa_nodes(self) -> None:
        self._take_whole(self.free_numa_nodes(), self.index.numa_mask)

    def take_full_sockets(self) -> None:
        self._take_whole(self.free_sockets(), self.index.socket_mask)

    def take_full_cores(self) -> None:
        self._take_whole(self.free_cores(), self.index.core_mask)

    def take_full_first_level(self) -> None:
        if self.numa_first:
            self.take_full_numa_nodes()
        else:
            self.take_full_sockets()

    def take_full_second_level(self) -> None:
        if self.numa_first:
            self.take_full_sockets()
        else:
            self.take_full_numa_nodes()

    def take_remaining_cpus(self) -> None:
        for cpu in self.sorted_cpus():
            self.take_mask(1 << cpu)
            if self.is_satisfied():
                return

    # uncore caches (prefer-align-cpus-by-uncorecache, spec §7.5) -----------------------------
    def take_uncore_cache(self) -> None:
        per_uncore = self.topology.cpus_per_uncore
        for uncore in self.sorted_uncore_caches():
            if self.needs_at_least(per_uncore):
                self._take_whole(self.free_uncore_caches(), self.index.uncore_mask)
            if self.is_satisfied():
                return
            self._take_partial_uncore(uncore)
            if self.is_satisfied():
                return

    def _take_partial_uncore(self, uncore: int) -> None:
        index = self.index
        per_core = self.topology.cpus_per_core or 1  # the kubelet divides by it (0 would panic)
        cores_needed = (self.need + per_core - 1) // per_core
        inside = self.free & index.uncore_mask[uncore]
        cores = [core for core in index.cores_in_uncore.get(uncore, ()) if inside & index.core_mask[core]]
        candidates = 0
        for core in cores[:cores_needed]:
            candidates |= self.free & index.core_mask[core]
        count = candidates.bit_count()
        # Odd request on SMT: drop the highest CPU so whole cores are still packed first.
        if self.need % 2 != 0 and self.topology.cpus_per_core > 1 and count > self.need:
            candidates &= ~(1 << (candidates.bit_length() - 1))
            count -= 1
        if count == self.need:
            self.take_mask(candidates)
