"""The reconcile decision (sans-IO) and the reconcile timer on trio's mock clock."""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import pytest
import trio
import trio.testing

from shim.cgroups.backend import FsCgroupBackend
from shim.cgroups.paths import CgroupMount, CgroupMounts
from shim.cpuset import CPUSet
from shim.frontends.logs import DecisionLog
from shim.frontends.metrics import Metrics
from shim.frontends.reconcile import CHANGED, DRIFTED, FsCgroupProbe, Observed, Reconciler, Target, plan


def target(name: str, cpus: str = "1-2", written: str = "1-2", *, mems: str = "0", written_mems: str = "0") -> Target:
    return Target(pod_uid="p", container=name, cgroup=f"/k/{name}", cpus=cpus, mems=mems, written_cpus=written,
                  written_mems=written_mems)


def seen(cpus: str | None, mems: str | None = "0") -> Observed:
    return Observed(None if cpus is None else CPUSet.parse(cpus), None if mems is None else CPUSet.parse(mems))


def test_plan_full_pass() -> None:
    targets = [target("ok"), target("drift"), target("gone"), target("moved", cpus="3-7", written="1-7"),
               target("mems"), target("nofile"), target("unread", mems="", written_mems="")]
    observed = {("p", "ok"): seen("1-2"), ("p", "drift"): seen("0-7"), ("p", "gone"): None,
                ("p", "moved"): seen("1-7"), ("p", "mems"): seen("1-2", "0-1"), ("p", "nofile"): seen(None),
                ("p", "unread"): seen("1-2", None)}
    decided = plan(targets, observed)
    assert [(t.container, why) for t, why in decided.reapply] == [
        ("drift", DRIFTED), ("moved", CHANGED), ("mems", DRIFTED), ("nofile", DRIFTED)]
    assert [t.container for t in decided.release] == ["gone"]


def test_quick_pass_reads_nothing_and_releases_nothing() -> None:
    decided = plan([target("ok"), target("moved", cpus="3-7", written="1-7")])
    assert [(t.container, why) for t, why in decided.reapply] == [("moved", CHANGED)]
    assert decided.release == []


def test_missing_observation_means_gone() -> None:
    assert [t.container for t in plan([target("x")], {}).release] == ["x"]


class Host:
    def __init__(self, targets: list[Target], failures: dict[str, tuple[int, str]] | None = None) -> None:
        self.targets = targets
        self.failures = failures or {}
        self.reapplied: list[str] = []
        self.released: list[str] = []
        self.stale: list[str] = []
        self.revived: set[str] = set()  # became active between listing and release
        self.released_pods: list[str] = []

    async def reconcile_targets(self) -> list[Target]:
        return list(self.targets)

    async def reapply(self, target: Target) -> tuple[int, str] | None:
        if target.container in self.failures:
            return self.failures[target.container]
        self.reapplied.append(target.container)
        self.targets = [t if t != target else Target(
            pod_uid=t.pod_uid, container=t.container, cgroup=t.cgroup, cpus=t.cpus, mems=t.mems,
            written_cpus=t.cpus, written_mems=t.mems) for t in self.targets]
        return None

    async def release_gone(self, target: Target) -> None:
        self.released.append(target.container)
        self.targets.remove(target)

    async def stale_pods(self) -> list[str]:
        return list(self.stale)

    async def release_stale(self, pod_uid: str) -> bool:
        if pod_uid in self.revived:
            return False
        self.stale.remove(pod_uid)
        self.released_pods.append(pod_uid)
        return True


async def test_pass_outcomes_and_metrics() -> None:
    host = Host([target("moved", cpus="3", written="1"), target("vanished", cpus="4", written="1"),
                 target("stuck", cpus="5", written="1")],
                failures={"vanished": (errno.ENOENT, "/k/vanished: gone"), "stuck": (errno.EBUSY, "busy")})
    metrics = Metrics()
    reconciler = Reconciler(host, None, metrics=metrics)
    report = await reconciler.run_once(full=False)
    assert host.reapplied == ["moved"] and host.released == ["vanished"]
    assert [t.container for t, _ in report.failed] == ["stuck"]
    assert metrics.value("podshim_reconcile_reapplied_total") == 1
    assert metrics.value("podshim_reconcile_released_total") == 1
    assert metrics.value("podshim_reconcile_failures_total") == 1
    assert metrics.value("podshim_reconcile_passes_total", {"kind": "quick"}) == 1


