"""Static policy details not pinned by the conformance data: options, isolation, quota, removal."""

from __future__ import annotations

import pytest
from cpu_topologies import build_topology, container, make_pod

from shim.cpu import CPUState, EmptyPodSharedPoolError, PolicyOptionError, StaticPolicy
from shim.cpu.options import FeatureGates, parse_policy_options
from shim.cpuset import CPUSet

GATES = {"PodLevelResources": True, "PodLevelResourceManagers": True}
TOPO = build_topology(2, 1, 4, 2)  # 16 CPUs: NUMA 0 = cores 0-3 (cpus 0-3, 8-11)


@pytest.mark.parametrize(
    ("options", "gates", "message"),
    [
        ({"nope": "true"}, {}, 'unknown CPU Manager Policy option: "nope"'),
        (
            {"align-by-socket": "true"},
            {},
            'CPU Manager Policy Alpha-level Options not enabled, but option "align-by-socket" provided',
        ),
        (
            {"strict-cpu-reservation": "true"},
            {"CPUManagerPolicyBetaOptions": False},
            'CPU Manager Policy Beta-level Options not enabled, but option "strict-cpu-reservation" provided',
        ),
        (
            {"full-pcpus-only": "yes"},
            {},
            'bad value for option "full-pcpus-only": strconv.ParseBool: parsing "yes": invalid syntax',
        ),
        (
            {"full-pcpus-only": "true", "distribute-cpus-across-cores": "true"},
            {"CPUManagerPolicyAlphaOptions": True},
            "static policy options full-pcpus-only and distribute-cpus-across-cores can not be used at the same time",
        ),
    ],
)
def test_option_errors(options: dict[str, str], gates: dict[str, bool], message: str) -> None:
    with pytest.raises(PolicyOptionError) as raised:
        parse_policy_options(options, FeatureGates.of(gates))
    assert str(raised.value) == message


def test_maturity_table_is_configurable() -> None:
    promoted = {"strict-cpu-reservation": "ga"}
    opts = parse_policy_options(
        {"strict-cpu-reservation": "T"}, FeatureGates.of({"CPUManagerPolicyBetaOptions": False}), promoted
    )  # type: ignore[arg-type]
    assert opts.strict_cpu_reservation


def test_align_by_socket_refused_with_single_numa_node_policy() -> None:
    with pytest.raises(PolicyOptionError, match="Topolgy manager single-numa-node policy is incompatible"):
        StaticPolicy(
            TOPO,
            options={"align-by-socket": "true"},
            feature_gates={"CPUManagerPolicyAlphaOptions": True},
            topology_manager_policy="single-numa-node",
        )


def test_strict_reservation_keeps_reserved_out_of_the_default_set() -> None:
    policy = StaticPolicy(TOPO, num_reserved_cpus=2, options={"strict-cpu-reservation": "true"})
    state = CPUState()
    policy.start(state)
    assert policy.reserved_cpus == CPUSet.of([0, 8])
    assert state.default_cpuset == TOPO.all_cpus - CPUSet.of([0, 8])


def test_isolation_levels_and_quota_in_pod_scope() -> None:
    policy = StaticPolicy(TOPO, num_reserved_cpus=1, feature_gates=GATES, topology_manager_scope="pod")
    state = CPUState()
    policy.start(state)
    pod = make_pod("p", [container("gu", 2000), container("shared", None)], pod_cpus=4)
    policy.allocate_pod(state, pod, None)
    gu, shared = pod.containers
    assert policy.isolation_level(state, pod, gu) == "container"
    assert policy.isolation_level(state, pod, shared) == "pod"
    assert policy.cpu_quota(state, pod, gu) == "unlimited"
    assert policy.cpu_quota(state, pod, shared) == "limited"
    assert policy.pod_cpu_quota(state, pod) == "unlimited"
    other = make_pod("q", [container("burst", 1000, guaranteed=False)])
    assert policy.isolation_level(state, other, other.containers[0]) == "host"


def test_bubble_returns_only_with_the_last_container() -> None:
    policy = StaticPolicy(TOPO, num_reserved_cpus=1, feature_gates=GATES, topology_manager_scope="pod")
    state = CPUState()
    policy.start(state)
    pod = make_pod("p", [container("gu", 2000), container("shared", None)], pod_cpus=4)
    policy.allocate_pod(state, pod, None)
    bubble = state.pod_entries["p"]
    policy.remove_container(state, "p", "gu")
    assert state.pod_entries["p"] == bubble and not bubble & state.default_cpuset
    policy.remove_container(state, "p", "shared")
    assert "p" not in state.pod_entries
    assert state.default_cpuset == TOPO.all_cpus


def test_exclusive_slices_filling_the_budget_reject_shared_containers() -> None:
    policy = StaticPolicy(TOPO, feature_gates=GATES, topology_manager_scope="pod")
    state = CPUState()
    policy.start(state)
    pod = make_pod("p", [container("a", 3000), container("b", 2000), container("c", None)], pod_cpus=5)
    before = state.copy()
    with pytest.raises(EmptyPodSharedPoolError):
        policy.allocate_pod(state, pod, None)
    assert state == before
    assert policy.pod_hints(state, pod) == {"cpu": []}


def test_hint_aligned_bubble() -> None:
    from shim.topology_manager import Bitmask, TopologyHint

    policy = StaticPolicy(TOPO, feature_gates=GATES, topology_manager_scope="pod")
    state = CPUState()
    policy.start(state)
    pod = make_pod("p", [container("a", None)], pod_cpus=4)
    policy.allocate_pod(state, pod, TopologyHint(Bitmask.of(1), True))
    assert {TOPO.details[cpu].numa for cpu in state.pod_entries["p"]} == {1}
