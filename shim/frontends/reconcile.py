"""The daemon's reconcile loop (the kubelet's ``cpuManagerReconcilePeriod`` loop, for cgroups).

Every period (trio's clock, so tests jump time) the daemon compares each managed container's
cgroup with what it should have:

* the cgroup is gone (the container exited and its poststop hook never came): the container is
  released, as the kubelet's ``removeStaleState`` would;
* its assignment changed since it was pinned (a shared-pool container whose pool shrank when
  an admission took exclusive CPUs, or grew on a release): it is pinned again;
* its ``cpuset.cpus`` / ``cpuset.mems`` drifted from what podshim wrote (another agent, or a
  runtime's ``update``, overwrote them): it is pinned again.

A full pass also looks for **stale pods**: pods the providers' state holds that the daemon does
not know as active (not in its registry: e.g. a crash between the state write and the registry
write, or a registry moved aside). The kubelet's ``removeStaleState`` releases the assignments
of every pod that is not an active pod; podshim does the same, unless a kubelet pod cgroup of that
uid still exists (its containers run: their CPUs must not be handed out again while they do).

Between periods :meth:`Reconciler.wake` asks for a quick pass after an admission or a removal:
it re-pins the containers whose assignment changed, without reading any cgroup file.

:func:`plan` is the sans-IO decision; :class:`FsCgroupProbe` reads cgroup files (always called
in a worker thread); :class:`Reconciler` is the timer and reports through the structured log
and the metrics (``podshim_reconcile_*``).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from shim.cpuset import CPUSet

if TYPE_CHECKING:
    from shim.cgroups.backend import FsCgroupBackend
    from shim.frontends.logs import DecisionLog
    from shim.frontends.metrics import Metrics

log = logging.getLogger("podshim.reconcile")

Key = tuple[str, str]
"""(pod uid, container name)."""

DRIFTED = "drifted"
CHANGED = "assignment changed"
GONE_ERRNOS = (errno.ENOENT, errno.ESRCH)
"""A re-pin failing with one of these means the cgroup went away meanwhile."""


@dataclass(frozen=True)
class Observed:
    """A cgroup's cpuset files as read; None where a file is missing or not a CPU list."""

    cpus: CPUSet | None
    mems: CPUSet | None


class CgroupProbe(Protocol):
    """Reads a container's cpuset files (None when the cgroup no longer exists) and finds a pod's
    kubelet cgroup (its hierarchy path, None when there is none). Blocking."""

    def observe(self, cgroup: str) -> Observed | None: ...

    def pod_cgroup(self, pod_uid: str) -> str | None: ...


@dataclass(frozen=True)
class Target:
    """One managed container: where it lives, what it should have (``cpus``/``mems``) and what
    podshim last wrote (``written_*``). ``mems`` empty: not podshim's to check."""

    pod_uid: str
    container: str
    cgroup: str
    cpus: str
    mems: str
    written_cpus: str
    written_mems: str

    @property
    def key(self) -> Key:
        return (self.pod_uid, self.container)


@dataclass
class Plan:
    """What one pass does: containers to pin again (with why), containers to release."""

    reapply: list[tuple[Target, str]] = field(default_factory=list)
    release: list[Target] = field(default_factory=list)


def plan(targets: Iterable[Target], observed: Mapping[Key, Observed | None] | None = None) -> Plan:
    """Decide a pass. ``observed`` None is the quick pass: no file was read, so only changed
    assignments count; otherwise a container missing from ``observed`` or observed as None is
    gone."""
    result = Plan()
    for target in targets:
        seen: Observed | None = None
        if observed is not None:
            seen = observed.get(target.key)
            if seen is None:
                result.release.append(target)
                continue
        if (target.cpus, target.mems) != (target.written_cpus, target.written_mems):
            result.reapply.append((target, CHANGED))
        elif seen is not None and _drifted(target, seen):
            result.reapply.append((target, DRIFTED))
    return result


