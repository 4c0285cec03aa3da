"""takeByTopology: choose N CPUs out of an available set (spec cpu-manager.md §7).

Three algorithms over the same accumulator: packed (whole NUMA nodes/sockets, optional uncore
caches, whole cores, single CPUs), spread sorting (no whole-core step), and the distributed one
(``distribute-cpus-across-numa``) that balances the request over NUMA nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import combinations

from shim.cpu.accumulator import CPUAccumulator, Strategy
from shim.cpu.errors import AllocationError
from shim.cpuset import CPUSet
from shim.topology.model import CPUTopology


def take_by_topology(
    topology: CPUTopology,
    available: CPUSet,
    count: int,
    *,
    strategy: Strategy = "packed",
    prefer_uncore_cache: bool = False,
    distribute_across_numa: bool = False,
    cpu_group_size: int = 1,
) -> CPUSet:
    """``count`` CPUs from ``available`` the way the kubelet's static policy picks them.

    Raises AllocationError with the kubelet's message when it cannot.
    """
    if distribute_across_numa:
        return take_distributed(topology, available, count, cpu_group_size, strategy)
    return take_packed(topology, available, count, strategy, prefer_uncore_cache)


def _not_enough(count: int, available: CPUSet) -> AllocationError:
    return AllocationError(
        f"not enough cpus available to satisfy request: requested={count}, available={len(available)}"
    )


def take_packed(topology: CPUTopology, available: CPUSet, count: int, strategy: Strategy = "packed",
                prefer_uncore_cache: bool = False) -> CPUSet:
    """takeByTopologyNUMAPacked (spec §7.3–7.5)."""
    acc = CPUAccumulator(topology, available, count, strategy)
    if acc.is_satisfied():
        return acc.result
    if acc.is_failed():
        raise _not_enough(count, available)
    acc.take_full_first_level()
    if acc.is_satisfied():
        return acc.result
    acc.take_full_second_level()
    if acc.is_satisfied():
        return acc.result
    if prefer_uncore_cache:
        acc.take_uncore_cache()
        if acc.is_satisfied():
            return acc.result
    if strategy != "spread":
        acc.take_full_cores()
        if acc.is_satisfied():
            return acc.result
    acc.take_remaining_cpus()
    if acc.is_satisfied():
        return acc.result
    raise AllocationError("failed to allocate cpus")


# distributed ---------------------------------------------------------------------------------

def go_round(value: float) -> float:
    """Go's math.Round: half away from zero (Python's round() rounds half to even)."""
    floor = math.floor(abs(value))
    rounded = floor + 1.0 if abs(value) - floor >= 0.5 else floor
    return math.copysign(rounded, value)


def standard_deviation(values: Sequence[int]) -> float:
    """Population standard deviation with the kubelet's rounding to 3 decimals."""
    mean = go_round(sum(float(v) for v in values) / len(values) * 1000) / 1000
    total = 0.0
    for v in values:
        total += (float(v) - mean) * (float(v) - mean)
    return go_round(math.sqrt(total / len(values)) * 1000) / 1000


def _go_alias_depth(k: int) -> int:
    """Depth at which Go's ``append(accum, x)`` last allocated a fresh array for a k-long slice.

    The kubelet builds combinations with ``append`` on a shared prefix; capacities grow 1, 2, 4,
    8..., so a k-combination shares its backing array with its siblings from this depth on, and
    the combination it keeps as "best" ends up holding the last sibling's tail (see
    ``_combinations_as_go_keeps_them``).
    """
    depth = 1
    capacity = 1
    while True:
        next_depth = capacity + 1  # appending to a full slice of len == cap allocates
        if next_depth > k:
            return depth
        depth = next_depth
        capacity *= 2


def _combinations_as_go_keeps_them(items: Sequence[int], k: int) -> Iterator[tuple[tuple[int, ...], list[int]]]:
    """k-combinations in the kubelet's order, each with the list object Go would hand out.

    Positions ``depth..k-1`` of the yielded list are shared with every later combination that
    has the same prefix, exactly like the Go slice: a caller that keeps the list sees it change.
    """
    depth = _go_alias_depth(k)
    shared: dict[tuple[int, ...], list[int]] = {}
    for combo in combinations(items, k):
        prefix = combo[:depth]
        backing = shared.get(prefix)
        if backing is None:
            shared.clear()  # an older prefix's subtree is finished: nobody writes to it any more
            backing = list(combo)
            shared[prefix] = backing
        else:
            backing[depth:] = combo[depth:]
        yield combo, backing


