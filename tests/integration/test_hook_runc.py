"""``podshim hook`` as real runc createRuntime/poststop hooks, busybox containers, real cgroups.

Each container prints its own Cpus_allowed_list / Mems_allowed_list and waits; the test checks
those against the state files podshim wrote, the host's cgroup files (cpuset, CFS quota), the
registry re-apply of shared-pool containers, the rejection path (the container never runs) and
the release when containers stop. Needs root, runc, a static /bin/busybox, cgroup cpuset and at
least 2 CPUs (the config reserves CPU 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hook_runc_support import (
    Lab,
    add_scenario_pods,
    check_exclusive_main,
    container_resources,
    pod_manifest,
    require_runc_host,
    root_cpus,
)

from shim.cpuset import CPUSet

pytestmark = pytest.mark.integration

MI = 1024 * 1024


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    require_runc_host()
    world = Lab(tmp_path)
    try:
        yield world
    finally:
        world.close()


def test_exclusive_shared_and_rejected_pods(lab: Lab) -> None:
    everything = root_cpus()
    shared_uid, excl_uid, big_uid = add_scenario_pods(lab, "it")

    # 1. A Burstable pod on the shared pool: all CPUs (nothing exclusive yet), quota 200m.
    web = lab.run(shared_uid, "web")
    assert web.ready, web.stop() or web.stderr
    assert web.cpus() == everything == lab.cpuset_cpus(web.id)
    assert lab.quota(web.id) == "20000"
    assert CPUSet.parse(lab.cpu_state()["defaultCpuSet"]) == everything

    # 2. A pod-level pod whose Guaranteed container takes one exclusive CPU (not the reserved 0).
    main = lab.run(excl_uid, "main")
    assert main.ready, main.stop() or main.stderr
    exclusive = check_exclusive_main(lab, main, excl_uid)
    state = lab.cpu_state()
    # ...and the shared container was moved off it (no reconcile loop: the registry did it).
    shrunk = CPUSet.parse(state["defaultCpuSet"])
    assert shrunk == everything - exclusive
    assert lab.cpuset_cpus(web.id) == shrunk
    assert lab.task_cpus(web.id) == {shrunk}
    assert lab.registry()["pods"][shared_uid]["containers"]["web"]["cpus"] == str(shrunk)

    # 3. A rejected pod: runc fails the create, the container never prints anything.
    hog = lab.run(big_uid, "hog")
    code = hog.stop()
    assert not hog.ready and hog.status == {}
    assert code != 0
    assert "rejected" in hog.stderr and big_uid in hog.stderr
    assert big_uid not in lab.cpu_state().get("entries", {})
    assert big_uid not in lab.registry()["pods"]

    # 4. The exclusive container stops: its CPU and the pod's bubble return; web widens again.
    assert main.stop() == 0, main.stderr
    state = lab.cpu_state()
    assert excl_uid not in state.get("entries", {}) and excl_uid not in state.get("podEntries", {})
    assert CPUSet.parse(state["defaultCpuSet"]) == everything
    assert excl_uid not in lab.state("memory_manager_state").get("entries", {})
    assert lab.cpuset_cpus(web.id) == everything
    assert excl_uid not in lab.registry()["pods"]

    assert web.stop() == 0, web.stderr
    assert lab.registry()["pods"] == {}


def test_pod_shared_pool_released_with_last_container(lab: Lab) -> None:
    uid = "it-podpool-0004"
    # Pod-level budget of 1 CPU, two containers without requests: both on the pod shared pool.
    lab.add_pod(pod_manifest("pool", uid, [{"name": "a"}, {"name": "b"}], container_resources("1", "100Mi")))
    first = lab.run(uid, "a")
    assert first.ready, first.stop() or first.stderr
    second = lab.run(uid, "b")
    assert second.ready, second.stop() or second.stderr
    bubble = CPUSet.parse(lab.cpu_state()["podEntries"][uid]["cpuSet"])
    assert len(bubble) == 1 and 0 not in bubble
    for running in (first, second):
        assert running.cpus() == bubble == lab.cpuset_cpus(running.id)

    assert first.stop() == 0, first.stderr
    assert CPUSet.parse(lab.cpu_state()["podEntries"][uid]["cpuSet"]) == bubble  # b still runs

    assert second.stop() == 0, second.stderr
    state = lab.cpu_state()
    assert uid not in state.get("podEntries", {}) and uid not in state.get("entries", {})
    assert CPUSet.parse(state["defaultCpuSet"]) == root_cpus()


def test_unmanaged_container_runs_untouched(lab: Lab) -> None:
    # Annotated with a pod uid podshim has no spec for: the hook must let it run as is.
    stranger = lab.run("not-in-pod-dir", "c")
    assert stranger.ready, stranger.stop() or stranger.stderr
    assert stranger.cpus() == root_cpus()
    assert stranger.stop() == 0, stranger.stderr
    assert not lab.state_dir.exists()


def test_podshim_runc_adds_the_hooks(lab: Lab) -> None:
    # containerd's way: runc through the wrapper, no hooks in the bundle's config.json.
    uid = "it-wrapped-0005"
    lab.add_pod(pod_manifest("wrapped", uid, [{"name": "main", "resources": container_resources("1", "50Mi")}],
                             container_resources("1", "100Mi")))
    main = lab.run(uid, "main", wrapper=True)
    assert main.ready, main.stop() or main.stderr
    exclusive = check_exclusive_main(lab, main, uid)
    assert lab.registry()["pods"][uid]["containers"]["main"]["cpus"] == str(exclusive)
    assert main.stop() == 0, main.stderr
    assert uid not in lab.cpu_state().get("entries", {})

