"""Conformance: container and pod topology hints, podGuaranteedCPUs."""

from __future__ import annotations

from typing import Any

import pytest
from cpu_cases import cases, pod, policy, state, topology

from shim.cpu import StaticPolicy
from shim.cpu.state import CPUState
from shim.pod import Pod
from shim.topology_manager import TopologyHint


def _normalised(hints: list[TopologyHint]) -> list[tuple[list[int], bool]]:
    return sorted((h.numa_ids() or [], h.preferred) for h in hints)


def _hints(case: dict[str, Any], pol: StaticPolicy, st: CPUState, the_pod: Pod) -> dict[str, Any] | None:
    if case["kind"] == "GetTopologyHints":
        return pol.hints(st, the_pod, the_pod.container(case["container"]))
    return pol.pod_hints(st, the_pod)


@pytest.mark.parametrize("case", cases("topology_hints.json", "GetTopologyHints", "GetPodTopologyHints"))
def test_topology_hints(case: dict[str, Any]) -> None:
    pol = policy(case)
    st = state(case["state"])
    before = st.copy()
    hints = _hints(case, pol, st, pod(case["pod"]))
    expected = case["expected"]["cpu_hints"]
    if expected is None:
        assert hints is None
    else:
        assert hints is not None
        assert _normalised(hints["cpu"]) == sorted((h["numa_affinity"], h["preferred"]) for h in expected)
    assert st == before  # hints never change the state


@pytest.mark.parametrize("case", cases("topology_hints.json", "podGuaranteedCPUs"))
def test_pod_guaranteed_cpus(case: dict[str, Any]) -> None:
    # podGuaranteedCPUs does not depend on the machine.
    pol = StaticPolicy(topology("topoSingleSocketHT"), feature_gates=case.get("feature_gates") or {})
    assert pol.pod_guaranteed_cpus(pod(case["pod"])) == case["expected"]["cpus"]