def _range_numa_nodes_needed(acc: CPUAccumulator, group: int) -> tuple[int, int]:
    index = acc.index
    num_numa = len(index.numa_ids)
    num_available = sum(1 for numa in index.numa_ids if acc.free & index.numa_mask[numa])
    num_cpus = index.all_mask.bit_count()
    groups = (num_cpus - 1) // group + 1
    groups_per_numa = (groups - 1) // num_numa + 1
    groups_needed = (acc.need - 1) // group + 1
    return (groups_needed - 1) // groups_per_numa + 1, min(groups_needed, num_available)


def _best_remainder(subsets_of: list[int], remainder: int, group: int,
                    after: dict[int, int]) -> tuple[float, list[int] | None]:
    best = math.inf
    best_subset: list[int] | None = None
    for size in range(len(subsets_of), 0, -1):
        for subset, kept in _combinations_as_go_keeps_them(subsets_of, size):
            if sum(after[numa] for numa in subset) < remainder:
                continue
            local = dict(after)
            left = remainder
            while left > 0:
                progressed = False
                for numa in subset:
                    if left == 0:
                        break
                    if local[numa] < group:
                        continue
                    local[numa] -= group
                    left -= group
                    progressed = True
                if not progressed:  # the kubelet would loop forever here (unreachable with sane input)
                    break
            if left > 0:
                continue
            balance = standard_deviation(list(local.values()))
            if balance < best:
                best, best_subset = balance, kept
    return best, best_subset


def take_distributed(topology: CPUTopology, available: CPUSet, count: int, group: int = 1,
                     strategy: Strategy = "packed") -> CPUSet:
    """takeByTopologyNUMADistributed (spec §7.6)."""
    if group < 1 or count % group != 0:
        return take_packed(topology, available, count, strategy)
    acc = CPUAccumulator(topology, available, count, strategy)
    if acc.is_satisfied():
        return acc.result
    if acc.is_failed():
        raise _not_enough(count, available)
    index = acc.index
    numas = acc.sorted_numa_nodes()
    free_in = {numa: (acc.free & index.numa_mask[numa]).bit_count() for numa in numas}
    k_min, k_max = _range_numa_nodes_needed(acc, group)
    for k in range(k_min, k_max + 1):
        best = math.inf
        best_combo: list[int] | None = None
        best_remainder: list[int] | None = None
        for combo, kept in _combinations_as_go_keeps_them(numas, k):
            if best == 0:
                break
            if sum(free_in[numa] for numa in combo) < count:
                continue
            if sum(free_in[numa] // group for numa in combo) * group < count:
                continue
            share = count // k // group * group
            if any(free_in[numa] < share for numa in combo):
                continue
            after = dict(free_in)
            for numa in combo:
                after[numa] -= share
            remainder = count - share * k
            candidates = [numa for numa in combo if after[numa] >= group]
            local_subset: list[int] | None = None
            if remainder == 0:
                local = standard_deviation(list(after.values()))
            else:
                local, local_subset = _best_remainder(candidates, remainder, group, after)
            if local < best:
                best, best_combo, best_remainder = local, kept, local_subset
        if best_combo is None:
            continue
        share = count // len(best_combo) // group * group
        for numa in best_combo:
            acc.take(_packed_or_empty(topology, CPUSet(acc.free & index.numa_mask[numa]), share, strategy))
        remainder = count - share * len(best_combo)
        while remainder > 0:
            progressed = False
            for numa in best_remainder or ():
                if remainder == 0:
                    break
                if (acc.free & index.numa_mask[numa]).bit_count() < group:
                    continue
                acc.take(_packed_or_empty(topology, CPUSet(acc.free & index.numa_mask[numa]), group, strategy))
                remainder -= group
                progressed = True
            if not progressed:
                break
        if acc.need > 0:
            raise AllocationError(f"accounting error, not enough CPUs allocated, remaining: {acc.need}")
        if acc.need < 0:
            raise AllocationError(f"accounting error, too many CPUs allocated, remaining: {acc.need}")
        return acc.result
    return take_packed(topology, available, count, strategy)


def _packed_or_empty(topology: CPUTopology, available: CPUSet, count: int, strategy: Strategy) -> CPUSet:
    # The kubelet ignores errors of these sub-allocations; the accounting check catches them.
    try:
        return take_packed(topology, available, count, strategy)
    except AllocationError:
        return CPUSet()
