"""generateCPUTopologyHints: which NUMA masks could hold a CPU request (spec cpu-manager.md §8.1).

Same masks, same order and same "preferred" flags as the kubelet, which walks every subset of
NUMA nodes. Here the subset order is computed once per NUMA count, CPU counts of all subsets are
built by doubling a table (one list comprehension per NUMA node), and hint objects are
reused, so a call is a few list comprehensions and C-level passes over the subsets.

Past a few NUMA nodes the kubelet's list (2^N − 1 masks) is itself the cost, so
:func:`cpu_topology_hint_set` gives the same hints as a :class:`SupersetHints`: the list is
upward closed (a wider mask holds at least the same free CPUs and still contains the reusable
CPUs' nodes), so its minimal masks describe it; they are found by a pruned search, never by
walking all subsets.
"""

from __future__ import annotations

import functools
import operator
import weakref
from bisect import bisect_right
from collections.abc import Callable
from itertools import combinations, compress
from math import comb

from shim.cpu.details import TopologyIndex, topology_index
from shim.cpuset import CPUSet
from shim.topology.model import CPUTopology
from shim.topology_manager.bitmask import Bitmask
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.hint_set import SupersetHints

# Above this many NUMA nodes the static policy answers with a SupersetHints by default, however
# many minimal masks it has: the merge indexes them (thousands cost milliseconds), and the explicit
# list it replaces is 2^N − 1 masks.
COMPACT_HINTS_ABOVE_NUMA_NODES = 8


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
        self._pick_in_order: Callable[[list[int]], tuple[int, ...]] | None = None
        self._hints: dict[tuple[int, bool], TopologyHint] = {}
        self._sockets: dict[int, int] = {}
        self._rows: dict[tuple[int, bool], list[TopologyHint]] = {}
        self.universe = sum(1 << numa for numa in self.numa_ids)
        self.identity = self.numa_ids == tuple(range(self.count))
        # Sockets of each NUMA position, as a mask over positions in index.socket_ids.
        socket_position = {socket: pos for pos, socket in enumerate(index.socket_ids)}
        self.position_sockets = [
            sum(1 << socket_position[socket] for socket in index.sockets_in_numa.get(numa, ()))
            for numa in self.numa_ids
        ]

    @property
    def order(self) -> tuple[int, ...]:
        """Every subset in the kubelet's order: built on first use, as only the explicit list
        needs it (2^N − 1 entries, out of reach on the machines that use the compact form)."""
        return subset_order(self.count)

    def pick_in_order(self, sums: list[int]) -> tuple[int, ...]:
        """``sums`` (indexed by position mask) rearranged in subset order."""
        if self._pick_in_order is None:
            order = self.order
            # itemgetter of one index returns the item itself, not a 1-tuple.
            self._pick_in_order = operator.itemgetter(*order) if len(order) > 1 else lambda values: (values[order[0]],)
        return self._pick_in_order(sums)

    def numa_value(self, positions: int) -> int:
        """The NUMA-id bitmask value of a mask over positions."""
        if self.identity:
            return positions
        value = 0
        for pos, numa in enumerate(self.numa_ids):
            if positions >> pos & 1:
                value |= 1 << numa
        return value

    def min_sockets(self, min_size: int) -> int:
        """align-by-socket's socket count for a preferred hint; 0 = no hint is socket aligned."""
        topology = self.index.topology
        per_socket = topology.num_numa_nodes // topology.num_sockets if topology.num_sockets else 0
        return (min_size + per_socket - 1) // per_socket if per_socket > 0 else 0

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
            min_sockets = self.min_sockets(min_size)
            found = []
            for positions in self.order:
                preferred = positions.bit_count() == min_size
                if align_by_socket and min_sockets and self.sockets_spanned(positions) == min_sockets:
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
    in_order = table.pick_in_order(sums)
    needed = request - len(reusable)
    return list(compress(table.row(min_size, align_by_socket), map(needed.__le__, in_order)))


# --- the compact form -------------------------------------------------------------------------