def _drifted(target: Target, seen: Observed) -> bool:
    if target.cpus and seen.cpus != CPUSet.parse(target.cpus):
        return True
    return bool(target.mems) and seen.mems != CPUSet.parse(target.mems)


def _read_set(path: Path) -> CPUSet | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return CPUSet.parse(text)
    except ValueError:
        return None


class FsCgroupProbe:
    """Reads cpuset files through the same cgroup mounts the writer uses. ``cgroup_root`` is the
    kubelet's ``cgroupRoot``, under which it creates the pod cgroups."""

    def __init__(self, backend: FsCgroupBackend, *, cgroup_root: str = "/") -> None:
        self.backend = backend
        self.cgroup_root = cgroup_root

    def observe(self, cgroup: str) -> Observed | None:
        from shim.cgroups.paths import CgroupPathError

        try:
            directory = self.backend.locate(cgroup).cpuset.path
        except CgroupPathError:
            return None  # e.g. pid:<N> whose process is gone
        if not os.path.isdir(directory):
            return None
        return Observed(_read_set(Path(directory, "cpuset.cpus")), _read_set(Path(directory, "cpuset.mems")))

    def pod_cgroup(self, pod_uid: str) -> str | None:
        """The first of the kubelet's pod cgroup paths for ``pod_uid`` (either driver, any QoS
        class: the pod spec may be gone) that exists in the cpuset or cpu hierarchy."""
        from shim.cgroups.paths import CgroupPathError, kubelet_pod_cgroup

        root = "/" + self.cgroup_root.strip("/")
        for driver in ("cgroupfs", "systemd"):
            for qos in ("Guaranteed", "Burstable", "BestEffort"):
                try:
                    path = kubelet_pod_cgroup(pod_uid, qos, driver)
                    cgroup = path if root == "/" else root + path
                    location = self.backend.locate(cgroup)
                except CgroupPathError:
                    continue  # a uid that names no valid cgroup has none
                if os.path.isdir(location.cpuset.path) or os.path.isdir(location.cpu.path):
                    return cgroup
        return None


class ReconcileHost(Protocol):
    """What the reconciler needs from the daemon."""

    async def reconcile_targets(self) -> list[Target]: ...

    async def reapply(self, target: Target) -> tuple[int, str] | None:
        """Pin ``target`` again; None on success, else (errno, one-line reason)."""
        ...

    async def release_gone(self, target: Target) -> None: ...

    async def stale_pods(self) -> list[str]:
        """Pods in the providers' state that are not active (admitted and registered)."""
        ...

    async def release_stale(self, pod_uid: str) -> bool:
        """Release a stale pod; False when it became active meanwhile (nothing done)."""
        ...


@dataclass
class PassReport:
    """What one pass did."""

    full: bool
    reapplied: list[tuple[Target, str]] = field(default_factory=list)
    released: list[Target] = field(default_factory=list)
    failed: list[tuple[Target, str]] = field(default_factory=list)
    released_pods: list[str] = field(default_factory=list)
    """Stale pods released (full passes only)."""
    kept_pods: list[tuple[str, str]] = field(default_factory=list)
    """Stale pods kept because a pod cgroup of theirs exists, with that cgroup."""


