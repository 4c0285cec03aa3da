"""Properties of the static policy over random machines and random pod mixes (pod scope).

After every admission: exclusive slices never overlap, pod bubbles never overlap, every pod's
shared pool is its bubble minus its long-lived exclusive slices, and default set, assignments and
pod entries together are exactly the machine. A rejected pod changes nothing, and removing every
container in any order gives back the started state.
"""

from __future__ import annotations

from cpu_topologies import container, make_pod, topologies
from hypothesis import given, settings
from hypothesis import strategies as st

from shim.cpu import CPUManagerError, CPUState, StaticPolicy
from shim.cpuset import CPUSet
from shim.pod import Pod

GATES = {"PodLevelResources": True, "PodLevelResourceManagers": True}


@st.composite
def classic_pods(draw: st.DrawFn, uid: str) -> Pod:
    inits = [container(f"i{n}", draw(st.integers(1, 3)) * 1000, kind=draw(st.sampled_from(["init", "sidecar"])))
             for n in range(draw(st.integers(0, 2)))]
    apps = [container(f"a{n}", draw(st.integers(1, 4)) * 1000, guaranteed=draw(st.booleans()) or n == 0)
            for n in range(draw(st.integers(1, 3)))]
    return make_pod(uid, apps, inits)


@st.composite
def pod_level_pods(draw: st.DrawFn, uid: str) -> Pod:
    budget = draw(st.integers(1, 8))

    def member(name: str, kind: str) -> dict[str, object]:
        exclusive = draw(st.booleans())
        return container(name, draw(st.integers(1, 3)) * 1000 if exclusive else None, kind=kind)

    inits = [member(f"i{n}", draw(st.sampled_from(["init", "sidecar"]))) for n in range(draw(st.integers(0, 2)))]
    apps = [member(f"a{n}", "app") for n in range(draw(st.integers(1, 3)))]
    return make_pod(uid, apps, inits, pod_cpus=budget)


def check_invariants(policy: StaticPolicy, state: CPUState, pods: dict[str, Pod]) -> None:
    all_cpus = policy.all_cpus()
    union = state.default_cpuset
    owned = CPUSet()  # CPUs held by some pod: bubbles and classic exclusive CPUs
    for uid, containers in state.assignments.items():
        pod = pods[uid]
        held = CPUSet().union(*containers.values())
        union = union | held
        bubble = state.pod_entries.get(uid)
        if bubble is not None:
            assert held.is_subset_of(bubble)
            held = bubble
            long_lived = [containers[c.name] for c in pod.all_containers()
                          if c.kind != "init" and policy.guaranteed_cpus(pod, c) > 0]
            for i, first in enumerate(long_lived):
                for second in long_lived[i + 1:]:
                    assert not first & second
            pool = bubble - CPUSet().union(*long_lived)
            for c in pod.all_containers():
                if c.kind != "init" and policy.guaranteed_cpus(pod, c) == 0:
                    assert containers[c.name] == pool
        assert not held & state.default_cpuset
        assert not held & owned, "two pods hold the same CPU"
        owned = owned | held
    for cpus in state.pod_entries.values():
        union = union | cpus
    assert union == all_cpus


def _hint(policy: StaticPolicy, state: CPUState, pod: Pod):  # type: ignore[no-untyped-def]
    hints = policy.pod_hints(state, pod)
    if not hints or not hints["cpu"]:
        return None
    preferred = [h for h in hints["cpu"] if h.preferred]
    return (preferred or hints["cpu"])[0]


@settings(max_examples=60)
@given(st.data())
def test_admissions_keep_invariants_and_removal_restores_start(data: st.DataObject) -> None:
    topo = data.draw(topologies(max_numa=8))
    options = data.draw(st.sampled_from([{}, {"full-pcpus-only": "true"}, {"distribute-cpus-across-numa": "true"}]))
    reserve = data.draw(st.integers(0, min(2, topo.num_cpus - 1)))
    policy = StaticPolicy(topo, num_reserved_cpus=reserve, options=options, feature_gates=GATES,
                          topology_manager_scope="pod")
    state = CPUState()
    policy.start(state)
    start = state.copy()
    pods: dict[str, Pod] = {}
    for n in range(data.draw(st.integers(1, 6))):
        uid = f"pod{n}"
        pod = data.draw(st.one_of(classic_pods(uid), pod_level_pods(uid)))
        before = state.copy()
        reuse_before = dict(policy.cpus_to_reuse)
        try:
            policy.allocate_pod(state, pod, _hint(policy, state, pod))
        except CPUManagerError:
            assert state == before, "a rejected pod changed the state"
            policy.cpus_to_reuse = reuse_before
            continue
        pods[uid] = pod
        check_invariants(policy, state, pods)
    removals = [(uid, c.name) for uid, pod in pods.items() for c in pod.all_containers()]
    for uid, name in data.draw(st.permutations(removals)):
        policy.remove_container(state, uid, name)
    assert state == start