def cpu_topology_hints(
    topology: CPUTopology, available: CPUSet, reusable: CPUSet, request: int, *,
    align_by_socket: bool = False, compact: bool | None = None,
) -> list[TopologyHint] | SupersetHints:
    """The hints in the form asked for: ``compact`` True a :class:`SupersetHints`, False the
    kubelet's list, None a SupersetHints on machines of more than
    ``COMPACT_HINTS_ABOVE_NUMA_NODES`` nodes (the list on smaller ones)."""
    if compact or (compact is None and len(_table(topology).numa_ids) > COMPACT_HINTS_ABOVE_NUMA_NODES):
        hints = cpu_topology_hint_set(topology, available, reusable, request, align_by_socket=align_by_socket)
        assert hints is not None  # no max_minimal given
        return hints
    return generate_cpu_topology_hints(topology, available, reusable, request, align_by_socket=align_by_socket)


def cpu_topology_hint_set(topology: CPUTopology, available: CPUSet, reusable: CPUSet, request: int, *,
                          align_by_socket: bool = False, max_minimal: int | None = None) -> SupersetHints | None:
    """The hints of :func:`generate_cpu_topology_hints` as a :class:`SupersetHints` whose
    ``expand()`` is that exact list (same masks, order and preferred flags); None when there
    are more than ``max_minimal`` minimal masks (the search stops there)."""
    table = _table(topology)
    if table.count == 0:
        return SupersetHints.trusted((), 0, frozenset())
    reuse_positions = table.numa_positions_of(reusable.mask)
    if reuse_positions >> table.count:
        return SupersetHints.trusted((), table.universe, frozenset())
    weights = table.per_numa(available.mask)
    needed = request - len(reusable)
    minimal = minimal_fits(weights, reuse_positions, needed, most=max_minimal)
    if minimal is None:
        return None
    min_size = table.min_affinity_size(request)
    preferred = _of_size(minimal, table.count, min_size)
    min_sockets = table.min_sockets(min_size)
    if align_by_socket and min_sockets:
        preferred.update(_socket_aligned(table, weights, reuse_positions, needed, min_sockets))
    if not table.identity:
        minimal = list(map(table.numa_value, minimal))
        preferred = set(map(table.numa_value, preferred))
    minimal.sort()
    minimal.sort(key=int.bit_count)  # stable: by node count, then value
    return SupersetHints.trusted(tuple(minimal), table.universe, frozenset(preferred))


def minimal_fits(weights: list[int], required: int, needed: int, *, most: int | None = None,
                 budget: int | None = None) -> list[int] | None:
    """Inclusion-minimal position masks M ⊇ ``required`` with Σ weights over M ≥ ``needed``
    (the non-empty ones only: the kubelet never lists an empty mask); None as soon as more
    than ``most`` are found.

    Only positions outside ``required`` with free CPUs can make a mask minimal; taken in
    decreasing weight, a set S is minimal iff it reaches the target and S minus its lightest
    (last) member does not. Searches of at most ``budget`` candidate subsets enumerate S size
    by size with C-level combinations; larger ones walk a pruned tree whose work follows the
    answer, not the 2^N subsets. Both give the same masks (in different orders).
    """
    count = len(weights)
    most = -1 if most is None else most
    target = needed - sum(weights[pos] for pos in range(count) if required >> pos & 1)
    if target <= 0:
        found = [required] if required else [1 << pos for pos in range(count)]
        return None if 0 <= most < len(found) else found
    order = sorted((pos for pos in range(count) if not required >> pos & 1 and weights[pos] > 0),
                   key=lambda pos: (-weights[pos], pos))
    weight = [weights[pos] for pos in order]
    bit = [1 << pos for pos in order]
    sizes = _minimal_sizes(weight, target)
    limit = _COMBINATIONS_BUDGET if budget is None else budget
    if sum(comb(len(order), size) for size in sizes) <= limit:
        return _by_size(weight, bit, target, required, count, sizes, most)
    return _by_walk(weight, bit, target, required, most)


# Above this many candidate subsets the size-by-size enumeration gives way to the pruned walk.
_COMBINATIONS_BUDGET = 1 << 15


def _minimal_sizes(weight: list[int], target: int) -> range:
    """Sizes a minimal set can have (``weight`` descending): the k heaviest reach the target,
    and the k − 1 lightest do not (else every k − 1 members of a k-set already would)."""
    total = len(weight)
    smallest = next((k for k in range(1, total + 1) if sum(weight[:k]) >= target), total + 1)
    largest = smallest - 1
    while largest < total and sum(weight[total - largest:]) < target:
        largest += 1
    return range(smallest, largest + 1)


