"""Memory manager checkpoint: round trips in every format, kubelet error texts, corrupt files."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.checkpoint.fnv import fnv1a_32_text
from shim.memory import checkpoint
from shim.memory.checkpoint import CheckpointError, decode, encode
from shim.memory.state import Block, MemoryState, MemoryTable, NUMANodeState

U64 = st.integers(min_value=0, max_value=2**64 - 1)
numa_lists = st.none() | st.lists(st.integers(min_value=0, max_value=15), max_size=4)
resources = st.sampled_from(["memory", "hugepages-2Mi", "hugepages-1Gi", "<&>"])
tables = st.builds(MemoryTable, U64, U64, U64, U64, U64)
nodes = st.builds(
    NUMANodeState,
    number_of_assignments=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    memory_map=st.dictionaries(resources, tables, max_size=3),
    cells=numa_lists,
)
blocks = st.lists(st.builds(Block, numa_affinity=numa_lists, type=resources, size=U64), max_size=3)
names = st.text(max_size=6)
states = st.builds(
    MemoryState,
    machine_state=st.dictionaries(st.integers(min_value=0, max_value=20), nodes, max_size=4),
    assignments=st.dictionaries(names, st.dictionaries(names, blocks, max_size=3), max_size=3),
    pod_entries=st.dictionaries(names, blocks, max_size=3),
)


def _without_pod_entries(state: MemoryState) -> MemoryState:
    return MemoryState(state.machine_state, state.assignments, {})


@pytest.mark.parametrize("fmt", ["v3", "v2"])
@given(state=states)
def test_roundtrip_with_pod_entries(fmt: str, state: MemoryState) -> None:
    text = encode(state, "Static", format=fmt)
    assert decode(text, "Static") == state
    assert encode(decode(text, "Static"), "Static", format=fmt) == text


@pytest.mark.parametrize("fmt", ["v3", "v2", "v1"])
@given(state=states)
def test_roundtrip_gate_off_drops_pod_entries(fmt: str, state: MemoryState) -> None:
    text = encode(state, "Static", format=fmt, pod_level_gate=False)
    assert decode(text, "Static", pod_level_gate=False) == _without_pod_entries(state)


@given(state=states, cut=st.integers(min_value=0))
def test_truncated_file_is_an_error(state: MemoryState, cut: int) -> None:
    text = encode(state, "Static")
    with pytest.raises(CheckpointError):
        decode(text[: cut % len(text)], "Static")


def _sample() -> MemoryState:
    return MemoryState(
        machine_state={
            0: NUMANodeState(1, {"memory": MemoryTable(2048, 512, 1536, 512, 1024)}, [0]),
            10: NUMANodeState(0, {}, [10]),
            2: NUMANodeState(0, {}, None),
        },
        assignments={"pod": {"c": [Block([0], "memory", 512)]}},
        pod_entries={"pod": [Block([0], "memory", 512)], "empty": []},
    )


def test_numa_ids_sort_as_strings_and_nil_slices_are_null() -> None:
    text = encode(_sample(), "Static")
    data = json.loads(json.loads(text)["data"])
    assert list(data["machineState"]) == ["0", "10", "2"]
    assert data["machineState"]["2"]["cells"] is None
    assert data["podEntries"]["empty"] == {}
    assert decode(text, "Static") == _sample()


def test_v3_top_level_is_a_valid_v1_file() -> None:
    """Rollback: an older kubelet reading the V3 file as V1 sees the same machine state and entries."""
    top = json.loads(encode(_sample(), "Static"))
    legacy = json.dumps({k: top[k] for k in ("policyName", "machineState", "entries", "checksum")})
    assert decode(legacy, "Static") == _without_pod_entries(_sample())
    assert top["dataChecksum"] == fnv1a_32_text("(string)" + top["data"])


def test_fresh_checkpoint() -> None:
    state, text = checkpoint.restore(None, "None")
    assert state == MemoryState()
    assert text is not None
    assert text.startswith('{"policyName":"None","machineState":{},"checksum":')
    assert decode(text, "None") == state


def test_v1_checksum_under_versioned_name_is_accepted() -> None:
    state = _without_pod_entries(_sample())
    versioned = checkpoint.legacy_checksum(state, "Static", type_name="state.MemoryManagerCheckpointV1")
    top = json.loads(encode(state, "Static", format="v1"))
    top["checksum"] = versioned
    assert decode(json.dumps(top), "Static") == state


def test_changed_v1_file_is_corrupted() -> None:
    text = encode(_sample(), "Static", format="v1").replace('"free":1024', '"free":1023')
    with pytest.raises(CheckpointError, match=r"^checkpoint is corrupted$"):
        decode(text, "Static")


def test_changed_v3_data_is_corrupted() -> None:
    top = json.loads(encode(_sample(), "Static"))
    top["data"] = top["data"].replace('"free":1024', '"free":1023')
    with pytest.raises(CheckpointError, match=r"^could not load v3 checkpoint: checkpoint is corrupted$"):
        decode(json.dumps(top), "Static")


def test_v2_with_zero_checksum_falls_back_to_v1_without_pod_entries() -> None:
    top = json.loads(encode(_sample(), "Static", format="v2"))
    top["checksum"] = 0
    assert decode(json.dumps(top), "Static") == _without_pod_entries(_sample())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "unexpected end of JSON input"),
        (
            '{"dataChecksum":7}',
            "could not load v3 checkpoint: failed to deserialize memory manager checkpoint data: "
            "unexpected end of JSON input",
        ),
        (
            '{"policyName":"Static","machineState":{"x":{}},"checksum":0}',
            "json: cannot unmarshal number x into Go struct field MemoryManagerCheckpointV1.machineState of type int",
        ),
        (
            '{"policyName":"Static","machineState":{"0":{"cells":"a"}},"checksum":0}',
            "json: cannot unmarshal string into Go struct field NUMANodeState.machineState.cells of type []int",
        ),
        (
            '{"policyName":"Static","machineState":{"0":null},"checksum":0}',
            "[memorymanager] machine state of NUMA node 0 is null",
        ),
        (
            '{"policyName":"None","checksum":0}',
            '[memorymanager] configured policy "Static" differs from state checkpoint policy "None"',
        ),
    ],
)
def test_broken_files(text: str, message: str) -> None:
    with pytest.raises(CheckpointError) as failure:
        decode(text, "Static")
    assert str(failure.value) == message


def test_restore_wraps_errors_with_path() -> None:
    with pytest.raises(CheckpointError) as failure:
        checkpoint.restore("{", "Static", path="/x/memory_manager_state")
    assert str(failure.value) == (
        "could not restore state from checkpoint: unexpected end of JSON input, please drain this node and delete "
        'the memory manager checkpoint file "/x/memory_manager_state" before restarting Kubelet'
    )


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown memory checkpoint format"):
        encode(MemoryState(), "Static", format="v4")
