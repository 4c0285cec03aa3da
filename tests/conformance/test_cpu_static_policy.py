"""Conformance: NewStaticPolicy + Start, per-container Allocate, allocateCPUs, RemoveContainer."""

from __future__ import annotations

from typing import Any

import pytest
from cpu_cases import cases, cpuset, hint, pod, policy, state

from shim.cpu import CPUManagerError, PolicyConfigError, SMTAlignmentError, StateValidationError
from shim.topology_manager import Bitmask

_SMT_FIELDS = {
    "RequestedCPUs": "requested_cpus",
    "CpusPerCore": "cpus_per_core",
    "AvailablePhysicalCPUs": "available_physical_cpus",
    "CausedByPhysicalCPUs": "caused_by_physical_cpus",
}


@pytest.mark.parametrize("case", cases("static_policy_start.json"))
def test_start(case: dict[str, Any]) -> None:
    expected = case["expected"]
    if expected["new_static_policy_error"] is not None:
        with pytest.raises(PolicyConfigError) as raised:
            policy(case)
        assert str(raised.value) == expected["new_static_policy_error"]
        return
    pol = policy(case)
    st = state(case["state"])
    if expected["start_error"] is not None:
        before = st.copy()
        with pytest.raises(StateValidationError) as failed:
            pol.start(st)
        assert str(failed.value) == expected["start_error"]
        assert st == before
        return
    initially_empty = not st.default_cpuset
    pol.start(st)
    assert st.default_cpuset == cpuset(expected["default_cpuset"])
    if not initially_empty:
        assert all(cpu in st.default_cpuset for cpu in range(1, pol.topology.num_cpus))


def _option_runs(case: dict[str, Any]) -> list[dict[str, str] | None]:
    runs: list[dict[str, str] | None] = case.get("run_with_each_policy_options") or [case.get("policy_options")]
    return runs


@pytest.mark.parametrize("case", cases("static_policy_allocate.json", "static_policy_allocate"))
def test_allocate(case: dict[str, Any]) -> None:
    expected = case["expected"]
    the_pod = pod(case["pod"])
    container = the_pod.container(case["action"]["allocate_container"])
    for options in _option_runs(case):
        pol = policy(case, options=options or {})
        st = state(case["state"])
        before = st.copy()
        if expected["error"] is not None:
            with pytest.raises(CPUManagerError) as raised:
                pol.allocate(st, the_pod, container, hint(case.get("topology_hint")))
            assert str(raised.value) == expected["error"]["message"]
            if expected["error"].get("type") == "SMTAlignmentError":
                assert isinstance(raised.value, SMTAlignmentError)
                for go_name, attribute in _SMT_FIELDS.items():
                    assert getattr(raised.value, attribute) == expected["error"]["fields"][go_name]
            assert st == before
        else:
            pol.allocate(st, the_pod, container, hint(case.get("topology_hint")))
        got = st.get_cpuset(the_pod.uid, container.name)
        if expected["container_allocated"]:
            assert got == cpuset(expected["container_cpuset"])
            assert not got & st.default_cpuset
        else:
            assert got is None


@pytest.mark.parametrize("case", cases("static_policy_allocate.json", "static_policy_allocateCPUs"))
def test_allocate_cpus(case: dict[str, Any]) -> None:
    pol = policy(case)
    st = state(case["state"])
    pol.start(st)
    action = case["action"]["start_then_allocateCPUs"]
    affinity = None if action["numa_affinity"] is None else Bitmask.of(*action["numa_affinity"])
    default_before = st.default_cpuset
    got = pol.allocate_cpus(st, action["num_cpus"], affinity, cpuset(action["reusable_cpus"]))
    assert got == cpuset(case["expected"]["cpus"])
    assert st.default_cpuset == default_before - got


@pytest.mark.parametrize("case", cases("static_policy_allocate.json", "static_policy_allocate_sequence"))
def test_allocate_sequence(case: dict[str, Any]) -> None:
    pol = policy(case)
    st = state(case["state"])
    the_pod = pod(case["pod"])
    expected = case["expected"]
    for container in the_pod.all_containers():
        pol.allocate(st, the_pod, container, hint(case.get("topology_hint")))
    if "default_cpuset_after_allocate" in expected:
        assert st.default_cpuset == cpuset(expected["default_cpuset_after_allocate"])
    for name, cpus in (expected.get("assignments") or {}).items():
        assert st.get_cpuset(the_pod.uid, name) == cpuset(cpus)
    removal = case["action"].get("remove_container")
    if removal is not None:
        pol.remove_container(st, the_pod.uid, removal)
        if "default_cpuset_after_remove" in expected:
            assert st.default_cpuset == cpuset(expected["default_cpuset_after_remove"])


@pytest.mark.parametrize("case", cases("static_policy_allocate.json", "static_policy_remove_container"))
def test_remove_container(case: dict[str, Any]) -> None:
    pol = policy(case)
    st = state(case["state"])
    action = case["action"]["remove_container"]
    pol.remove_container(st, action["pod_uid"], action["container"])
    assert st.default_cpuset == cpuset(case["expected"]["default_cpuset"])
    if case["expected"].get("container_absent"):
        assert st.get_cpuset(action["pod_uid"], action["container"]) is None
