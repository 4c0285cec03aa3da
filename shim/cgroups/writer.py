"""Apply a container's CPU placement to its cgroup: cpuset.cpus/mems, CFS quota, thread affinity.

The write order follows the kernel's cpuset rules (runtime-integration.md §3.2):

* v1 requires every child ⊆ parent at all times, so a chain of cgroups (pod, then container)
  is moved in two phases: top-down every level is widened to ``current ∪ final`` (the leaf
  directly to ``final``), then bottom-up every level is narrowed to ``final``. No intermediate
  state breaks the subset rule, whether cpus, mems or both change. A level whose value is not
  given keeps its current value when still valid, else takes its parent's (a new v1 cgroup
  starts empty, and an empty ``cpuset.mems`` is never written).
* v2 grants ``cpuset.cpus.effective = request ∩ parent effective`` without refusing writes, so
  only widening writes go top-down and narrowing ones bottom-up, and the result is verified by
  reading the ``.effective`` files rather than what was written.

Then the quota (v1 ``cpu.cfs_period_us``/``cpu.cfs_quota_us`` with runc's retry of the period,
v2 ``cpu.max``; an unlimited container also lifts its pod cgroup's limit first, parent before
child), then the affinity of every thread in the cgroup (a cpuset write does not reset a
mask set earlier with sched_setaffinity).
All file access goes through a small ``FileIO``: the host (``FsBackend``, via shim.cgroups.native)
or a dict (``RecordingBackend``, for actor tests and dry runs).
"""

from __future__ import annotations

import errno as errno_codes
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol

import msgspec

from shim.cgroups.native import AffinityResult, NativeOps, load
from shim.cgroups.paths import CgroupLocation, CgroupPathError, clean, confine, is_below, under_mount
from shim.cpuset import CPUSet

# The records below are frozen msgspec Structs, not dataclasses: the OCI hook imports this module
# on every container start, and a dataclass costs about a millisecond to create.

MIN_QUOTA_US = 1000  # the kubelet's MinQuotaPeriod: smaller quotas are raised to it
DEFAULT_PERIOD_US = 100_000


