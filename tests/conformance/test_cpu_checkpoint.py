"""Conformance: cpumanager/checkpoint.json (restore/store cases and checksum vectors)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from shared_paths import CONFORMANCE, load_json

from shim.checkpoint.fnv import fnv1a_32_text
from shim.cpu import checkpoint
from shim.cpu.state import CPUState
from shim.cpuset import CPUSet

DATA = load_json(CONFORMANCE / "cpumanager" / "checkpoint.json")
CASES: list[dict[str, Any]] = DATA["cases"]
VECTORS: list[dict[str, Any]] = DATA["checksum_vectors"]


def _gate(case: dict[str, Any]) -> bool:
    return bool(case.get("feature_gates", {}).get("PodLevelResourceManagers", True))


def _state(expected: dict[str, Any]) -> CPUState:
    return CPUState(
        default_cpuset=CPUSet.parse(expected.get("default_cpuset", "")),
        assignments={
            pod: {name: CPUSet.parse(cpus) for name, cpus in containers.items()}
            for pod, containers in expected.get("assignments", {}).items()
        },
        pod_entries={pod: CPUSet.parse(cpus) for pod, cpus in expected.get("pod_entries", {}).items()},
    )


def _pod_sets(mapping: dict[str, str]) -> dict[str, CPUSet]:
    return {pod: CPUSet.parse(cpus) for pod, cpus in mapping.items()}


RESTORE = [c for c in CASES if c["kind"] == "checkpoint_restore"]
STORE = [c for c in CASES if c["kind"] == "checkpoint_store_roundtrip"]


@pytest.mark.parametrize("case", RESTORE, ids=[c["id"] for c in RESTORE])
def test_restore(case: dict[str, Any]) -> None:
    expected = case["expected"]
    restore = lambda: checkpoint.restore(  # noqa: E731
        case["checkpoint_content"], case["configured_policy"], pod_level_gate=_gate(case)
    )
    if expected["error_contains"] is not None:
        with pytest.raises(checkpoint.CheckpointError) as failure:
            restore()
        message = str(failure.value)
        assert expected["error_contains"] in message
        assert message.startswith("could not restore state from checkpoint: ")
        assert "please drain this node and delete the CPU manager checkpoint file" in message
        return
    state, to_write = restore()
    assert state == _state(expected["state"])
    if case["checkpoint_content"] is None:
        # A fresh checkpoint is written, and reads back as the same empty state.
        assert to_write is not None
        assert checkpoint.decode(to_write, case["configured_policy"], pod_level_gate=_gate(case)) == state
    else:
        assert to_write is None
    then = case.get("then")
    if then:
        for pod in then.get("delete_pod", []):
            state.pod_entries.pop(pod, None)
        assert state.pod_entries == _pod_sets(then["expected_pod_entries"])
        again = checkpoint.decode(checkpoint.encode(state, "static"), "static", pod_level_gate=_gate(case))
        assert again == state


def _apply(state: CPUState, action: dict[str, Any]) -> None:
    ((name, argument),) = action.items()
    if name == "set_default_cpuset":
        state.default_cpuset = CPUSet.parse(argument)
    elif name == "set_cpu_assignments":
        state.assignments = {
            pod: {c: CPUSet.parse(cpus) for c, cpus in containers.items()} for pod, containers in argument.items()
        }
    elif name == "set_cpuset":
        state.set_cpuset(argument["pod"], argument["container"], CPUSet.parse(argument["cpus"]))
    elif name == "set_pod_cpuset":
        state.pod_entries[argument["pod"]] = CPUSet.parse(argument["cpus"])
    elif name == "set_pod_cpu_assignments":
        state.pod_entries = _pod_sets(argument)
    elif name == "delete_pod":
        state.pod_entries.pop(argument, None)
    else:  # a new action must be taught to this adapter, not skipped
        raise AssertionError(f"unknown store action {name!r}")


@pytest.mark.parametrize("case", STORE, ids=[c["id"] for c in STORE])
def test_store_roundtrip(case: dict[str, Any]) -> None:
    gate = _gate(case)
    policy = case["configured_policy"]
    state = CPUState()
    for action in case["actions"]:
        _apply(state, action)
    text = checkpoint.encode(state, policy, pod_level_gate=gate)
    restored, to_write = checkpoint.restore(text, policy, pod_level_gate=gate)
    assert to_write is None
    expected = case["expected"]
    if "after_restore" in expected:
        assert restored == _state(expected["after_restore"])
    if "after_restore_pod_cpuset" in expected:
        for pod, cpus in expected["after_restore_pod_cpuset"].items():
            assert restored.pod_entries.get(pod) == CPUSet.parse(cpus)
    if "after_restore_pod_entries" in expected:
        assert restored.pod_entries == _pod_sets(expected["after_restore_pod_entries"])
    assert set(expected) <= {"after_restore", "after_restore_pod_cpuset", "after_restore_pod_entries"}


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v['kind']}-{i}" for i, v in enumerate(VECTORS)])
def test_checksum_vector_hash(vector: dict[str, Any]) -> None:
    value = vector["dataChecksum"] if vector["kind"] == "v4_data_checksum" else vector["checksum"]
    assert fnv1a_32_text(vector["hashed_text"]) == value


V4_VECTORS = [v for v in VECTORS if v["kind"] == "v4_data_checksum"]


@pytest.mark.parametrize("vector", V4_VECTORS, ids=[str(i) for i in range(len(V4_VECTORS))])
def test_v4_data_checksum(vector: dict[str, Any]) -> None:
    assert checkpoint.data_checksum(vector["data"]) == vector["dataChecksum"]
    # A V4 file carrying this data verifies (unknown keys in data are ignored by the reader).
    policy = re.search(r'"policyName":"([^"]*)"', vector["data"])
    assert policy is not None
    top = json.dumps({"data": vector["data"], "dataChecksum": vector["dataChecksum"]})
    try:
        checkpoint.decode(top, policy.group(1))
    except checkpoint.CheckpointError as error:  # only a cpuset in the data may be bad, never the checksum
        assert "could not parse" in str(error)


# --- legacy vectors: rebuild the struct from its dump text and re-dump it with our writer ------

_DUMP = re.compile(
    r"\(\*(?P<type>state\.\w+)\)\{PolicyName:\(string\)(?P<policy>\S*) DefaultCPUSet:\(string\)(?P<default>\S*) "
    r"Entries:\((?P<entries_type>[^)]*)\)(?P<entries>map\[.*?\]|<nil>)"
    r"(?: PodEntries:\(state\.PodCPUAssignments\)(?P<pods>map\[.*\]))? Checksum:\(checksum\.Checksum\)0\}"
)
_POD_ENTRY = re.compile(r"(\S+?):\{CPUSet:\(cpuset\.CPUSet\)\{elems:\(map\[int\]struct \{\}\)map\[([0-9:{} ]*)\]\}\}")


def _parse_spew_map(text: str) -> dict[str, Any]:
    """``map[k:v k:map[...]]`` with string keys and raw string or nested map values."""
    assert text.startswith("map[") and text.endswith("]")
    body, result, depth, start = text[4:-1], {}, 0, 0
    items: list[str] = []
    for index, char in enumerate(body):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == " " and depth == 0:
            items.append(body[start:index])
            start = index + 1
    if body:
        items.append(body[start:])
    for item in items:
        key, value = item.split(":", 1)
        result[key] = _parse_spew_map(value) if value.startswith("map[") else value
    return result


LEGACY_VECTORS = [v for v in VECTORS if v["kind"] == "legacy_struct_checksum"]


@pytest.mark.parametrize("vector", LEGACY_VECTORS, ids=[str(i) for i in range(len(LEGACY_VECTORS))])
def test_legacy_checksum_text_is_reproduced(vector: dict[str, Any]) -> None:
    match = _DUMP.fullmatch(vector["hashed_text"])
    assert match is not None, "unexpected dump shape"
    shape = "v1" if match["entries_type"] == "map[string]string" else ("v3" if match["pods"] is not None else "v2")
    value: dict[str, Any] = {
        "PolicyName": match["policy"],
        "DefaultCPUSet": match["default"],
        "Entries": _parse_spew_map(match["entries"]),
    }
    if match["pods"] is not None:
        value["PodEntries"] = {
            pod: CPUSet.of(int(cpu.split(":")[0]) for cpu in elems.split())
            for pod, elems in _POD_ENTRY.findall(match["pods"][4:-1])
        }
    assert checkpoint.legacy_dump(value, shape, match["type"]) == vector["hashed_text"]
    if shape != "v1":
        state = CPUState(
            default_cpuset=CPUSet.parse(match["default"]),
            assignments={p: {c: CPUSet.parse(s) for c, s in cs.items()} for p, cs in value["Entries"].items()},
            pod_entries=value.get("PodEntries", {}),
        )
        assert (
            checkpoint.legacy_checksum(state, match["policy"], format=shape, type_name=match["type"])
            == (vector["checksum"])
        )
