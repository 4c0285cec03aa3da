"""Differential property test: the fast exact merge equals the kubelet's brute-force merge.

Random providers (1–5), up to 6 NUMA nodes (ids possibly non-contiguous), random masks (some
with nodes outside the machine, some empty), nil/empty hint lists and maps, preferred flags,
random (possibly asymmetric) distances, every policy, with and without prefer-closest.
Run more examples with HYPOTHESIS_PROFILE=ci or thorough.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
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