class CpuLimit(msgspec.Struct, frozen=True):
    """A CFS limit in millicores over a period, converted like the kubelet's MilliCPUToQuota."""

    millicores: int
    period_us: int = DEFAULT_PERIOD_US

    def __post_init__(self) -> None:
        if self.millicores <= 0:
            raise ValueError(f"CPU limit must be positive, got {self.millicores}m")
        if not 1000 <= self.period_us <= 1_000_000:
            raise ValueError(f"CFS period must be within 1ms..1s, got {self.period_us}us")

    def quota_us(self) -> int:
        return max(self.millicores * self.period_us // 1000, MIN_QUOTA_US)


Quota = Literal["unlimited"] | CpuLimit | None
"""``"unlimited"`` removes the CFS limit, a CpuLimit sets one, None leaves the files alone."""


class CpusetLevel(msgspec.Struct, frozen=True):
    """An ancestor cgroup (e.g. the pod's) moved together with the container; None = leave."""

    path: str
    cpus: CPUSet | None = None
    mems: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        # frozen: the path is normalised once, here (the ordering checks compare strings)
        msgspec.structs.force_setattr(self, "path", clean(self.path))


class ApplyTarget(msgspec.Struct, frozen=True):
    """What to make true for one container; every field but ``location`` is optional."""

    location: CgroupLocation
    cpus: CPUSet | None = None
    mems: tuple[int, ...] | None = None
    quota: Quota = None
    pid: int | None = None
    # CPUs for the threads of ``pid``; defaults to ``cpus``.
    affinity: CPUSet | None = None
    # Ancestors of the container's cpuset directory, outermost first.
    ancestors: tuple[CpusetLevel, ...] = ()
    # The pod cgroup's directory in the cpu hierarchy: with quota "unlimited" its CFS quota is
    # lifted too (CFS quota is hierarchical: a limited pod would still throttle the container).
    pod_cpu: str | None = None

    def __post_init__(self) -> None:
        if self.pod_cpu is not None:
            msgspec.structs.force_setattr(self, "pod_cpu", clean(self.pod_cpu))
        for level in (*self.ancestors, CpusetLevel(self.location.cpuset.path, self.cpus, self.mems)):
            if level.cpus is not None and not level.cpus:
                raise ValueError(f"empty cpuset.cpus requested for {level.path}")
            if level.mems is not None and not level.mems:
                raise ValueError(f"empty cpuset.mems requested for {level.path}")
        mount = self.location.cpuset.mount
        chain = [level.path for level in self.ancestors] + [self.location.cpuset.path]
        if chain[-1] == mount:
            raise ValueError(f"the container cgroup cannot be the cgroup mount root {mount}")
        for outer, inner in zip([mount, *chain[:-1]], chain, strict=True):
            if not is_below(inner, outer):
                raise ValueError(f"{inner} is not below {outer}")
        cpu = self.location.cpu
        if self.pod_cpu is not None and not (is_below(cpu.path, self.pod_cpu) and is_below(self.pod_cpu, cpu.mount)):
            raise ValueError(f"pod cgroup {self.pod_cpu} is not between {cpu.mount} and {cpu.path}")

    def levels(self) -> list[CpusetLevel]:
        return [*self.ancestors, CpusetLevel(self.location.cpuset.path, self.cpus, self.mems)]

    def affinity_cpus(self) -> CPUSet | None:
        return self.affinity if self.affinity is not None else self.cpus


class FileWrite(msgspec.Struct, frozen=True):
    """One value written to one cgroup file."""

    path: str
    value: str


class ApplyResult(msgspec.Struct, frozen=True):
    """Outcome of ``apply``; on failure ``errno`` (0 if no syscall failed) and ``path`` say where."""

    ok: bool
    writes: tuple[FileWrite, ...] = ()
    errno: int = 0
    path: str = ""
    message: str = ""
    threads: int = 0
    effective_cpus: CPUSet | None = None
    effective_mems: CPUSet | None = None


class CgroupBackend(Protocol):
    """What the CgroupWriter actor calls."""

    def apply(self, target: ApplyTarget) -> ApplyResult: ...


# --------------------------------------------------------------------------------------------
# pure planning


class LevelState(msgspec.Struct, frozen=True):
    """A cgroup of the chain: what it holds now and what was asked (None = not asked)."""

    path: str
    current_cpus: CPUSet
    current_mems: CPUSet
    want_cpus: CPUSet | None
    want_mems: CPUSet | None
    # v2 only: the granted sets (the request may be empty = inherit).
    effective_cpus: CPUSet = msgspec.field(default_factory=CPUSet)
    effective_mems: CPUSet = msgspec.field(default_factory=CPUSet)


class PlanError(Exception):
    """A target that cannot be reached without an invalid cpuset state."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _settle(want: CPUSet | None, current: CPUSet, parent: CPUSet) -> CPUSet:
    if want is not None:
        return want
    if current and (not parent or current.is_subset_of(parent)):
        return current
    return parent


def plan_v1(levels: Sequence[LevelState], base_cpus: CPUSet, base_mems: CPUSet) -> list[FileWrite]:
    """v1 writes: widen top-down to current ∪ final (the leaf to final), then narrow bottom-up.

    ``base_*`` are the values of the parent of the outermost level (not written).
    """
    finals: list[tuple[CPUSet, CPUSet]] = []
    parent_cpus, parent_mems = base_cpus, base_mems
    for index, level in enumerate(levels):
        cpus = _settle(level.want_cpus, level.current_cpus, parent_cpus)
        mems = _settle(level.want_mems, level.current_mems, parent_mems)
        if index > 0 and not cpus.is_subset_of(parent_cpus):
            raise PlanError(level.path, f"cpuset.cpus {cpus} of {level.path} is not within its parent's {parent_cpus}")
        if index > 0 and not mems.is_subset_of(parent_mems):
            raise PlanError(level.path, f"cpuset.mems {mems} of {level.path} is not within its parent's {parent_mems}")
        if not cpus:
            raise PlanError(level.path, f"cpuset.cpus of {level.path} would be empty (its parent's is empty too)")
        if not mems:
            raise PlanError(level.path, f"cpuset.mems of {level.path} would be empty (its parent's is empty too)")
        finals.append((cpus, mems))
        parent_cpus, parent_mems = cpus, mems
    # Widening value of each level: current ∪ final keeps room for both the old children and
    # the new ones. The leaf has no children in the chain, so it goes straight to its final
    # value (its parent was widened just before), saving a write and an affinity reset.
    widened = [
        (lv.current_cpus | cpus, lv.current_mems | mems) for lv, (cpus, mems) in zip(levels, finals, strict=True)
    ]
    widened[-1] = finals[-1]
    writes: list[FileWrite] = []
    for level, (cpus, mems) in zip(levels, widened, strict=True):
        if cpus != level.current_cpus:
            writes.append(FileWrite(f"{level.path}/cpuset.cpus", str(cpus)))
        if mems != level.current_mems:
            writes.append(FileWrite(f"{level.path}/cpuset.mems", str(mems)))
    for level, (cpus, mems), (wide_cpus, wide_mems) in reversed(list(zip(levels, finals, widened, strict=True))):
        if cpus != wide_cpus:
            writes.append(FileWrite(f"{level.path}/cpuset.cpus", str(cpus)))
        if mems != wide_mems:
            writes.append(FileWrite(f"{level.path}/cpuset.mems", str(mems)))
    return writes


def plan_v2(levels: Sequence[LevelState]) -> list[FileWrite]:
    """v2 writes: requests that widen the granted set top-down, the others bottom-up."""
    widen: list[FileWrite] = []
    narrow: list[FileWrite] = []
    for level in levels:
        for name, want, requested, granted in (
            ("cpuset.cpus", level.want_cpus, level.current_cpus, level.effective_cpus),
            ("cpuset.mems", level.want_mems, level.current_mems, level.effective_mems),
        ):
            if want is None or want == requested:
                continue
            write = FileWrite(f"{level.path}/{name}", str(want))
            (widen if want.is_superset_of(granted) else narrow).append(write)
    return widen + narrow[::-1]


def quota_writes_v2(cpu_dir: str, quota: Literal["unlimited"] | CpuLimit) -> FileWrite:
    """The single ``cpu.max`` write for a quota decision."""
    if quota == "unlimited":
        return FileWrite(f"{cpu_dir}/cpu.max", "max")
    return FileWrite(f"{cpu_dir}/cpu.max", f"{quota.quota_us()} {quota.period_us}")


# --------------------------------------------------------------------------------------------
# file access


class FileIO(Protocol):
    """Reads, batched writes and thread affinity; the host or an in-memory dict."""

    def read(self, path: str) -> str: ...

    def write(self, items: Sequence[tuple[str, str]]) -> list[int]: ...

    def set_affinity(self, pid: int, cpus: Iterable[int]) -> AffinityResult: ...


class HostIO:
    """The real filesystem, writes and affinity through shim.cgroups.native."""

    def __init__(self, ops: NativeOps) -> None:
        self.ops = ops

    def read(self, path: str) -> str:
        # os.read rather than open(): a buffered text file adds an fstat, an ioctl and two
        # lseeks to every read, and an apply reads about seven cgroup files.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode("ascii")

    def write(self, items: Sequence[tuple[str, str]]) -> list[int]:
        return self.ops.write_files(items, stop_on_error=True)

    def set_affinity(self, pid: int, cpus: Iterable[int]) -> AffinityResult:
        return self.ops.set_process_affinity(pid, cpus)


class MemoryIO:
    """A dict of path → content standing for cgroup files; v2 ``.effective`` files are derived.

    ``fail`` maps a path to the errno its writes fail with; ``dead_pids`` have no threads.
    """

    def __init__(
        self,
        files: Mapping[str, str] | None = None,
        *,
        fail: Mapping[str, int] | None = None,
        dead_pids: Iterable[int] = (),
    ) -> None:
        self.files: dict[str, str] = dict(files or {})
        self.fail = dict(fail or {})
        self.dead_pids = set(dead_pids)
        self.affinity: dict[int, CPUSet] = {}

    def read(self, path: str) -> str:
        if path in self.files:
            return self.files[path]
        if path.endswith(".effective"):
            return str(self._effective(path.removesuffix(".effective")))
        return ""

    def _effective(self, request_path: str) -> CPUSet:
        directory, name = os.path.split(request_path)
        request = CPUSet.parse(self.files.get(request_path, "").strip())
        parent = os.path.dirname(directory)
        inherited = CPUSet.parse(self.read(f"{parent}/{name}.effective").strip()) if parent != directory else CPUSet()
        if not request:
            return inherited
        if not inherited:
            return request
        return (request & inherited) or inherited

    def write(self, items: Sequence[tuple[str, str]]) -> list[int]:
        codes: list[int] = []
        failed = False
        for path, value in items:
            if failed:
                codes.append(errno_codes.ECANCELED)
                continue
            code = self.fail.get(path, 0)
            if code == 0:
                self.files[path] = value
            failed = code != 0
            codes.append(code)
        return codes

    def set_affinity(self, pid: int, cpus: Iterable[int]) -> AffinityResult:
        if pid in self.dead_pids:
            return AffinityResult(0, errno_codes.ESRCH)
        self.affinity[pid] = CPUSet.of(cpus)
        return AffinityResult(1, 0)


# --------------------------------------------------------------------------------------------
# the writer


class _Failed(Exception):
    def __init__(self, code: int, path: str, message: str) -> None:
        super().__init__(message)
        self.code, self.path, self.message = code, path, message


class CgroupWriter:
    """Implements CgroupBackend over a FileIO, for v1, v2 and hybrid mounts alike.

    The cpuset hierarchy's version decides the cpuset strategy and the cpu hierarchy's version
    the quota files, so a hybrid host (controllers on v1) works without special cases.
    """

    def __init__(self, io: FileIO) -> None:
        self.io = io

    def apply(self, target: ApplyTarget) -> ApplyResult:
        done: list[FileWrite] = []
        try:
            eff_cpus, eff_mems = self._cpuset(target, done)
            if target.quota is not None:
                self._quota(target, target.quota, done)
            threads = self._affinity(target)
        except _Failed as failure:
            return ApplyResult(False, tuple(done), failure.code, failure.path, failure.message)
        return ApplyResult(True, tuple(done), threads=threads, effective_cpus=eff_cpus, effective_mems=eff_mems)

    # -- steps ------------------------------------------------------------------------------

    def _cpuset(self, target: ApplyTarget, done: list[FileWrite]) -> tuple[CPUSet | None, CPUSet | None]:
        levels = target.levels()
        if all(level.cpus is None and level.mems is None for level in levels):
            return None, None
        version = target.location.cpuset.version
        states = [self._state(level, version) for level in levels]
        try:
            if version == "v1":
                base = levels[0].path.rsplit("/", 1)[0] or "/"
                plan = plan_v1(states, self._read_set(f"{base}/cpuset.cpus"), self._read_set(f"{base}/cpuset.mems"))
            else:
                plan = plan_v2(states)
        except PlanError as exc:
            raise _Failed(0, exc.path, exc.message) from exc
        self._write(plan, done)
        leaf = target.location.cpuset.path
        if version == "v1":
            return self._read_set(f"{leaf}/cpuset.cpus"), self._read_set(f"{leaf}/cpuset.mems")
        for state in states:
            for name, wanted in (("cpuset.cpus", state.want_cpus), ("cpuset.mems", state.want_mems)):
                granted_path = f"{state.path}/{name}.effective"
                if wanted is not None and (granted := self._read_set(granted_path)) != wanted:
                    raise _Failed(0, granted_path, f"{granted_path} is {granted or 'empty'} after writing {wanted}")
        return self._read_set(f"{leaf}/cpuset.cpus.effective"), self._read_set(f"{leaf}/cpuset.mems.effective")

    def _state(self, level: CpusetLevel, version: str) -> LevelState:
        path = level.path
        mems = CPUSet.of(level.mems) if level.mems is not None else None
        cur_cpus, cur_mems = self._read_set(f"{path}/cpuset.cpus"), self._read_set(f"{path}/cpuset.mems")
        if version == "v1":
            return LevelState(path, cur_cpus, cur_mems, level.cpus, mems)
        return LevelState(
            path,
            cur_cpus,
            cur_mems,
            level.cpus,
            mems,
            self._read_set(f"{path}/cpuset.cpus.effective"),
            self._read_set(f"{path}/cpuset.mems.effective"),
        )

    def _quota(self, target: ApplyTarget, quota: Literal["unlimited"] | CpuLimit, done: list[FileWrite]) -> None:
        cpu_dir = target.location.cpu.path
        if quota == "unlimited" and target.pod_cpu is not None:
            # Parent first, as for every widening write (v1 refuses a child quota above its
            # parent's): the pod is unlimited before its container is.
            self._lift_pod_quota(target.pod_cpu, target.location.cpu.version, done)
        if target.location.cpu.version == "v2":
            self._write([quota_writes_v2(cpu_dir, quota)], done)
            return
        quota_write = FileWrite(f"{cpu_dir}/cpu.cfs_quota_us", "-1" if quota == "unlimited" else str(quota.quota_us()))
        if quota == "unlimited":
            self._write([quota_write], done)
            return
        period_write = FileWrite(f"{cpu_dir}/cpu.cfs_period_us", str(quota.period_us))
        # runc's order: the period first; the kernel may refuse a smaller period (EINVAL) while
        # the old quota would exceed the parent's limit, so then write the quota and retry.
        (code,) = self.io.write([(period_write.path, period_write.value)])
        if code == 0:
            done.append(period_write)
            self._write([quota_write], done)
        elif code == errno_codes.EINVAL:
            self._write([quota_write, period_write], done)
        else:
            raise _Failed(code, period_write.path, _describe(period_write, code))

    def _lift_pod_quota(self, pod_dir: str, version: str, done: list[FileWrite]) -> None:
        """Remove the pod cgroup's CFS limit, as the kubelet creates the pod cgroup of a pod
        with exclusive CPUs (DisableCPUQuotaWithExclusiveCPUs). Already unlimited: no write, so
        re-pins of the pod's containers leave the file alone."""
        name, unlimited = ("cpu.max", "max") if version == "v2" else ("cpu.cfs_quota_us", "-1")
        path = f"{pod_dir}/{name}"
        try:
            current = self.io.read(path).split()
        except OSError:
            current = []  # the write below reports what is wrong with the file
        if current[:1] != [unlimited]:
            self._write([FileWrite(path, unlimited)], done)

    def _affinity(self, target: ApplyTarget) -> int:
        """Set the affinity of every thread of every process in the cgroup (and of ``pid``).

        A cpuset write alone is not enough: since Linux 6.2 a mask set with sched_setaffinity is
        kept as the task's requested mask and later cpuset changes are intersected with it, so a
        task pinned once would never follow its cpuset when it widens. Processes that exit
        meanwhile are skipped; ``pid`` itself must still be there."""
        cpus = target.affinity_cpus()
        if cpus is None:
            return 0
        pids = self._cgroup_pids(target)
        if target.pid is not None and target.pid not in pids:
            pids.insert(0, target.pid)
        threads = 0
        for pid in pids:
            result = self.io.set_affinity(pid, cpus)
            if result.ok:
                threads += result.threads
                continue
            if pid != target.pid and result.errno in (errno_codes.ESRCH, errno_codes.ENOENT):
                continue
            raise _Failed(
                result.errno,
                f"/proc/{pid}/task",
                f"sched_setaffinity({cpus}) for the threads of pid {pid}: {os.strerror(result.errno)}"
                f" ({result.threads} threads set)",
            )
        return threads

    def _cgroup_pids(self, target: ApplyTarget) -> list[int]:
        try:
            text = self.io.read(f"{target.location.cpuset.path}/cgroup.procs")
        except OSError:
            return []
        return [int(line) for line in text.split() if line.isdigit()]

    # -- helpers ----------------------------------------------------------------------------

    def _read_set(self, path: str) -> CPUSet:
        try:
            text = self.io.read(path)
        except OSError as exc:
            raise _Failed(exc.errno or errno_codes.EIO, path, f"read {path}: {exc.strerror}") from exc
        try:
            return CPUSet.parse(text.strip())
        except ValueError as exc:
            raise _Failed(errno_codes.EINVAL, path, f"read {path}: unexpected content {text!r}") from exc

    def _write(self, writes: Sequence[FileWrite], done: list[FileWrite]) -> None:
        if not writes:
            return
        codes = self.io.write([(w.path, w.value) for w in writes])
        for write, code in zip(writes, codes, strict=True):
            if code != 0:
                raise _Failed(code, write.path, _describe(write, code))
            done.append(write)


def _describe(write: FileWrite, code: int) -> str:
    return f"write {write.value!r} to {write.path}: {os.strerror(code)}"


class FsBackend(CgroupWriter):
    """The host's cgroup files, through the cffi helper (or its Python fallback).

    Targets may be built by hand (ancestors, lexical locations), so every directory is checked
    again with paths.confine before anything is written.
    """

    def __init__(self, ops: NativeOps | None = None) -> None:
        super().__init__(HostIO(ops if ops is not None else load()))

    def apply(self, target: ApplyTarget) -> ApplyResult:
        cpuset, cpu = target.location.cpuset, target.location.cpu
        checks = [(cpuset.mount, level.path) for level in target.levels()] + [(cpu.mount, cpu.path)]
        if target.pod_cpu is not None:
            checks.append((cpu.mount, target.pod_cpu))
        for mount, directory in checks:
            # confine resolves mount/relative, which is the directory itself: the directory is
            # under the mount once resolved, and has no ".." on the way.
            try:
                confine(mount, under_mount(directory, mount))
            except CgroupPathError as exc:
                return ApplyResult(False, errno=0, path=directory, message=str(exc))
        return super().apply(target)


class RecordingBackend(CgroupWriter):
    """In memory: records targets and the writes that would be made, in order.

    Seeded ``files`` stand for current cgroup contents (absent = empty); ``fail`` injects
    errnos per path so callers can exercise ApplyFailed; ``dead_pids`` fail affinity (ESRCH).
    """

    def __init__(
        self,
        files: Mapping[str, str] | None = None,
        *,
        fail: Mapping[str, int] | None = None,
        dead_pids: Iterable[int] = (),
    ) -> None:
        self.memory = MemoryIO(files, fail=fail, dead_pids=dead_pids)
        super().__init__(self.memory)
        self.targets: list[ApplyTarget] = []
        self.results: list[ApplyResult] = []

    def apply(self, target: ApplyTarget) -> ApplyResult:
        self.targets.append(target)
        result = super().apply(target)
        self.results.append(result)
        return result

    @property
    def writes(self) -> list[FileWrite]:
        """Every successful write, over all apply calls, in order."""
        return [write for result in self.results for write in result.writes]

    @property
    def files(self) -> dict[str, str]:
        return self.memory.files

    @property
    def affinity(self) -> dict[int, CPUSet]:
        return self.memory.affinity
