"""The actor-level ``CgroupBackend`` (shim.actors.cgroup_writer) on top of the cgroup writer.

The arbiter names a container's cgroup with one string; this adapter turns it into a
:class:`~shim.cgroups.paths.CgroupLocation` and an :class:`~shim.cgroups.writer.ApplyTarget`:

* ``/a/b/c``: a hierarchy path as seen through the cgroup mount(s), the same in every
  controller's hierarchy (what runc and crun create, on v1, v2 and hybrid hosts alike);
* ``pid:<N>``: wherever process N is, read from ``/proc/<N>/cgroup`` per controller (for the
  rare host whose cpuset and cpu hierarchies place a container differently).

Every directory is confined under its mount (``..`` and escaping symlinks are refused). A
failure is an ``OSError(errno, message, filename)``: the errno of the write or read that failed
(ENOENT when the cgroup is gone), or EINVAL for a cgroup string that names nowhere valid.
"""

from __future__ import annotations

import errno
import os

from shim.cgroups.paths import (
    PID_PREFIX,
    CgroupLocation,
    CgroupMounts,
    CgroupPathError,
    ControllerPath,
    clean,
    confine,
    detect_mounts,
    location_from_proc,
    pod_cgroup_dir,
    read_proc_cgroup,
)
from shim.cgroups.writer import DEFAULT_PERIOD_US, ApplyTarget, CgroupWriter, CpuLimit, FsBackend, Quota
from shim.cpuset import CPUSet


def quota_for(cpu_quota: str, cpu_limit_millis: int | None, period_us: int = DEFAULT_PERIOD_US) -> Quota:
    """The writer's quota from the arbiter's decision: ``unlimited`` removes the CFS limit,
    ``limited`` with a limit sets it, ``limited`` without one leaves the runtime's value."""
    if cpu_quota == "unlimited":
        return "unlimited"
    if cpu_limit_millis is not None and cpu_limit_millis > 0:
        return CpuLimit(cpu_limit_millis, period_us)
    return None


class FsCgroupBackend:
    """``CgroupBackend`` for a real host (or, with ``writer``/``mounts``/``root`` given, a fake tree).

    ``root`` stands for ``/`` when reading ``/proc/<pid>/cgroup`` and ``/proc/self/mountinfo``;
    mounts are detected on first use unless given.
    """

    def __init__(
        self,
        *,
        mounts: CgroupMounts | None = None,
        root: str | os.PathLike[str] = "/",
        writer: CgroupWriter | None = None,
        period_us: int = DEFAULT_PERIOD_US,
    ) -> None:
        self._mounts = mounts
        self.root = clean(root)
        self.writer = writer if writer is not None else FsBackend()
        self.period_us = period_us

    @property
    def mounts(self) -> CgroupMounts:
        if self._mounts is None:
            self._mounts = detect_mounts(self.root)
        return self._mounts

    def locate(self, cgroup: str) -> CgroupLocation:
        """The cpuset and cpu directories named by ``cgroup`` (CgroupPathError if invalid)."""
        if cgroup.startswith(PID_PREFIX):
            number = cgroup[len(PID_PREFIX) :]
            if not number.isdigit() or int(number) <= 0:
                raise CgroupPathError(f"invalid cgroup {cgroup!r}: expected pid:<positive integer>")
            try:
                proc = read_proc_cgroup(int(number), self.root)
            except OSError as err:
                raise CgroupPathError(f"/proc/{number}/cgroup: {err.strerror}") from None
            return location_from_proc(proc, self.mounts)
        if not cgroup.startswith("/"):
            raise CgroupPathError(f"invalid cgroup {cgroup!r}: expected an absolute hierarchy path or pid:<N>")
        found: list[ControllerPath] = []
        for controller in ("cpuset", "cpu"):
            mount = self.mounts.for_controller(controller)
            path = confine(mount.mountpoint, cgroup)
            found.append(ControllerPath(controller, mount.version, mount.mountpoint, path))
        return CgroupLocation(found[0], found[1])

    def apply(
        self,
        cgroup: str,
        *,
        cpus: str,
        mems: str,
        cpu_quota: str,
        cpu_limit_millis: int | None,
        pid: int | None,
        pod_uid: str | None = None,
    ) -> None:
        """Pin ``cgroup``; with an unlimited quota and ``pod_uid`` naming the container's parent
        cgroup, that pod cgroup's CFS quota is lifted as well (see pod_cgroup_dir)."""
        try:
            location = self.locate(cgroup)
            quota = quota_for(cpu_quota, cpu_limit_millis, self.period_us)
            pod_cpu = pod_cgroup_dir(location.cpu, pod_uid) if quota == "unlimited" and pod_uid else None
            target = ApplyTarget(
                location,
                cpus=CPUSet.parse(cpus) if cpus else None,
                mems=tuple(CPUSet.parse(mems)) if mems else None,
                quota=quota,
                pid=pid if pid is not None and pid > 0 else None,
                pod_cpu=pod_cpu,
            )
        except (CgroupPathError, ValueError) as err:
            raise OSError(errno.EINVAL, str(err), cgroup) from None
        if not os.path.isdir(location.cpuset.path):
            raise OSError(errno.ENOENT, f"cgroup {location.cpuset.path} does not exist", location.cpuset.path)
        result = self.writer.apply(target)
        if not result.ok:
            raise OSError(result.errno, result.message, result.path or cgroup)


__all__ = ["FsCgroupBackend", "quota_for"]
