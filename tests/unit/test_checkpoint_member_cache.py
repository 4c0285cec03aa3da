"""The checkpoint writers' member caches change nothing: a writer that keeps each pod's (and each
node's) encoded text between writes produces, write after write, exactly the bytes of a writer
without a cache, whatever changed in between (mutations in place included)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.checkpoint.godump import formatter
from shim.checkpoint.gojson import Encoded, GoMap, GoString, marshal
from shim.cpu import checkpoint as cpu_checkpoint
from shim.cpu.state import CPUState
from shim.cpuset import CPUSet
from shim.memory import checkpoint as memory_checkpoint
from shim.memory.state import Block, MemoryState, MemoryTable, NUMANodeState

U64 = st.integers(min_value=0, max_value=2**64 - 1)
names = st.text(max_size=6)
# Few distinct names, so that successive states share pods and nodes (the cache's hits).
keys = st.sampled_from(["a", "b", "c", "<&>", "é"])
resources = st.sampled_from(["memory", "hugepages-2Mi", "<&>"])
blocks = st.lists(
    st.builds(
        Block,
        numa_affinity=st.none() | st.lists(st.integers(min_value=0, max_value=15), max_size=3),
        type=resources,
        size=st.sampled_from([0, 1, 2**30]),
    ),
    max_size=3,
)
nodes = st.builds(
    NUMANodeState,
    number_of_assignments=st.integers(min_value=-1, max_value=3),
    memory_map=st.dictionaries(resources, st.builds(MemoryTable, U64, U64, U64, U64, U64), max_size=2),
    cells=st.none() | st.lists(st.integers(min_value=0, max_value=3), max_size=3),
)
memory_states = st.builds(
    MemoryState,
    machine_state=st.dictionaries(st.integers(min_value=0, max_value=3), nodes, max_size=4),
    assignments=st.dictionaries(keys, st.dictionaries(keys, blocks, max_size=3), max_size=4),
    pod_entries=st.dictionaries(keys, blocks, max_size=3),
)
cpusets = st.sets(st.integers(min_value=0, max_value=70), max_size=6).map(CPUSet.of)
cpu_states = st.builds(
    CPUState,
    default_cpuset=cpusets,
    assignments=st.dictionaries(keys, st.dictionaries(keys, cpusets, max_size=3), max_size=4),
    pod_entries=st.dictionaries(keys, cpusets, max_size=3),
)


@given(sequence=st.lists(memory_states, min_size=1, max_size=5), gate=st.booleans())
def test_memory_writes_with_a_cache_are_the_writes_without(sequence: list[MemoryState], gate: bool) -> None:
    cache = memory_checkpoint.EncodeCache()
    for state in sequence:
        expected = memory_checkpoint.encode(state, "Static", pod_level_gate=gate)
        assert memory_checkpoint.encode(state, "Static", pod_level_gate=gate, cache=cache) == expected


@given(state=memory_states, size=st.integers(min_value=0, max_value=2**64 - 1))
def test_memory_cache_sees_blocks_changed_in_place(state: MemoryState, size: int) -> None:
    cache = memory_checkpoint.EncodeCache()
    memory_checkpoint.encode(state, "Static", cache=cache)
    for containers in state.assignments.values():
        for blocks in containers.values():
            blocks.append(Block(numa_affinity=[0], type="memory", size=size))
            if blocks[0].numa_affinity is None:
                blocks[0].numa_affinity = []
            else:
                blocks[0].numa_affinity = None
    for node in state.machine_state.values():
        node.number_of_assignments += 1
        for table in node.memory_map.values():
            table.free = size
    for blocks in state.pod_entries.values():
        blocks.clear()
    assert memory_checkpoint.encode(state, "Static", cache=cache) == memory_checkpoint.encode(state, "Static")


@given(sequence=st.lists(cpu_states, min_size=1, max_size=5), gate=st.booleans())
def test_cpu_writes_with_a_cache_are_the_writes_without(sequence: list[CPUState], gate: bool) -> None:
    cache = cpu_checkpoint.EncodeCache()
    for state in sequence:
        expected = cpu_checkpoint.encode(state, "static", pod_level_gate=gate)
        assert cpu_checkpoint.encode(state, "static", pod_level_gate=gate, cache=cache) == expected


def test_cache_forgets_pods_that_are_gone() -> None:
    cache = memory_checkpoint.EncodeCache()
    state = MemoryState()
    state.assignments = {f"pod{i}": {"c": [Block([0], "memory", i)]} for i in range(10)}
    memory_checkpoint.encode(state, "Static", cache=cache)
    assert len(cache.entries.known) == 10
    state.assignments = {"pod3": state.assignments["pod3"]}
    memory_checkpoint.encode(state, "Static", cache=cache)
    assert list(cache.entries.known) == ["pod3"]


def test_encoded_map_element_is_copied_as_is_and_needs_its_dump_to_be_hashed() -> None:
    typ = GoMap("map[string]string", GoString("string"), GoString("string"))
    value = {"b": "x", "a": Encoded('"pre"', empty=False, dump="PRE")}
    assert marshal(value, typ) == '{"a":"pre","b":"x"}'
    assert formatter(typ, typed=False)(value) == "map[a:PRE b:x]"
    with pytest.raises(ValueError, match="without its dump"):
        formatter(typ, typed=False)({"a": Encoded('"pre"', empty=False)})
