"""KEP-5526 pod-level resources in the Memory manager: partition, validation, removal, gates,
container scope, and the cpuset.mems each container gets."""

from __future__ import annotations

import pytest
from memory_fixtures import GIB, MIB, pod, policy, resources, started

from shim.memory import EmptyPodSharedPoolError, MemoryManagerError, StaticPolicy, mems_for
from shim.topology_manager import Bitmask, TopologyHint

ON_NODE_1 = TopologyHint(Bitmask.of(1), True)


def sizes(blocks: list) -> dict[str, tuple[list[int] | None, int]]:  # type: ignore[type-arg]
    return {b.type: (b.numa_affinity, b.size) for b in blocks}


def test_bubble_with_exclusive_and_shared_containers() -> None:
    p = policy()
    state = started(p)
    the_pod = pod(
        "p1",
        [("solo", resources(GIB)), ("web", resources(GIB, shared=True)), ("log", resources(shared=True))],
        budget=resources(4 * GIB),
    )
    p.allocate_pod(state, the_pod, ON_NODE_1)
    assert sizes(state.pod_entries["p1"]) == {"memory": ([1], 4 * GIB)}
    assert sizes(state.assignments["p1"]["solo"]) == {"memory": ([1], GIB)}
    assert sizes(state.assignments["p1"]["web"]) == {"memory": ([1], 3 * GIB)}
    assert sizes(state.assignments["p1"]["log"]) == {"memory": ([1], 3 * GIB)}
    node = state.machine_state[1]
    assert node.number_of_assignments == 1  # one pod-level resource, not three containers
    assert node.memory_map["memory"].reserved == 4 * GIB
    assert state.machine_state[0].memory_map["memory"].reserved == 0
    assert mems_for(state, the_pod, "log") == [1]

    p.remove_container(state, "p1", "solo")
    assert node.memory_map["memory"].reserved == 4 * GIB  # nothing returns before the last container
    p.remove_container(state, "p1", "web")
    p.remove_container(state, "p1", "log")
    assert state.machine_state == started(policy()).machine_state
    assert state.pod_entries == {} and state.assignments == {}


def test_init_containers_and_sidecars_partition() -> None:
    p = policy()
    state = started(p)
    the_pod = pod(
        "p2",
        [("app", resources(GIB)), ("shared", resources(shared=True))],
        init=[
            ("side", resources(GIB), True),
            ("setup", resources(shared=True), False),
            ("shared-side", resources(shared=True), True),
        ],
        budget=resources(4 * GIB, hugepages_2Mi=64 * MIB),
    )
    p.allocate_pod(state, the_pod, None)
    mine = state.assignments["p2"]
    # the regular shared init container may use the budget minus the sidecar started before it
    assert sizes(mine["setup"]) == {"memory": ([0], 3 * GIB), "hugepages-2Mi": ([0], 64 * MIB)}
    assert sizes(mine["side"]) == {"memory": ([0], GIB)}
    assert sizes(mine["app"]) == {"memory": ([0], GIB)}
    assert (
        sizes(mine["shared"])
        == sizes(mine["shared-side"])
        == {
            "memory": ([0], 2 * GIB),
            "hugepages-2Mi": ([0], 64 * MIB),
        }
    )
    assert state.machine_state[0].memory_map["hugepages-2Mi"].reserved == 64 * MIB
    assert state.machine_state[0].number_of_assignments == 2


