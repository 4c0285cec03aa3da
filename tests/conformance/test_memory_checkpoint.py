"""Conformance: memorymanager/checkpoint_restore.json and checkpoint_checksum.json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from shared_paths import CONFORMANCE, case_list

from shim.checkpoint.fnv import fnv1a_32_text
from shim.memory import checkpoint
from shim.memory.state import Block, MemoryState, MemoryTable, NUMANodeState

RESTORE = case_list(CONFORMANCE / "memorymanager" / "checkpoint_restore.json")
CHECKSUMS = case_list(CONFORMANCE / "memorymanager" / "checkpoint_checksum.json")


def _gate(case: dict[str, Any]) -> bool:
    return bool(case.get("feature_gate_requirements", {}).get("PodLevelResourceManagers", True))


def _blocks(raw: list[dict[str, Any]] | None) -> list[Block]:
    return [Block(numa_affinity=b["numaAffinity"], type=b["type"], size=b["size"]) for b in raw or []]


def _state(expected: dict[str, Any]) -> MemoryState:
    machine = {
        int(number): NUMANodeState(
            number_of_assignments=node["numberOfAssignments"],
            memory_map={
                name: MemoryTable(t["total"], t["systemReserved"], t["allocatable"], t["reserved"], t["free"])
                for name, t in node["memoryMap"].items()
            },
            cells=node["cells"],
        )
        for number, node in expected["machineState"].items()
    }
    return MemoryState(
        machine_state=machine,
        assignments={
            pod: {name: _blocks(blocks) for name, blocks in containers.items()}
            for pod, containers in expected["entries"].items()
        },
        pod_entries={pod: _blocks(entry.get("memoryBlocks")) for pod, entry in expected["podEntries"].items()},
    )


@pytest.mark.parametrize("case", RESTORE, ids=[c["id"] for c in RESTORE])
def test_restore(case: dict[str, Any]) -> None:
    gate = _gate(case)
    content = case["checkpoint_content"]
    expected = case["expected"]
    if expected["error_contains"] is not None:
        with pytest.raises(checkpoint.CheckpointError) as failure:
            checkpoint.restore(content, case["configured_policy"], pod_level_gate=gate)
        message = str(failure.value)
        assert expected["error_contains"] in message
        assert "please drain this node and delete the memory manager checkpoint file" in message
        return
    state, to_write = checkpoint.restore(content, case["configured_policy"], pod_level_gate=gate)
    assert state == _state(expected["state"])
    if content is None:
        assert to_write is not None
        assert checkpoint.decode(to_write, case["configured_policy"], pod_level_gate=gate) == state
        return
    assert to_write is None
    _check_rewrite_matches_literal(json.loads(content), state, case["configured_policy"], gate)


def _check_rewrite_matches_literal(literal: dict[str, Any], state: MemoryState, policy: str, gate: bool) -> None:
    """Writing the restored state back reproduces the kubelet's literal where the literal is canonical."""
    if "data" in literal:
        data = json.loads(literal["data"])
        if set(data) <= {"policyName", "machineState", "entries", "podEntries"} and data.get("podEntries") and gate:
            ours = json.loads(checkpoint.encode(state, policy, pod_level_gate=gate))
            assert ours["data"] == literal["data"]
            assert ours["dataChecksum"] == literal["dataChecksum"]
        return
    if literal.get("checksum"):
        shape = "v2" if "podEntries" in literal else "v1"
        if shape == "v1" or gate:
            assert checkpoint.legacy_checksum(state, policy, format=shape) == literal["checksum"]


@pytest.mark.parametrize("case", CHECKSUMS, ids=[c["id"] for c in CHECKSUMS])
def test_checksum(case: dict[str, Any]) -> None:
    hashed = case["hash_input_derived"]
    assert fnv1a_32_text(hashed) == case["expected_checksum"]
    if hashed.startswith("(string)"):
        assert checkpoint.data_checksum(hashed.removeprefix("(string)")) == case["expected_checksum"]


def test_v1_sample_dump_is_reproduced() -> None:
    """The V1 sample's hashed text is what our writer builds for the state of ckpt-checksum-01."""
    sample = next((c for c in CHECKSUMS if c["id"] == "ckpt-checksum-01"), None)
    if sample is None:
        pytest.skip("sample not in this revision")
    state = MemoryState(
        machine_state={0: NUMANodeState(0, {"memory": MemoryTable(2048, 512, 1536, 512, 1024)}, [])},
        assignments={"pod": {"container1": [Block([0], "memory", 512)]}},
    )
    assert checkpoint.legacy_dump(state, "static") == sample["hash_input_derived"]
    assert checkpoint.legacy_checksum(state, "static") == sample["expected_checksum"]
