"""shim.cgroups.writer: write ordering, quota, affinity, failures, on fake trees and in memory."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path

import pytest
from cgroups_helpers import IMPLEMENTATIONS, ops_for
from hypothesis import given
from hypothesis import strategies as st

from shim.cgroups import writer
from shim.cgroups.paths import CgroupLocation
from shim.cgroups.writer import (
    ApplyTarget,
    CpuLimit,
    CpusetLevel,
    FileWrite,
    FsBackend,
    LevelState,
    MemoryIO,
    PlanError,
    RecordingBackend,
)
from shim.cpuset import CPUSet

CS = "/cg/cpuset"
CPU = "/cg/cpu"
POD = "/kubepods/pod1"
CTR = "/kubepods/pod1/ctr"


def v1_target(**kwargs: object) -> ApplyTarget:
    return ApplyTarget(CgroupLocation.v1(CS, CPU, CTR), **kwargs)  # type: ignore[arg-type]


def pod_level(cpus: str | None, mems: tuple[int, ...] | None = None) -> CpusetLevel:
    return CpusetLevel(Path(CS + POD), CPUSet.parse(cpus) if cpus is not None else None, mems)


def cs(text: str) -> CPUSet:
    return CPUSet.parse(text)


# -- v1 planning -------------------------------------------------------------------------------


def test_v1_widening_writes_parent_first() -> None:
    levels = [
        LevelState("/pod", cs("0-1"), cs("0"), cs("0-3"), cs("0-1")),
        LevelState("/pod/c", cs("1"), cs("0"), cs("2-3"), cs("1")),
    ]
    assert writer.plan_v1(levels, cs("0-7"), cs("0-1")) == [
        FileWrite("/pod/cpuset.cpus", "0-3"),
        FileWrite("/pod/cpuset.mems", "0-1"),
        FileWrite("/pod/c/cpuset.cpus", "2-3"),  # the leaf goes straight to its final value
        FileWrite("/pod/c/cpuset.mems", "1"),
    ]


def test_v1_disjoint_move_of_a_chain_goes_through_unions() -> None:
    levels = [
        LevelState("/pod", cs("0-1"), cs("0"), cs("2-3"), None),
        LevelState("/pod/c", cs("0-1"), cs("0"), cs("2-3"), None),
        LevelState("/pod/c/leaf", cs("1"), cs("0"), cs("3"), None),
    ]
    assert [(w.path, w.value) for w in writer.plan_v1(levels, cs("0-7"), cs("0"))] == [
        ("/pod/cpuset.cpus", "0-3"),
        ("/pod/c/cpuset.cpus", "0-3"),
        ("/pod/c/leaf/cpuset.cpus", "3"),
        ("/pod/c/cpuset.cpus", "2-3"),
        ("/pod/cpuset.cpus", "2-3"),
    ]


def test_v1_narrowing_writes_children_first() -> None:
    levels = [
        LevelState("/pod", cs("0-3"), cs("0-1"), cs("0-1"), cs("0")),
        LevelState("/pod/c", cs("0-3"), cs("0-1"), cs("1"), cs("0")),
    ]
    assert writer.plan_v1(levels, cs("0-7"), cs("0-1")) == [
        FileWrite("/pod/c/cpuset.cpus", "1"),
        FileWrite("/pod/c/cpuset.mems", "0"),
        FileWrite("/pod/cpuset.cpus", "0-1"),
        FileWrite("/pod/cpuset.mems", "0"),
    ]


def test_v1_unchanged_values_are_not_rewritten() -> None:
    levels = [LevelState("/c", cs("2-3"), cs("0"), cs("2-3"), cs("0"))]
    assert writer.plan_v1(levels, cs("0-7"), cs("0")) == []


def test_v1_new_cgroup_gets_parent_values_for_what_is_not_given() -> None:
    levels = [LevelState("/c", CPUSet(), CPUSet(), cs("1"), None)]
    assert writer.plan_v1(levels, cs("0-1"), cs("0")) == [
        FileWrite("/c/cpuset.cpus", "1"),
        FileWrite("/c/cpuset.mems", "0"),
    ]


def test_v1_never_writes_empty_mems() -> None:
    with pytest.raises(PlanError, match=r"cpuset.mems of /c would be empty"):
        writer.plan_v1([LevelState("/c", CPUSet(), CPUSet(), cs("1"), None)], cs("0-1"), CPUSet())


def test_v1_child_outside_its_parent_is_refused_before_writing() -> None:
    levels = [
        LevelState("/pod", cs("0-3"), cs("0"), cs("0-1"), None),
        LevelState("/pod/c", cs("0"), cs("0"), cs("2"), None),
    ]
    with pytest.raises(PlanError, match=r"cpuset.cpus 2 of /pod/c is not within its parent's 0-1"):
        writer.plan_v1(levels, cs("0-7"), cs("0"))


def test_v1_level_left_alone_follows_a_narrowed_parent() -> None:
    # the middle level is not given; its current 0-3 would not fit under the pod's new 0-1
    levels = [
        LevelState("/pod", cs("0-3"), cs("0"), cs("0-1"), None),
        LevelState("/pod/c", cs("0-3"), cs("0"), None, None),
    ]
    assert writer.plan_v1(levels, cs("0-7"), cs("0")) == [
        FileWrite("/pod/c/cpuset.cpus", "0-1"),
        FileWrite("/pod/cpuset.cpus", "0-1"),
    ]


class V1Kernel:
    """The v1 rules of kernel validate_change_legacy for one chain of cgroups."""

    def __init__(self, base: tuple[CPUSet, CPUSet], levels: Sequence[LevelState], has_tasks: bool) -> None:
        self.base = {"cpuset.cpus": base[0], "cpuset.mems": base[1]}
        self.paths = [level.path for level in levels]
        self.values = [{"cpuset.cpus": lv.current_cpus, "cpuset.mems": lv.current_mems} for lv in levels]
        self.has_tasks = has_tasks

    def write(self, write: FileWrite) -> None:
        directory, name = write.path.rsplit("/", 1)
        i = self.paths.index(directory)
        value = CPUSet.parse(write.value)
        parent = self.values[i - 1][name] if i else self.base[name]
        assert value.is_subset_of(parent), f"EACCES: {write} outside parent {parent}"
        if i + 1 < len(self.values):
            assert self.values[i + 1][name].is_subset_of(value), f"EBUSY: {write} below a child"
        assert value or not (self.has_tasks and i == len(self.values) - 1), f"ENOSPC-like: empty {write}"
        assert value, f"empty write {write}"
        self.values[i][name] = value


def subsets(of: CPUSet, *, nonempty: bool) -> st.SearchStrategy[CPUSet]:
    items = sorted(of)
    if not items:
        return st.just(CPUSet())
    return st.sets(st.sampled_from(items), min_size=1 if nonempty else 0).map(CPUSet.of)


@st.composite
def v1_chains(draw: st.DrawFn) -> tuple[tuple[CPUSet, CPUSet], list[LevelState], bool]:
    base = (draw(subsets(CPUSet.range(0, 7), nonempty=True)), draw(subsets(CPUSet.range(0, 3), nonempty=True)))
    depth = draw(st.integers(1, 3))
    fresh_leaf = draw(st.booleans())  # a new cgroup: empty cpus and mems
    levels: list[LevelState] = []
    cur_parent, want_parent = base, base
    for i in range(depth):
        if fresh_leaf and i == depth - 1:
            cur = (CPUSet(), CPUSet())
        else:
            cur = (draw(subsets(cur_parent[0], nonempty=True)), draw(subsets(cur_parent[1], nonempty=True)))
        want = (draw(subsets(want_parent[0], nonempty=True)), draw(subsets(want_parent[1], nonempty=True)))
        levels.append(LevelState("/l" * (i + 1), cur[0], cur[1], want[0], want[1]))
        cur_parent, want_parent = cur, want
    return base, levels, not fresh_leaf


@given(v1_chains(), st.data())
def test_v1_plan_never_passes_through_an_invalid_state(
    chain: tuple[tuple[CPUSet, CPUSet], list[LevelState], bool], data: st.DataObject
) -> None:
    base, levels, has_tasks = chain
    # leave some values unspecified (None): the plan must still stay valid
    for i, level in enumerate(levels):
        if data.draw(st.booleans()):
            levels[i] = LevelState(level.path, level.current_cpus, level.current_mems, None, level.want_mems)
    kernel = V1Kernel(base, levels, has_tasks)
    try:
        plan = writer.plan_v1(levels, *base)
    except PlanError:
        # only a child whose given value no longer fits under its (settled) parent is refused
        assert any(level.want_cpus is None for level in levels)
        return
    for write in plan:
        kernel.write(write)
    for level, values in zip(levels, kernel.values, strict=True):
        assert values["cpuset.mems"] == level.want_mems
        if level.want_cpus is not None:
            assert values["cpuset.cpus"] == level.want_cpus
        assert values["cpuset.cpus"] and values["cpuset.mems"]


# -- v2 planning -------------------------------------------------------------------------------


def test_v2_widening_goes_top_down_and_narrowing_bottom_up() -> None:
    levels = [
        LevelState("/pod", cs("0-1"), CPUSet(), cs("0-3"), None, cs("0-1"), cs("0")),
        LevelState("/pod/a", cs("0"), CPUSet(), cs("3"), None, cs("0"), cs("0")),
        LevelState("/pod/a/c", CPUSet(), cs("0"), cs("3"), cs("0"), cs("0"), cs("0")),
    ]
    assert writer.plan_v2(levels) == [
        FileWrite("/pod/cpuset.cpus", "0-3"),  # widen
        FileWrite("/pod/a/c/cpuset.cpus", "3"),  # empty request = inherit; 3 narrows what is granted
        FileWrite("/pod/a/cpuset.cpus", "3"),  # neither superset nor subset: after its child
    ]


def test_v2_leaves_unrequested_files_alone() -> None:
    levels = [LevelState("/c", CPUSet(), CPUSet(), None, cs("1"), cs("0-3"), cs("0-1"))]
    assert writer.plan_v2(levels) == [FileWrite("/c/cpuset.mems", "1")]


# -- the writer on the recording backend ---------------------------------------------------------


def seeded_v1() -> dict[str, str]:
    return {
        f"{CS}/kubepods/cpuset.cpus": "0-7",
        f"{CS}/kubepods/cpuset.mems": "0-1",
        f"{CS}{POD}/cpuset.cpus": "0-3",
        f"{CS}{POD}/cpuset.mems": "0",
        f"{CS}{CTR}/cpuset.cpus": "0-3",
        f"{CS}{CTR}/cpuset.mems": "0",
    }


def test_recording_backend_moves_pod_and_container_then_quota_then_affinity() -> None:
    backend = RecordingBackend(seeded_v1())
    target = v1_target(cpus=cs("4-5"), mems=(1,), quota="unlimited", pid=77, ancestors=(pod_level("4-7", (1,)),))
    result = backend.apply(target)
    assert result.ok, result.message
    assert [(w.path.removeprefix("/cg"), w.value) for w in result.writes] == [
        ("/cpuset" + POD + "/cpuset.cpus", "0-7"),
        ("/cpuset" + POD + "/cpuset.mems", "0-1"),
        ("/cpuset" + CTR + "/cpuset.cpus", "4-5"),
        ("/cpuset" + CTR + "/cpuset.mems", "1"),
        ("/cpuset" + POD + "/cpuset.cpus", "4-7"),
        ("/cpuset" + POD + "/cpuset.mems", "1"),
        ("/cpu" + CTR + "/cpu.cfs_quota_us", "-1"),
    ]
    assert result.effective_cpus == cs("4-5") and result.effective_mems == cs("1")
    assert backend.affinity == {77: cs("4-5")} and result.threads == 1
    assert backend.targets == [target] and backend.writes == list(result.writes)


def test_failed_write_reports_errno_and_path_and_stops() -> None:
    backend = RecordingBackend(seeded_v1(), fail={f"{CS}{CTR}/cpuset.cpus": errno.EACCES})
    result = backend.apply(v1_target(cpus=cs("4"), mems=(0,), pid=5, ancestors=(pod_level("0-7"),)))
    assert not result.ok
    assert (result.errno, result.path) == (errno.EACCES, f"{CS}{CTR}/cpuset.cpus")
    assert "Permission denied" in result.message
    assert result.writes == (FileWrite(f"{CS}{POD}/cpuset.cpus", "0-7"),)
    assert backend.files[f"{CS}{CTR}/cpuset.cpus"] == "0-3"
    assert backend.affinity == {}


def test_empty_parent_mems_is_a_failure_not_a_write() -> None:
    backend = RecordingBackend({f"{CS}{POD}/cpuset.cpus": "0-3"})
    result = backend.apply(v1_target(cpus=cs("1")))
    assert not result.ok and result.errno == 0 and result.writes == ()
    assert result.message == f"cpuset.mems of {CS}{CTR} would be empty (its parent's is empty too)"


def test_affinity_failure_after_cpuset_writes() -> None:
    backend = RecordingBackend(seeded_v1(), dead_pids=[9])
    result = backend.apply(v1_target(cpus=cs("1"), pid=9))
    assert not result.ok
    assert (result.errno, result.path) == (errno.ESRCH, "/proc/9/task")
    assert result.writes == (FileWrite(f"{CS}{CTR}/cpuset.cpus", "1"),)


def test_explicit_affinity_differs_from_cpuset() -> None:
    backend = RecordingBackend(seeded_v1())
    assert backend.apply(v1_target(cpus=cs("0-3"), affinity=cs("2"), pid=3)).ok
    assert backend.affinity == {3: cs("2")}
    assert backend.writes == []  # cpuset already right


def test_every_process_of_the_cgroup_gets_the_affinity() -> None:
    # Since Linux 6.2 a sched_setaffinity mask survives cpuset changes: a re-pin without a pid
    # must still reach every task of the cgroup, and processes that exit meanwhile are skipped.
    files = dict(seeded_v1(), **{f"{CS}{CTR}/cgroup.procs": "7\n8\n9\n"})
    backend = RecordingBackend(files, dead_pids=[8])
    result = backend.apply(v1_target(cpus=cs("0-1")))
    assert result.ok and result.threads == 2
    assert backend.affinity == {7: cs("0-1"), 9: cs("0-1")}
    with_pid = RecordingBackend(files)
    assert with_pid.apply(v1_target(cpus=cs("2"), pid=12)).ok
    assert set(with_pid.affinity) == {12, 7, 8, 9}


@pytest.mark.parametrize(
    ("quota", "v1_writes", "v2_value"),
    [
        ("unlimited", [("cpu.cfs_quota_us", "-1")], "max"),
        (CpuLimit(1500), [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "150000")], "150000 100000"),
        (CpuLimit(5), [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "1000")], "1000 100000"),
        (CpuLimit(250, 50_000), [("cpu.cfs_period_us", "50000"), ("cpu.cfs_quota_us", "12500")], "12500 50000"),
    ],
)
def test_quota_files(quota: writer.Quota, v1_writes: list[tuple[str, str]], v2_value: str) -> None:
    v1 = RecordingBackend()
    assert v1.apply(v1_target(quota=quota)).ok
    assert [(w.path, w.value) for w in v1.writes] == [(f"{CPU}{CTR}/{name}", value) for name, value in v1_writes]
    v2 = RecordingBackend()
    assert v2.apply(ApplyTarget(CgroupLocation.v2("/u", CTR), quota=quota)).ok
    assert v2.writes == [FileWrite(f"/u{CTR}/cpu.max", v2_value)]


class PeriodRefusedOnce(MemoryIO):
    def __init__(self) -> None:
        super().__init__()
        self.refused = False

    def write(self, items: Sequence[tuple[str, str]]) -> list[int]:
        if not self.refused and items[0][0].endswith("cpu.cfs_period_us"):
            self.refused = True
            return [errno.EINVAL] + [errno.ECANCELED] * (len(items) - 1)
        return super().write(items)


def test_v1_period_refused_is_retried_after_the_quota() -> None:
    io = PeriodRefusedOnce()
    result = writer.CgroupWriter(io).apply(v1_target(quota=CpuLimit(2000, 200_000)))
    assert result.ok
    assert [(w.path.rsplit("/", 1)[1], w.value) for w in result.writes] == [
        ("cpu.cfs_quota_us", "400000"),
        ("cpu.cfs_period_us", "200000"),
    ]


def test_v1_period_failing_otherwise_is_reported() -> None:
    backend = RecordingBackend(fail={f"{CPU}{CTR}/cpu.cfs_period_us": errno.EPERM})
    result = backend.apply(v1_target(quota=CpuLimit(100)))
    assert (result.ok, result.errno, result.path) == (False, errno.EPERM, f"{CPU}{CTR}/cpu.cfs_period_us")


def test_cpu_limit_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        CpuLimit(0)
    with pytest.raises(ValueError, match="period"):
        CpuLimit(100, 500)


def test_v2_is_verified_through_effective_files() -> None:
    files = {f"/u{POD}/cpuset.cpus.effective": "0-1", f"/u{POD}/cpuset.mems.effective": "0"}
    backend = RecordingBackend(files)
    result = backend.apply(ApplyTarget(CgroupLocation.v2("/u", CTR), cpus=cs("2-3"), mems=(0,)))
    assert not result.ok and result.errno == 0
    assert result.path == f"/u{CTR}/cpuset.cpus.effective"
    assert result.message == f"/u{CTR}/cpuset.cpus.effective is 0-1 after writing 2-3"
    ok = RecordingBackend({f"/u{POD}/cpuset.cpus": "0-3"})
    result = ok.apply(ApplyTarget(CgroupLocation.v2("/u", CTR), cpus=cs("2-3"), mems=(0,)))
    assert result.ok and result.effective_cpus == cs("2-3") and result.effective_mems == cs("0")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpus": CPUSet()}, "empty cpuset.cpus"),
        ({"mems": ()}, "empty cpuset.mems"),
        ({"ancestors": (CpusetLevel(Path("/cg/cpuset/other")),)}, "is not below"),
        ({"ancestors": (CpusetLevel(Path(CS + CTR)),)}, "is not below"),
    ],
)
def test_target_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        v1_target(**kwargs)
    with pytest.raises(ValueError, match="mount root"):
        ApplyTarget(CgroupLocation.v2("/u", "/"))


def test_nothing_requested_touches_nothing() -> None:
    backend = RecordingBackend()
    result = backend.apply(v1_target())
    assert result.ok and result.writes == () and result.effective_cpus is None


# -- the writer on a fake tree of regular files, both native implementations ---------------------


def make_v1_tree(root: Path) -> CgroupLocation:
    values = {
        "": ("0-7", "0-1"),
        "kubepods": ("0-7", "0-1"),
        "kubepods/pod1": ("0-3", "0"),
        "kubepods/pod1/ctr": ("", ""),
    }
    for rel, (cpus, mems) in values.items():
        for hierarchy in ("cpuset", "cpu"):
            (root / hierarchy / rel).mkdir(parents=True, exist_ok=True)
        (root / "cpuset" / rel / "cpuset.cpus").write_text(cpus + "\n")
        (root / "cpuset" / rel / "cpuset.mems").write_text(mems + "\n")
        (root / "cpu" / rel / "cpu.cfs_quota_us").write_text("-1\n")
        (root / "cpu" / rel / "cpu.cfs_period_us").write_text("100000\n")
    return CgroupLocation.v1(root / "cpuset", root / "cpu", CTR)


@IMPLEMENTATIONS
def test_fs_backend_on_a_fake_tree(impl: str, tmp_path: Path) -> None:
    loc = make_v1_tree(tmp_path)
    backend = FsBackend(ops_for(impl))
    pod = CpusetLevel(tmp_path / "cpuset" / POD.lstrip("/"), cs("4-7"), (1,))
    result = backend.apply(ApplyTarget(loc, cpus=cs("6"), mems=(1,), quota=CpuLimit(500), ancestors=(pod,)))
    assert result.ok, result.message
    leaf, pod_dir = Path(loc.cpuset.path), Path(pod.path)
    assert (leaf / "cpuset.cpus").read_text() == "6"
    assert (leaf / "cpuset.mems").read_text() == "1"
    assert (pod_dir / "cpuset.cpus").read_text() == "4-7"
    assert Path(loc.cpu.path, "cpu.cfs_quota_us").read_text() == "50000"
    # the new (empty) leaf took the union step only where it had something: fresh → final directly
    assert [w.path for w in result.writes][:2] == [str(pod_dir / "cpuset.cpus"), str(pod_dir / "cpuset.mems")]


@IMPLEMENTATIONS
def test_fs_backend_missing_cgroup_is_enoent(impl: str, tmp_path: Path) -> None:
    loc = make_v1_tree(tmp_path)
    gone = CgroupLocation.v1(loc.cpuset.mount, loc.cpu.mount, CTR + "/missing")
    result = FsBackend(ops_for(impl)).apply(ApplyTarget(gone, quota="unlimited"))
    assert (result.ok, result.errno) == (False, errno.ENOENT)
    assert result.path.endswith("missing/cpu.cfs_quota_us")


@IMPLEMENTATIONS
def test_fs_backend_refuses_a_symlink_out_of_the_mount(impl: str, tmp_path: Path) -> None:
    loc = make_v1_tree(tmp_path / "cg")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "cpuset.cpus").write_text("untouched")
    Path(loc.cpuset.path, "evil").symlink_to(outside)
    target = ApplyTarget(
        CgroupLocation.v1(loc.cpuset.mount, loc.cpu.mount, CTR + "/evil/x"),
        cpus=cs("1"),
        ancestors=(CpusetLevel(f"{loc.cpuset.path}/evil", cs("1")),),
    )
    result = FsBackend(ops_for(impl)).apply(target)
    assert not result.ok and "escapes the cgroup mount" in result.message
    assert result.writes == ()
    assert (outside / "cpuset.cpus").read_text() == "untouched"


def test_memory_io_derives_effective_from_ancestors() -> None:
    io = MemoryIO({"/a/cpuset.cpus": "0-3", "/a/b/cpuset.cpus": "2-5"})
    assert io.read("/a/b/c/cpuset.cpus.effective") == "2-3"
    assert io.read("/a/b/cpuset.cpus") == "2-5"
    assert io.read("/x/cpuset.cpus.effective") == ""


def test_host_io_reads_a_whole_file_of_any_size(tmp_path: Path) -> None:
    # cgroup.procs of a busy cgroup is longer than one read
    procs = "".join(f"{pid}\n" for pid in range(1, 40_000))
    (tmp_path / "cgroup.procs").write_text(procs)
    (tmp_path / "cpuset.cpus").write_text("0-3\n")
    host = writer.HostIO(ops_for("python"))
    assert host.read(str(tmp_path / "cgroup.procs")) == procs
    assert host.read(str(tmp_path / "cpuset.cpus")) == "0-3\n"
    with pytest.raises(FileNotFoundError):
        host.read(str(tmp_path / "missing"))
