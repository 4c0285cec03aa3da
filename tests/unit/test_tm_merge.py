"""Unit tests: hint merging rules, the fast merger's search, SupersetHints and bitmask helpers."""

from __future__ import annotations

from itertools import combinations

import pytest

from shim.topology_manager import (
    Bitmask,
    BitmaskError,
    MergeStats,
    NUMAInfo,
    SupersetHints,
    TopologyHint,
    flatten_providers_hints,
    iterate_masks,
    merge,
)


def h(*ids: int, preferred: bool = True) -> TopologyHint:
    return TopologyHint(Bitmask.of(*ids), preferred)


ANY = TopologyHint(None, True)


def test_flatten_keeps_nil_and_empty_apart() -> None:
    flat = flatten_providers_hints([None, {}, {"b": None, "a": []}, {"c": [h(0)]}])
    assert flat == [(ANY,), (ANY,), (TopologyHint(None, False),), (ANY,), [h(0)]]


def test_preferred_needs_equal_affinities() -> None:
    hint, admit = merge("restricted", [{"a": [h(0)]}, {"b": [h(0, 1)]}], [0, 1])
    assert hint == h(0, preferred=False) and not admit


def test_empty_list_means_no_placement() -> None:
    hint, admit = merge("restricted", [{"a": [h(0)]}, {"b": []}], [0, 1])
    assert hint == h(0, preferred=False) and not admit


def test_no_permutation_falls_back_to_all_nodes() -> None:
    hint, admit = merge("single-numa-node", [{"a": [h(0, 1, preferred=False)]}], [0, 1])
    assert hint == TopologyHint(None, False) and not admit


def test_non_preferred_aims_at_most_demanding_width() -> None:
    # B = 2 (the memory list's narrowest mask has two nodes): {0,1} beats the narrower {0}.
    cpu = [h(0, preferred=False), h(0, 1, preferred=False), h(0, 1, 2, preferred=False)]
    memory = [h(0, 1, preferred=False), h(0, 1, 2, preferred=False)]
    hint, _ = merge("best-effort", [{"cpu": cpu}, {"memory": memory}], [0, 1, 2, 3])
    assert hint == h(0, 1, preferred=False)


def test_prefer_closest_picks_the_smaller_average_distance() -> None:
    distances = {0: [10, 11, 20, 20], 1: [11, 10, 20, 20], 2: [20, 20, 10, 11], 3: [20, 20, 11, 10]}
    hints = [{"cpu": [h(0, 2), h(2, 3)]}]
    assert merge("best-effort", hints, [0, 1, 2, 3])[0] == h(0, 2)
    closest, _ = merge(
        "best-effort", hints, [0, 1, 2, 3], options={"prefer-closest-numa-nodes": "true"}, distances=distances
    )
    assert closest == h(2, 3)


def test_single_numa_node_reports_all_nodes_as_no_preference() -> None:
    hint, admit = merge("single-numa-node", [{"cpu": [h(0)]}], [0])
    assert hint == TopologyHint(None, True) and admit


def test_none_policy_ignores_hints() -> None:
    assert merge("none", [{"cpu": []}], [0, 1]) == (TopologyHint(None, False), True)


def test_stats_count_the_candidates_examined() -> None:
    stats = MergeStats()
    every = list(iterate_masks(range(8)))
    hints = [{"r": [TopologyHint(mask, mask.count == 1) for mask in every]} for _ in range(4)]
    hint, _ = merge("best-effort", hints, range(8), stats=stats)
    assert hint == h(0)
    assert stats.examined == 8  # the eight single-node masks, not 255**4 permutations


def test_superset_hints_expand_in_kubelet_order() -> None:
    family = SupersetHints.from_min_size([Bitmask.of(1), Bitmask.of(0, 2)], Bitmask.of(0, 1, 2), 1)
    assert [hint.numa_ids() for hint in family.expand()] == [[1], [0, 1], [0, 2], [1, 2], [0, 1, 2]]
    assert [hint.preferred for hint in family.expand()] == [True, False, False, False, False]


def test_superset_hints_reject_foreign_masks() -> None:
    with pytest.raises(ValueError, match="outside the universe"):
        SupersetHints([Bitmask.of(3)], Bitmask.of(0, 1))
    with pytest.raises(ValueError, match="not a member"):
        SupersetHints([Bitmask.of(1)], Bitmask.of(0, 1), [Bitmask.of(0)])


def test_34_nodes_with_superset_hints() -> None:
    nodes = list(range(34))
    universe = Bitmask.from_bits(nodes)
    providers = []
    for first in (30, 20, 10):
        free = [first, first + 1, first + 2]
        minimal = [Bitmask.from_bits(pair) for pair in combinations(free, 2)]
        providers.append({"cpu": SupersetHints.from_min_size(minimal, universe, 2)})
    options = {"max-allowable-numa-nodes": "64"}
    hint, admit = merge("best-effort", providers, nodes, options=options)
    # No preferred agreement; B = 2 and {0,1} is the lowest two-node mask the ANDs reach.
    assert hint == h(0, 1, preferred=False) and admit


def test_bitmask_helpers() -> None:
    assert Bitmask.of(0).add(1, 2) == Bitmask.of(0, 1, 2)
    assert Bitmask.of(0, 1).remove(0) == Bitmask.of(1)
    with pytest.raises(BitmaskError):
        Bitmask.of(0).add(1, 64)
    assert Bitmask().get_bits() is None
    assert [mask.bits() for mask in iterate_masks([0, 1, 2])] == [[0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2]]


def test_numa_info_average_distance_is_a_mean_over_ordered_pairs() -> None:
    numa = NUMAInfo([0, 1, 2, 3], {0: [10, 11, 12, 12], 1: [11, 10, 12, 12], 2: [12, 12, 10, 11], 3: [12, 12, 11, 10]})
    assert numa.average_distance(Bitmask.of(0, 2, 3).value) == 100 / 9
