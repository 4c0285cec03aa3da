"""Loader for the CPU manager conformance cases: topologies, pods, states and policies."""

from __future__ import annotations

import functools
from typing import Any

import msgspec
import pytest
from shared_paths import CONFORMANCE, case_list, load_json

from shim.cpu import CPUState, StaticPolicy
from shim.cpuset import CPUSet
from shim.pod import CPU, Pod, Resources
from shim.quantity import milli_value, value
from shim.topology import CPUInfo, CPUTopology
from shim.topology_manager import Bitmask, TopologyHint

CPU_DIR = CONFORMANCE / "cpumanager"


def cases(file: str, *kinds: str) -> list[Any]:
    """pytest params (id = case id) of the cases of ``file`` whose kind is one of ``kinds``."""
    found = [case for case in case_list(CPU_DIR / file) if not kinds or case["kind"] in kinds]
    return [pytest.param(case, id=case["id"]) for case in found]


@functools.cache
def _topologies() -> dict[str, Any]:
    data: dict[str, Any] = load_json(CPU_DIR / "topologies.json")["topologies"]
    return data


@functools.cache
def topology(name: str) -> CPUTopology:
    """A topology of topologies.json; unset (null) counters are 0, as the kubelet sees them."""
    raw = _topologies()[name]
    details = {
        int(cpu): CPUInfo(socket=info["socket"], core=info["core"], numa=info["numa"], uncore=info["uncore"])
        for cpu, info in raw["cpus"].items()
    }
    return CPUTopology(
        num_cpus=raw["numCPUs"] or 0,
        num_cores=raw["numCores"] or 0,
        num_sockets=raw["numSockets"] or 0,
        num_numa_nodes=raw["numNUMANodes"] or 0,
        num_uncore_caches=raw["numUncoreCache"] or 0,
        details=details,
    )


def cpuset(text: str | None) -> CPUSet:
    return CPUSet.parse(text or "")


def _container(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": raw["name"], "resources": raw.get("resources") or {}}
    if raw.get("restartPolicy"):
        out["restartPolicy"] = raw["restartPolicy"]
    return out


def pod(raw: dict[str, Any]) -> Pod:
    """The flattened conformance pod as a Pod (no API defaulting, like the Go unit tests)."""
    spec: dict[str, Any] = {
        "initContainers": [_container(c) for c in raw.get("initContainers") or []],
        "containers": [_container(c) for c in raw.get("containers") or []],
    }
    apps = spec["containers"]
    if not apps:
        # Pod.from_dict insists on one app container; the Go tests build pods without any.
        spec["containers"] = [{"name": "__placeholder__"}]
    manifest = {"metadata": {"uid": raw["uid"], "name": raw.get("name") or raw["uid"]}, "spec": spec}
    built = Pod.from_dict(manifest, apply_defaults=False)
    if not apps:
        built = msgspec.structs.replace(built, containers=())
    if raw.get("resources") is not None:
        # Parsed here: some Go tests use pod-level requests above limits, which the API refuses.
        built = msgspec.structs.replace(built, resources=_resources(raw["resources"]))
    return built


def _amounts(raw: dict[str, str] | None) -> dict[str, int]:
    return {name: milli_value(text) if name == CPU else value(text) for name, text in (raw or {}).items()}


def _resources(raw: dict[str, Any]) -> Resources:
    return Resources(requests=_amounts(raw.get("requests")), limits=_amounts(raw.get("limits")))


def state(raw: dict[str, Any]) -> CPUState:
    return CPUState(
        default_cpuset=cpuset(raw.get("default_cpuset")),
        assignments={
            pod_uid: {name: cpuset(text) for name, text in containers.items()}
            for pod_uid, containers in (raw.get("assignments") or {}).items()
        },
        pod_entries={pod_uid: cpuset(text) for pod_uid, text in (raw.get("pod_entries") or {}).items()},
    )


def state_assignments(st: CPUState) -> dict[str, dict[str, str]]:
    return {pod_uid: {name: str(cpus) for name, cpus in containers.items()} for pod_uid, containers in
            st.assignments.items() if containers}


def hint(raw: dict[str, Any] | None) -> TopologyHint | None:
    if raw is None:
        return None
    return TopologyHint(Bitmask.of(*raw["numa_affinity"]), raw["preferred"])


def policy(case: dict[str, Any], options: dict[str, str] | None = None, **extra: Any) -> StaticPolicy:
    """NewStaticPolicy as the case describes it."""
    reserved = case.get("reserved_cpus")
    return StaticPolicy(
        topology(case["topology"]),
        reserved_cpus=CPUSet.parse(reserved) if reserved else None,
        num_reserved_cpus=case.get("num_reserved_cpus") or 0,
        options=options if options is not None else case.get("policy_options") or {},
        feature_gates=case.get("feature_gates") or {},
        topology_manager_scope=case.get("topology_manager_scope") or "container",
        **extra,
    )
