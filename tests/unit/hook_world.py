"""A fake host for ``podshim hook`` unit tests: a 4-CPU topology, a kubelet config, a pod
directory, bundles, fake ``/proc/<pid>/cgroup`` files and v1 cgroup directories, with a
RecordingBackend standing for the kernel (no root needed)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from shim.cgroups.backend import FsCgroupBackend
from shim.cgroups.paths import CgroupMount, CgroupMounts
from shim.cgroups.writer import RecordingBackend
from shim.frontends import cli, hook

KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cpuManagerPolicy: static
reservedSystemCPUs: "0"
memoryManagerPolicy: Static
evictionHard: {memory.available: 100Mi}
reservedMemory:
- {numaNode: 0, limits: {memory: 100Mi}}
topologyManagerPolicy: best-effort
topologyManagerScope: pod
"""

GI = 1024**3


def topology_json(cpus: int = 4) -> str:
    return json.dumps(
        {
            "cpus": [{"id": i, "socket": 0, "core": i, "numa": 0, "uncore": 0} for i in range(cpus)],
            "numa": [{"id": 0, "memory": 16 * GI, "hugepages": {}, "distances": [10]}],
        }
    )


def pod(
    name: str, uid: str, containers: list[dict[str, Any]], resources: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers}
    if resources is not None:
        spec["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "uid": uid}, "spec": spec}


def res(cpu: str, memory: str, *, limit_cpu: str | None = None) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": limit_cpu or cpu, "memory": memory}}


class HookWorld:
    """One fake host. ``run(stage, ...)`` calls ``podshim hook`` in-process and returns the
    exit code; stderr is captured by pytest's capsys."""

    def __init__(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.base = base
        self.monkeypatch = monkeypatch
        self.root = base / "root"
        self.pod_dir = base / "pods"
        self.state_dir = base / "state"
        self.pod_dir.mkdir()
        self.config = base / "kubelet.yaml"
        self.config.write_text(KUBELET_CONFIG)
        self.topology = base / "topology.json"
        self.topology.write_text(topology_json())
        self.cpuset_mount = self.root / "sys/fs/cgroup/cpuset"
        self.cpu_mount = self.root / "sys/fs/cgroup/cpu,cpuacct"
        self.cpuset_mount.mkdir(parents=True)
        self.cpu_mount.mkdir(parents=True)
        mounts = CgroupMounts(
            (
                CgroupMount("v1", self.cpuset_mount, "/", frozenset({"cpuset"})),
                CgroupMount("v1", self.cpu_mount, "/", frozenset({"cpu", "cpuacct"})),
            ),
            None,
        )
        root_files = {f"{self.cpuset_mount}/cpuset.cpus": "0-3", f"{self.cpuset_mount}/cpuset.mems": "0"}
        self.writer = RecordingBackend(root_files)
        self.backend = FsCgroupBackend(mounts=mounts, root=self.root, writer=self.writer)
        monkeypatch.setattr(hook, "make_backend", lambda: self.backend)

    def add_pod(self, manifest: dict[str, Any], *, filename: str | None = None) -> None:
        name = filename or f"{manifest['metadata']['name']}.json"
        (self.pod_dir / name).write_text(json.dumps(manifest))

    def container(self, container_id: str, annotations: dict[str, str], *, pid: int | None = None,
                  cgroups_path: str | None = None) -> dict[str, Any]:
        """A bundle and its cgroup directories; returns the OCI state to feed the hook."""
        bundle = self.base / "bundles" / container_id
        bundle.mkdir(parents=True)
        path = cgroups_path or f"/kubepods/{container_id}"
        config: dict[str, Any] = {"annotations": annotations, "linux": {"cgroupsPath": path}}
        (bundle / "config.json").write_text(json.dumps(config))
        for mount in (self.cpuset_mount, self.cpu_mount):
            (mount / path.strip("/")).mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {"ociVersion": "1.0.2", "id": container_id, "status": "creating", "bundle": str(bundle)}
        if pid is not None:
            proc = self.root / f"proc/{pid}"
            proc.mkdir(parents=True)
            (proc / "cgroup").write_text(f"4:cpuset:{path}\n3:cpu,cpuacct:{path}\n0::/\n")
            state["pid"] = pid
        return state

    def args(self, stage: str) -> list[str]:
        return [
            "hook", "--config", str(self.config), "--state-dir", str(self.state_dir),
            "--pod-dir", str(self.pod_dir), "--topology", str(self.topology), stage,
        ]

    def run(self, stage: str, state: dict[str, Any] | str | bytes) -> int:
        data = state if isinstance(state, bytes) else (state if isinstance(state, str) else json.dumps(state)).encode()
        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        return cli.main(self.args(stage))

    def cpu_state(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.state_dir / "cpu_manager_state").read_text())
        return document

    def registry(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.state_dir / "podshim_containers.json").read_text())
        return document

    def applied(self) -> list[tuple[str, str]]:
        """(cgroup directory relative to the cpuset mount, cpus) of every apply, in order."""
        return [
            (str(Path(t.location.cpuset.path).relative_to(self.cpuset_mount)), str(t.cpus))
            for t in self.writer.targets
        ]


def podshim_annotations(uid: str, container: str) -> dict[str, str]:
    return {"podshim.io/pod-uid": uid, "podshim.io/container": container}
