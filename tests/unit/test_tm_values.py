"""The value types of the topology and memory managers behave as the frozen dataclasses they
replaced: equality and hashing by value, immutability, copy and pickle."""

from __future__ import annotations

import copy
import pickle

import pytest

from shim.memory.machine import NodeMemory
from shim.topology_manager.admission import AdmitResult
from shim.topology_manager.bitmask import Bitmask
from shim.topology_manager.hint import TopologyHint
from shim.topology_manager.options import DEFAULT_MAX_ALLOWABLE_NUMA_NODES, PolicyOptions


def test_topology_hint_is_a_value() -> None:
    hint = TopologyHint(Bitmask.of(0, 2), True)
    same = TopologyHint(affinity=Bitmask(0b101), preferred=True)
    assert hint == same and hash(hint) == hash(same) and len({hint, same}) == 1
    assert hint != TopologyHint(Bitmask.of(0, 2), False) and hint != TopologyHint(None, True)
    assert TopologyHint() == TopologyHint(None, False) and TopologyHint().numa_ids() is None
    assert hint != (Bitmask.of(0, 2), True)
    assert repr(hint) == "TopologyHint(affinity=Bitmask.of(0, 2), preferred=True)"
    with pytest.raises(AttributeError):
        hint.preferred = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del hint.affinity


@pytest.mark.parametrize("value", [TopologyHint(Bitmask.of(1), True), TopologyHint(), Bitmask.of(3, 5)])
def test_copy_and_pickle_rebuild_equal_values(value: object) -> None:
    assert copy.copy(value) == value and copy.deepcopy(value) == value
    assert pickle.loads(pickle.dumps(value)) == value


def test_records_compare_and_hash_like_their_dataclasses() -> None:
    assert AdmitResult.ok() == AdmitResult(True) and hash(AdmitResult.ok()) == hash(AdmitResult(True))
    assert PolicyOptions() == PolicyOptions(False, DEFAULT_MAX_ALLOWABLE_NUMA_NODES, False)
    assert PolicyOptions() != PolicyOptions(True) and hash(PolicyOptions()) == hash(PolicyOptions())
    with pytest.raises(AttributeError):
        PolicyOptions().prefer_closest_numa = True  # type: ignore[misc]
    # the huge pages were left out of NodeMemory's hash; equality still compares them
    a, b = NodeMemory(0, 1 << 30, {"hugepages-2Mi": 1 << 21}), NodeMemory(0, 1 << 30, {})
    assert hash(a) == hash(b) and a != b
