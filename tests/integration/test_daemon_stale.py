"""Pods the state files hold but nothing else knows (issue #8): the daemon releases them.

The kubelet's ``removeStaleState`` releases every assignment whose pod is not an active pod. For
the daemon the active pods are those of its registry (admitted over the socket, by a hook, or
from ``--pod-dir``); a pod in ``cpu_manager_state``/``memory_manager_state`` that is not in the
registry and whose kubelet pod cgroup does not exist is released at start-up and on every full
reconcile pass, logged and counted like the other reconcile releases.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from daemon_world import World, call, pod

from shim.cpuset import CPUSet
from shim.frontends.podwatch import PodWatcher
from shim.frontends.protocol import HookEvent
from shim.frontends.server import Daemon, run_daemon


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def drop_from_registry(world: World, *uids: str) -> None:
    """What a crash between the state write and the registry write leaves (or a registry that
    was moved aside): the pods stay in the state files only."""
    path = world.state_dir / "podshim_containers.json"
    document = json.loads(path.read_text())
    for uid in uids:
        del document["pods"][uid]
    path.write_text(json.dumps(document))


def exclusive(world: World) -> dict[str, dict[str, str]]:
    entries: dict[str, dict[str, str]] = world.cpu_state().get("entries", {})
    return entries


async def admit(world: World, *pods: dict[str, object]) -> None:
    with world.client() as client:
        answer = await call(client.admit, list(pods))
    assert all(result["admitted"] for result in answer["pods"]), answer


async def test_a_pod_only_in_the_state_files_is_released_at_start_up(world: World) -> None:
    async with world.running():
        await admit(world, pod("ghost", {"app": "2"}), pod("kept", {"app": "3"}))
    assert set(exclusive(world)) == {"ghost", "kept"}
    drop_from_registry(world, "ghost")

    async with world.running() as daemon:
        with world.client() as client:
            state = await call(client.state)
        assert daemon.metrics is not None
        assert daemon.metrics.value("podshim_reconcile_released_total") == 1
    assert [p["uid"] for p in state["pods"]] == ["kept"]
    assert set(exclusive(world)) == {"kept"}
    kept = CPUSet.parse(exclusive(world)["kept"]["app"])
    assert CPUSet.parse(world.cpu_state()["defaultCpuSet"]) == CPUSet.parse("0-7") - kept
    [released] = [e for e in world.events("reconcile") if e["action"] == "released"]
    assert released["pod_uid"] == "ghost" and released["why"] == "not an active pod"
    restore = [e for e in world.events("restore") if e["action"] == "done"]
    assert restore[-1]["released_pods"] == ["ghost"]


async def test_a_stale_pod_whose_pod_cgroup_lives_is_kept(world: World) -> None:
    async with world.running():
        await admit(world, pod("running", {"app": "2"}))
    drop_from_registry(world, "running")
    world.cgroups.make("/kubepods/podrunning/abc")  # its containers still run: never free their CPUs

    async with world.running() as daemon:
        assert "running" in exclusive(world)
        assert daemon.metrics is not None and daemon.metrics.value("podshim_reconcile_released_total") == 0
        kept = [e for e in world.events("reconcile") if e["action"] == "kept"]
        assert [(e["pod_uid"], e["why"]) for e in kept] == [("running", "pod cgroup /kubepods/podrunning exists")]

        world.cgroups.remove("/kubepods/podrunning/abc")
        world.cgroups.remove("/kubepods/podrunning")
        await daemon.reconciler.run_once(full=True)
        assert "running" not in exclusive(world)
        assert daemon.metrics.value("podshim_reconcile_released_total") == 1
    assert world.cpu_state()["defaultCpuSet"] == "0-7"


async def test_systemd_pod_cgroups_count_as_live_too(world: World) -> None:
    uid = "1234-abcd"
    async with world.running():
        await admit(world, pod(uid, {"app": "2"}))
    drop_from_registry(world, uid)
    world.cgroups.make("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_abcd.slice")
    async with world.running():
        assert uid in exclusive(world)


async def test_registered_pods_and_their_live_containers_are_untouched(world: World) -> None:
    cgroup = world.cgroups.make("/kubepods/podlive/app")
    async with world.running():
        await admit(world, pod("live", {"app": "2"}), pod("waiting", {"app": "1"}))
        with world.client() as client:
            await call(client.hook, HookEvent(stage="createRuntime", pod_uid="live", container="app", cgroup=cgroup))
    before = exclusive(world)
    async with world.running() as daemon:
        report = await daemon.reconciler.run_once(full=True)
        assert report.released == [] and report.released_pods == []
    assert exclusive(world) == before


async def test_quick_passes_never_release_stale_pods(world: World) -> None:
    async with world.running():
        await admit(world, pod("ghost", {"app": "2"}))
    drop_from_registry(world, "ghost")
    daemon = world.open()
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.runtime.run)
        report = await daemon.reconciler.run_once(full=False)
        assert report.released_pods == []
        assert "ghost" in {p["uid"] for p in daemon.runtime.snapshot["pods"]}
        daemon.runtime.close()


@asynccontextmanager
async def running_with_pod_dir(world: World) -> AsyncIterator[Daemon]:
    """The daemon with its ``--pod-dir`` watcher (scanning at start-up only: the timer is an hour)."""
    daemon = world.open()
    watcher = PodWatcher(world.pod_dir, daemon, interval=3600, in_thread=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_daemon(daemon, world.socket, podwatch=watcher,
                                                           handle_signals=False, reconcile=False,
                                                           task_status=task_status))
        yield daemon
        daemon.shutdown()


async def test_a_pod_dir_pod_deleted_while_down_is_released(world: World) -> None:
    (world.pod_dir / "gone.json").write_text(json.dumps(pod("gone", {"app": "2"})))
    (world.pod_dir / "stays.json").write_text(json.dumps(pod("stays", {"app": "1"})))
    (world.pod_dir / "best-effort.json").write_text(json.dumps(pod("shared", {"app": None})))
    async with running_with_pod_dir(world):
        with world.client() as client:
            await admit(world, pod("socket", {"app": "1"}))  # no file: the registry is its source
            await call(client.remove, "socket", "app")  # its container came and went
    assert set(exclusive(world)) == {"gone", "stays"}
    assert world.registry()["pod_dir_pods"] == ["gone", "shared", "stays"]
    (world.pod_dir / "gone.json").unlink()
    (world.pod_dir / "best-effort.json").unlink()

    async with running_with_pod_dir(world) as daemon:
        assert set(exclusive(world)) == {"stays", "socket"}  # the socket pod is still admitted
        assert daemon.metrics is not None and daemon.metrics.value("podshim_reconcile_released_total") == 2
    assert set(world.registry()["pods"]) == {"stays", "socket"}
    assert world.registry()["pod_dir_pods"] == ["stays"]
    released = [e["pod_uid"] for e in world.events("reconcile") if e["action"] == "released"]
    assert released == ["gone", "shared"]


async def test_a_pod_dir_pod_with_a_live_container_is_kept_without_its_file(world: World) -> None:
    (world.pod_dir / "web.json").write_text(json.dumps(pod("web", {"app": "2"})))
    cgroup = world.cgroups.make("/scratch/web-app")  # not a kubelet layout: only the registry knows it
    async with running_with_pod_dir(world):
        with world.client() as client:
            pinned = await call(client.hook, HookEvent(stage="createRuntime", pod_uid="web", container="app",
                                                       cgroup=cgroup))
            assert pinned["action"] == "pinned"
    (world.pod_dir / "web.json").unlink()
    async with running_with_pod_dir(world) as daemon:
        assert "web" in exclusive(world)
        world.cgroups.remove(cgroup)
        report = await daemon.reconciler.run_once(full=True)
        assert [t.container for t in report.released] == ["app"] and report.released_pods == ["web"]
    assert "web" not in world.registry()["pods"] and world.cpu_state()["defaultCpuSet"] == "0-7"


async def test_a_hook_admitted_pod_from_the_pod_dir_is_marked(world: World) -> None:
    (world.pod_dir / "web.json").write_text(json.dumps(pod("web", {"app": "2"})))
    cgroup = world.cgroups.make("/kubepods/podweb/app")
    async with world.running():  # no watcher: the hook finds the pod in --pod-dir
        with world.client() as client:
            await call(client.hook, HookEvent(stage="createRuntime", pod_uid="web", container="app", cgroup=cgroup))
    assert world.registry()["pod_dir_pods"] == ["web"]
