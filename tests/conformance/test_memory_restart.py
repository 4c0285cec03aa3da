"""Memory manager restart behaviour (manager_restart.json): after a kubelet restart an allocated
pod gets its hint back and re-admission changes nothing; an incomplete pod-level checkpoint
(pod entry written, containers not) is re-allocated consistently.

The machine of these cases (the Go test's returnMachineInfo()) was not transcribed: two NUMA
nodes are used here, each large enough for the pods. The cases give only memory amounts; cpu
"1" is added to the pod and its containers so that they are Guaranteed, as in the Go test pods.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from memory_cases import (
    assignments,
    block_json,
    blocks,
    case_id,
    cases,
    hints_json,
    machine_state,
    machine_state_json,
    pod_from_case,
)

from shim.memory import MemoryState, NodeMemory, StaticPolicy, system_reserved_memory
from shim.pod import Pod
from shim.topology_manager import TopologyHint

GIB = 1 << 30
EMPTY_HINT = TopologyHint(None, False)


def make_policy(case: dict[str, Any]) -> StaticPolicy:
    setup = case["setup"]
    nodes = [NodeMemory(0, 16 * GIB), NodeMemory(1, 16 * GIB)]
    reserved = system_reserved_memory([0, 1], setup["node_allocatable_reservation"], setup["reserved_memory"])
    return StaticPolicy(nodes, reserved_memory=reserved, feature_gates=case["feature_gates"])


def make_pod(case: dict[str, Any]) -> Pod:
    spec = case["pod"]

    def resources(memory: str) -> dict[str, Any]:
        return {"requests": {"cpu": "1", "memory": memory}, "limits": {"cpu": "1", "memory": memory}}

    flat: dict[str, Any] = {
        "uid": spec["uid"],
        "containers": [
            {
                "name": c["name"],
                "resources": {
                    "requests": {"cpu": "1", "memory": c["memory_request"]},
                    "limits": {"cpu": "1", "memory": c["memory_limit"]},
                },
            }
            for c in spec["containers"]
        ],
    }
    if spec.get("pod_level_requests_and_limits_memory"):
        flat["resources"] = resources(spec["pod_level_requests_and_limits_memory"])
    return pod_from_case(flat)


def admit(policy: StaticPolicy, state: MemoryState, pod: Pod, hint: TopologyHint) -> None:
    """What the kubelet does at admission in pod scope (and at container start)."""
    if pod.resources is not None:
        policy.allocate_pod(state, pod, hint)
        return
    for container in pod.all_containers():
        policy.allocate(state, pod, container, hint)
        policy.add_container(state, pod, container)


def through_file(state: MemoryState) -> MemoryState:
    """A round trip through JSON text, as a checkpoint would store it."""
    text = json.dumps(
        {
            "machineState": machine_state_json(state.machine_state),
            "entries": {
                pod: {name: [block_json(b) for b in entries] for name, entries in containers.items()}
                for pod, containers in state.assignments.items()
            },
            "podEntries": {pod: [block_json(b) for b in entries] for pod, entries in state.pod_entries.items()},
        }
    )
    raw = json.loads(text)
    return MemoryState(
        machine_state=machine_state(raw["machineState"]),
        assignments=assignments(raw["entries"]),
        pod_entries={pod: blocks(entries) for pod, entries in raw["podEntries"].items()},
    )


def expected_hint(found: dict[str, list[TopologyHint]] | None, expected: dict[str, Any]) -> None:
    as_json = hints_json(found)
    assert as_json is not None
    assert as_json["memory"] == [{"numa": expected["numa"], "preferred": expected["preferred"]}] * expected["count"]


@pytest.mark.parametrize("case", cases("manager_restart.json", "manager_restart_restore"), ids=case_id)
def test_restore(case: dict[str, Any]) -> None:
    expected = case["expected"]
    pod = make_pod(case)
    policy = make_policy(case)
    state = MemoryState()
    policy.start(state)
    admit(policy, state, pod, EMPTY_HINT)
    original_pod_blocks = state.pod_entries.get(pod.uid)
    assert (original_pod_blocks is not None) == expected["pod_blocks_present_before_and_after_restart"]

    restarted = make_policy(case)
    restored = through_file(state)
    restarted.start(restored)
    restored_pod_blocks = restored.pod_entries.get(pod.uid)
    assert (restored_pod_blocks is not None) == expected["pod_blocks_present_before_and_after_restart"]
    if expected["restored_pod_blocks_count_equals_original"]:
        assert original_pod_blocks is not None and restored_pod_blocks is not None
        assert len(restored_pod_blocks) == len(original_pod_blocks)
    if expected["container_blocks_present_after_restart"]:
        assert all(restored.get_blocks(pod.uid, c.name) is not None for c in pod.all_containers())

    found = restarted.pod_hints(restored, pod)
    expected_hint(found, expected["restored_memory_pod_hint"])
    if expected["allocate_pod_again_after_restart_is_noop"]:
        assert found is not None
        before = restored.copy()
        restarted.allocate_pod(restored, pod, found["memory"][0])
        assert restored == before


@pytest.mark.parametrize("case", cases("manager_restart.json", "manager_restart_partial_pod_checkpoint"), ids=case_id)
def test_partial_pod_checkpoint(case: dict[str, Any]) -> None:
    """podshim's choice among the accepted outcomes: start succeeds, the pod hint comes back from
    the pod entry, and re-admission allocates every container with a consistent machine state."""
    pod = make_pod(case)
    policy = make_policy(case)
    complete = MemoryState()
    policy.start(complete)
    fresh_machine = complete.copy().machine_state
    policy.allocate_pod(complete, pod, EMPTY_HINT)

    crashed = MemoryState(machine_state=fresh_machine, pod_entries=complete.copy().pod_entries)
    restarted = make_policy(case)
    restored = through_file(crashed)
    restarted.start(restored)
    found = restarted.pod_hints(restored, pod)
    expected_hint(found, {"numa": [0], "preferred": True, "count": 1})
    assert found is not None
    restarted.allocate_pod(restored, pod, found["memory"][0])
    assert all(restored.get_blocks(pod.uid, c.name) for c in pod.all_containers())
    assert restored == complete
    make_policy(case).start(through_file(restored))
