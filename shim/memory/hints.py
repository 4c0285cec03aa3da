"""Topology hints of the Static policy (spec §4.3): which NUMA masks can hold a request, in the
kubelet's order, which are preferred, and the kubelet's "best hint" choice.

The kubelet enumerates every mask of the machine (2^n - 1 of them). The results here are the
same, but masks are classified a whole size at a time where possible: on a machine whose unused
nodes are all large enough, every combination of a given size passes, and the precomputed list of
those combinations (and of their interned hints) is reused instead of testing each mask.

The first call on a machine builds those lists (65,535 hint objects on 16 nodes); they are built
in bulk, with C-level loops only, and :meth:`HintCache.warm` lets the policy build them when it
starts, so that no admission pays for them. Equal answers are one shared, unchangeable list
(:class:`FrozenHints`, with its masks by segment), so that sending it to the topology manager and
merging it costs next to nothing after the first time.
"""

from __future__ import annotations

import bisect
import gc
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations, repeat
from operator import is_
from types import MemberDescriptorType

import msgspec

from shim.memory.state import MEMORY, Block, MachineState
from shim.topology_manager.bitmask import MAX_BITS, Bitmask
from shim.topology_manager.hint import FrozenHints, TopologyHint

Hints = dict[str, list[TopologyHint]]
# mask value -> resource -> bytes that this pod's finished init containers left on exactly that mask
ReusableByMask = Mapping[int, Mapping[str, int]]

_EMPTY: Mapping[str, int] = {}


def mask_of(bits: Sequence[int] | None) -> int:
    value = 0
    for bit in bits or ():
        value |= 1 << bit
    return value


def _lex_key(mask: int) -> tuple[int, ...]:
    return tuple(Bitmask(mask).bits())


def _slot(cls: type, name: str) -> MemberDescriptorType | None:
    found = cls.__dict__.get(name)
    return found if isinstance(found, MemberDescriptorType) else None


# Both classes are immutable slotted classes: their slots can be filled directly, which skips a
# Python-level __init__ per object. Should either stop using slots, the constructors are used.
_MASK_VALUE = _slot(Bitmask, "value")
_HINT_AFFINITY = _slot(TopologyHint, "affinity")
_HINT_PREFERRED = _slot(TopologyHint, "preferred")


def new_hints(masks: list[int], preferred: bool) -> list[TopologyHint]:
    """``[TopologyHint(Bitmask(mask), preferred) for mask in masks]``, built in bulk."""
    # Tens of thousands of acyclic objects: collector passes triggered by the allocations alone
    # would cost as much as building them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if _MASK_VALUE is None or _HINT_AFFINITY is None or _HINT_PREFERRED is None:
            return [TopologyHint(Bitmask(mask), preferred) for mask in masks]
        count = len(masks)
        affinities = list(map(object.__new__, repeat(Bitmask, count)))
        hints = list(map(object.__new__, repeat(TopologyHint, count)))
        for _ in map(_MASK_VALUE.__set__, affinities, masks):
            pass
        for _ in map(_HINT_AFFINITY.__set__, hints, affinities):
            pass
        for _ in map(_HINT_PREFERRED.__set__, hints, repeat(preferred, count)):
            pass
        return hints
    finally:
        if collecting:
            gc.enable()


class _Interned(dict[int, TopologyHint]):
    """Mask value -> the one TopologyHint object for it (with a fixed ``preferred``)."""

    def __init__(self, preferred: bool) -> None:
        super().__init__()
        self.preferred = preferred

    def __missing__(self, mask: int) -> TopologyHint:
        hint = TopologyHint(Bitmask(mask), self.preferred)
        self[mask] = hint
        return hint

    def many(self, masks: list[int]) -> list[TopologyHint]:
        """The hints of ``masks``, in order; the missing ones are created in one bulk step."""
        if not self:
            created = new_hints(masks, self.preferred)
            self.update(zip(masks, created, strict=True))
            return created
        # One C-level pass when every hint exists (the usual case once warm: a pool change on
        # 16 nodes asks for tens of thousands); a Python-level scan only when some are missing.
        found = list(map(self.get, masks))
        if not any(map(is_, found, repeat(None))):
            return found  # type: ignore[return-value]  # no None in it
        missing = [mask for mask in masks if mask not in self]
        self.update(zip(missing, new_hints(missing, self.preferred), strict=True))
        return list(map(self.__getitem__, masks))


