"""Shared hint lists (FrozenHints): the memory manager hands out one list object per distinct
answer, and the wire conversions and the merge keep what they derive from such a list by
identity. None of it may change a result: every answer still equals the kubelet's brute force,
the wire round trip gives back equal hints, and a merge over a shared list equals the merge over
a plain copy of it."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_memory_properties import brute_force, machine_states, requests_strategy

from shim.memory.hints import HintCache, calculate_hints
from shim.messages import Hints, decode_json, encode_json
from shim.topology_manager import Bitmask, SupersetHints, TopologyHint, merge
from shim.topology_manager.hint import FrozenHints

POLICIES = ["best-effort", "restricted", "single-numa-node"]


def expand_segments(segments: Any) -> list[TopologyHint]:
    return [TopologyHint(Bitmask(mask), preferred) for preferred, masks in segments for mask in masks]


def with_segments(hints: list[TopologyHint]) -> FrozenHints:
    """A FrozenHints of ``hints`` with its segments (runs of equal ``preferred``), if no hint is nil."""
    if any(hint.affinity is None for hint in hints):
        return FrozenHints(hints)
    segments: list[tuple[bool, list[int]]] = []
    for hint in hints:
        assert hint.affinity is not None
        if not segments or segments[-1][0] != hint.preferred:
            segments.append((hint.preferred, []))
        segments[-1][1].append(hint.affinity.value)
    frozen = FrozenHints(hints, tuple(segments))
    assert expand_segments(frozen.segments) == hints
    return frozen


def test_frozen_hints_is_an_unchangeable_list() -> None:
    hints = FrozenHints([TopologyHint(Bitmask(1), True), TopologyHint(None, False)])
    assert hints == [TopologyHint(Bitmask(1), True), TopologyHint(None, False)]
    for change in (
        lambda: hints.append(TopologyHint()),
        lambda: hints.extend([]),
        lambda: hints.pop(),
        lambda: hints.clear(),
        lambda: hints.sort(),
        lambda: hints.__setitem__(0, TopologyHint()),
        lambda: hints.__delitem__(0),
        lambda: hints.__iadd__([]),
    ):
        with pytest.raises(TypeError, match="cannot be changed"):
            change()
    assert len(hints) == 2
    twin = copy.copy(hints)  # (Bitmask itself can be neither deep-copied nor pickled)
    assert type(twin) is FrozenHints and twin == hints
    pickled = pickle.loads(pickle.dumps(FrozenHints([TopologyHint(None, True)], ((True, [1]),))))
    assert pickled == [TopologyHint(None, True)] and pickled.segments == ((True, [1]),)


@settings(max_examples=60)
@given(cases=st.lists(st.tuples(machine_states(), requests_strategy), min_size=1, max_size=6))
def test_one_cache_over_many_machines_gives_the_kubelets_hints(cases: list[Any]) -> None:
    cache = HintCache(max_pools=2, max_results=3)  # small bounds: the eviction paths run too
    for (machine, reusable), requests in cases:
        found = calculate_hints(machine, requests, reusable, cache)
        assert found == brute_force(machine, requests, reusable)
        again = calculate_hints(machine, requests, reusable, cache)
        assert again == found
        for name, hints in found.items():
            assert type(hints) is FrozenHints
            assert again[name] is hints  # equal answers are one object
            assert hints.segments is not None
            assert expand_segments(hints.segments) == hints


@settings(max_examples=60)
@given(generated=machine_states(), requests=requests_strategy)
def test_wire_round_trip_of_a_shared_list(generated: Any, requests: dict[str, int]) -> None:
    machine, reusable = generated
    found = calculate_hints(machine, requests, reusable, HintCache())
    wire = Hints.wire(found)
    assert Hints.wire(found) == wire
    # The same wire as the hint-by-hint conversion of a plain copy.
    assert Hints.wire({name: list(hints) for name, hints in found.items()}) == wire
    message = Hints(provider="memory", pod_uid="p", hints=wire)
    assert message.to_provider_hints() == found
    decoded = decode_json(encode_json(message))
    assert isinstance(decoded, Hints)
    assert decoded.to_provider_hints() == found


masks_16 = st.integers(1, (1 << 4) - 1)
plain_lists = st.lists(
    st.builds(TopologyHint, st.none() | masks_16.map(Bitmask), st.booleans()), min_size=0, max_size=8
)
# A provider's shared list has no nil hint (so that it gets segments), except now and then.
shared_lists = st.lists(st.builds(TopologyHint, masks_16.map(Bitmask), st.booleans()), max_size=8) | plain_lists


@settings(max_examples=120)
@given(
    shared=shared_lists,
    others=st.lists(plain_lists, min_size=1, max_size=3),
    policy=st.sampled_from(POLICIES),
    family=st.lists(masks_16, min_size=1, max_size=3),
)
def test_merge_over_a_shared_list_equals_merge_over_a_copy(
    shared: list[TopologyHint], others: list[list[TopologyHint]], policy: str, family: list[int]
) -> None:
    frozen = with_segments(shared)
    minimal = [Bitmask(value) for value in family]
    superset = SupersetHints.from_min_size(minimal, Bitmask(0b1111), min(value.bit_count() for value in family))
    for other in others:  # the same shared list merged again and again, against other lists
        for nodes in ([0, 2], [1, 2, 3], range(4)):
            for rest in ([{"cpu": other}], [{"cpu": other}, {"device": superset}], []):
                providers = [{"memory": frozen}, *rest]
                plain = [{"memory": list(shared)}, *rest]
                expected = merge(policy, plain, nodes)
                assert merge(policy, providers, nodes) == expected
                assert expected == merge(policy, plain, nodes, reference=True)
