"""The cgroup writer against this machine's real cgroups (root; v1/hybrid or v2 with cpuset).

Also: an exclusive container's Apply lifts the CFS quota of its scratch pod cgroup
``podshim-test-<pid>-<id>/pod<uid>/ctr`` (and only of a parent that names the pod's uid).

Creates ``podshim-test-<pid>/ctr`` under the cpuset and cpu hierarchies, moves a python child
with 3 extra threads into it, writes cpuset and quota through FsBackend with both native
implementations, and checks the cgroup files and every thread's Cpus_allowed_list.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import require, script_probe

from shim.actors.cgroup_writer import CgroupWriterActor
from shim.cgroups import native, paths
from shim.cgroups.backend import FsCgroupBackend
from shim.cgroups.writer import ApplyTarget, CpuLimit, CpusetLevel, FsBackend
from shim.cpuset import CPUSet
from shim.messages import Applied, Apply

pytestmark = pytest.mark.integration

THREADED_CHILD = """
import threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
"""


@dataclass
class Sandbox:
    """The test cgroups and the child process living in the container one."""

    mounts: paths.CgroupMounts
    pod: paths.CgroupLocation
    ctr: paths.CgroupLocation
    cpus: CPUSet  # what the hierarchy root offers
    mems: tuple[int, ...]
    child: subprocess.Popen[str]


def _ops(name: str) -> native.NativeOps:
    if name == "python":
        return native.FallbackOps()
    module = native.native_module()
    require(module is not None, "shim._native is not built (pip install -e .)")
    return native.CffiOps(module)


def _affinities(pid: int) -> dict[int, CPUSet]:
    out: dict[int, CPUSet] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out[int(task.name)] = CPUSet.parse(line.split(":", 1)[1].strip())
    return out


def _read(path: str | Path) -> str:
    return Path(path).read_text().strip()


def _dirs(loc: paths.CgroupLocation) -> list[Path]:
    return sorted({Path(loc.cpuset.path), Path(loc.cpu.path)})


def _rmdir(path: Path) -> None:
    for _ in range(50):  # a killed child leaves its cgroup a moment later
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.02)
    path.rmdir()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    require(os.geteuid() == 0, "needs root to create cgroups")
    try:
        mounts = paths.detect_mounts("/")
        cpuset_mount = mounts.for_controller("cpuset")
        cpu_mount = mounts.for_controller("cpu")
    except paths.CgroupPathError as exc:
        require(False, f"no usable cgroup mounts: {exc}")
        raise
    name = f"podshim-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if cpuset_mount.version == "v1":
        pod = paths.CgroupLocation.v1(cpuset_mount.mountpoint, cpu_mount.mountpoint, f"/{name}")
        ctr = paths.CgroupLocation.v1(cpuset_mount.mountpoint, cpu_mount.mountpoint, f"/{name}/ctr")
    else:
        pod = paths.CgroupLocation.v2(cpuset_mount.mountpoint, f"/{name}")
        ctr = paths.CgroupLocation.v2(cpuset_mount.mountpoint, f"/{name}/ctr")
    root_dir = Path(cpuset_mount.mountpoint)
    cpus_file = "cpuset.cpus" if cpuset_mount.version == "v1" else "cpuset.cpus.effective"
    mems_file = "cpuset.mems" if cpuset_mount.version == "v1" else "cpuset.mems.effective"
    cpus = CPUSet.parse(_read(root_dir / cpus_file))
    mems = tuple(CPUSet.parse(_read(root_dir / mems_file)))
    created: list[Path] = []
    child: subprocess.Popen[str] | None = None
    try:
        for directory in [*_dirs(pod), *_dirs(ctr)]:
            if not directory.exists():
                directory.mkdir()
                created.append(directory)
        if cpuset_mount.version == "v2":
            # controllers must be enabled down to the container cgroup
            for parent in (root_dir, Path(pod.cpuset.path)):
                (parent / "cgroup.subtree_control").write_text("+cpuset +cpu")
        # v1 refuses tasks while cpuset.cpus/mems are empty: give the new cgroups values first
        result = FsBackend().apply(
            ApplyTarget(ctr, cpus=cpus, mems=mems, ancestors=(CpusetLevel(pod.cpuset.path, cpus, mems),))
        )
        assert result.ok, result.message
        child = subprocess.Popen([sys.executable, "-c", THREADED_CHILD], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for directory in _dirs(ctr):
            (directory / "cgroup.procs").write_text(str(child.pid))
        yield Sandbox(mounts, pod, ctr, cpus, mems, child)
    finally:
        if child is not None:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        for directory in reversed(created):
            _rmdir(directory)


def test_proc_cgroup_resolves_to_the_created_cgroup(sandbox: Sandbox) -> None:
    loc = paths.resolve_container(sandbox.mounts, pid=sandbox.child.pid, cgroups_path=None)
    assert loc.cpuset.path == sandbox.ctr.cpuset.path
    assert loc.cpu.path == sandbox.ctr.cpu.path


@pytest.mark.parametrize("impl", ["native", "python"])
def test_cpuset_quota_and_thread_affinity(sandbox: Sandbox, impl: str) -> None:
    backend = FsBackend(_ops(impl))
    last = CPUSet.of([max(sandbox.cpus)])
    pod_level = CpusetLevel(sandbox.pod.cpuset.path, sandbox.cpus, sandbox.mems)
    result = backend.apply(
        ApplyTarget(
            sandbox.ctr,
            cpus=last,
            mems=sandbox.mems,
            quota=CpuLimit(500),
            pid=sandbox.child.pid,
            ancestors=(pod_level,),
        )
    )
    assert result.ok, result.message
    assert result.threads == 4
    assert result.effective_cpus == last
    leaf = Path(sandbox.ctr.cpuset.path)
    if sandbox.ctr.cpuset.version == "v1":
        assert CPUSet.parse(_read(leaf / "cpuset.cpus")) == last
        assert CPUSet.parse(_read(leaf / "cpuset.mems")) == CPUSet.of(sandbox.mems)
        assert _read(Path(sandbox.ctr.cpu.path, "cpu.cfs_quota_us")) == "50000"
        assert _read(Path(sandbox.ctr.cpu.path, "cpu.cfs_period_us")) == "100000"
    else:
        assert CPUSet.parse(_read(leaf / "cpuset.cpus.effective")) == last
        assert _read(Path(sandbox.ctr.cpu.path, "cpu.max")) == "50000 100000"
    affinities = _affinities(sandbox.child.pid)
    assert len(affinities) == 4 and set(affinities.values()) == {last}

    # widen back; then pin the threads inside the cgroup through affinity only
    first = CPUSet.of([min(sandbox.cpus)])
    result = backend.apply(
        ApplyTarget(sandbox.ctr, cpus=sandbox.cpus, quota="unlimited", pid=sandbox.child.pid, affinity=first)
    )
    assert result.ok, result.message
    assert set(_affinities(sandbox.child.pid).values()) == {first}
    quota_file = "cpu.cfs_quota_us" if sandbox.ctr.cpu.version == "v1" else "cpu.max"
    assert _read(Path(sandbox.ctr.cpu.path, quota_file)).split()[0] in ("-1", "max")


def test_affinity_outside_the_cpuset_is_einval(sandbox: Sandbox) -> None:
    require(len(sandbox.cpus) >= 2, "needs 2 CPUs")
    backend = FsBackend()
    only_last = CPUSet.of([max(sandbox.cpus)])
    assert backend.apply(ApplyTarget(sandbox.ctr, cpus=only_last)).ok
    for ops in native.implementations():
        result = ops.set_process_affinity(sandbox.child.pid, [min(sandbox.cpus)])
        assert (ops.name, result) == (ops.name, native.AffinityResult(0, errno.EINVAL))


def test_v1_child_outside_parent_is_refused_by_the_kernel(sandbox: Sandbox) -> None:
    require(len(sandbox.cpus) >= 2, "needs 2 CPUs")
    if sandbox.ctr.cpuset.version != "v1":
        pytest.skip("the subset rule is v1-only")
    backend = FsBackend()
    low, high = CPUSet.of([min(sandbox.cpus)]), CPUSet.of([max(sandbox.cpus)])
    pod_level = CpusetLevel(sandbox.pod.cpuset.path, high, sandbox.mems)
    assert backend.apply(ApplyTarget(sandbox.ctr, cpus=high, ancestors=(pod_level,))).ok
    # without the pod level in the target the writer cannot widen the parent first
    result = backend.apply(ApplyTarget(sandbox.ctr, cpus=low))
    assert (result.ok, result.errno) == (False, errno.EACCES)
    assert result.path == str(Path(sandbox.ctr.cpuset.path, "cpuset.cpus"))
    # narrowing the parent under its child: EBUSY
    narrow_parent = CpusetLevel(sandbox.pod.cpuset.path, low, sandbox.mems)
    codes = native.load().write_files([(str(Path(narrow_parent.path, "cpuset.cpus")), str(low))])
    assert codes == [errno.EBUSY]
    # with the chain, the move is ordered: widen pod, set container, narrow pod
    result = backend.apply(ApplyTarget(sandbox.ctr, cpus=low, ancestors=(narrow_parent,)))
    assert result.ok, result.message
    assert [(Path(w.path).parent.name, w.value) for w in result.writes] == [
        (Path(sandbox.pod.cpuset.path).name, str(sandbox.cpus)),
        ("ctr", str(low)),
        (Path(sandbox.pod.cpuset.path).name, str(low)),
    ]
    assert set(_affinities(sandbox.child.pid).values()) == {low}


# --- the pod cgroup's CFS quota (kubelet DisableCPUQuotaWithExclusiveCPUs) ------------------------


@dataclass
class PodTree:
    """Scratch cgroups ``/<scratch>/pod<uid>/ctr`` in the cpuset and cpu hierarchies."""

    mounts: paths.CgroupMounts
    uid: str
    cgroup: str  # the container's hierarchy path
    scratch: Path  # in the cpu hierarchy
    pod: Path
    ctr: Path
    version: str


def _quota_file(version: str) -> str:
    return "cpu.cfs_quota_us" if version == "v1" else "cpu.max"


@pytest.fixture
def pod_tree() -> Iterator[PodTree]:
    require(os.geteuid() == 0, "needs root to create cgroups")
    try:
        mounts = paths.detect_mounts("/")
        cpuset_mount, cpu_mount = mounts.for_controller("cpuset"), mounts.for_controller("cpu")
    except paths.CgroupPathError as exc:
        require(False, f"no usable cgroup mounts: {exc}")
        raise
    uid = str(uuid.uuid4())
    scratch = f"podshim-test-{os.getpid()}-{uid[:8]}"
    cgroup = f"/{scratch}/pod{uid}/ctr"
    created: list[Path] = []
    try:
        if cpu_mount.version == "v2":
            Path(cpu_mount.mountpoint, "cgroup.subtree_control").write_text("+cpu")
        for depth in (1, 2, 3):
            rel = "/".join(cgroup.strip("/").split("/")[:depth])
            for mount in sorted({cpuset_mount.mountpoint, cpu_mount.mountpoint}):
                directory = Path(mount, rel)
                if cpu_mount.version == "v2" and depth > 1:
                    (directory.parent / "cgroup.subtree_control").write_text("+cpu")
                directory.mkdir()
                created.append(directory)
        base = Path(cpu_mount.mountpoint) / scratch
        yield PodTree(mounts, uid, cgroup, base, base / f"pod{uid}", base / f"pod{uid}/ctr", cpu_mount.version)
    finally:
        for directory in reversed(created):
            _rmdir(directory)


def _set_quota(directory: Path, version: str, quota_us: int) -> None:
    value = str(quota_us) if version == "v1" else f"{quota_us} 100000"
    (directory / _quota_file(version)).write_text(value)


def _quota(directory: Path, version: str) -> str:
    return _read(directory / _quota_file(version)).split()[0]


def test_exclusive_container_lifts_the_real_pod_quota(pod_tree: PodTree) -> None:
    version = pod_tree.version
    _set_quota(pod_tree.pod, version, 50_000)
    _set_quota(pod_tree.ctr, version, 20_000)
    if version == "v1":
        # The rule the write order respects: a child's quota above its parent's is refused.
        codes = native.load().write_files([(str(pod_tree.ctr / "cpu.cfs_quota_us"), "100000")])
        assert codes == [errno.EINVAL]
    unlimited = "-1" if version == "v1" else "max"
    actor = CgroupWriterActor(FsCgroupBackend(mounts=pod_tree.mounts))
    apply = Apply(
        pod_uid=pod_tree.uid, container="ctr", cgroup=pod_tree.cgroup, cpus="", mems="", cpu_quota="unlimited"
    )
    [envelope] = actor.handle(apply)
    assert envelope.message == Applied(pod_uid=pod_tree.uid, container="ctr", cgroup=pod_tree.cgroup)
    assert _quota(pod_tree.pod, version) == unlimited
    assert _quota(pod_tree.ctr, version) == unlimited
    assert _quota(pod_tree.scratch, version) == unlimited  # was never limited; left as it was

    # A re-pin finds the pod unlimited already and writes only the container's file.
    target = ApplyTarget(
        paths.CgroupLocation.v1(
            pod_tree.mounts.for_controller("cpuset").mountpoint,
            pod_tree.mounts.for_controller("cpu").mountpoint,
            pod_tree.cgroup,
        )
        if version == "v1"
        else paths.CgroupLocation.v2(pod_tree.mounts.for_controller("cpu").mountpoint, pod_tree.cgroup),
        quota="unlimited",
        pod_cpu=pod_tree.pod,
    )
    result = FsBackend().apply(target)
    assert result.ok, result.message
    assert [w.path for w in result.writes] == [str(pod_tree.ctr / _quota_file(version))]


def test_container_of_another_pod_leaves_the_real_pod_quota(pod_tree: PodTree) -> None:
    version = pod_tree.version
    _set_quota(pod_tree.pod, version, 50_000)
    actor = CgroupWriterActor(FsCgroupBackend(mounts=pod_tree.mounts))
    apply = Apply(
        pod_uid="not-" + pod_tree.uid, container="ctr", cgroup=pod_tree.cgroup, cpus="", mems="", cpu_quota="unlimited"
    )
    [envelope] = actor.handle(apply)
    assert isinstance(envelope.message, Applied)
    assert _quota(pod_tree.pod, version) == "50000"
    assert _quota(pod_tree.ctr, version) == ("-1" if version == "v1" else "max")


# --- what the embedded hook loads ---------------------------------------------------------------

HOOK_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "podshim-hook"
# Each costs the per-container hook milliseconds and none is needed to decide and pin: the
# daemon's event loop, YAML and argparse, the json package (the hook reads JSON through _json),
# dataclasses, fractions, and pathlib (which brings urllib.parse and ipaddress).
NOT_FOR_THE_EMBEDDED_HOOK = ("trio", "yaml", "argparse", "json", "dataclasses", "fractions", "pathlib",
                             "urllib", "ipaddress", "tempfile")


def test_the_embedded_hook_pins_without_loading_what_it_does_not_need(sandbox: Sandbox, tmp_path: Path) -> None:
    import json

    config = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
              "cpuManagerPolicy": "static", "reservedSystemCPUs": "0", "topologyManagerPolicy": "best-effort"}
    (tmp_path / "kubelet.json").write_text(json.dumps(config))
    (tmp_path / "pods").mkdir()
    (tmp_path / "pods" / "p.json").write_text(json.dumps({"metadata": {"name": "p", "uid": "uid-imports"}, "spec": {
        "containers": [{"name": "main", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({
        "annotations": {"podshim.io/pod-uid": "uid-imports", "podshim.io/container": "main"},
        "linux": {"cgroupsPath": sandbox.ctr.cpuset.relative}}))
    state = json.dumps({"ociVersion": "1.0.2", "id": "imports", "status": "creating", "bundle": str(bundle),
                        "pid": sandbox.child.pid})
    options = ["--config", str(tmp_path / "kubelet.json"), "--state-dir", str(tmp_path / "state"),
               "--pod-dir", str(tmp_path / "pods"), "--sysfs-root", "/"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for stage in ("createRuntime", "poststop"):
        # the first container after boot or a config change discovers the topology from sysfs
        # and fills the hook's cache; measured is every later one
        warm_up = subprocess.run([sys.executable, str(HOOK_SCRIPT), *options, stage], input=state.encode(),
                                 capture_output=True, env=env)
        assert warm_up.returncode == 0, warm_up.stderr.decode()
    for stage in ("createRuntime", "poststop"):
        probe = script_probe(str(HOOK_SCRIPT), [*options, stage], packages=NOT_FOR_THE_EMBEDDED_HOOK)
        # -I: the probe's interpreter loads nothing from the caller's environment; the editable
        # install's finder (which imports pathlib) is not part of what the hook loads, so shim
        # is found through the repository on sys.path instead
        done = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}\n" + probe],
                              input=state.encode(), capture_output=True, env=env)
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().split(" ", 1) == ["0", "[]\n"], (stage, done.stdout.decode(), done.stderr.decode())
        pods = json.loads((tmp_path / "state" / "podshim_containers.json").read_text())["pods"]
        if stage == "createRuntime":  # pinned and recorded
            assert pods["uid-imports"]["containers"]["main"]["cgroup"] == sandbox.ctr.cpuset.relative
        else:  # released with the pod's last container
            assert "uid-imports" not in pods