# Warming builds 2^n − 1 hint objects: worth it up to 16 nodes (65,535), too much beyond.
WARM_MAX_NODES = 16


class HintCache:
    """Combinations of node pools in the kubelet's order and interned hints, kept between calls.

    TopologyHint and Bitmask are immutable, so sharing them between results is safe. The
    combinations of a whole machine are kept; those of a sub-pool (the machine's unused nodes)
    are filtered from them, in the same order, and the last ``max_pools`` pools are kept."""

    def __init__(self, max_pools: int = 16, max_results: int = 8) -> None:
        self.max_pools = max_pools
        self.max_results = max_results
        self._machines: dict[tuple[int, ...], dict[int, list[int]]] = {}
        self._pools: dict[tuple[tuple[int, ...], int], list[int]] = {}
        self._hint_lists: dict[tuple[tuple[int, ...], int, bool], list[TopologyHint]] = {}
        self._interned = {True: _Interned(True), False: _Interned(False)}
        self._results: dict[tuple[object, ...], FrozenHints] = {}

    def _machine_combos(self, universe: tuple[int, ...], size: int) -> list[int]:
        per_size = self._machines.setdefault(universe, {})
        found = per_size.get(size)
        if found is None:
            found = list(map(sum, combinations([1 << node for node in universe], size)))
            per_size[size] = found
        return found

    def combos(self, pool: tuple[int, ...], size: int, universe: tuple[int, ...]) -> list[int]:
        """Masks of every ``size``-node subset of ``pool`` (a sorted subset of the sorted
        ``universe``), in combination order. Do not mutate the result."""
        if pool == universe:
            return self._machine_combos(universe, size)
        key = (pool, size)
        found = self._pools.get(key)
        if found is None:
            if len({p for p, _ in self._pools}) >= self.max_pools and all(p != pool for p, _ in self._pools):
                self._pools.clear()
                self._hint_lists.clear()
            excluded = mask_of(universe) & ~mask_of(pool)
            found = [mask for mask in self._machine_combos(universe, size) if not mask & excluded]
            self._pools[key] = found
        return found

    def hint(self, mask: int, preferred: bool) -> TopologyHint:
        return self._interned[preferred][mask]

    def hints(self, masks: list[int], preferred: bool) -> list[TopologyHint]:
        return self._interned[preferred].many(masks)

    def warm(self, universe: tuple[int, ...]) -> None:
        """Build what the first hint call on an unused machine needs: every multi-node
        combination of ``universe`` with its non-preferred hint list, and the single-node hints
        both ways (one node is the usual preferred width; other preferred widths are small
        lists built on demand). Machines above ``WARM_MAX_NODES`` nodes are left alone."""
        if len(universe) > WARM_MAX_NODES:
            return
        singles = [1 << node for node in universe]
        self.hints(singles, True)
        self.hints(singles, False)
        for size in range(2, len(universe) + 1):
            self.hint_list(universe, size, False, universe)

    def result(self, key: tuple[object, ...], build: Callable[[], FrozenHints]) -> FrozenHints:
        """The whole hint list of a mask table, one shared object per distinct table (the last
        ``max_results`` are kept): equal answers are the same object, so the wire conversions
        and the merge can reuse what they derived from it."""
        found = self._results.get(key)
        if found is None:
            if len(self._results) >= self.max_results:
                self._results.clear()
            found = self._results[key] = build()
        return found

    def hint_list(
        self, pool: tuple[int, ...], size: int, preferred: bool, universe: tuple[int, ...]
    ) -> list[TopologyHint]:
        key = (pool, size, preferred)
        found = self._hint_lists.get(key)
        if found is None:
            found = self.hints(self.combos(pool, size, universe), preferred)
            self._hint_lists[key] = found
        return found


# A msgspec Struct, not a dataclass: the OCI hook imports this module on every container start.
class MaskTable(msgspec.Struct):
    """The masks that pass calculate_hints' checks, by size (index = node count), and the width
    the kubelet prefers (``min_size``: fewest nodes whose *allocatable* memory holds the request).

    ``pools[k]`` names the node pool whose every ``k``-combination is ``by_size[k]`` (a shared
    cached list), or is None when the list was filtered."""

    min_size: int
    by_size: list[list[int]]
    pools: list[tuple[int, ...] | None]
    universe: tuple[int, ...] = ()


