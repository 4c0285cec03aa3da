"""Property tests of the Memory manager's Static policy: accounting invariants over random
admissions and removals, atomic rejection, full release, and the optimised hint enumeration
against a direct transcription of the kubelet's brute force."""

from __future__ import annotations

from itertools import combinations
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from memory_fixtures import GIB, MIB, pod, resources

from shim.memory import (
    MachineState,
    MemoryManagerError,
    MemoryState,
    MemoryTable,
    NodeMemory,
    NUMANodeState,
    StaticPolicy,
)
from shim.memory.hints import HintCache, best_hint, calculate_hints, passing_masks
from shim.pod import Pod
from shim.topology_manager import Bitmask, TopologyHint

RESOURCES = ("memory", "hugepages-1Gi", "hugepages-2Mi")


# random pods and machines --------------------------------------------------------------------

amount = st.sampled_from([0, 256 * MIB, 512 * MIB, GIB, 2 * GIB, 3 * GIB])
huge_1g = st.sampled_from([0, 0, GIB, 2 * GIB])
huge_2m = st.sampled_from([0, 0, 64 * MIB, 256 * MIB])


@st.composite
def container_resources(draw: st.DrawFn, *, allow_shared: bool) -> dict[str, Any]:
    if allow_shared and draw(st.booleans()):
        return resources(shared=True)
    extra = {k: v for k, v in {"hugepages_1Gi": draw(huge_1g), "hugepages_2Mi": draw(huge_2m)}.items() if v}
    return resources(draw(amount) or 128 * MIB, **extra)


@st.composite
def pods(draw: st.DrawFn, uid: str) -> Pod:
    pod_level = draw(st.booleans())
    apps = [(f"app{i}", draw(container_resources(allow_shared=pod_level))) for i in range(draw(st.integers(1, 3)))]
    init = [
        (f"init{i}", draw(container_resources(allow_shared=pod_level)), draw(st.booleans()))
        for i in range(draw(st.integers(0, 2)))
    ]
    budget = None
    if pod_level:
        extra = {k: v for k, v in {"hugepages_1Gi": draw(huge_1g), "hugepages_2Mi": draw(huge_2m)}.items() if v}
        budget = resources(draw(st.sampled_from([GIB, 2 * GIB, 4 * GIB, 6 * GIB])), **extra)
    return pod(uid, apps, init=init, budget=budget)


@st.composite
def policies(draw: st.DrawFn) -> StaticPolicy:
    count = draw(st.integers(1, 4))
    nodes = [
        NodeMemory(
            node,
            draw(st.sampled_from([4 * GIB, 8 * GIB])),
            {"hugepages-1Gi": draw(st.sampled_from([0, 1, 2])) * GIB, "hugepages-2Mi": 256 * MIB},
        )
        for node in range(count)
    ]
    return StaticPolicy(
        nodes,
        reserved_memory={node: {"memory": 512 * MIB} for node in range(count)},
        feature_gates={"PodLevelResources": True, "PodLevelResourceManagers": True},
    )


def admit(policy: StaticPolicy, state: MemoryState, the_pod: Pod, pick: int) -> bool:
    """Pod scope: pod hints, then one of them (or none), then allocate_pod."""
    hints = policy.pod_hints(state, the_pod)
    memory_hints = (hints or {}).get("memory") or [None]
    try:
        policy.allocate_pod(state, the_pod, memory_hints[pick % len(memory_hints)])
    except MemoryManagerError:
        return False
    return True


def assert_accounting(state: MemoryState) -> None:
    for node in state.machine_state.values():
        for table in node.memory_map.values():
            assert table.reserved + table.free == table.allocatable
            assert table.reserved >= 0 and table.free >= 0
    # Per resource type, what the machine reserves is what the blocks hold: a block of one
    # huge page size never takes pages of another size.
    for name in RESOURCES:
        reserved = sum(n.memory_map[name].reserved for n in state.machine_state.values() if name in n.memory_map)
        held = 0
        for pod_uid, containers in state.assignments.items():
            source = [state.pod_entries[pod_uid]] if pod_uid in state.pod_entries else list(containers.values())
            held += sum(b.size for blocks in source for b in blocks if b.type == name)
        assert reserved == held


operations = st.lists(st.tuples(st.booleans(), st.integers(0, 50)), min_size=1, max_size=12)


@settings(max_examples=60)
@given(policy=policies(), data=st.data(), ops=operations)
def test_accounting_holds_and_rejections_change_nothing(policy: StaticPolicy, data: st.DataObject, ops: list) -> None:  # type: ignore[type-arg]
    state = MemoryState()
    policy.start(state)
    admitted: list[str] = []
    for index, (add, pick) in enumerate(ops):
        if add or not admitted:
            the_pod = data.draw(pods(f"pod{index}"))
            before, reusable = state.copy(), repr(policy.reusable)
            if admit(policy, state, the_pod, pick):
                admitted.append(the_pod.uid)
            else:
                assert state == before
                assert repr(policy.reusable) == reusable
        else:
            policy.remove_pod(state, admitted.pop(pick % len(admitted)))
        assert_accounting(state)


