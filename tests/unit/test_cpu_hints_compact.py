"""The compact CPU hints (SupersetHints) against the kubelet's explicit list.

``cpu_topology_hint_set(...).expand()`` must be exactly ``generate_cpu_topology_hints(...)``
(same masks, order and preferred flags) for any machine, free set, reusable CPUs and
``align-by-socket``; the static policy, the wire and the merge must give the same answers
whichever form the hints take.
"""

from __future__ import annotations

import random

import pytest
from cpu_topologies import build_topology, container, make_pod, topologies
from hypothesis import given
from hypothesis import strategies as st

from shim.actors.cpu_manager import CPUManager
from shim.actors.provider import ProviderActor
from shim.cpu import CPUState, StaticPolicy, generate_cpu_topology_hints
from shim.cpu.hints import cpu_topology_hint_set as optional_hint_set
from shim.cpu.hints import minimal_fits
from shim.cpuset import CPUSet
from shim.messages import Hints, HintsRequest, SupersetWire
from shim.topology import CPUInfo, CPUTopology
from shim.topology_manager import Bitmask, SupersetHints, TopologyHint, merge

GATES = {"PodLevelResources": True, "PodLevelResourceManagers": True, "CPUManagerPolicyAlphaOptions": True}


@st.composite
def relabelled(draw: st.DrawFn, max_numa: int) -> CPUTopology:
    """A regular machine whose NUMA ids are spread out (gaps, maybe no NUMA 0)."""
    topo = draw(topologies(max_numa=max_numa))
    numas = sorted({info.numa for info in topo.details.values()})
    ids = sorted(draw(st.lists(st.integers(0, 20), min_size=len(numas), max_size=len(numas), unique=True)))
    rename = dict(zip(numas, ids, strict=True))
    return CPUTopology.from_details(
        {cpu: CPUInfo(socket=i.socket, core=i.core, numa=rename[i.numa], uncore=i.uncore)
         for cpu, i in topo.details.items()}
    )


def cpu_topology_hint_set(topo: CPUTopology, available: CPUSet, reusable: CPUSet, request: int, *,
                          align_by_socket: bool = False) -> SupersetHints:
    found = optional_hint_set(topo, available, reusable, request, align_by_socket=align_by_socket)
    assert found is not None  # no cap on the minimal masks
    return found


def check_same(topo: CPUTopology, available: CPUSet, reusable: CPUSet, request: int, align: bool) -> SupersetHints:
    compact = cpu_topology_hint_set(topo, available, reusable, request, align_by_socket=align)
    explicit = generate_cpu_topology_hints(topo, available, reusable, request, align_by_socket=align)
    expanded = compact.expand()
    assert expanded == explicit
    assert {(h.affinity, h.preferred) for h in expanded} == {(h.affinity, h.preferred) for h in explicit}
    # Invariants the unchecked construction must keep: a sorted antichain of members, preferred members.
    members = {h.affinity.value for h in explicit if h.affinity is not None}
    assert list(compact.minimal) == sorted(compact.minimal, key=lambda value: (value.bit_count(), value))
    for value in compact.minimal:
        assert value in members
        assert not any(value & ~(1 << bit) in members for bit in Bitmask(value).bits())
    assert all(compact.contains(value) for value in compact.preferred)
    return compact


@given(st.data())
def test_expands_to_the_kubelet_list(data: st.DataObject) -> None:
    topo = data.draw(topologies(max_numa=10) | relabelled(max_numa=10))
    cpus = topo.all_cpus.sorted()
    # A few CPUs unknown to the topology: the kubelet counts them on NUMA 0.
    pool = st.sampled_from(cpus) | st.integers(max(cpus) + 1, max(cpus) + 4)
    available = CPUSet.of(data.draw(st.lists(pool, unique=True)))
    reusable = CPUSet.of(data.draw(st.lists(pool, unique=True, max_size=3)))
    if data.draw(st.booleans()):
        reusable = reusable - available  # the policy never passes overlapping sets
    request = data.draw(st.integers(1, len(cpus) + 2))
    check_same(topo, available, reusable, request, data.draw(st.booleans()))