class Reconciler:
    """Runs :func:`plan` every ``period`` seconds (and a quick pass on :meth:`wake`)."""

    def __init__(
        self,
        host: ReconcileHost,
        probe: CgroupProbe | None,
        *,
        period: float = 10.0,
        metrics: Metrics | None = None,
        decisions: DecisionLog | None = None,
    ) -> None:
        if period <= 0:
            raise ValueError("the reconcile period must be positive")
        self.host = host
        self.probe = probe
        self.period = period
        self.metrics = metrics
        self.decisions = decisions
        self.passes = 0
        self._wake = trio.Event()
        self._lock = trio.Lock()
        self._kept: set[str] = set()  # stale pods already reported as kept (logged once)

    def wake(self) -> None:
        """Ask for a quick pass soon (an admission or a removal may have moved the shared pool)."""
        self._wake.set()

    async def run(self) -> None:
        """Full passes every period, quick passes when woken, until cancelled."""
        from shim.runtime.trio_runtime import RuntimeStopped

        next_full = trio.current_time() + self.period
        try:
            while True:
                with trio.move_on_at(next_full):
                    await self._wake.wait()
                self._wake = trio.Event()
                full = trio.current_time() >= next_full
                if full:
                    next_full = trio.current_time() + self.period
                await self.run_once(full=full)
        except RuntimeStopped:
            return

    async def run_once(self, *, full: bool = True) -> PassReport:
        """One pass; ``full`` reads every cgroup (in a worker thread)."""
        async with self._lock:  # a quick pass and a full pass never interleave their re-pins
            targets = await self.host.reconcile_targets()
            observed = None
            if full and self.probe is not None:
                observed = await trio.to_thread.run_sync(self._observe_all, targets)
            decided = plan(targets, observed)
            report = PassReport(full=full)
            for target in decided.release:
                await self._release(target, report, "cgroup is gone")
            for target, why in decided.reapply:
                failure = await self.host.reapply(target)
                if failure is None:
                    report.reapplied.append((target, why))
                    self._event("reapplied", target, why=why, cpus=target.cpus, mems=target.mems,
                                was=target.written_cpus)
                elif failure[0] in GONE_ERRNOS:
                    await self._release(target, report, failure[1])
                else:
                    report.failed.append((target, failure[1]))
                    self._event("reapply_failed", target, why=why, error=failure[1])
            if full:
                await self._release_stale(report)
            self.passes += 1
            if self.metrics is not None:
                self.metrics.observe_reconcile(
                    full=full, reapplied=len(report.reapplied),
                    released=len(report.released) + len(report.released_pods), failed=len(report.failed),
                )
            return report

    async def _release_stale(self, report: PassReport) -> None:
        stale = await self.host.stale_pods()
        live: dict[str, str | None] = {}
        if stale and self.probe is not None:
            live = await trio.to_thread.run_sync(self._pod_cgroups, stale)
        for uid in stale:
            cgroup = live.get(uid)
            if cgroup is not None:
                report.kept_pods.append((uid, cgroup))
                if uid not in self._kept:
                    self._kept.add(uid)
                    self._pod_event("kept", uid, why=f"pod cgroup {cgroup} exists")
                continue
            if not await self.host.release_stale(uid):
                continue
            self._kept.discard(uid)
            report.released_pods.append(uid)
            self._pod_event("released", uid, why="not an active pod")

    def _pod_cgroups(self, uids: list[str]) -> dict[str, str | None]:
        assert self.probe is not None
        return {uid: self.probe.pod_cgroup(uid) for uid in uids}

    def _observe_all(self, targets: list[Target]) -> dict[Key, Observed | None]:
        assert self.probe is not None
        return {target.key: self.probe.observe(target.cgroup) for target in targets}

    async def _release(self, target: Target, report: PassReport, why: str) -> None:
        await self.host.release_gone(target)
        report.released.append(target)
        self._event("released", target, why=why)

    def _event(self, action: str, target: Target, **fields: Any) -> None:
        record = {"event": "reconcile", "action": action, "pod_uid": target.pod_uid,
                  "container": target.container, "cgroup": target.cgroup, **fields}
        if self.decisions is not None:
            self.decisions.event(record)
        else:
            log.info("reconcile %s %s/%s (%s)", action, target.pod_uid, target.container, fields.get("why", ""))

    def _pod_event(self, action: str, pod_uid: str, *, why: str) -> None:
        record = {"event": "reconcile", "action": action, "pod_uid": pod_uid, "container": None, "why": why}
        if self.decisions is not None:
            self.decisions.event(record)
        else:
            log.info("reconcile %s pod %s (%s)", action, pod_uid, why)


__all__ = [
    "CHANGED",
    "DRIFTED",
    "CgroupProbe",
    "FsCgroupProbe",
    "Observed",
    "PassReport",
    "Plan",
    "ReconcileHost",
    "Reconciler",
    "Target",
    "plan",
]
