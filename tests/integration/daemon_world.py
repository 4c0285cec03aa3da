"""A fake node for the daemon tests: the real actors and state files in a temp directory, a
cgroup v1 tree on disk (plain files, so tests can drift or delete cgroups), and the daemon on a
temp Unix socket, in-process."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from shim.cgroups.backend import FsCgroupBackend
from shim.cgroups.paths import CgroupMount, CgroupMounts
from shim.config import Config, parse_config
from shim.cpuset import CPUSet
from shim.frontends.client import Client
from shim.frontends.logs import DecisionLog
from shim.frontends.server import Daemon, open_daemon, run_daemon
from shim.topology.generate import GiB, generate
from shim.topology.model import Topology

KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cpuManagerPolicy: static
reservedSystemCPUs: "0"
memoryManagerPolicy: None
topologyManagerPolicy: best-effort
topologyManagerScope: container
cpuManagerReconcilePeriod: 10s
"""


def node_config() -> Config:
    return parse_config(KUBELET_CONFIG, source="daemon_world")


def node_topology(cores: int = 8) -> Topology:
    """One socket, two NUMA nodes, ``cores`` cores without SMT (CPU i = core i)."""
    return generate(sockets=1, numa_per_socket=2, cores_per_socket=cores, threads_per_core=1,
                    memory_per_numa=16 * GiB)


def pod(uid: str, containers: dict[str, str | None], *, name: str | None = None) -> dict[str, Any]:
    """A Pod mapping; each container requests the given CPUs as a Guaranteed container (None:
    best-effort, on the shared pool)."""
    specs = []
    for container, cpu in containers.items():
        resources = {} if cpu is None else {"limits": {"cpu": cpu, "memory": "64Mi"}}
        specs.append({"name": container, "resources": resources})
    return {"metadata": {"uid": uid, "name": name or f"pod-{uid}"}, "spec": {"containers": specs}}


class FakeCgroups:
    """A cgroup v1 tree (cpuset and cpu hierarchies) made of plain directories and files."""

    def __init__(self, base: Path, cpus: CPUSet) -> None:
        self.cpuset = base / "cpuset"
        self.cpu = base / "cpu,cpuacct"
        for mount in (self.cpuset, self.cpu):
            mount.mkdir(parents=True)
        (self.cpuset / "cpuset.cpus").write_text(f"{cpus}\n")
        (self.cpuset / "cpuset.mems").write_text("0-1\n")
        self.mounts = CgroupMounts(
            (
                CgroupMount("v1", self.cpuset, "/", frozenset({"cpuset"})),
                CgroupMount("v1", self.cpu, "/", frozenset({"cpu", "cpuacct"})),
            ),
            None,
        )
        self.base = base

    def backend(self) -> FsCgroupBackend:
        return FsCgroupBackend(mounts=self.mounts, root=self.base)

    def make(self, cgroup: str) -> str:
        """Create a container's cgroup (and its parents), children inheriting as runc does."""
        cpuset, cpu = self.cpuset, self.cpu
        for part in cgroup.strip("/").split("/"):
            parent, cpuset, cpu = cpuset, cpuset / part, cpu / part
            cpuset.mkdir(exist_ok=True)
            cpu.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not (cpuset / name).exists():
                    (cpuset / name).write_text((parent / name).read_text())
            for name, value in (("cpu.cfs_quota_us", "-1"), ("cpu.cfs_period_us", "100000")):
                if not (cpu / name).exists():
                    (cpu / name).write_text(value)
        return cgroup

    def cpus(self, cgroup: str) -> str:
        return (self.cpuset / cgroup.strip("/") / "cpuset.cpus").read_text().strip()

    def quota(self, cgroup: str) -> str:
        return (self.cpu / cgroup.strip("/") / "cpu.cfs_quota_us").read_text().strip()

    def drift(self, cgroup: str, cpus: str) -> None:
        (self.cpuset / cgroup.strip("/") / "cpuset.cpus").write_text(cpus)

    def remove(self, cgroup: str) -> None:
        for mount in (self.cpuset, self.cpu):
            directory = mount / cgroup.strip("/")
            for file in directory.iterdir():
                file.unlink()
            directory.rmdir()


class World:
    """State directory, pod directory, fake cgroups and a decision log captured in memory."""

    def __init__(self, base: Path, *, cores: int = 8) -> None:
        self.base = base
        self.state_dir = base / "state"
        self.pod_dir = base / "pods"
        self.pod_dir.mkdir()
        self.topology = node_topology(cores)
        self.config = node_config()
        self.cgroups = FakeCgroups(base / "cgroup", self.topology.cpu.all_cpus)
        self.log = io.StringIO()
        self.socket = str(base / "podshim.sock")

    def open(self, **kwargs: Any) -> Daemon:
        return open_daemon(self.config, self.topology, self.state_dir, cgroup_backend=self.cgroups.backend(),
                           pod_dir=self.pod_dir, decisions=DecisionLog(self.log), **kwargs)

    @asynccontextmanager
    async def running(self, daemon: Daemon | None = None, *, reconcile: bool = False) -> AsyncIterator[Daemon]:
        """The daemon serving ``self.socket`` (the reconcile timer off unless asked: tests run
        passes themselves)."""
        daemon = daemon if daemon is not None else self.open()
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: run_daemon(daemon, self.socket, handle_signals=False,
                                                               reconcile=reconcile, task_status=task_status))
            yield daemon
            daemon.shutdown()

    def client(self) -> Client:
        return Client(self.socket, timeout=30)

    def cpu_state(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.state_dir / "cpu_manager_state").read_text())
        return document

    def registry(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.state_dir / "podshim_containers.json").read_text())
        return document

    def events(self, kind: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.log.getvalue().splitlines() if line.strip()]
        return [line for line in lines if line.get("event") == kind]


async def call(fn: Any, *args: Any) -> Any:
    """A blocking client call, off the event loop."""
    return await trio.to_thread.run_sync(fn, *args)
