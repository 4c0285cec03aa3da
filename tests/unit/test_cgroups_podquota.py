"""An exclusive container lifts its pod cgroup's CFS quota (kubelet DisableCPUQuotaWithExclusiveCPUs).

The kubelet creates the pod cgroup of a pod with exclusive CPUs without a CFS quota; CFS quota is
hierarchical, so an unlimited container under a limited pod would still be throttled. Covered:
finding the pod cgroup from the container's path (both drivers, crun's leaf, paths that do not
name the pod), the write order, no rewrite of an unlimited pod, failures, on in-memory files and on
fake v1 (hybrid) and v2 trees through the actor-level backend and the CgroupWriter actor.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from shim.actors.cgroup_writer import CgroupWriterActor
from shim.cgroups.backend import FsCgroupBackend
from shim.cgroups.paths import CgroupLocation, CgroupMount, CgroupMounts, ControllerPath, names_pod, pod_cgroup_dir
from shim.cgroups.writer import ApplyTarget, CpuLimit, FileWrite, RecordingBackend
from shim.cpuset import CPUSet
from shim.messages import Applied, Apply, ApplyFailed

UID = "0b5e6d1c-7a2f-4e0b-9a51-2f3c4d5e6f70"
ESC = UID.replace("-", "_")
CID = "4f1c2a"

CGROUPFS = f"/kubepods/burstable/pod{UID}/{CID}"
CGROUPFS_GUARANTEED = f"/kubepods/pod{UID}/{CID}"
SYSTEMD = f"/kubepods.slice/kubepods-pod{ESC}.slice/cri-containerd-{CID}.scope"
SYSTEMD_BURSTABLE = f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{ESC}.slice/crio-{CID}.scope"
CRUN = f"{SYSTEMD}/container"


def parent_of(path: str, levels: int = 1) -> str:
    return path.rsplit("/", levels)[0]


def cpu_path(relative: str, mount: str = "/cg/cpu") -> ControllerPath:
    return CgroupLocation.v1("/cg/cpuset", mount, relative).cpu


# -- locating the pod cgroup ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "pod"),
    [
        (CGROUPFS, parent_of(CGROUPFS)),
        (CGROUPFS_GUARANTEED, parent_of(CGROUPFS_GUARANTEED)),
        (f"/kubepods/besteffort/pod{UID}/crio-{CID}", f"/kubepods/besteffort/pod{UID}"),
        (SYSTEMD, parent_of(SYSTEMD)),
        (SYSTEMD_BURSTABLE, parent_of(SYSTEMD_BURSTABLE)),
        (CRUN, parent_of(CRUN, 2)),
        (f"{SYSTEMD}/payload", parent_of(SYSTEMD)),  # crun's run.oci.systemd.subgroup annotation
    ],
)
def test_pod_cgroup_found_for_kubelet_layouts(container: str, pod: str) -> None:
    assert pod_cgroup_dir(cpu_path(container), UID) == "/cg/cpu" + pod


@pytest.mark.parametrize(
    "container",
    [
        f"/kubepods/burstable/pod{UID}",  # the pod cgroup itself
        f"/kubepods/burstable/{CID}",  # directly under a QoS cgroup
        f"/kubepods/burstable/pod{UID}/{CID}/sub/leaf",  # too deep
        f"/kubepods/pod{UID}/{CID}/container",  # a sub-cgroup outside a systemd scope
        f"/kubepods/burstable/podother/{CID}",  # another pod
        f"/kubepods/burstable/pod{UID}x/{CID}",  # a longer uid
        f"/kubepods.slice/kubepods-pod{UID}.slice/crio-{CID}.scope",  # systemd names escape dashes
        f"/kubepods.slice/kubepods-pod{ESC}.slice/x/crio-{CID}.scope/container",
        f"/pod{UID}",
        "/",
    ],
)
def test_paths_that_do_not_name_the_pod_give_none(container: str) -> None:
    assert pod_cgroup_dir(cpu_path(container), UID) is None


def test_names_pod_refuses_empty_and_slashed_uids() -> None:
    assert names_pod(f"pod{UID}", UID) and names_pod(f"kubepods-besteffort-pod{ESC}.slice", UID)
    assert not names_pod("pod", "")
    assert not names_pod("-pod.slice", "")
    assert not names_pod("poda/b", "a/b")


# -- the writer ----------------------------------------------------------------------------------


def v1_target(quota: object, *, pod: bool = True) -> ApplyTarget:
    location = CgroupLocation.v1("/cg/cpuset", "/cg/cpu", CGROUPFS)
    return ApplyTarget(location, quota=quota, pod_cpu="/cg/cpu" + parent_of(CGROUPFS) if pod else None)  # type: ignore[arg-type]


def test_v1_pod_quota_lifted_before_the_container() -> None:
    pod_file = f"/cg/cpu{parent_of(CGROUPFS)}/cpu.cfs_quota_us"
    backend = RecordingBackend({pod_file: "150000\n"})
    result = backend.apply(v1_target("unlimited"))
    assert result.ok, result.message
    assert list(result.writes) == [
        FileWrite(pod_file, "-1"),
        FileWrite(f"/cg/cpu{CGROUPFS}/cpu.cfs_quota_us", "-1"),
    ]


def test_v2_pod_quota_lifted_before_the_container() -> None:
    location = CgroupLocation.v2("/u", CRUN)
    pod_dir = "/u" + parent_of(CRUN, 2)
    backend = RecordingBackend({f"{pod_dir}/cpu.max": "200000 100000\n"})
    result = backend.apply(ApplyTarget(location, quota="unlimited", pod_cpu=pod_dir))
    assert result.ok, result.message
    assert list(result.writes) == [FileWrite(f"{pod_dir}/cpu.max", "max"), FileWrite(f"/u{CRUN}/cpu.max", "max")]


@pytest.mark.parametrize(("name", "value"), [("cpu.cfs_quota_us", "-1\n"), ("cpu.max", "max 100000\n")])
def test_an_unlimited_pod_is_not_rewritten(name: str, value: str) -> None:
    if name == "cpu.max":
        location, pod_dir = CgroupLocation.v2("/u", CGROUPFS), "/u" + parent_of(CGROUPFS)
    else:
        location, pod_dir = CgroupLocation.v1("/cg/cpuset", "/cg/cpu", CGROUPFS), "/cg/cpu" + parent_of(CGROUPFS)
    backend = RecordingBackend({f"{pod_dir}/{name}": value})
    result = backend.apply(ApplyTarget(location, quota="unlimited", pod_cpu=pod_dir))
    assert result.ok and [w.path for w in result.writes] == [f"{location.cpu.path}/{name}"]


@pytest.mark.parametrize("quota", [CpuLimit(1500), None])
def test_a_limited_container_leaves_the_pod_alone(quota: object) -> None:
    pod_file = f"/cg/cpu{parent_of(CGROUPFS)}/cpu.cfs_quota_us"
    backend = RecordingBackend({pod_file: "150000"})
    assert backend.apply(v1_target(quota)).ok
    assert pod_file not in {w.path for w in backend.writes}
    assert backend.files[pod_file] == "150000"


def test_failing_pod_write_stops_before_the_container() -> None:
    pod_file = f"/cg/cpu{parent_of(CGROUPFS)}/cpu.cfs_quota_us"
    backend = RecordingBackend({pod_file: "150000"}, fail={pod_file: errno.EACCES})
    result = backend.apply(v1_target("unlimited"))
    assert (result.ok, result.errno, result.path, result.writes) == (False, errno.EACCES, pod_file, ())
    assert result.message == f"write '-1' to {pod_file}: Permission denied"


@pytest.mark.parametrize(
    "pod_cpu",
    ["/cg/cpu", "/cg/other/kubepods", f"/cg/cpu{CGROUPFS}", f"/cg/cpu{CGROUPFS}/below", "/cg/cpuset/kubepods"],
)
def test_pod_directory_must_sit_between_mount_and_container(pod_cpu: str) -> None:
    with pytest.raises(ValueError, match="is not between"):
        ApplyTarget(CgroupLocation.v1("/cg/cpuset", "/cg/cpu", CGROUPFS), quota="unlimited", pod_cpu=pod_cpu)


# -- fake trees through the actor-level backend and the actor --------------------------------------


class Tree:
    """A fake cgroup mount set (hybrid v1 or pure v2) made of directories and regular files."""

    def __init__(self, root: Path, version: str) -> None:
        self.root = root
        self.version = version
        if version == "v1":
            self.cpuset, self.cpu = root / "cpuset", root / "cpu,cpuacct"
            mounts = (
                CgroupMount("v1", self.cpuset, "/", frozenset({"cpuset"})),
                CgroupMount("v1", self.cpu, "/", frozenset({"cpu", "cpuacct"})),
            )
            self.mounts = CgroupMounts(mounts, None)
        else:
            self.cpuset = self.cpu = root / "unified"
            self.mounts = CgroupMounts((), CgroupMount("v2", self.cpu, "/", frozenset({"cpuset", "cpu"})))
        self.quota_name = "cpu.cfs_quota_us" if version == "v1" else "cpu.max"
        self.limited = "150000" if version == "v1" else "150000 100000"
        self.unlimited = "-1" if version == "v1" else "max"

    def make(self, relative: str, *, quota: str | None = None) -> None:
        """Create ``relative`` and every directory above it, each with a limited quota file
        (except the mount roots, which have none, as in the kernel) and cpuset files."""
        parts = relative.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            rel = "/".join(parts[:depth])
            for mount in {self.cpuset, self.cpu}:
                (mount / rel).mkdir(parents=True, exist_ok=True)
            quota_file = self.cpu / rel / self.quota_name
            if not quota_file.exists():
                quota_file.write_text(self.limited + "\n")
            if self.version == "v1":
                (self.cpu / rel / "cpu.cfs_period_us").write_text("100000\n")
                for name, value in (("cpuset.cpus", "0-7"), ("cpuset.mems", "0")):
                    (self.cpuset / rel / name).write_text(value + "\n")
        if quota is not None:
            (self.cpu / relative.strip("/") / self.quota_name).write_text(quota + "\n")
        if self.version == "v1":
            for name, value in (("cpuset.cpus", "0-7"), ("cpuset.mems", "0")):
                (self.cpuset / name).write_text(value + "\n")

    def quota(self, relative: str) -> str:
        return (self.cpu / relative.strip("/") / self.quota_name).read_text().split()[0]

    def backend(self) -> FsCgroupBackend:
        return FsCgroupBackend(mounts=self.mounts, root=self.root)


TREES = pytest.mark.parametrize("version", ["v1", "v2"])


def apply_message(cgroup: str, *, quota: str = "unlimited", pod_uid: str = UID, cpus: str = "") -> Apply:
    return Apply(
        pod_uid=pod_uid,
        container="app",
        cgroup=cgroup,
        cpus=cpus,
        mems="",
        cpu_quota=quota,  # type: ignore[arg-type]
        cpu_limit_millis=None if quota == "unlimited" else 500,
    )


@TREES
@pytest.mark.parametrize("container", [CGROUPFS, CGROUPFS_GUARANTEED, SYSTEMD, SYSTEMD_BURSTABLE, CRUN])
def test_exclusive_container_lifts_its_pod_on_a_fake_tree(tmp_path: Path, version: str, container: str) -> None:
    tree = Tree(tmp_path, version)
    tree.make(container)
    pod = parent_of(container, 2 if container == CRUN else 1)
    [envelope] = CgroupWriterActor(tree.backend()).handle(apply_message(container))
    assert envelope.message == Applied(pod_uid=UID, container="app", cgroup=container)
    assert tree.quota(container) == tree.unlimited
    assert tree.quota(pod) == tree.unlimited
    if container == CRUN:  # the scope between the pod and crun's leaf is not the pod's: untouched
        assert tree.quota(parent_of(CRUN)) == tree.limited.split()[0]
    assert tree.quota(parent_of(pod)) == tree.limited.split()[0]  # nothing above the pod


@TREES
def test_exclusive_cpuset_and_quota_together(tmp_path: Path, version: str) -> None:
    tree = Tree(tmp_path, version)
    tree.make(CGROUPFS)
    cpus = "2-3" if version == "v1" else ""  # a fake v2 tree has no kernel to grant .effective
    [envelope] = CgroupWriterActor(tree.backend()).handle(apply_message(CGROUPFS, cpus=cpus))
    assert isinstance(envelope.message, Applied)
    assert tree.quota(parent_of(CGROUPFS)) == tree.unlimited
    if version == "v1":
        assert (tree.cpuset / CGROUPFS.lstrip("/") / "cpuset.cpus").read_text() == "2-3"


@TREES
@pytest.mark.parametrize(
    ("container", "pod_uid"),
    [
        (CGROUPFS, "another-uid"),  # the parent names another pod
        (f"/scratch/{CID}", UID),  # not under any pod cgroup
        (f"/kubepods/pod{UID}/{CID}/nested", UID),  # the parent is not the pod
    ],
)
def test_no_pod_write_when_the_path_does_not_name_the_pod(
    tmp_path: Path, version: str, container: str, pod_uid: str
) -> None:
    tree = Tree(tmp_path, version)
    tree.make(container)
    [envelope] = CgroupWriterActor(tree.backend()).handle(apply_message(container, pod_uid=pod_uid))
    assert isinstance(envelope.message, Applied)
    assert tree.quota(container) == tree.unlimited
    parts = container.strip("/").split("/")
    for depth in range(1, len(parts)):
        assert tree.quota("/".join(parts[:depth])) == tree.limited.split()[0]


@TREES
def test_limited_container_leaves_the_pod_on_a_fake_tree(tmp_path: Path, version: str) -> None:
    tree = Tree(tmp_path, version)
    tree.make(CGROUPFS)
    [envelope] = CgroupWriterActor(tree.backend()).handle(apply_message(CGROUPFS, quota="limited"))
    assert isinstance(envelope.message, Applied)
    assert tree.quota(CGROUPFS) == "50000"
    assert tree.quota(parent_of(CGROUPFS)) == tree.limited.split()[0]


@TREES
def test_failing_pod_write_is_apply_failed_and_the_container_untouched(tmp_path: Path, version: str) -> None:
    tree = Tree(tmp_path, version)
    tree.make(CGROUPFS)
    pod_file = tree.cpu / parent_of(CGROUPFS).lstrip("/") / tree.quota_name
    pod_file.unlink()
    pod_file.mkdir()  # writing a directory fails (EISDIR) even for root
    [envelope] = CgroupWriterActor(tree.backend()).handle(apply_message(CGROUPFS))
    message = envelope.message
    assert isinstance(message, ApplyFailed)
    assert (message.errno, message.path, message.pod_uid) == (errno.EISDIR, str(pod_file), UID)
    assert tree.quota(CGROUPFS) == tree.limited.split()[0]


def test_pod_cgroup_escaping_the_mount_is_refused(tmp_path: Path) -> None:
    tree = Tree(tmp_path / "cg", "v1")
    tree.make("/kubepods/burstable")
    outside = tmp_path / "outside"
    (outside / CID).mkdir(parents=True)
    (outside / "cpu.cfs_quota_us").write_text("150000\n")
    (outside / CID / "cpu.cfs_quota_us").write_text("150000\n")
    for mount in (tree.cpuset, tree.cpu):
        (mount / f"kubepods/burstable/pod{UID}").symlink_to(outside)
    [envelope] = CgroupWriterActor(tree.backend()).handle(apply_message(CGROUPFS))
    assert isinstance(envelope.message, ApplyFailed) and envelope.message.errno == errno.EINVAL
    assert (outside / "cpu.cfs_quota_us").read_text() == "150000\n"
    assert (outside / CID / "cpu.cfs_quota_us").read_text() == "150000\n"


def test_pid_cgroup_lifts_the_pod_found_through_proc(tmp_path: Path) -> None:
    tree = Tree(tmp_path, "v1")
    tree.make(SYSTEMD)
    (tmp_path / "proc/41").mkdir(parents=True)
    (tmp_path / "proc/41/cgroup").write_text(f"5:cpuset:{SYSTEMD}\n4:cpu,cpuacct:{SYSTEMD}\n")
    [envelope] = CgroupWriterActor(tree.backend()).handle(apply_message("pid:41"))
    assert isinstance(envelope.message, Applied)
    assert tree.quota(parent_of(SYSTEMD)) == "-1"


def test_recording_actor_backend_accepts_the_pod_uid() -> None:
    from shim.actors.cgroup_writer import AppliedCall, RecordingCgroupBackend

    backend = RecordingCgroupBackend()
    [envelope] = CgroupWriterActor(backend).handle(apply_message(CGROUPFS, cpus="1"))
    assert isinstance(envelope.message, Applied)
    assert backend.calls == [AppliedCall(CGROUPFS, "1", "", "unlimited", None, None)]


def test_quota_writes_follow_the_cpuset_writes() -> None:
    # The pod lift writes only the quota file: the cpuset chain is still planned as before.
    backend = RecordingBackend({"/cg/cpuset/cpuset.cpus": "0-7", "/cg/cpuset/cpuset.mems": "0"})
    location = CgroupLocation.v1("/cg/cpuset", "/cg/cpu", CGROUPFS)
    result = backend.apply(
        ApplyTarget(
            location,
            cpus=CPUSet.parse("1"),
            mems=(0,),
            quota="unlimited",
            pod_cpu="/cg/cpu" + parent_of(CGROUPFS),
        )
    )
    assert result.ok, result.message
    names = [w.path.rsplit("/", 1)[1] for w in result.writes]
    assert names == ["cpuset.cpus", "cpuset.mems", "cpu.cfs_quota_us", "cpu.cfs_quota_us"]
