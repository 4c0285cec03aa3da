"""Hypothesis strategies for every message of shim.messages (one per union member)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from shim import messages as m
from shim.cpuset import CPUSet
from shim.pod import Container, Pod, Resources
from shim.topology.model import CPUInfo, CPUTopology, Device, NUMANode, Topology
from shim.topology_manager import Bitmask, SupersetHints

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
AMOUNT = st.integers(min_value=0, max_value=2**63 - 1)
SMALL = st.integers(min_value=0, max_value=64)
NAMES = st.text(min_size=1, max_size=12)
TEXT = st.text(max_size=30)
OPT_NAME = st.none() | NAMES
RESOURCE = st.sampled_from(["cpu", "memory", "hugepages-2Mi", "hugepages-1Gi", "example.com/nic"])
CPUSET_TEXT = st.frozensets(st.integers(0, 300), max_size=20).map(lambda cpus: str(CPUSet.of(cpus)))
NUMA_IDS = st.lists(st.integers(0, 63), max_size=8, unique=True).map(lambda ids: tuple(sorted(ids)))

resources = st.builds(
    Resources,
    requests=st.dictionaries(RESOURCE, AMOUNT, max_size=4),
    limits=st.dictionaries(RESOURCE, AMOUNT, max_size=4),
)


def _container(kind: st.SearchStrategy[Any]) -> st.SearchStrategy[Container]:
    return st.builds(Container, name=NAMES, kind=kind, resources=resources)


pods = st.builds(
    Pod,
    uid=NAMES,
    name=NAMES,
    namespace=NAMES,
    resources=st.none() | resources,
    init_containers=st.lists(_container(st.sampled_from(["init", "sidecar"])), max_size=3).map(tuple),
    containers=st.lists(_container(st.just("app")), min_size=1, max_size=3).map(tuple),
    uid_derived=st.booleans(),
)

hints = st.builds(m.HintWire, numa=st.none() | NUMA_IDS, preferred=st.booleans())


@st.composite
def superset_hints(draw: st.DrawFn) -> SupersetHints:
    """A valid hint set: minimal masks inside the universe, preferred masks among the members."""
    universe = draw(st.lists(st.integers(0, 63), min_size=1, max_size=8, unique=True))
    masks = st.lists(st.sampled_from(universe), min_size=1, unique=True).map(Bitmask.from_bits)
    minimal = draw(st.lists(masks, max_size=5))
    preferred = [
        small | extra
        for small, extra in draw(st.lists(st.tuples(st.sampled_from(minimal), st.just(Bitmask()) | masks), max_size=4))
    ] if minimal else []
    return SupersetHints(minimal, Bitmask.from_bits(universe), preferred)


superset_wires = superset_hints().map(m.SupersetWire.from_hints)
resource_hints = st.none() | st.dictionaries(
    RESOURCE, st.none() | st.lists(hints, max_size=4).map(tuple) | superset_wires, max_size=3
)


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    """Small but irregular topologies (counters drawn independently, as the kubelet's tests do)."""
    cpu_ids = draw(st.lists(st.integers(0, 127), min_size=1, max_size=16, unique=True))
    node_ids = draw(st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True))
    details = {
        cpu: CPUInfo(socket=draw(SMALL), core=draw(SMALL), numa=draw(st.sampled_from(node_ids)), uncore=draw(SMALL))
        for cpu in cpu_ids
    }
    nodes = tuple(
        NUMANode(
            id=node,
            cpus=CPUSet.of(cpu for cpu, info in details.items() if info.numa == node),
            memory=draw(AMOUNT),
            hugepages=draw(st.dictionaries(st.sampled_from(["2Mi", "1Gi"]), AMOUNT, max_size=2)),
            distances=tuple(draw(st.lists(st.integers(0, 255), min_size=len(node_ids), max_size=len(node_ids)))),
        )
        for node in sorted(node_ids)
    )
    devices = tuple(
        Device(
            name=draw(NAMES),
            kind=draw(st.sampled_from(["pci", "net"])),
            numa=draw(st.none() | st.sampled_from(node_ids)),
            local_cpus=CPUSet.parse(draw(CPUSET_TEXT)),
            pci_class=draw(st.none() | st.just("0x020000")),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    return Topology(
        cpu=CPUTopology(
            num_cpus=draw(SMALL),
            num_cores=draw(SMALL),
            num_sockets=draw(SMALL),
            num_numa_nodes=draw(SMALL),
            num_uncore_caches=draw(SMALL),
            details=details,
        ),
        numa=nodes,
        allowed_cpus=CPUSet.of(draw(st.frozensets(st.sampled_from(cpu_ids)))),
        allowed_mems=CPUSet.of(draw(st.frozensets(st.sampled_from(node_ids)))),
        devices=devices,
        uncore_groups=draw(st.dictionaries(SMALL, CPUSET_TEXT.map(CPUSet.parse), max_size=3)),
    )


topology_wires = topologies().map(m.TopologyWire.from_topology)
memory_assignments = st.builds(m.MemoryAssignment, numa=NUMA_IDS, size=AMOUNT)
pod_assignments = st.none() | st.builds(m.PodAssignment, cpus=CPUSET_TEXT, memory=st.none() | memory_assignments)
isolation = st.sampled_from(["container", "pod", "host"])
quota = st.sampled_from(["unlimited", "limited"])
placements = st.builds(
    m.ContainerPlacement,
    container=NAMES,
    cpus=st.none() | CPUSET_TEXT,
    mems=st.none() | NUMA_IDS,
    isolation=st.none() | isolation,
)
assignments = st.builds(
    m.ContainerAssignment,
    name=NAMES,
    kind=st.sampled_from(["init", "sidecar", "app"]),
    cpus=CPUSET_TEXT,
    mems=CPUSET_TEXT,
    isolation=isolation,
    cpu_quota=quota,
    cpu_limit_millis=st.none() | AMOUNT,
)

BY_TYPE: dict[type[m.MessageBase], st.SearchStrategy[Any]] = {
    m.AdmitPod: st.builds(m.AdmitPod, pod=pods),
    m.RemoveContainer: st.builds(m.RemoveContainer, pod_uid=NAMES, container=NAMES),
    m.RemovePod: st.builds(m.RemovePod, pod_uid=NAMES),
    m.ContainerCreated: st.builds(
        m.ContainerCreated, pod_uid=NAMES, container=NAMES, cgroup=TEXT, pid=st.none() | st.integers(1, 2**22)
    ),
    m.DiscoverTopology: st.just(m.DiscoverTopology()),
    m.TopologyDiscovered: st.builds(m.TopologyDiscovered, topology=topology_wires),
    m.TopologyFailed: st.builds(m.TopologyFailed, message=TEXT),
    m.Reconcile: st.just(m.Reconcile()),
    m.HintsRequest: st.builds(m.HintsRequest, pod=pods, container=OPT_NAME),
    m.Hints: st.builds(m.Hints, provider=NAMES, pod_uid=NAMES, container=OPT_NAME, hints=resource_hints),
    m.AllocateRequest: st.builds(m.AllocateRequest, pod=pods, container=OPT_NAME, hint=st.none() | hints),
    m.Allocated: st.builds(
        m.Allocated,
        provider=NAMES,
        pod_uid=NAMES,
        container=OPT_NAME,
        placements=st.lists(placements, max_size=3).map(tuple),
        pod=pod_assignments,
    ),
    m.AllocationFailed: st.builds(
        m.AllocationFailed, provider=NAMES, pod_uid=NAMES, container=OPT_NAME, reason=NAMES, message=TEXT
    ),
    m.Release: st.builds(m.Release, pod_uid=NAMES, container=OPT_NAME),
    m.Commit: st.builds(m.Commit, pod_uid=NAMES),
    m.Admitted: st.builds(
        m.Admitted,
        pod_uid=NAMES,
        name=NAMES,
        hint=st.none() | hints,
        pod=pod_assignments,
        containers=st.lists(assignments, max_size=4).map(tuple),
    ),
    m.Rejected: st.builds(m.Rejected, pod_uid=NAMES, name=NAMES, reason=NAMES, message=TEXT, hint=st.none() | hints),
    m.Apply: st.builds(
        m.Apply,
        pod_uid=NAMES,
        container=NAMES,
        cgroup=TEXT,
        cpus=CPUSET_TEXT,
        mems=CPUSET_TEXT,
        cpu_quota=quota,
        cpu_limit_millis=st.none() | AMOUNT,
        pid=st.none() | st.integers(1, 2**22),
    ),
    m.Applied: st.builds(m.Applied, pod_uid=NAMES, container=NAMES, cgroup=TEXT),
    m.ApplyFailed: st.builds(m.ApplyFailed, pod_uid=NAMES, container=NAMES, errno=INT64, path=TEXT, message=TEXT),
}

messages = st.one_of(*BY_TYPE.values())