class _Sums:
    """Free and allocatable amounts per requested resource, per node."""

    def __init__(self, machine: MachineState, requests: Mapping[str, int]) -> None:
        self.requests = list(requests.items())
        self.free: dict[int, list[int]] = {}
        self.allocatable: dict[int, list[int]] = {}
        for node_id, node in machine.items():
            free, allocatable = [], []
            for name, _ in self.requests:
                table = node.memory_map.get(name)
                free.append(0 if table is None else table.free)
                allocatable.append(0 if table is None else table.allocatable)
            self.free[node_id] = free
            self.allocatable[node_id] = allocatable

    def passes(self, mask: int, reusable: Mapping[str, int]) -> bool:
        bits = Bitmask(mask).bits()
        for index, (name, request) in enumerate(self.requests):
            if sum(self.allocatable[bit][index] for bit in bits) < request:
                return False
            if sum(self.free[bit][index] for bit in bits) + reusable.get(name, 0) < request:
                return False
        return True

    def allocatable_fits(self, nodes: Sequence[int]) -> bool:
        return all(
            sum(self.allocatable[node][index] for node in nodes) >= request
            for index, (_, request) in enumerate(self.requests)
        )

    def classify(self, pool: Sequence[int], size: int, tables: Sequence[dict[int, list[int]]]) -> str:
        """ "all" when every ``size``-subset of ``pool`` holds every request in each of ``tables``,
        "none" when no subset can, "some" otherwise."""
        every = True
        for index, (_, request) in enumerate(self.requests):
            for table in tables:
                values = sorted(table[node][index] for node in pool)
                if sum(values[len(values) - size :]) < request:
                    return "none"
                if sum(values[:size]) < request:
                    every = False
        return "all" if every else "some"


def _min_affinity_size(sums: _Sums, nodes: Sequence[int]) -> int:
    """The fewest nodes of the machine whose allocatable memory holds every request; the
    kubelet counts this before any free-memory or NUMA-group check."""
    for size in range(1, len(nodes) + 1):
        verdict = sums.classify(nodes, size, [sums.allocatable])
        if verdict == "all":
            return size
        if verdict == "some" and any(sums.allocatable_fits(combo) for combo in combinations(nodes, size)):
            return size
    return len(nodes)


def _valid_groups(machine: MachineState) -> set[int]:
    """Existing multi-NUMA groups a new multi-node allocation may join: each used node of the group
    has exactly that group as its cells."""
    groups: set[int] = set()
    for node in machine.values():
        cells = node.cells or []
        if node.number_of_assignments <= 0 or len(cells) < 2 or len(set(cells)) != len(cells):
            continue
        if any(cell not in machine for cell in cells):
            continue
        wanted = sorted(cells)
        if all(
            machine[cell].number_of_assignments <= 0 or sorted(machine[cell].cells or []) == wanted for cell in cells
        ):
            groups.add(mask_of(cells))
    return groups


def passing_masks(
    machine: MachineState, requests: Mapping[str, int], reusable: ReusableByMask, cache: HintCache
) -> MaskTable:
    """Every mask the kubelet's calculateHints keeps, grouped by size in its iteration order."""
    nodes = tuple(sorted(machine))
    sums = _Sums(machine, requests)
    by_size: list[list[int]] = [[] for _ in range(len(nodes) + 1)]
    pools: list[tuple[int, ...] | None] = [None] * (len(nodes) + 1)
    if not nodes:
        return MaskTable(0, by_size, pools)
    min_size = _min_affinity_size(sums, nodes)

    # One node: any node not already part of a multi-node group.
    for node_id in nodes:
        cells = machine[node_id].cells or []
        mask = 1 << node_id
        if len(cells) <= 1 and sums.passes(mask, reusable.get(mask, _EMPTY)):
            by_size[1].append(mask)

    # Several nodes: subsets of the unused nodes, or exactly an existing group.
    unused = tuple(node_id for node_id in nodes if machine[node_id].number_of_assignments <= 0)
    extras: dict[int, list[int]] = {}
    for group in _valid_groups(machine):
        if sums.passes(group, reusable.get(group, _EMPTY)):
            extras.setdefault(group.bit_count(), []).append(group)
    unused_mask = mask_of(unused)
    rescued = [mask for mask in reusable if mask & unused_mask == mask and mask.bit_count() >= 2]
    for size in range(2, len(nodes) + 1):
        chunk: list[int] = []
        if len(unused) >= size:
            verdict = sums.classify(unused, size, [sums.allocatable, sums.free])
            if verdict == "all":
                chunk = cache.combos(unused, size, nodes)
                pools[size] = unused
            elif verdict == "some":
                chunk = [
                    mask for mask in cache.combos(unused, size, nodes) if sums.passes(mask, reusable.get(mask, _EMPTY))
                ]
            else:
                # Memory left by this pod's init containers can still make a mask fit.
                chunk = sorted(
                    (mask for mask in rescued if mask.bit_count() == size and sums.passes(mask, reusable[mask])),
                    key=_lex_key,
                )
        if size in extras:
            chunk = list(chunk)
            pools[size] = None
            for group in extras[size]:
                bisect.insort(chunk, group, key=_lex_key)
        by_size[size] = chunk
    return MaskTable(min_size, by_size, pools, nodes)


