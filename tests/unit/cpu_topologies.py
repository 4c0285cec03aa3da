"""Hypothesis strategies for CPU topologies and pods, shared by the CPU manager tests."""

from __future__ import annotations

from hypothesis import strategies as st

from shim.pod import Pod
from shim.topology import CPUInfo, CPUTopology


def build_topology(sockets: int, numa_per_socket: int, cores_per_numa: int, threads: int,
                   cores_per_uncore: int = 2) -> CPUTopology:
    """A regular machine numbered like Linux: thread t of core k is CPU t * cores + k."""
    cores = sockets * numa_per_socket * cores_per_numa
    details: dict[int, CPUInfo] = {}
    for core in range(cores):
        numa = core // cores_per_numa
        socket = numa // numa_per_socket
        for thread in range(threads):
            details[thread * cores + core] = CPUInfo(socket=socket, core=core, numa=numa,
                                                     uncore=core // cores_per_uncore)
    return CPUTopology.from_details(details)


@st.composite
def topologies(draw: st.DrawFn, max_numa: int = 32) -> CPUTopology:
    sockets = draw(st.integers(1, 8))
    numa_per_socket = draw(st.integers(1, min(4, max(1, max_numa // sockets))))
    cores_per_numa = draw(st.integers(1, 3))
    threads = draw(st.sampled_from([1, 2, 4]))
    return build_topology(sockets, numa_per_socket, cores_per_numa, threads, draw(st.integers(1, 4)))


def container(name: str, cpu_millis: int | None, *, kind: str = "app", guaranteed: bool = True) -> dict[str, object]:
    resources: dict[str, object] = {}
    if cpu_millis is not None:
        limits = {"cpu": f"{cpu_millis}m", "memory": "100Mi"}
        requests = dict(limits) if guaranteed else {"cpu": f"{max(cpu_millis // 2, 1)}m", "memory": "100Mi"}
        resources = {"requests": requests, "limits": limits}
    out: dict[str, object] = {"name": name, "resources": resources}
    if kind == "sidecar":
        out["restartPolicy"] = "Always"
    return out


def make_pod(uid: str, apps: list[dict[str, object]], inits: list[dict[str, object]] | None = None,
             pod_cpus: int | None = None) -> Pod:
    spec: dict[str, object] = {"containers": apps, "initContainers": inits or []}
    if pod_cpus is not None:
        amount = {"cpu": str(pod_cpus), "memory": "1Gi"}
        spec["resources"] = {"requests": amount, "limits": dict(amount)}
    return Pod.from_dict({"metadata": {"uid": uid, "name": uid}, "spec": spec}, apply_defaults=False)
