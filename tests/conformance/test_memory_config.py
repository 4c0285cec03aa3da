"""Memory manager conformance: reservedMemory validation and conversion, and the pod's
requested memory (getPodRequestedResources)."""

from __future__ import annotations

from typing import Any

import pytest
from memory_cases import case_id, cases, pod_from_case

from shim.memory import (
    ReservedMemoryError,
    convert_reserved_memory,
    pod_requests,
    system_reserved_memory,
    validate_reserved_memory,
)
from shim.memory.requests import Gates


@pytest.mark.parametrize("case", cases("reserved_memory.json"), ids=case_id)
def test_reserved_memory(case: dict[str, Any]) -> None:
    nodes = case["machine_numa_nodes"]
    expected = case["expected"]
    allocatable = case.get("node_allocatable_reservation") or {}
    kind = case["kind"]
    if kind == "convert_reserved":
        converted = convert_reserved_memory(nodes, case["reserved_memory"])
        assert converted == {int(node): limits for node, limits in expected["system_reserved"].items()}
        return
    call = validate_reserved_memory if kind == "validate_reserved_memory" else system_reserved_memory
    if expected.get("error"):
        with pytest.raises(ReservedMemoryError) as raised:
            call(nodes, allocatable, case["reserved_memory"])
        assert str(raised.value) == expected["error"]
        return
    result = call(nodes, allocatable, case["reserved_memory"])
    if kind == "get_system_reserved_memory":
        assert result == {int(node): limits for node, limits in expected["system_reserved"].items()}


@pytest.mark.parametrize("case", cases("pod_requested_resources.json", "get_pod_requested_resources"), ids=case_id)
def test_pod_requested_resources(case: dict[str, Any]) -> None:
    gates = Gates.of(case.get("feature_gates") or case["source"].get("feature_gates"))
    assert pod_requests(pod_from_case(case["pod"]), gates) == case["expected"]