def hints_from_table(table: MaskTable, requests: Mapping[str, int], cache: HintCache) -> Hints:
    """The kubelet's result: the same hint list for every requested resource (empty map when no
    mask fits). The lists are :class:`FrozenHints`, shared by every equal result."""
    if not any(table.by_size):
        return {}
    # A size's masks are named by their pool when they are all its combinations (a short key
    # for the common case), else listed.
    key = (
        table.min_size,
        table.universe,
        *(
            (pool, size) if (pool := table.pools[size]) is not None else tuple(chunk)
            for size, chunk in enumerate(table.by_size)
        ),
    )

    def build() -> FrozenHints:
        found: list[TopologyHint] = []
        segments: list[tuple[bool, Sequence[int]]] = []
        for size, chunk in enumerate(table.by_size):
            if not chunk:
                continue
            preferred = size == table.min_size
            pool = table.pools[size]
            if pool is not None:
                found.extend(cache.hint_list(pool, size, preferred, table.universe))
            else:
                found.extend(cache.hints(chunk, preferred))
            segments.append((preferred, chunk))
        return FrozenHints(found, tuple(segments))

    shared = cache.result(key, build)
    return {name: shared for name in requests}


def calculate_hints(
    machine: MachineState,
    requests: Mapping[str, int],
    reusable: ReusableByMask | None = None,
    cache: HintCache | None = None,
) -> Hints:
    """calculateHints (spec §4.3)."""
    cache = HintCache() if cache is None else cache
    return hints_from_table(passing_masks(machine, requests, reusable or {}, cache), requests, cache)


def best_hint(table: MaskTable, *, containing: int = 0) -> TopologyHint | None:
    """findBestHint over the ``memory`` hints (only those whose mask contains ``containing``):
    the narrowest preferred hint, else the narrowest hint; narrower = fewer nodes, then lower mask."""

    def candidates(size: int) -> list[int]:
        chunk = table.by_size[size]
        if not containing:
            return chunk
        return [mask for mask in chunk if mask & containing == containing]

    smallest = max(1, containing.bit_count())
    if table.min_size >= smallest and table.min_size < len(table.by_size):
        preferred = candidates(table.min_size)
        if preferred:
            return TopologyHint(Bitmask(min(preferred)), True)
    for size in range(smallest, len(table.by_size)):
        found = candidates(size)
        if found:
            return TopologyHint(Bitmask(min(found)), size == table.min_size)
    return None


def regenerate_hints(blocks: Sequence[Block], requests: Mapping[str, int]) -> Hints | None:
    """Hints from an existing allocation: one preferred hint per block, but only when the blocks
    are exactly one per requested resource with the requested size (else None)."""
    if len(blocks) != len(requests):
        return None
    hints: Hints = {name: [] for name in requests}
    for block in blocks:
        if block.type not in requests or block.size != requests[block.type]:
            return None
        bits = block.numa_affinity or []
        if any(bit < 0 or bit >= MAX_BITS for bit in bits):
            return None
        hints[block.type].append(TopologyHint(Bitmask(mask_of(bits)), True))
    return hints


def requests_memory(requests: Mapping[str, int]) -> bool:
    """The kubelet picks default and extended hints from the ``memory`` list only."""
    return MEMORY in requests
