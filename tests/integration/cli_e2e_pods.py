"""Builders for the end-to-end CLI tests: a small machine, kubelet configurations, KEP-5526 pods."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shim.topology.generate import generate
from shim.topology.jsonfile import dumps_topology

GiB = 1 << 30
KIND_KEYS = {"app": "containers", "init": "initContainers", "sidecar": "initContainers"}


def write_machine(directory: Path) -> Path:
    """Two NUMA nodes of 8 CPUs each (no SMT: CPU i is core i), 16Gi per node: "NUMA node 0
    free" means CPUs 1-7 once CPU 0 is reserved, so the spec's worked examples apply as printed."""
    path = directory / "machine.json"
    path.write_text(dumps_topology(generate(sockets=2, cores_per_socket=8, memory_per_numa=16 * GiB)))
    return path


def write_config(directory: Path, *, scope: str = "pod", policy: str = "best-effort", **extra: Any) -> Path:
    document = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "featureGates": {"PodLevelResources": True, "PodLevelResourceManagers": True},
        "cpuManagerPolicy": "static",
        "reservedSystemCPUs": "0",
        "memoryManagerPolicy": "Static",
        "reservedMemory": [{"numaNode": 0, "limits": {"memory": "100Mi"}}],
        "topologyManagerPolicy": policy,
        "topologyManagerScope": scope,
        **extra,
    }
    path = directory / f"kubelet-{scope}-{policy}.yaml"
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


def pod(uid: str, containers: list[tuple[str, int | None] | tuple[str, int | None, str]], *,
        budget: int | None = None, memory_gi: int | None = None) -> dict[str, Any]:
    """A Pod manifest. Each container is (name, whole CPUs or None for a shared container[,
    kind app|init|sidecar]); a container with CPUs is Guaranteed with 1Gi per CPU. ``budget``
    sets pod-level resources: that many CPUs and ``memory_gi`` (default: as many) Gi."""
    spec: dict[str, Any] = {}
    for entry in containers:
        name, cpus = entry[0], entry[1]
        kind = entry[2] if len(entry) == 3 else "app"
        container: dict[str, Any] = {"name": name, "image": "busybox"}
        if cpus is not None:
            container["resources"] = {"limits": {"cpu": str(cpus), "memory": f"{cpus}Gi"}}
        if kind == "sidecar":
            container["restartPolicy"] = "Always"
        spec.setdefault(KIND_KEYS[kind], []).append(container)
    if budget is not None:
        spec["resources"] = {"limits": {"cpu": str(budget), "memory": f"{memory_gi or budget}Gi"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": uid, "namespace": "default", "uid": uid},
            "spec": spec}


def write_pods(directory: Path, name: str, *pods: dict[str, Any]) -> Path:
    path = directory / f"{name}.json"
    document = pods[0] if len(pods) == 1 else {"apiVersion": "v1", "kind": "List", "items": list(pods)}
    path.write_text(json.dumps(document))
    return path
