"""Conformance: the cpuAccumulator orders and takeByTopology (packed, spread, uncore, distributed)."""

from __future__ import annotations

from typing import Any

import pytest
from cpu_cases import cases, cpuset, topology

from shim.cpu import AllocationError, take_by_topology
from shim.cpu.accumulator import CPUAccumulator


@pytest.mark.parametrize("case", cases("cpu_accumulator.json"))
def test_accumulator(case: dict[str, Any]) -> None:
    acc = CPUAccumulator(topology(case["topology"]), cpuset(case["available_cpus"]), case.get("num_cpus", 0),
                         case["cpu_sorting_strategy"])
    expected = case["expected"]
    kind = case["kind"]
    if kind == "accumulator_take":
        for taken in case["take_sequence"]:
            acc.take(cpuset(taken))
            assert cpuset(taken).is_subset_of(acc.result)
            assert not cpuset(taken) & acc.free_set
        assert acc.is_satisfied() == expected["isSatisfied"]
        assert acc.is_failed() == expected["isFailed"]
        assert acc.need == expected["numCPUsNeeded"]
        return
    if kind == "accumulator_freeSockets_and_freeNUMANodes":
        assert acc.free_sockets() == expected["freeSockets"]
        assert acc.free_numa_nodes() == expected["freeNUMANodes"]
        return
    getter = {
        "accumulator_freeSockets": acc.free_sockets,
        "accumulator_freeNUMANodes": acc.free_numa_nodes,
        "accumulator_freeCores": acc.free_cores,
        "accumulator_freeCPUs": acc.free_cpus,
    }[kind]
    got = getter()
    if expected["compare_sorted"]:
        assert sorted(got) == sorted(expected["ordered_ids"])
    else:
        assert got == expected["ordered_ids"]


@pytest.mark.parametrize("case", cases("take_by_topology.json"))
def test_take_by_topology(case: dict[str, Any]) -> None:
    expected = case["expected"]
    call = {
        "topology": topology(case["topology"]),
        "available": cpuset(case["available_cpus"]),
        "count": case["num_cpus"],
    }
    options: dict[str, Any] = {
        "strategy": case["cpu_sorting_strategy"],
        "prefer_uncore_cache": case["prefer_align_by_uncore_cache"],
    }
    if case["kind"] == "takeByTopologyNUMADistributed":
        options.update(distribute_across_numa=True, cpu_group_size=case["cpu_group_size"])
    if expected["error"] is not None:
        with pytest.raises(AllocationError) as raised:
            take_by_topology(call["topology"], call["available"], call["count"], **options)
        assert str(raised.value) == expected["error"]
        return
    got = take_by_topology(call["topology"], call["available"], call["count"], **options)
    assert got == cpuset(expected["cpus"])
