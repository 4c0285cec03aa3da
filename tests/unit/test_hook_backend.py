"""FsCgroupBackend: the actor-level CgroupBackend over the cgroup writer, on fake trees."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from shim.cgroups.backend import FsCgroupBackend, quota_for
from shim.cgroups.paths import CgroupLocation, CgroupMount, CgroupMounts, cgroup_string
from shim.cgroups.writer import CpuLimit, RecordingBackend
from shim.cpuset import CPUSet


def _hybrid(tmp_path: Path) -> tuple[FsCgroupBackend, RecordingBackend, Path, Path]:
    cpuset, cpu = tmp_path / "cpuset", tmp_path / "cpu,cpuacct"
    for mount in (cpuset, cpu):
        (mount / "pod/ctr").mkdir(parents=True)
    mounts = CgroupMounts(
        (
            CgroupMount("v1", cpuset, "/", frozenset({"cpuset"})),
            CgroupMount("v1", cpu, "/", frozenset({"cpu", "cpuacct"})),
        ),
        None,
    )
    writer = RecordingBackend({f"{cpuset}/cpuset.cpus": "0-7", f"{cpuset}/cpuset.mems": "0-1"})
    return FsCgroupBackend(mounts=mounts, root=tmp_path, writer=writer), writer, cpuset, cpu


def test_quota_decisions() -> None:
    assert quota_for("unlimited", None) == "unlimited"
    assert quota_for("limited", 1500) == CpuLimit(1500)
    assert quota_for("limited", 1500, 50_000) == CpuLimit(1500, 50_000)
    assert quota_for("limited", None) is None  # keep what the runtime wrote


def test_path_cgroup_applied_in_both_hierarchies(tmp_path: Path) -> None:
    backend, writer, cpuset, cpu = _hybrid(tmp_path)
    backend.apply("/pod/ctr", cpus="2-3", mems="1", cpu_quota="limited", cpu_limit_millis=500, pid=None)
    (target,) = writer.targets
    assert target.location.cpuset.path == str(cpuset / "pod/ctr") and target.location.cpu.path == str(cpu / "pod/ctr")
    assert writer.files[f"{cpuset}/pod/ctr/cpuset.cpus"] == "2-3"
    assert writer.files[f"{cpuset}/pod/ctr/cpuset.mems"] == "1"
    assert writer.files[f"{cpu}/pod/ctr/cpu.cfs_quota_us"] == "50000"


def test_pid_cgroup_read_from_proc(tmp_path: Path) -> None:
    backend, writer, cpuset, _ = _hybrid(tmp_path)
    (tmp_path / "proc/77").mkdir(parents=True)
    (tmp_path / "proc/77/cgroup").write_text("5:cpuset:/pod/ctr\n2:cpu,cpuacct:/pod/ctr\n")
    backend.apply("pid:77", cpus="1", mems="0", cpu_quota="unlimited", cpu_limit_millis=None, pid=77)
    assert writer.targets[0].location.cpuset.path == str(cpuset / "pod/ctr")
    assert writer.affinity == {77: CPUSet.of([1])}


@pytest.mark.parametrize("cgroup", ["relative/path", "/pod/../../etc", "pid:abc", "pid:0", "pid:999"])
def test_invalid_cgroup_is_einval(tmp_path: Path, cgroup: str) -> None:
    backend, writer, _, _ = _hybrid(tmp_path)
    with pytest.raises(OSError) as caught:
        backend.apply(cgroup, cpus="1", mems="0", cpu_quota="unlimited", cpu_limit_millis=None, pid=None)
    assert caught.value.errno == errno.EINVAL and caught.value.filename == cgroup
    assert writer.targets == []


def test_missing_cgroup_is_enoent(tmp_path: Path) -> None:
    backend, _, cpuset, _ = _hybrid(tmp_path)
    with pytest.raises(OSError) as caught:
        backend.apply("/pod/gone", cpus="1", mems="0", cpu_quota="unlimited", cpu_limit_millis=None, pid=None)
    assert caught.value.errno == errno.ENOENT and caught.value.filename == str(cpuset / "pod/gone")


def test_write_failure_carries_errno_and_file(tmp_path: Path) -> None:
    backend, writer, cpuset, _ = _hybrid(tmp_path)
    writer.memory.fail[f"{cpuset}/pod/ctr/cpuset.cpus"] = errno.EBUSY
    with pytest.raises(OSError) as caught:
        backend.apply("/pod/ctr", cpus="1", mems="0", cpu_quota="unlimited", cpu_limit_millis=None, pid=None)
    assert caught.value.errno == errno.EBUSY
    assert caught.value.filename == f"{cpuset}/pod/ctr/cpuset.cpus"


def test_cgroup_string(tmp_path: Path) -> None:
    same = CgroupLocation.v1(tmp_path / "cpuset", tmp_path / "cpu", "/kubepods/pod1/ctr")
    assert cgroup_string(same) == "/kubepods/pod1/ctr"
    split = CgroupLocation(same.cpuset, CgroupLocation.v1(tmp_path / "cpuset", tmp_path / "cpu", "/other").cpu)
    assert cgroup_string(split, 42) == "pid:42"
    with pytest.raises(ValueError, match="differ"):
        cgroup_string(split, None)
