"""Differential property test: the fast exact merge equals the kubelet's brute-force merge.

Random providers (1–5), up to 6 NUMA nodes (ids possibly non-contiguous), random masks (some
with nodes outside the machine, some empty), nil/empty hint lists and maps, preferred flags,
random (possibly asymmetric) distances, every policy, with and without prefer-closest.
Large minimal families (hundreds to thousands of minimal masks on 10-12 nodes) are checked against
the brute force over their expansion. Run more examples with HYPOTHESIS_PROFILE=ci or thorough.
"""

from __future__ import annotations

from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from shim.topology_manager import (
    Bitmask,
    SupersetHints,
    TopologyHint,
    merge,
)

POLICIES = ("best-effort", "restricted", "single-numa-node")


@st.composite
def machines(draw: st.DrawFn) -> tuple[list[int], dict[int, list[int]]]:
    nodes = draw(st.lists(st.integers(0, 6), min_size=1, max_size=6, unique=True).map(sorted))
    size = max(nodes) + 1
    distances = {
        node: [10 if node == other else draw(st.sampled_from((11, 12, 20, 21, 30))) for other in range(size)]
        for node in nodes
    }
    return nodes, distances


def hints_on(nodes: list[int]) -> st.SearchStrategy[TopologyHint]:
    span = max(nodes) + 2  # one id beyond the machine: providers may name a node it lacks
    affinity = st.one_of(st.none(), st.integers(0, (1 << span) - 1).map(Bitmask))
    return st.builds(TopologyHint, affinity, st.booleans())


def resource_hints(nodes: list[int]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.lists(hints_on(nodes), max_size=5))


def providers(nodes: list[int]) -> st.SearchStrategy[Any]:
    resources = st.dictionaries(st.sampled_from(("cpu", "memory", "gpu")), resource_hints(nodes), max_size=2)
    return st.lists(st.one_of(st.none(), resources), min_size=1, max_size=5)


@given(st.data())
def test_fast_merge_equals_brute_force(data: st.DataObject) -> None:
    nodes, distances = data.draw(machines())
    hints = data.draw(providers(nodes))
    policy = data.draw(st.sampled_from(POLICIES))
    options = {"prefer-closest-numa-nodes": data.draw(st.booleans())}
    fast = merge(policy, hints, nodes, options=options, distances=distances)
    brute = merge(policy, hints, nodes, options=options, distances=distances, reference=True)
    assert fast == brute


@st.composite
def superset_hints(draw: st.DrawFn, nodes: list[int]) -> SupersetHints:
    universe = Bitmask.from_bits(draw(st.lists(st.sampled_from(nodes), min_size=1, unique=True)))
    subsets = st.lists(st.sampled_from(universe.bits()), min_size=1, unique=True).map(Bitmask.from_bits)
    minimal = draw(st.lists(subsets, max_size=3))
    return SupersetHints.from_min_size(minimal, universe, draw(st.integers(1, 3)))


@given(st.data())
def test_superset_hints_merge_like_their_expansion(data: st.DataObject) -> None:
    """A provider may answer with SupersetHints; the result is the kubelet's on the expanded list."""
    nodes, distances = data.draw(machines())
    lazy: list[Any] = []
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.booleans()):
            lazy.append({"cpu": data.draw(superset_hints(nodes))})
        else:
            lazy.append({"memory": data.draw(resource_hints(nodes))})
    expanded = [
        {name: value.expand() if isinstance(value, SupersetHints) else value for name, value in entry.items()}
        for entry in lazy
    ]
    policy = data.draw(st.sampled_from(POLICIES))
    options = {"prefer-closest-numa-nodes": data.draw(st.booleans())}
    fast = merge(policy, lazy, nodes, options=options, distances=distances)
    brute = merge(policy, expanded, nodes, options=options, distances=distances, reference=True)
    assert fast == brute


# --- large minimal families (10-12 nodes) ---------------------------------------------------
# Thousands of minimal masks go through the indexed antichain code (not the pairwise one); the
# brute force stays feasible because the other lists are short or the families' expansions are.

