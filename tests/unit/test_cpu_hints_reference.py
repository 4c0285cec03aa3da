"""generate_cpu_topology_hints against a direct transcription of the kubelet's subset walk."""

from __future__ import annotations

from itertools import combinations

from cpu_topologies import topologies
from hypothesis import given
from hypothesis import strategies as st

from shim.cpu import generate_cpu_topology_hints
from shim.cpuset import CPUSet
from shim.topology import CPUTopology


def reference(
    topo: CPUTopology, available: CPUSet, reusable: CPUSet, request: int, align_by_socket: bool
) -> list[tuple[tuple[int, ...], bool]]:
    numas = sorted({info.numa for info in topo.details.values()})
    min_size = len(numas)
    found: list[tuple[int, ...]] = []
    for size in range(1, len(numas) + 1):
        for mask in combinations(numas, size):
            in_mask = [cpu for cpu, info in topo.details.items() if info.numa in mask]
            if len(in_mask) >= request and size < min_size:
                min_size = size
            if any(topo.details[cpu].numa not in mask for cpu in reusable):
                continue
            matching = len(reusable) + sum(1 for cpu in available if topo.details[cpu].numa in mask)
            if matching >= request:
                found.append(mask)
    per_socket = topo.num_numa_nodes // topo.num_sockets if topo.num_sockets else 0
    out = []
    for mask in found:
        preferred = len(mask) == min_size
        if align_by_socket and per_socket:
            sockets = {info.socket for info in topo.details.values() if info.numa in mask}
            preferred = preferred or len(sockets) == (min_size + per_socket - 1) // per_socket
        out.append((mask, preferred))
    return out


@given(st.data())
def test_matches_the_kubelet_walk(data: st.DataObject) -> None:
    topo = data.draw(topologies(max_numa=8))
    cpus = topo.all_cpus.sorted()
    available = CPUSet.of(data.draw(st.lists(st.sampled_from(cpus), unique=True)))
    reusable = CPUSet.of(data.draw(st.lists(st.sampled_from(cpus), unique=True, max_size=3))) - available
    request = data.draw(st.integers(1, len(cpus)))
    align = data.draw(st.booleans())
    got = generate_cpu_topology_hints(topo, available, reusable, request, align_by_socket=align)
    assert [(tuple(h.numa_ids() or []), h.preferred) for h in got] == reference(
        topo, available, reusable, request, align
    )