def _by_size(weight: list[int], bit: list[int], target: int, required: int, count: int, sizes: range,
             most: int) -> list[int] | None:
    # Each weight rides above the position bits, so one sum of a combination gives both its
    # weight (high part) and its mask (low part: distinct bits never carry).
    low = (1 << count) - 1
    packed = [value << count | mask for value, mask in zip(weight, bit, strict=True)]
    high = target << count
    found: list[int] = []
    for size in sizes:
        heaviest = sum(weight[: size - 1])
        for last in range(size - 1, len(weight)):
            # ``last`` is the lightest member; the others come from the heavier positions before it.
            if heaviest + weight[last] < target:
                break  # later positions are lighter still
            if sum(weight[last - size + 1 : last]) >= target:
                continue  # even the lightest others reach the target without ``last``
            floor = (target - weight[last]) << count
            closing = required | bit[last]
            found.extend([total & low | closing for total in map(sum, combinations(packed[:last], size - 1))
                          if floor <= total < high])
            if 0 <= most < len(found):
                return None
    return found


def _by_walk(weight: list[int], bit: list[int], target: int, required: int, most: int) -> list[int] | None:
    negated = [-value for value in weight]  # ascending, for bisect
    reach = [0] * (len(weight) + 1)  # weight of positions j.. onwards
    for j in range(len(weight) - 1, -1, -1):
        reach[j] = reach[j + 1] + weight[j]
    found: list[int] = []

    def walk(start: int, chosen: int, total: int) -> bool:
        """False once more than ``most`` masks are found."""
        # Positions that reach the target on their own form a prefix of the rest (weights
        # descend): each closes a minimal set. The lighter ones need more company.
        closing = bisect_right(negated, total - target, start)
        found.extend(map(chosen.__or__, bit[start:closing]))
        if 0 <= most < len(found):
            return False
        for j in range(closing, len(weight)):
            if total + reach[j] < target:
                break
            if not walk(j + 1, chosen | bit[j], total + weight[j]):
                return False
        return True

    return found if walk(0, required, 0) else None


def _of_size(minimal: list[int], count: int, size: int) -> set[int]:
    """Members (supersets of a minimal mask) with exactly ``size`` positions. Normally these are
    minimal masks themselves; a narrower minimal mask only exists when available and reusable
    CPUs overlap or CPUs unknown to the topology are counted on NUMA 0."""
    counts = list(map(int.bit_count, minimal))
    found = set(compress(minimal, map(size.__eq__, counts)))
    for small in compress(minimal, map(size.__gt__, counts)):
        others = [1 << pos for pos in range(count) if not small >> pos & 1]
        found.update(small | sum(extra) for extra in combinations(others, size - small.bit_count()))
    return found


def _socket_aligned(table: _HintTable, weights: list[int], required: int, needed: int, min_sockets: int) -> set[int]:
    """Members whose NUMA nodes span exactly ``min_sockets`` sockets (align-by-socket).

    For each choice Q of sockets, only nodes lying wholly in Q can take part, so the subsets of
    those nodes are walked (2^(nodes in Q), e.g. 2^8 for one socket of an 8-node socket)."""
    found: set[int] = set()
    sockets = table.position_sockets
    for chosen in combinations(range(len(table.index.socket_ids)), min_sockets):
        span = sum(1 << socket for socket in chosen)
        inside = [pos for pos in range(table.count) if sockets[pos] and sockets[pos] & ~span == 0]
        inside_mask = sum(1 << pos for pos in inside)
        if required & ~inside_mask:
            continue
        local_required = sum(1 << index for index, pos in enumerate(inside) if required >> pos & 1)
        sums = _subset_sums([weights[pos] for pos in inside], local_required)
        spans = [0]
        masks = [0]
        for pos in inside:
            spans += [value | sockets[pos] for value in spans]
            masks += [value | 1 << pos for value in masks]
        found.update(mask for mask, total, covered in zip(masks, sums, spans, strict=True)
                     if total >= needed and covered == span)
    return found
