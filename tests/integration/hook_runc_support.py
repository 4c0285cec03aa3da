"""Helpers for the runc end-to-end hook tests: busybox bundles, running containers, cgroup files.

A :class:`Lab` is one test's world: a pod directory, a state directory, a kubelet config, and a
cgroup parent ``/podshim-it-<random>`` under which every container's ``linux.cgroupsPath``
lives (removed at the end from every hierarchy runc created it in).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import require

from shim.cgroups import paths
from shim.cpuset import CPUSet

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "cat", "grep", "sleep")
READY = "READY"
# What each container prints, then it waits for a line on stdin (so the test decides when it
# stops and can inspect its cgroup meanwhile).
PROGRAM = f'grep -E "^(Cpus|Mems)_allowed_list" /proc/self/status; echo {READY}; read line'

KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
featureGates: {PodLevelResources: true, PodLevelResourceManagers: true}
cpuManagerPolicy: static
reservedSystemCPUs: "0"
memoryManagerPolicy: Static
evictionHard: {memory.available: 100Mi}
reservedMemory:
- {numaNode: 0, limits: {memory: 100Mi}}
topologyManagerPolicy: best-effort
topologyManagerScope: pod
"""


def pod_manifest(
    name: str, uid: str, containers: list[dict[str, Any]], resources: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A v1 Pod mapping with the given containers and optional pod-level resources."""
    spec: dict[str, Any] = {"containers": containers}
    if resources is not None:
        spec["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "uid": uid}, "spec": spec}


def container_resources(cpu: str, memory: str, *, limit_cpu: str | None = None) -> dict[str, Any]:
    """Requests equal to limits, unless ``limit_cpu`` raises the cpu limit (a Burstable container)."""
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": limit_cpu or cpu, "memory": memory}}


def root_cpus() -> CPUSet:
    """The CPUs of the root cpuset cgroup (what an unpinned container may use)."""
    mount = paths.detect_mounts("/").for_controller("cpuset")
    name = "cpuset.cpus" if mount.version == "v1" else "cpuset.cpus.effective"
    return CPUSet.parse(Path(mount.mountpoint, name).read_text().strip())


def add_scenario_pods(lab: Lab, prefix: str) -> tuple[str, str, str]:
    """The three pods of the runc scenarios, put in ``lab``'s pod directory; their uids
    ``(shared, exclusive, rejected)``: a Burstable pod whose container ``web`` runs on the shared
    pool (limit 200m), a pod-level pod whose Guaranteed container ``main`` takes one exclusive
    CPU, and a pod asking more CPUs than the node can give exclusively (``hog``: CPU 0 is
    reserved, so it is always rejected)."""
    shared_uid, excl_uid, big_uid = f"{prefix}-shared-0001", f"{prefix}-excl-0002", f"{prefix}-big-0003"
    lab.add_pod(pod_manifest("shared", shared_uid, [
        {"name": "web", "resources": container_resources("100m", "50Mi", limit_cpu="200m")}]))
    lab.add_pod(pod_manifest("excl", excl_uid, [{"name": "main", "resources": container_resources("1", "50Mi")}],
                             container_resources("1", "100Mi")))
    lab.add_pod(pod_manifest("big", big_uid, [
        {"name": "hog", "resources": container_resources(str(len(root_cpus())), "50Mi")}]))
    return shared_uid, excl_uid, big_uid


def check_exclusive_main(lab: Lab, main: Running, excl_uid: str) -> CPUSet:
    """The scenario's exclusive container as both runtimes must leave it: one exclusive CPU
    (never the reserved 0) in the CPU state, the pod entry and the container's own view and
    cgroup, no CFS quota, and the memory block's nodes as its mems. Its CPU."""
    state = lab.cpu_state()
    exclusive = CPUSet.parse(state["entries"][excl_uid]["main"])
    assert len(exclusive) == 1 and 0 not in exclusive
    assert CPUSet.parse(state["podEntries"][excl_uid]["cpuSet"]) == exclusive
    assert main.cpus() == exclusive == lab.cpuset_cpus(main.id)
    assert lab.quota(main.id) == "-1"  # exclusive CPUs: no CFS quota
    (block,) = lab.state("memory_manager_state")["entries"][excl_uid]["main"]
    assert main.mems() == CPUSet.of(block["numaAffinity"]) == lab.cpuset_mems(main.id)
    return exclusive


def require_runc_host() -> None:
    """Skip (fail under PODSHIM_REQUIRE_INTEGRATION=1) unless runc containers can be pinned here:
    root, runc, a static busybox, cpuset and cpu cgroup mounts, CPUs 0 and 1."""
    require(os.geteuid() == 0, "needs root (runc, cgroups)")
    require(shutil.which("runc") is not None, "runc is not installed (apt-get install runc)")
    require(BUSYBOX.is_file(), "no /bin/busybox (apt-get install busybox-static)")
    try:
        mounts = paths.detect_mounts("/")
        mounts.for_controller("cpuset")
        mounts.for_controller("cpu")
    except paths.CgroupPathError as exc:
        require(False, f"no usable cgroup mounts: {exc}")
    require({0, 1} <= set(root_cpus()), "needs CPUs 0 and 1 in the root cpuset")


def runc_spec(directory: Path) -> dict[str, Any]:
    subprocess.run(["runc", "spec"], cwd=directory, check=True, capture_output=True)
    spec: dict[str, Any] = json.loads((directory / "config.json").read_text())
    return spec


@dataclass
class Running:
    """A ``runc run`` in the foreground; ``status`` holds the lines printed before READY."""

    id: str
    process: subprocess.Popen[bytes]
    status: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    stderr: str = ""

    def wait_ready(self, timeout: float = 60.0) -> bool:
        # Raw reads on the fd: select() knows nothing of a TextIO's read-ahead buffer.
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        pending = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:  # the container (or runc) ended before READY
                break
            pending += chunk
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                line = raw.decode(errors="replace").strip()
                if line == READY:
                    self.ready = True
                    return True
                key, _, value = line.partition(":")
                self.status[key] = value.strip()
        return False

    def stop(self, timeout: float = 60.0) -> int:
        """Let the container exit; returns runc's exit status (after poststop ran)."""
        stdin = self.process.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):  # the container may be gone already (EPIPE)
                stdin.write(b"\n")
                stdin.flush()
            with contextlib.suppress(OSError):
                stdin.close()
            self.process.stdin = None  # so communicate() does not flush it again
        try:
            _, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        self.stderr = err.decode(errors="replace")
        return self.process.returncode

    def cpus(self) -> CPUSet:
        return CPUSet.parse(self.status["Cpus_allowed_list"])

    def mems(self) -> CPUSet:
        return CPUSet.parse(self.status["Mems_allowed_list"])