@pytest.mark.parametrize(
    ("containers", "init", "message"),
    [
        (
            [("a", resources(GIB)), ("b", resources(GIB)), ("c", resources(shared=True))],
            [],
            "pod rejected, sum of exclusive container memory requests equals pod budget, "
            "leaving no memory for shared containers",
        ),
        (
            [("a", resources(shared=True))],
            [("side", resources(GIB), True), ("init", resources(2 * GIB), False)],
            f"pod rejected, largest exclusive init container requests {2 * GIB} of memory, but only {GIB} available",
        ),
        (
            [("a", resources(shared=True))],
            [("side", resources(2 * GIB), True), ("init", resources(shared=True), False)],
            "pod rejected, pod has shared init containers but no memory available for them",
        ),
    ],
)
def test_empty_shared_pool_is_rejected(containers: list, init: list, message: str) -> None:  # type: ignore[type-arg]
    p = policy()
    state = started(p)
    before = state.copy()
    the_pod = pod("p3", containers, init=init, budget=resources(2 * GIB))
    assert p.pod_hints(state, the_pod) == {"memory": []}
    with pytest.raises(EmptyPodSharedPoolError) as raised:
        p.allocate_pod(state, the_pod, None)
    assert str(raised.value) == message
    assert raised.value.reason == "EmptyPodSharedPoolError"
    assert state == before


def test_gates_off_admits_pod_level_pods_unaligned() -> None:
    p = policy(gates={"PodLevelResources": True, "PodLevelResourceManagers": False})
    state = started(p)
    before = state.copy()
    the_pod = pod("p4", [("a", resources(GIB))], budget=resources(2 * GIB))
    assert p.pod_hints(state, the_pod) is None
    assert p.hints(state, the_pod, "a") is None
    p.allocate_pod(state, the_pod, None)
    p.allocate(state, the_pod, "a", None)
    assert state == before
    assert p.mems_for(state, the_pod, "a") == [0, 1]


def test_container_scope_pod_level_pod() -> None:
    """Guaranteed containers get their own slice from the node; shared ones nothing (kubernetes#138770)."""
    p = policy()
    state = started(p)
    the_pod = pod("p5", [("solo", resources(GIB)), ("web", resources(GIB, shared=True))], budget=resources(4 * GIB))
    assert p.hints(state, the_pod, "web") is None
    p.allocate(state, the_pod, "web", None)
    assert state.get_blocks("p5", "web") is None
    hints = p.hints(state, the_pod, "solo")
    assert hints is not None and hints["memory"][0] == TopologyHint(Bitmask.of(0), True)
    p.allocate(state, the_pod, "solo", hints["memory"][1])
    assert sizes(state.assignments["p5"]["solo"]) == {"memory": ([1], GIB)}
    assert p.mems_for(state, the_pod, "solo") == [1]
    assert p.mems_for(state, the_pod, "web") == [0, 1]


def test_non_guaranteed_pod_is_ignored() -> None:
    p = policy()
    state = started(p)
    burstable = pod("p6", [("a", resources(GIB, shared=True))])
    assert p.pod_hints(state, burstable) is None
    p.allocate_pod(state, burstable, None)
    assert state.assignments == {}


def test_classic_pod_scope_is_all_or_nothing() -> None:
    p = policy(1, memory=4 * GIB, huge_1g=0, huge_2m=0)
    state = started(p)
    before = state.copy()
    # 3.5 GiB allocatable: the first container fits, the second does not
    the_pod = pod("p7", [("a", resources(2 * GIB)), ("b", resources(2 * GIB))])
    with pytest.raises(MemoryManagerError):
        p.allocate_pod(state, the_pod, TopologyHint(Bitmask.of(0), True))
    assert state == before


def test_system_reserved_memory_is_required() -> None:
    with pytest.raises(MemoryManagerError) as raised:
        StaticPolicy([], reserved_memory={0: {"hugepages-1Gi": GIB}})
    assert str(raised.value) == "[memorymanager] you should specify the system reserved memory"


def test_restart_restores_missing_shared_container_from_bubble() -> None:
    p = policy()
    state = started(p)
    the_pod = pod("p8", [("solo", resources(GIB)), ("web", resources(shared=True))], budget=resources(2 * GIB))
    p.allocate_pod(state, the_pod, None)
    complete = state.copy()
    state.delete("p8", "web")
    p.allocate_pod(state, the_pod, None)
    assert state == complete
