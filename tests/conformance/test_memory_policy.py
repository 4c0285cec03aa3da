"""Memory manager Static policy conformance: start, allocate (with init-container reuse),
remove and topology hints, through the public shim.memory API."""

from __future__ import annotations

from typing import Any

import pytest
from memory_cases import (
    assignments,
    assignments_multiset,
    case_id,
    cases,
    group_view,
    hint,
    hints_json,
    machine_state,
    machine_state_json,
    nodes_from_machine_info,
    pod_from_case,
    reusable,
    state_from_case,
    system_reserved,
)

from shim.memory import MemoryManagerError, MemoryState, StaticPolicy


def policy_for(case: dict[str, Any]) -> StaticPolicy:
    return StaticPolicy(
        nodes_from_machine_info(case.get("machine_info") or []),
        reserved_memory=system_reserved(case["system_reserved"]),
        feature_gates=case.get("feature_gates") or case["source"].get("feature_gates"),
    )


def assert_state(state: MemoryState, expected: dict[str, Any]) -> None:
    assert machine_state_json(state.machine_state) == expected["machine_state"]
    assert assignments_multiset(state.assignments) == assignments_multiset(assignments(expected["assignments"]))


@pytest.mark.parametrize("case", cases("static_policy_start.json", "policy_start"), ids=case_id)
def test_start(case: dict[str, Any]) -> None:
    policy = policy_for(case)
    state = state_from_case(case)
    before = state.copy()
    expected = case["expected"]
    if expected.get("error"):
        with pytest.raises(MemoryManagerError) as raised:
            policy.start(state)
        assert str(raised.value) == expected["error"]
        assert state == before
        return
    policy.start(state)
    assert group_view(state.machine_state) == group_view(machine_state(expected["machine_state"]))
    if "assignments" in expected:
        assert assignments_multiset(state.assignments) == assignments_multiset(assignments(expected["assignments"]))


@pytest.mark.parametrize("case", cases("static_policy_allocate.json", "policy_allocate"), ids=case_id)
def test_allocate(case: dict[str, Any]) -> None:
    policy = policy_for(case)
    state = state_from_case(case)
    before = state.copy()
    pod = pod_from_case(case["pod"])
    expected = case["expected"]
    if expected.get("error"):
        with pytest.raises(MemoryManagerError) as raised:
            policy.allocate(state, pod, case["allocate_container"], hint(case["topology_hint"]))
        assert str(raised.value) == expected["error"]
        assert state == before
        return
    policy.allocate(state, pod, case["allocate_container"], hint(case["topology_hint"]))
    assert_state(state, expected)


@pytest.mark.parametrize(
    "case",
    cases("static_policy_init_containers.json", "policy_allocate_pod_sequence")
    + cases("static_policy_allocate.json", "policy_allocate_pod_sequence"),
    ids=case_id,
)
def test_allocate_pod_sequence(case: dict[str, Any]) -> None:
    policy = policy_for(case)
    policy.reusable = reusable(case.get("initial_init_containers_reusable_memory"))
    state = state_from_case(case)
    pod = pod_from_case(case["pod"])
    expected = case["expected"]
    error = None
    try:
        for container in pod.all_containers():
            policy.allocate(state, pod, container, hint(case["topology_hint"]))
    except MemoryManagerError as raised:
        error = str(raised)
    assert error == expected.get("error")
    if error is None:
        assert_state(state, expected)


@pytest.mark.parametrize("case", cases("static_policy_remove_container.json", "policy_remove_container"), ids=case_id)
def test_remove_container(case: dict[str, Any]) -> None:
    policy = policy_for(case)
    state = state_from_case(case)
    policy.remove_container(state, case["remove"]["pod_uid"], case["remove"]["container"])
    assert_state(state, case["expected"])


@pytest.mark.parametrize(
    "case", cases("static_policy_get_topology_hints.json", "policy_get_topology_hints"), ids=case_id
)
def test_topology_hints(case: dict[str, Any]) -> None:
    policy = policy_for(case)
    state = state_from_case(case)
    before = state.copy()
    pod = pod_from_case(case["pod"])
    call = case["source"].get("call", "")
    if call.startswith("GetPodTopologyHints"):
        found = policy.pod_hints(state, pod)
    else:
        found = policy.hints(state, pod, pod.containers[0])
    assert hints_json(found) == case["expected"]["hints"]
    assert state == before
