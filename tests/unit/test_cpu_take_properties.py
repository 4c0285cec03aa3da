"""Properties of take_by_topology over random machines and free sets."""

from __future__ import annotations

import pytest
from cpu_topologies import build_topology, topologies
from hypothesis import given
from hypothesis import strategies as st

from shim.cpu import AllocationError, take_by_topology
from shim.cpu.assign import go_round, standard_deviation
from shim.cpuset import CPUSet
from shim.topology import CPUTopology

MODES = [
    {"strategy": "packed"},
    {"strategy": "spread"},
    {"strategy": "packed", "prefer_uncore_cache": True},
    {"strategy": "packed", "distribute_across_numa": True},
    {"strategy": "packed", "distribute_across_numa": True, "cpu_group_size": 2},
]


@st.composite
def requests(draw: st.DrawFn) -> tuple[CPUTopology, CPUSet, int, dict[str, object]]:
    topo = draw(topologies())
    cpus = topo.all_cpus.sorted()
    free = CPUSet.of(draw(st.lists(st.sampled_from(cpus), unique=True, max_size=len(cpus))))
    count = draw(st.integers(0, len(free) + 2))
    return topo, free, count, draw(st.sampled_from(MODES))


@given(requests())
def test_takes_exactly_count_from_available(request: tuple[CPUTopology, CPUSet, int, dict[str, object]]) -> None:
    topo, free, count, mode = request
    if count > len(free):
        with pytest.raises(AllocationError, match="not enough cpus available"):
            take_by_topology(topo, free, count, **mode)  # type: ignore[arg-type]
        return
    got = take_by_topology(topo, free, count, **mode)  # type: ignore[arg-type]
    assert got.is_subset_of(free)
    assert len(got) == count


@given(requests())
def test_is_deterministic(request: tuple[CPUTopology, CPUSet, int, dict[str, object]]) -> None:
    topo, free, count, mode = request
    count = min(count, len(free))
    first = take_by_topology(topo, free, count, **mode)  # type: ignore[arg-type]
    assert take_by_topology(topo, free, count, **mode) == first  # type: ignore[arg-type]


def test_whole_numa_node_taken_when_request_fits_one() -> None:
    topo = build_topology(2, 2, 4, 2)  # 4 NUMA nodes of 8 CPUs
    got = take_by_topology(topo, topo.all_cpus, 8)
    numas = {topo.details[cpu].numa for cpu in got}
    assert len(numas) == 1


def test_single_cpu_fills_a_partially_used_core_first() -> None:
    topo = build_topology(1, 1, 4, 2)  # cpus 0-3 first threads, 4-7 siblings
    assert take_by_topology(topo, CPUSet.parse("1-7"), 1) == CPUSet.of([4])


def test_go_round_is_half_away_from_zero() -> None:
    assert go_round(2.5) == 3.0
    assert go_round(-2.5) == -3.0
    assert go_round(0.4999) == 0.0
    assert standard_deviation([1, 2, 3, 4]) == 1.118


def test_kept_combinations_share_their_tail_like_go_slices() -> None:
    from shim.cpu.assign import _combinations_as_go_keeps_them

    produced = list(_combinations_as_go_keeps_them([0, 1, 2, 3, 4, 5], 4))
    assert [combo for combo, _ in produced][:3] == [(0, 1, 2, 3), (0, 1, 2, 4), (0, 1, 2, 5)]
    first_kept = produced[0][1]
    assert first_kept == [0, 1, 2, 5]  # Go's append wrote the later siblings into the same array
    three = list(_combinations_as_go_keeps_them([0, 1, 2, 3], 3))
    assert [kept for _, kept in three] == [list(combo) for combo, _ in three]  # no sharing below 4