@pytest.mark.parametrize("align", [False, True])
def test_twelve_nodes_random_free_sets(align: bool) -> None:
    topo = build_topology(2, 6, 4, 2)
    cpus = topo.all_cpus.sorted()
    rng = random.Random(12)
    for request in (1, 9, 40):
        available = CPUSet.of(rng.sample(cpus, rng.randint(len(cpus) // 2, len(cpus))))
        reusable = CPUSet.of(rng.sample(sorted(topo.all_cpus - available), 2))
        check_same(topo, available, reusable, request, align)
        check_same(topo, available, CPUSet(), request, align)


def test_minimal_masks_without_walking_every_subset() -> None:
    topo = build_topology(2, 8, 4, 2)  # 16 NUMA nodes of 8 CPUs
    free = CPUSet.of(cpu for cpu in topo.all_cpus if topo.details[cpu].numa not in (3, 4))
    hints = cpu_topology_hint_set(topo, free, CPUSet(), 12)
    assert hints.universe == (1 << 16) - 1
    assert len(hints.minimal) == 14 * 13 // 2  # any two free nodes, nothing narrower
    assert hints.preferred == frozenset(hints.minimal)  # two nodes is the narrowest possible
    home = topo.details[24].numa
    reused = cpu_topology_hint_set(topo, free - CPUSet.of([24]), CPUSet.of([24]), 12)
    assert reused.minimal and all(value >> home & 1 for value in reused.minimal)  # the reusable CPU's node


def test_no_placement_is_an_empty_set() -> None:
    topo = build_topology(2, 8, 1, 1)
    hints = cpu_topology_hint_set(topo, CPUSet.of([0, 1]), CPUSet(), 3)
    assert hints.is_empty()
    assert hints.expand() == []


# --- the policy ---------------------------------------------------------------------------


def policies(topo: CPUTopology, **options: str) -> tuple[StaticPolicy, StaticPolicy]:
    def make(compact: bool) -> StaticPolicy:
        return StaticPolicy(topo, num_reserved_cpus=2, feature_gates=GATES, topology_manager_scope="pod",
                            options=options, compact_hints=compact)

    return make(True), make(False)


def expand(hints: dict[str, list[TopologyHint] | SupersetHints] | None) -> dict[str, list[TopologyHint]] | None:
    if hints is None:
        return None
    return {name: found.expand() if isinstance(found, SupersetHints) else found for name, found in hints.items()}


def test_auto_threshold() -> None:
    eight, sixteen = build_topology(2, 4, 2, 2), build_topology(2, 8, 2, 2)
    pod = make_pod("p", [container("c", 2000)])
    for topo, compact in ((eight, False), (sixteen, True)):
        policy = StaticPolicy(topo)
        state = CPUState()
        policy.start(state)
        found = policy.hints(state, pod, pod.containers[0])
        assert found is not None
        assert isinstance(found["cpu"], SupersetHints) is compact
    forced = StaticPolicy(sixteen, compact_hints=False)
    state = CPUState()
    forced.start(state)
    found = forced.hints(state, pod, pod.containers[0])
    assert found is not None
    assert isinstance(found["cpu"], list)


def test_auto_stays_compact_with_thousands_of_minimal_masks() -> None:
    sixteen = build_topology(2, 8, 2, 2)  # 4 CPUs per node: 32 CPUs need any 8 of 16 nodes
    pod = make_pod("p", [container("c", 32000)])
    auto, forced = StaticPolicy(sixteen), StaticPolicy(sixteen, compact_hints=True)
    state = CPUState()
    auto.start(state)
    found, compact = auto.pod_hints(state, pod), forced.pod_hints(state, pod)
    assert found is not None and compact is not None
    cpu, family = found["cpu"], compact["cpu"]
    assert isinstance(cpu, SupersetHints) and isinstance(family, SupersetHints)
    assert len(cpu.minimal) == 12870
    assert (cpu.minimal, cpu.universe, cpu.preferred) == (family.minimal, family.universe, family.preferred)
    assert cpu.expand() == generate_cpu_topology_hints(sixteen, auto.available_cpus(state), CPUSet(), 32)


def test_many_nodes_never_build_the_subset_order() -> None:
    """34 nodes: the explicit list (2^34 − 1 masks) is out of reach; the compact form is not."""
    topo = build_topology(2, 17, 2, 1)  # 2 CPUs per node
    free = topo.all_cpus
    hints = cpu_topology_hint_set(topo, free, CPUSet(), 4)
    assert len(hints.minimal) == 34 * 33 // 2  # any two nodes
    assert hints.preferred == frozenset(hints.minimal)
    policy = StaticPolicy(topo)
    state = CPUState()
    policy.start(state)
    found = policy.pod_hints(state, make_pod("p", [container("c", 4000)]))
    assert found is not None and isinstance(found["cpu"], SupersetHints)
    assert found["cpu"].minimal == hints.minimal
    other = [TopologyHint(Bitmask.of(5, 30), True)]
    assert merge("restricted", [{"cpu": hints}, {"memory": other}], range(34), options={
        "max-allowable-numa-nodes": "64"}) == (TopologyHint(Bitmask.of(5, 30), True), True)


@pytest.mark.parametrize("options", [{}, {"align-by-socket": "true"}])
def test_policy_answers_match(options: dict[str, str]) -> None:
    topo = build_topology(2, 5, 2, 2)  # 10 NUMA nodes of 4 CPUs
    compact, explicit = policies(topo, **options)
    state = CPUState()
    compact.start(state)
    rng = random.Random(7)
    taken = CPUSet.of(rng.sample(sorted(compact.available_cpus(state)), 12))
    state.default_cpuset = state.default_cpuset - taken
    state.assignments["other"] = {"c": taken}
    classic = make_pod("classic", [container("a", 6000), container("b", 3000)], [container("i", 10000)])
    pod_level = make_pod("level", [container("x", 2000), container("s", None)], pod_cpus=9)
    for pod in (classic, pod_level):
        assert expand(compact.pod_hints(state, pod)) == expand(explicit.pod_hints(state, pod))
    # Container scope with reusable CPUs: the init container's CPUs come back for the app containers.
    for policy in (compact, explicit):
        scratch = state.copy()
        policy.allocate(scratch, classic, classic.init_containers[0])
        app = classic.containers[0]
        if policy is compact:
            compact_answer = expand(policy.hints(scratch, classic, app))
        else:
            assert expand(policy.hints(scratch, classic, app)) == compact_answer
    # Re-admission: hints regenerated from an existing allocation.
    admitted = state.copy()
    compact.allocate_pod(admitted, pod_level, None)
    assert expand(compact.pod_hints(admitted, pod_level)) == expand(explicit.pod_hints(admitted, pod_level))


def test_merge_gives_the_same_hint() -> None:
    topo = build_topology(2, 5, 2, 2)
    nodes = range(10)
    rng = random.Random(3)
    for request in (3, 5, 9, 17):
        free = CPUSet.of(rng.sample(topo.all_cpus.sorted(), 20))
        compact = cpu_topology_hint_set(topo, free, CPUSet(), request)
        explicit = generate_cpu_topology_hints(topo, free, CPUSet(), request)
        memory = [TopologyHint(Bitmask.of(node), True) for node in (1, 6)] + [TopologyHint(Bitmask.of(1, 6), False)]
        for policy in ("best-effort", "restricted"):
            got = merge(policy, [{"cpu": compact}, {"memory": memory}], nodes)
            assert got == merge(policy, [{"cpu": explicit}, {"memory": memory}], nodes)


# --- the provider actor ---------------------------------------------------------------------


class _Sink:
    def save(self, name: str, text: str) -> None:
        pass


def test_provider_sends_the_compact_form() -> None:
    topo = build_topology(2, 8, 2, 2)
    policy = StaticPolicy(topo, num_reserved_cpus=2, feature_gates=GATES, topology_manager_scope="pod")
    state = CPUState()
    policy.start(state)
    actor = ProviderActor("cpu", CPUManager(policy, state, shared_cpus=topo.all_cpus, pod_level_gate=True), _Sink())
    pod = make_pod("p", [container("c", 6000)])  # two of the 16 four-CPU nodes
    [envelope] = actor.handle(HintsRequest(pod=pod))
    reply = envelope.message
    assert isinstance(reply, Hints)
    assert reply.hints is not None
    assert isinstance(reply.hints["cpu"], SupersetWire)
    provided = reply.to_provider_hints()
    assert provided is not None
    found = provided["cpu"]
    assert isinstance(found, SupersetHints)
    assert found.expand() == generate_cpu_topology_hints(topo, policy.available_cpus(state), CPUSet(), 6)


@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=12),
    st.integers(0, 1 << 12),
    st.integers(-3, 60),
)
def test_both_searches_find_exactly_the_minimal_fitting_masks(weights: list[int], required: int, needed: int) -> None:
    count = len(weights)
    required &= (1 << count) - 1

    def fits(mask: int) -> bool:
        return mask & required == required and sum(w for pos, w in enumerate(weights) if mask >> pos & 1) >= needed

    fitting = [mask for mask in range(1, 1 << count) if fits(mask)]
    expected = sorted(mask for mask in fitting if not any(fits(mask & ~(1 << pos)) and mask & ~(1 << pos)
                                                         for pos in range(count) if mask >> pos & 1))
    for budget in (0, 1 << 20):
        found = minimal_fits(weights, required, needed, budget=budget)
        assert found is not None
        assert len(found) == len(set(found))
        assert sorted(found) == expected
        # A cap stops the search as soon as it is exceeded.
        assert minimal_fits(weights, required, needed, budget=budget, most=len(expected)) == found
        if expected:
            assert minimal_fits(weights, required, needed, budget=budget, most=len(expected) - 1) is None
