"""Conformance: KEP-5526 AllocatePod, validatePodScopeResources, restore and pod hints on restore."""

from __future__ import annotations

from typing import Any

import pytest
from cpu_cases import cases, cpuset, hint, pod, policy, state, state_assignments

from shim.cpu import CPUManagerError, EmptyPodSharedPoolError
from shim.cpu.pod_level import validate_pod_scope_resources

_METRICS = {
    "allocations_pod": ("allocations", "pod"),
    "allocation_errors_pod": ("allocation_errors", "pod"),
    "container_assignments_exclusive_pod": ("container_assignments", "pod_exclusive"),
    "container_assignments_shared_pod": ("container_assignments", "pod_shared"),
}


@pytest.mark.parametrize("case", cases("static_policy_pod_level.json", "static_policy_allocate_pod"))
def test_allocate_pod(case: dict[str, Any]) -> None:
    pol = policy(case)
    st = state(case["state"])
    the_pod = pod(case["pod"])
    expected = case["expected"]
    if expected["error"] is not None:
        before = st.copy()
        with pytest.raises(CPUManagerError) as raised:
            pol.allocate_pod(st, the_pod, hint(case.get("topology_hint")))
        error = expected["error"]
        if isinstance(error, dict):
            if "message" in error:
                assert str(raised.value) == error["message"]
            if error.get("type") == "EmptyPodSharedPoolError":
                assert isinstance(raised.value, EmptyPodSharedPoolError)
        assert st == before
    else:
        pol.allocate_pod(st, the_pod, hint(case.get("topology_hint")))
    if expected.get("assignments") is not None:
        assert state_assignments(st) == expected["assignments"]
    if expected.get("default_cpuset") is not None:
        assert st.default_cpuset == cpuset(expected["default_cpuset"])
    if expected.get("pod_entry") is not None:
        assert st.pod_entries.get(the_pod.uid) == cpuset(expected["pod_entry"])
    for name, value in (expected.get("metrics") or {}).items():
        counter, key = _METRICS[name]
        assert getattr(pol.metrics, counter).get(key, 0) == value, name


@pytest.mark.parametrize("case", cases("static_policy_pod_level.json", "validate_pod_scope_resources"))
def test_validate_pod_scope_resources(case: dict[str, Any]) -> None:
    pol = policy(case)
    the_pod = pod(case["pod"])
    expected = case["expected"]
    if not expected["error"]:
        validate_pod_scope_resources(pol, the_pod)
        return
    with pytest.raises(EmptyPodSharedPoolError) as raised:
        validate_pod_scope_resources(pol, the_pod)
    if expected.get("error_message_if_known"):
        assert str(raised.value) == expected["error_message_if_known"]


@pytest.mark.parametrize("case", cases("static_policy_pod_level.json", "static_policy_allocate_pod_restore"))
def test_allocate_pod_restore(case: dict[str, Any]) -> None:
    pol = policy(case)
    st = state(case["state"])
    the_pod = pod(case["pod"])
    expected = case["expected"]
    action = case["action"]
    rounds = 2 if action.get("repeat") else 1
    for _ in range(rounds):
        if expected["error"]:
            with pytest.raises(CPUManagerError):
                pol.allocate_pod(st, the_pod, hint(case.get("topology_hint")))
        else:
            pol.allocate_pod(st, the_pod, hint(case.get("topology_hint")))
    assert state_assignments(st) == expected["assignments"]
    assert st.default_cpuset == cpuset(expected["default_cpuset"])
    entry = st.pod_entries.get(the_pod.uid)
    if expected["pod_entry"] is None:
        assert entry is None
    else:
        assert entry == cpuset(expected["pod_entry"])
        # The invariants the cases state: bubble and default are disjoint and cover the machine.
        assert not entry & st.default_cpuset
        assert entry | st.default_cpuset == pol.topology.all_cpus
        assert all(cpus.is_subset_of(entry) for cpus in st.assignments.get(the_pod.uid, {}).values())


@pytest.mark.parametrize("case", cases("static_policy_pod_level.json", "get_pod_topology_hints_restore"))
def test_pod_hints_restore(case: dict[str, Any]) -> None:
    pol = policy(case)
    st = state(case["state"])
    hints = pol.pod_hints(st, pod(case["pod"]))
    expected = case["expected"]
    if not expected["cpu_hints_present"]:
        assert hints is None or "cpu" not in hints
        return
    assert hints is not None
    cpu_hints = hints["cpu"]
    if "cpu_hints" in expected:
        got = sorted((h.numa_ids() or [], h.preferred) for h in cpu_hints)
        want = sorted((h["numa_affinity"], h["preferred"]) for h in expected["cpu_hints"])
        assert got == want
    if expected.get("non_empty"):
        assert cpu_hints
    if "some_preferred_hint_sets_numa" in expected:
        numa = expected["some_preferred_hint_sets_numa"]
        assert any(h.preferred and h.numa_ids() == [numa] for h in cpu_hints)
