"""``podshim serve`` end to end with real runc: busybox containers whose createRuntime/poststop
hooks run ``podshim hook --socket`` (client mode), real cgroups, this machine's topology.

One daemon serves a pod directory: a pod-level pod's Guaranteed container gets an exclusive
CPU (seen from inside the container and in its cgroup files), a shared-pool container of
another pod runs beside it, is pinned back by the periodic reconcile pass when its cpuset
drifts, and widens when the exclusive container stops; a rejected pod's container never runs;
``podshim state --socket`` shows everything released; SIGTERM exits 0 leaving state files the
kubelet's decoders accept; a shared container whose pool widened has its threads widened
too (since Linux 6.2 a sched_setaffinity mask survives cpuset changes, so every re-pin sets the
threads' affinity again). Needs root, runc, a static /bin/busybox, cgroup cpuset and at least
2 CPUs (the config reserves CPU 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_runc_support import DaemonLab, wait_for
from hook_runc_support import (
    add_scenario_pods,
    check_exclusive_main,
    container_resources,
    pod_manifest,
    require_runc_host,
    root_cpus,
)

from shim.cpu import checkpoint as cpu_checkpoint
from shim.cpuset import CPUSet
from shim.memory import checkpoint as memory_checkpoint

pytestmark = pytest.mark.integration

SETTLE = 15.0
"""Upper bound (seconds) for the daemon to act on its own (reconcile); the usual is < 2."""


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[DaemonLab]:
    require_runc_host()
    world = DaemonLab(tmp_path)
    try:
        yield world
    finally:
        world.close()


def _write_cpus(lab: DaemonLab, container_id: str, cpus: CPUSet) -> None:
    (lab.cgroup_dir("cpuset", container_id) / "cpuset.cpus").write_text(str(cpus))


def test_daemon_pins_reconciles_rejects_and_releases(lab: DaemonLab) -> None:
    everything = root_cpus()
    shared_uid, excl_uid, big_uid = add_scenario_pods(lab, "itd")
    lab.start_daemon()

    # (a) The pod-level pod's Guaranteed container: one exclusive CPU, never the reserved 0.
    main = lab.run(excl_uid, "main")
    assert main.ready, main.stop() or main.stderr
    exclusive = check_exclusive_main(lab, main, excl_uid)
    assert lab.task_cpus(main.id) == {exclusive}
    record = lab.registry()["pods"][excl_uid]["containers"]["main"]
    assert record["cpus"] == str(exclusive)
    assert record["cgroup"] == f"{lab.parent}/{main.id}"

    # (b) A Burstable pod's container on the shared pool: everything but the exclusive CPU.
    shared = everything - exclusive
    web = lab.run(shared_uid, "web")
    assert web.ready, web.stop() or web.stderr
    assert web.cpus() == shared == lab.cpuset_cpus(web.id)
    assert lab.quota(web.id) == "20000"  # limit 200m of a 100 ms period
    with lab.client() as client:
        snapshot = client.state()
    assert CPUSet.parse(snapshot["free"]["shared_cpus"]) == shared
    # Someone overwrites the container's cpuset: only the periodic full pass (1 s) reads the
    # cgroup files, so the re-pin proves the config's reconcile period drives the loop.
    _write_cpus(lab, web.id, everything)
    assert wait_for(lambda: lab.cpuset_cpus(web.id) == shared, SETTLE), lab.cpuset_cpus(web.id)
    repins = wait_for(
        lambda: [
            (e["action"], e["why"], e["container"], e["cpus"])
            for e in lab.events("reconcile")
            if e["pod_uid"] == shared_uid and e.get("why") == "drifted"
        ],
        SETTLE,
    )
    assert repins == [("reapplied", "drifted", "web", str(shared))], lab.log_text()

    # (c) A rejected pod: runc fails the create, the container never prints anything.
    hog = lab.run(big_uid, "hog")
    code = hog.stop()
    assert not hog.ready and hog.status == {}
    assert code != 0
    rejection = [line for line in hog.stderr.splitlines() if "podshim hook:" in line]
    assert rejection, hog.stderr
    assert f"pod {big_uid} rejected: UnexpectedAdmissionError: " in rejection[0]
    assert "not enough cpus available to satisfy request" in rejection[0]
    assert big_uid not in lab.cpu_state().get("entries", {})
    assert big_uid not in lab.registry()["pods"]
    assert lab.cpuset_cpus(web.id) == shared and main.process.poll() is None  # nobody else moved

    # The exclusive container stops: its CPU and the pod's bubble return, the reconcile widens web.
    assert main.stop() == 0, main.stderr
    state = lab.cpu_state()
    assert excl_uid not in state.get("entries", {}) and excl_uid not in state.get("podEntries", {})
    assert CPUSet.parse(state["defaultCpuSet"]) == everything
    assert wait_for(lambda: lab.cpuset_cpus(web.id) == everything, SETTLE), lab.cpuset_cpus(web.id)
    assert lab.quota(web.id) == "20000"

    # (Whether web's processes may use the widened pool too: test_widened_pool_reaches_the_tasks.)
    # The registry is saved just after the cgroup write: poll it too.
    def web_cpus() -> str:
        return str(lab.registry()["pods"][shared_uid]["containers"]["web"]["cpus"])

    assert wait_for(lambda: web_cpus() == str(everything), SETTLE), web_cpus()
    assert web.stop() == 0, web.stderr

    # (d) Everything stopped: no pod holds CPUs or memory, the whole node is free again.
    document = lab.state_cli()
    assert document["pods"] == []
    assert CPUSet.parse(document["free"]["shared_cpus"]) == everything
    assert document["free"]["memory"] and all(m["free"] == m["allocatable"] for m in document["free"]["memory"])
    assert all(not pod["containers"] for pod in lab.registry()["pods"].values())

    # (e) SIGTERM: exit 0, socket removed, state files the kubelet's decoders accept.
    assert lab.stop_daemon() == 0, lab.log_text()
    assert not Path(lab.socket).exists()
    cpu = cpu_checkpoint.decode(lab.state_dir.joinpath("cpu_manager_state").read_text(), "static")
    assert cpu.default_cpuset == everything and cpu.assignments == {} and cpu.pod_entries == {}
    memory = memory_checkpoint.decode(lab.state_dir.joinpath("memory_manager_state").read_text(), "Static")
    assert memory.assignments == {} and memory.pod_entries == {}
    assert all(t.free == t.allocatable for n in memory.machine_state.values() for t in n.memory_map.values())


def test_widened_pool_reaches_the_tasks(lab: DaemonLab) -> None:
    everything = root_cpus()
    shared_uid, excl_uid, _ = add_scenario_pods(lab, "itw")
    lab.start_daemon()
    main = lab.run(excl_uid, "main")
    assert main.ready, main.stop() or main.stderr
    web = lab.run(shared_uid, "web")  # pinned while CPU 1 is exclusive: affinity and cpuset narrow
    assert web.ready, web.stop() or web.stderr
    shared = everything - main.cpus()
    assert web.cpus() == shared == lab.cpuset_cpus(web.id)
    assert main.stop() == 0, main.stderr
    assert wait_for(lambda: lab.cpuset_cpus(web.id) == everything, SETTLE), lab.cpuset_cpus(web.id)
    # What the kernel lets web's threads use, not just what its cgroup file says (the same
    # re-pin sets both: a short poll covers the moment between the two writes).
    assert wait_for(lambda: lab.task_cpus(web.id) == {everything}, 3.0), lab.task_cpus(web.id)


def test_unmanaged_container_runs_and_daemon_down_fails_closed(lab: DaemonLab) -> None:
    uid = "itd-down-0004"
    lab.add_pod(pod_manifest("down", uid, [{"name": "app", "resources": container_resources("1", "50Mi")}]))
    lab.start_daemon()
    # A pod uid the daemon has no spec for: skipped, the container runs as runc made it.
    stranger = lab.run("itd-not-in-pod-dir", "c")
    assert stranger.ready, stranger.stop() or stranger.stderr
    assert stranger.cpus() == root_cpus()
    assert stranger.stop() == 0, stranger.stderr

    # Without a daemon (and no --state-dir to fall back on) a managed container must not start.
    assert lab.stop_daemon() == 0, lab.log_text()
    app = lab.run(uid, "app")
    code = app.stop()
    assert not app.ready and code != 0
    assert f"podshim daemon not reachable at {lab.socket}" in app.stderr
