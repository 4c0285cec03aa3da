"""The daemon with the real actors: hook events pin real (fake-tree) cgroups, the reconcile
loop re-pins and releases, a restart restores and reconciles, metrics are scraped over HTTP."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import trio
from daemon_world import World, call, pod

from shim.cpuset import CPUSet
from shim.frontends.client import RequestFailed
from shim.frontends.metrics import serve_metrics
from shim.frontends.protocol import HookEvent


def create(uid: str, container: str, cgroup: str, pid: int | None = None) -> HookEvent:
    return HookEvent(stage="createRuntime", pod_uid=uid, container=container, cgroup=cgroup, pid=pid)


def poststop(uid: str, container: str) -> HookEvent:
    return HookEvent(stage="poststop", pod_uid=uid, container=container)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


async def test_create_pins_and_poststop_releases(world: World) -> None:
    cgroup = world.cgroups.make("/kubepods/poda/app")
    async with world.running():
        with world.client() as client:
            answer = await call(client.admit, [pod("a", {"app": "2"})])
            assert answer["pods"][0]["admitted"] is True
            pinned = await call(client.hook, create("a", "app", cgroup))
            assert pinned["action"] == "pinned" and pinned["isolation"] == "container"
            assert pinned["cpu_quota"] == "unlimited"
            assert world.cgroups.cpus(cgroup) == pinned["cpus"] == answer["pods"][0]["containers"][0]["cpus"]
            assert world.cgroups.quota(cgroup) == "-1"
            assert len(CPUSet.parse(pinned["cpus"])) == 2
            assert world.registry()["pods"]["a"]["containers"]["app"]["cgroup"] == cgroup
            released = await call(client.hook, poststop("a", "app"))
            assert released == {"action": "released", "pod_uid": "a", "container": "app"}
    assert "a" not in world.cpu_state().get("entries", {})
    assert world.cpu_state()["defaultCpuSet"] == "0-7"
    # The pod stays known (still admitted) with no pinned container.
    assert world.registry()["pods"]["a"]["containers"] == {}


async def test_hook_admits_from_pod_dir_rejects_and_skips(world: World) -> None:
    (world.pod_dir / "web.json").write_text(json.dumps(pod("w", {"app": "3"})))
    (world.pod_dir / "huge.json").write_text(json.dumps(pod("h", {"app": "64"})))
    cgroup = world.cgroups.make("/kubepods/podw/app")
    async with world.running() as daemon:
        with world.client() as client:
            pinned = await call(client.hook, create("w", "app", cgroup))
            assert pinned["action"] == "pinned" and len(CPUSet.parse(pinned["cpus"])) == 3
            rejected = await call(client.hook, create("h", "app", world.cgroups.make("/kubepods/podh/app")))
            assert rejected["action"] == "rejected"
            assert rejected["reason"] == "UnexpectedAdmissionError"
            assert "not enough cpus available to satisfy request" in rejected["message"]
            unknown = await call(client.hook, create("nobody", "app", "/x"))
            assert unknown["action"] == "skipped" and "not known" in unknown["detail"]
            other = await call(client.hook, create("w", "sidecar", cgroup))
            assert other["action"] == "skipped"
            sandbox = HookEvent(stage="createRuntime", annotations={
                "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-uid": "w"})
            assert (await call(client.hook, sandbox))["action"] == "skipped"
            stop_unknown = await call(client.hook, poststop("nobody", "app"))
            assert stop_unknown["action"] == "skipped"
            with pytest.raises(RequestFailed, match="bad_request: createRuntime of w/app: no cgroup given"):
                await call(client.hook, HookEvent(stage="createRuntime", pod_uid="w", container="app"))
    assert daemon.metrics is not None
    assert daemon.metrics.value("podshim_hook_events_total", {"stage": "createRuntime", "action": "pinned"}) == 1
    assert daemon.metrics.value("podshim_hook_events_total", {"stage": "createRuntime", "action": "rejected"}) == 1
    assert daemon.metrics.value("podshim_hook_events_total", {"stage": "createRuntime", "action": "failed"}) == 1


async def test_apply_failure_is_an_error(world: World) -> None:
    async with world.running():
        with world.client() as client:
            await call(client.admit, [pod("a", {"app": "1"})])
            with pytest.raises(RequestFailed, match=r"apply_failed: .*does not exist \(errno 2\)"):
                await call(client.hook, create("a", "app", "/kubepods/never-created"))
            # The container never runs, so its exclusive CPU went back to the shared pool, and
            # the registry (written while the pin was tried) does not list it.
            state = await call(client.state)
            assert all(entry["uid"] != "a" for entry in state["pods"]), state["pods"]
            assert state["free"]["shared_cpus"] == "0-7"
            assert world.registry()["pods"]["a"]["containers"] == {}


async def test_failed_rerun_keeps_the_running_containers_record(world: World) -> None:
    cgroup = world.cgroups.make("/kubepods/poda/app")
    async with world.running():
        with world.client() as client:
            await call(client.admit, [pod("a", {"app": "1"})])
            pinned = await call(client.hook, create("a", "app", cgroup))
            with pytest.raises(RequestFailed, match=r"apply_failed: "):
                await call(client.hook, create("a", "app", "/kubepods/never-created"))
            record = world.registry()["pods"]["a"]["containers"]["app"]
            assert record["cgroup"] == cgroup and record["cpus"] == pinned["cpus"]
            assert world.cpu_state()["entries"]["a"]["app"] == pinned["cpus"]  # it still runs there


async def test_shared_container_follows_the_pool(world: World) -> None:
    shared = world.cgroups.make("/kubepods/pods/app")
    async with world.running() as daemon:
        with world.client() as client:
            await call(client.admit, [pod("s", {"app": None})])
            pinned = await call(client.hook, create("s", "app", shared))
            assert pinned["cpus"] == "0-7" and pinned["isolation"] == "host"
            answer = await call(client.admit, [pod("x", {"app": "4"})])
            exclusive = CPUSet.parse(answer["pods"][0]["containers"][0]["cpus"])
            report = await daemon.reconciler.run_once(full=False)
            assert [(t.key, why) for t, why in report.reapplied] == [(("s", "app"), "assignment changed")]
            assert CPUSet.parse(world.cgroups.cpus(shared)) == CPUSet.parse("0-7") - exclusive
            # A container created after the pool shrank gets the pool as it is now.
            late = world.cgroups.make("/kubepods/pods/late")
            await call(client.admit, [pod("s2", {"late": None})])
            late_pin = await call(client.hook, create("s2", "late", late))
            assert CPUSet.parse(late_pin["cpus"]) == CPUSet.parse("0-7") - exclusive
            await call(client.remove, "x")
            await daemon.reconciler.run_once(full=False)
            assert world.cgroups.cpus(shared) == "0-7" and world.cgroups.cpus(late) == "0-7"


async def test_full_pass_repins_drift_and_releases_gone_cgroups(world: World) -> None:
    a = world.cgroups.make("/kubepods/poda/app")
    b = world.cgroups.make("/kubepods/podb/app")
    async with world.running() as daemon:
        with world.client() as client:
            await call(client.admit, [pod("a", {"app": "2"}), pod("b", {"app": "2"})])
            pin_a = await call(client.hook, create("a", "app", a))
            await call(client.hook, create("b", "app", b))
            world.cgroups.drift(a, "0-7")
            world.cgroups.remove(b)
            report = await daemon.reconciler.run_once(full=True)
            assert [(t.key, why) for t, why in report.reapplied] == [(("a", "app"), "drifted")]
            assert [t.key for t in report.released] == [("b", "app")]
            assert world.cgroups.cpus(a) == pin_a["cpus"]
            state = await call(client.state)
            # b's CPUs are back in the shared pool; a keeps its own.
            assert [c["name"] for p in state["pods"] for c in p["containers"]] == ["app"]
            assert CPUSet.parse(state["free"]["shared_cpus"]) == CPUSet.parse("0-7") - CPUSet.parse(pin_a["cpus"])
            nothing = await daemon.reconciler.run_once(full=True)
            assert nothing.reapplied == [] and nothing.released == []
    assert daemon.metrics is not None
    assert daemon.metrics.value("podshim_reconcile_reapplied_total") == 1
    assert daemon.metrics.value("podshim_reconcile_released_total") == 1
    actions = [(e["action"], e["pod_uid"]) for e in world.events("reconcile")]
    assert ("reapplied", "a") in actions and ("released", "b") in actions


async def test_restart_restores_and_reconciles(world: World) -> None:
    a = world.cgroups.make("/kubepods/poda/app")
    b = world.cgroups.make("/kubepods/podb/app")
    async with world.running():
        with world.client() as client:
            await call(client.admit, [pod("a", {"app": "2"}), pod("b", {"app": "2"}), pod("c", {"app": "1"})])
            pin_a = await call(client.hook, create("a", "app", a))
            await call(client.hook, create("b", "app", b))
            before = await call(client.state)
    # While the daemon is down: a is overwritten, b exits without its poststop.
    world.cgroups.drift(a, "0-7")
    world.cgroups.remove(b)
    async with world.running() as daemon:
        assert world.cgroups.cpus(a) == pin_a["cpus"]
        with world.client() as client:
            after = await call(client.state)
            # c never had a container: it was restored from the registry, not re-allocated.
            cpus = {p["uid"]: [c["cpus"] for c in p["containers"]] for p in after["pods"]}
            old = {p["uid"]: [c["cpus"] for c in p["containers"]] for p in before["pods"]}
            assert cpus == {"a": old["a"], "c": old["c"]}
            c_cgroup = world.cgroups.make("/kubepods/podc/app")
            pinned = await call(client.hook, create("c", "app", c_cgroup))
            assert pinned["cpus"] == old["c"][0]
    assert daemon.metrics is not None
    assert daemon.metrics.value("podshim_reconcile_reapplied_total") == 1
    assert daemon.metrics.value("podshim_reconcile_released_total") == 1
    assert world.events("restore")[-1]["released"] == 1


async def test_metrics_scraped_over_http(world: World) -> None:
    cgroup = world.cgroups.make("/kubepods/poda/app")
    async with world.running() as daemon:
        assert daemon.metrics is not None
        server = serve_metrics(daemon.metrics, "127.0.0.1", 0)
        try:
            with world.client() as client:
                await call(client.admit, [pod("a", {"app": "2"}), pod("big", {"app": "32"})])
                await call(client.hook, create("a", "app", cgroup))
                world.cgroups.drift(cgroup, "0-7")
                await daemon.reconciler.run_once(full=True)
            url = f"http://127.0.0.1:{server.port}/metrics"
            text = await call(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
        finally:
            server.close()
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    assert samples["podshim_topology_manager_admission_requests_total"] == 2
    assert samples["podshim_topology_manager_admission_errors_total"] == 1
    assert samples["podshim_cpu_manager_pinning_requests_total"] == 2
    assert samples["podshim_cpu_manager_pinning_errors_total"] == 1
    assert samples['podshim_hook_events_total{action="pinned",stage="createRuntime"}'] == 1
    assert samples["podshim_reconcile_reapplied_total"] == 1
    assert samples["podshim_reconcile_released_total"] == 0
    assert samples['podshim_reconcile_passes_total{kind="full"}'] >= 2  # the restore's and ours


async def test_reconcile_timer_runs_on_trio_clock(world: World, autojump_clock: trio.testing.MockClock) -> None:
    cgroup = world.cgroups.make("/kubepods/poda/app")
    async with world.running(reconcile=True) as daemon:
        with world.client() as client:
            await call(client.admit, [pod("a", {"app": "2"})])
            pinned = await call(client.hook, create("a", "app", cgroup))
        world.cgroups.drift(cgroup, "0-7")
        passes = daemon.reconciler.passes
        # Two passes complete: the second surely began after the drift (the clock jumps
        # while a pass waits for its worker thread, so count passes, not seconds).
        while daemon.reconciler.passes < passes + 2:
            await trio.sleep(1)
        assert world.cgroups.cpus(cgroup) == pinned["cpus"]
    assert daemon.reconciler.period == 10.0  # the config's cpuManagerReconcilePeriod
    assert daemon.metrics is not None and daemon.metrics.value("podshim_reconcile_reapplied_total") == 1