@settings(max_examples=40)
@given(policy=policies(), data=st.data(), count=st.integers(1, 6))
def test_removal_in_any_order_restores_the_start(policy: StaticPolicy, data: st.DataObject, count: int) -> None:
    state = MemoryState()
    policy.start(state)
    start = state.copy()
    admitted = [p for i in range(count) if admit(policy, state, p := data.draw(pods(f"pod{i}")), i)]
    containers = [(p.uid, c.name) for p in admitted for c in p.all_containers()]
    for uid, name in data.draw(st.permutations(containers)):
        policy.remove_container(state, uid, name)
    assert state == start


# hints: optimised enumeration == the kubelet's brute force -----------------------------------


@st.composite
def machine_states(draw: st.DrawFn) -> tuple[MachineState, dict[int, dict[str, int]]]:
    count = draw(st.integers(1, 5))
    machine: MachineState = {}
    for node in range(count):
        tables = {}
        for name in draw(st.sets(st.sampled_from(RESOURCES), min_size=1)):
            allocatable = draw(st.integers(0, 8)) * GIB
            reserved = draw(st.integers(0, allocatable // GIB)) * GIB
            tables[name] = MemoryTable(allocatable, 0, allocatable, reserved, allocatable - reserved)
        used = draw(st.integers(0, 2))
        others = draw(st.sets(st.integers(0, count - 1)))
        cells = sorted(others | {node}) if used and draw(st.booleans()) else [node]
        machine[node] = NUMANodeState(used, tables, cells)
    masks = st.integers(1, (1 << count) - 1)
    reusable = draw(st.dictionaries(masks, st.fixed_dictionaries({"memory": st.integers(0, 4).map(lambda v: v * GIB)})))
    return machine, reusable


def brute_force(machine: MachineState, requests: dict[str, int], reusable: dict[int, dict[str, int]]) -> Any:
    nodes = sorted(machine)
    min_size, found = len(nodes), []

    def total(bits: tuple[int, ...], name: str, field: str) -> int:
        return sum(getattr(machine[b].memory_map[name], field) for b in bits if name in machine[b].memory_map)

    for size in range(1, len(nodes) + 1):
        for bits in combinations(nodes, size):
            mask = Bitmask.from_bits(bits).value
            if any(total(bits, n, "allocatable") < r for n, r in requests.items()):
                continue
            min_size = min(min_size, size)
            if size == 1 and len(machine[bits[0]].cells or []) > 1:
                continue
            if size > 1 and any(
                machine[b].number_of_assignments > 0
                and (len(machine[b].cells or []) == 1 or sorted(machine[b].cells or []) != list(bits))
                for b in bits
            ):
                continue
            if any(total(bits, n, "free") + reusable.get(mask, {}).get(n, 0) < r for n, r in requests.items()):
                continue
            found.append(mask)
    return (
        {name: [TopologyHint(Bitmask(m), m.bit_count() == min_size) for m in found] for name in requests}
        if found
        else {}
    )


def kubelet_best(hints: list[TopologyHint]) -> TopologyHint | None:
    """findBestHint, step by step as the kubelet writes it."""

    def replaces(hint: TopologyHint, best: TopologyHint) -> bool:
        assert hint.affinity is not None and best.affinity is not None
        if hint.preferred != best.preferred:
            return hint.preferred
        return hint.affinity.is_narrower_than(best.affinity)

    best = None
    for hint in hints:
        if best is None or replaces(hint, best):
            best = hint
    return best


requests_strategy = st.dictionaries(
    st.sampled_from(RESOURCES), st.integers(0, 12).map(lambda v: v * GIB), min_size=1
).map(lambda r: {"memory": r.get("memory", GIB), **r})


@settings(max_examples=150)
@given(generated=machine_states(), requests=requests_strategy, containing=st.integers(0, 31))
def test_hints_equal_the_kubelets_brute_force(generated: Any, requests: dict[str, int], containing: int) -> None:
    machine, reusable = generated
    cache = HintCache()
    expected = brute_force(machine, requests, reusable)
    assert calculate_hints(machine, requests, reusable, cache) == expected
    table = passing_masks(machine, requests, reusable, cache)
    memory = expected.get("memory", [])
    assert best_hint(table) == kubelet_best(memory)
    containing &= (1 << len(machine)) - 1
    supersets = [h for h in memory if h.affinity and h.affinity.value & containing == containing]
    assert best_hint(table, containing=containing) == kubelet_best(supersets)