class Lab:
    """Bundles, state, pods and the cgroup parent of one test."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.pod_dir = base / "pods"
        self.state_dir = base / "state"
        self.config = base / "kubelet-config.yaml"
        self.pod_dir.mkdir()
        self.config.write_text(KUBELET_CONFIG)
        self.parent = f"/podshim-it-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.mounts = paths.detect_mounts("/")
        self.template = self._template()
        self.started: list[Running] = []

    # -- setup -------------------------------------------------------------------------------
    def _template(self) -> dict[str, Any]:
        directory = self.base / "template"
        directory.mkdir()
        return runc_spec(directory)

    def add_pod(self, manifest: dict[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        (self.pod_dir / f"{name}.json").write_text(json.dumps(manifest))

    def hook(self, stage: str) -> dict[str, Any]:
        # args[0] must be the interpreter's full path: Python finds its venv from argv[0]. The
        # podshim-hook script, as hooks.d/podshim.json installs it.
        argv = [
            sys.executable, str(REPO / "scripts" / "podshim-hook"),
            "--config", str(self.config), "--state-dir", str(self.state_dir), "--pod-dir", str(self.pod_dir),
            "--sysfs-root", "/", stage,
        ]
        return {"path": sys.executable, "args": argv, "env": [f"PYTHONPATH={REPO}"], "timeout": 60}

    def bundle(self, container_id: str, annotations: dict[str, str], *, hooks: bool = True) -> Path:
        directory = self.base / container_id
        rootfs = directory / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        for name in ("proc", "sys", "dev", "tmp"):
            (rootfs / name).mkdir()
        shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
        for applet in APPLETS:
            (rootfs / "bin" / applet).symlink_to("busybox")
        spec = json.loads(json.dumps(self.template))
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["sh", "-c", PROGRAM]
        spec["root"] = {"path": "rootfs", "readonly": True}
        spec["hostname"] = container_id
        spec["annotations"] = annotations
        spec["linux"]["cgroupsPath"] = f"{self.parent}/{container_id}"
        if hooks:
            spec["hooks"] = {"createRuntime": [self.hook("createRuntime")], "poststop": [self.hook("poststop")]}
        (directory / "config.json").write_text(json.dumps(spec, indent=1))
        return directory

    def run(self, pod_uid: str, container: str, *, suffix: str = "", wrapper: bool = False) -> Running:
        """Start a container of the pod; ``wrapper``: through ``podshim-runc`` (as containerd
        would run it), which must add the hooks itself, instead of runc with them in config.json."""
        container_id = f"{self.parent.strip('/')}-{container}{suffix}"
        annotations = {"podshim.io/pod-uid": pod_uid, "podshim.io/container": container}
        bundle = self.bundle(container_id, annotations, hooks=not wrapper)
        command, env = ["runc", "run", "-b", str(bundle), container_id], None
        if wrapper:
            command = [sys.executable, str(REPO / "scripts" / "podshim-runc"), *command[1:]]
            options = (f"--config {self.config} --state-dir {self.state_dir} --pod-dir {self.pod_dir} "
                       "--sysfs-root /")
            env = {**os.environ, "PODSHIM_RUNC": shutil.which("runc") or "runc", "PODSHIM_HOOK_ARGS": options,
                   "PYTHONPATH": str(REPO)}
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        running = Running(container_id, process)
        self.started.append(running)
        running.wait_ready()
        return running

    # -- observation -------------------------------------------------------------------------
    def cgroup_dir(self, controller: str, container_id: str) -> Path:
        mount = self.mounts.for_controller(controller)
        return Path(mount.mountpoint, self.parent.strip("/"), container_id)

    def cpuset_cpus(self, container_id: str) -> CPUSet:
        mount = self.mounts.for_controller("cpuset")
        name = "cpuset.cpus" if mount.version == "v1" else "cpuset.cpus.effective"
        return CPUSet.parse((self.cgroup_dir("cpuset", container_id) / name).read_text().strip())

    def cpuset_mems(self, container_id: str) -> CPUSet:
        mount = self.mounts.for_controller("cpuset")
        name = "cpuset.mems" if mount.version == "v1" else "cpuset.mems.effective"
        return CPUSet.parse((self.cgroup_dir("cpuset", container_id) / name).read_text().strip())

    def quota(self, container_id: str) -> str:
        """``-1``/a number of µs (v1) or the quota field of ``cpu.max`` ("max" → "-1") (v2)."""
        directory = self.cgroup_dir("cpu", container_id)
        if self.mounts.for_controller("cpu").version == "v1":
            return (directory / "cpu.cfs_quota_us").read_text().strip()
        value = (directory / "cpu.max").read_text().split()[0]
        return "-1" if value == "max" else value

    def task_cpus(self, container_id: str) -> set[CPUSet]:
        """The Cpus_allowed_list of every task in the container's cpuset cgroup."""
        directory = self.cgroup_dir("cpuset", container_id)
        name = "tasks" if self.mounts.for_controller("cpuset").version == "v1" else "cgroup.threads"
        found: set[CPUSet] = set()
        for tid in (directory / name).read_text().split():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{tid}/status").read_text().splitlines():
                    if line.startswith("Cpus_allowed_list:"):
                        found.add(CPUSet.parse(line.split(":", 1)[1].strip()))
        return found

    def state(self, name: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.state_dir / name).read_text())
        return document

    def cpu_state(self) -> dict[str, Any]:
        return self.state("cpu_manager_state")

    def registry(self) -> dict[str, Any]:
        return self.state("podshim_containers.json")

    # -- teardown ----------------------------------------------------------------------------
    def close(self) -> None:
        for running in self.started:
            if running.process.poll() is None:
                running.stop(timeout=20)
            subprocess.run(["runc", "delete", "-f", running.id], capture_output=True)
        roots = [m.mountpoint for m in self.mounts.v1]
        if self.mounts.unified is not None:
            roots.append(self.mounts.unified.mountpoint)
        for root in roots:
            _rmtree_cgroup(Path(root, self.parent.strip("/")))


def _rmtree_cgroup(directory: Path) -> None:
    if not directory.is_dir():
        return
    for child in directory.iterdir():
        if child.is_dir():
            _rmtree_cgroup(child)
    for _ in range(50):
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.05)