LARGE = settings(max_examples=max(5, settings().max_examples // 5))


def weight_table(weights: list[int]) -> list[int]:
    """Sum of ``weights`` over every subset of their positions (index = position mask)."""
    sums = [0]
    for weight in weights:
        sums += [total + weight for total in sums]
    return sums


@st.composite
def large_family(draw: st.DrawFn, nodes: list[int], most_members: int) -> SupersetHints:
    """Every subset of a universe whose weight reaches a threshold: upward closed, with many
    minimal masks; at most about ``most_members`` members. Built with the public constructor
    from *all* fitting masks, so the antichain is derived here, not given."""
    # Sometimes a node the machine lacks: the merge then has to cut the family down to the machine.
    pool = [*nodes, 14] if draw(st.booleans()) else nodes
    size = draw(st.integers(8, len(pool)))
    universe = draw(st.lists(st.sampled_from(pool), min_size=size, max_size=size, unique=True).map(sorted))
    # Near-equal weights make the widest antichains (all half-size subsets when equal).
    lightest = draw(st.integers(1, 4))
    weights = draw(st.lists(st.integers(lightest, 4), min_size=len(universe), max_size=len(universe)))
    sums = weight_table(weights)
    # Around half the total weight gives the most minimal masks (the widest antichain).
    need = draw(st.integers(sums[-1] // 3, 2 * sums[-1] // 3))
    while sum(total >= need for total in sums[1:]) > most_members:
        need += 1
    fitting = [
        Bitmask.from_bits(node for pos, node in enumerate(universe) if positions >> pos & 1)
        for positions in range(1, len(sums))
        if sums[positions] >= need
    ]
    family = SupersetHints(fitting, Bitmask.from_bits(universe))
    members = [hint.affinity for hint in family.expand()]
    if draw(st.booleans()):
        minimal = [Bitmask(value) for value in family.minimal]
        return SupersetHints.from_min_size(minimal, Bitmask(family.universe), family.narrowest_count() or 1)
    chosen = draw(st.lists(st.sampled_from(members), max_size=6)) if members else []
    return SupersetHints([Bitmask(value) for value in family.minimal], Bitmask(family.universe), chosen)


@st.composite
def large_machines(draw: st.DrawFn) -> tuple[list[int], dict[int, list[int]]]:
    nodes = draw(st.lists(st.integers(0, 13), min_size=10, max_size=12, unique=True).map(sorted))
    size = max(nodes) + 1
    distances = {
        node: [10 if node == other else draw(st.sampled_from((11, 12, 20, 21))) for other in range(size)]
        for node in nodes
    }
    return nodes, distances


def short_lists(nodes: list[int]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.lists(hints_on(nodes), max_size=3))


@LARGE
@given(st.data())
def test_one_large_family_with_short_lists(data: st.DataObject) -> None:
    nodes, distances = data.draw(large_machines())
    lazy: list[Any] = [{"cpu": data.draw(large_family(nodes, 4095))}]
    lazy += [{"memory": data.draw(short_lists(nodes))} for _ in range(data.draw(st.integers(1, 2)))]
    check_like_expansion(data, lazy, nodes, distances)


@LARGE
@given(st.data())
def test_two_large_families(data: st.DataObject) -> None:
    nodes, distances = data.draw(large_machines())
    lazy: list[Any] = [{"cpu": data.draw(large_family(nodes, 150))}, {"gpu": data.draw(large_family(nodes, 150))}]
    if data.draw(st.booleans()):
        lazy.append({"memory": data.draw(st.lists(hints_on(nodes), min_size=1, max_size=2))})
    check_like_expansion(data, lazy, nodes, distances)


def check_like_expansion(
    data: st.DataObject, lazy: list[Any], nodes: list[int], distances: dict[int, list[int]]
) -> None:
    expanded = [
        {name: value.expand() if isinstance(value, SupersetHints) else value for name, value in entry.items()}
        for entry in lazy
    ]
    policy = data.draw(st.sampled_from(POLICIES))
    options = {"prefer-closest-numa-nodes": data.draw(st.booleans())}
    fast = merge(policy, lazy, nodes, options=options, distances=distances)
    brute = merge(policy, expanded, nodes, options=options, distances=distances, reference=True)
    most = max(len(value.minimal) for entry in lazy for value in entry.values() if isinstance(value, SupersetHints))
    event(f"largest family: {'> 100' if most > 100 else '> 20' if most > 20 else '<= 20'} minimal masks")
    event("preferred result" if fast[0].preferred else "non-preferred result")
    assert fast == brute