async def test_timer_period_and_wake(autojump_clock: trio.testing.MockClock) -> None:
    host = Host([])
    reconciler = Reconciler(host, None, period=10.0, metrics=(metrics := Metrics()))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reconciler.run)
        await trio.sleep(35)  # passes at 10, 20, 30
        assert reconciler.passes == 3
        reconciler.wake()
        await trio.sleep(1)
        assert reconciler.passes == 4
        assert metrics.value("podshim_reconcile_passes_total", {"kind": "quick"}) == 1
        await trio.sleep(5)  # the wake did not move the next full pass (at 40)
        assert metrics.value("podshim_reconcile_passes_total", {"kind": "full"}) == 4
        nursery.cancel_scope.cancel()


def test_fs_probe_reads_cpuset_files(tmp_path: Path) -> None:
    cpuset, cpu = tmp_path / "cpuset", tmp_path / "cpu"
    (cpuset / "k/a").mkdir(parents=True)
    (cpu / "k/a").mkdir(parents=True)
    (cpuset / "k/a/cpuset.cpus").write_text("2-3\n")
    (cpuset / "k/a/cpuset.mems").write_text("garbage")
    mounts = CgroupMounts((CgroupMount("v1", cpuset, "/", frozenset({"cpuset"})),
                           CgroupMount("v1", cpu, "/", frozenset({"cpu"}))), None)
    probe = FsCgroupProbe(FsCgroupBackend(mounts=mounts, root=tmp_path))
    assert probe.observe("/k/a") == Observed(CPUSet.parse("2-3"), None)
    assert probe.observe("/k/b") is None
    assert probe.observe("pid:999999999") is None


class PodProbe:
    """A probe whose only live pod cgroups are ``live`` (uid → hierarchy path)."""

    def __init__(self, live: dict[str, str]) -> None:
        self.live = live
        self.asked: list[str] = []

    def observe(self, cgroup: str) -> Observed | None:
        return None

    def pod_cgroup(self, pod_uid: str) -> str | None:
        self.asked.append(pod_uid)
        return self.live.get(pod_uid)


async def test_full_pass_releases_stale_pods_without_a_live_pod_cgroup() -> None:
    host = Host([])
    host.stale = ["ghost", "running", "revived"]
    host.revived = {"revived"}
    probe = PodProbe({"running": "/kubepods/podrunning"})
    metrics = Metrics()
    log = io.StringIO()
    reconciler = Reconciler(host, probe, metrics=metrics, decisions=DecisionLog(log))
    report = await reconciler.run_once(full=True)
    assert report.released_pods == ["ghost"] and host.released_pods == ["ghost"]
    assert report.kept_pods == [("running", "/kubepods/podrunning")]
    assert metrics.value("podshim_reconcile_released_total") == 1
    await reconciler.run_once(full=True)  # still kept: reported once only
    probe.live.clear()
    report = await reconciler.run_once(full=True)
    assert report.released_pods == ["running"]
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(e["action"], e["pod_uid"], e["why"]) for e in events] == [
        ("released", "ghost", "not an active pod"),
        ("kept", "running", "pod cgroup /kubepods/podrunning exists"),
        ("released", "running", "not an active pod"),
    ]
    assert metrics.value("podshim_reconcile_released_total") == 2


async def test_quick_passes_and_probe_less_hosts() -> None:
    host = Host([])
    host.stale = ["ghost"]
    probe = PodProbe({})
    report = await Reconciler(host, probe).run_once(full=False)
    assert report.released_pods == [] and probe.asked == []
    # Without a probe nothing says the pod runs: released as the kubelet would.
    report = await Reconciler(host, None).run_once(full=True)
    assert report.released_pods == ["ghost"]


@pytest.mark.parametrize(
    ("driver_dir", "root", "expected"),
    [
        ("kubepods/besteffort/poduid-1", "/", "/kubepods/besteffort/poduid-1"),
        ("kubepods/poduid-1", "/", "/kubepods/poduid-1"),
        ("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poduid_1.slice", "/",
         "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poduid_1.slice"),
        ("custom/kubepods/poduid-1", "/custom", "/custom/kubepods/poduid-1"),
        ("kubepods/poduid-2", "/", None),
        ("custom/kubepods/poduid-1", "/", None),
    ],
)
def test_fs_probe_finds_kubelet_pod_cgroups(tmp_path: Path, driver_dir: str, root: str, expected: str | None) -> None:
    cpuset, cpu = tmp_path / "cpuset", tmp_path / "cpu"
    (cpu / driver_dir).mkdir(parents=True)
    cpuset.mkdir()
    mounts = CgroupMounts((CgroupMount("v1", cpuset, "/", frozenset({"cpuset"})),
                           CgroupMount("v1", cpu, "/", frozenset({"cpu"}))), None)
    probe = FsCgroupProbe(FsCgroupBackend(mounts=mounts, root=tmp_path), cgroup_root=root)
    assert probe.pod_cgroup("uid-1") == expected
    assert probe.pod_cgroup("../uid-1") is None
