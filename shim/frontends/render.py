"""What ``podshim admit``, ``remove``, ``state`` and ``replay`` print: JSON documents and tables.

Results are plain mappings first (the shapes of DESIGN.md §4, also what the daemon answers), and
tables are drawn from those mappings, so a result printed from a local node and one received
from the daemon look the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shim.cpuset import CPUSet
from shim.messages import Admitted, Rejected
from shim.pod import Pod
from shim.quantity import format_bytes

JSON = dict[str, Any]


# --- admission results ---------------------------------------------------------------------


def pod_result(outcome: Admitted | Rejected, pod: Pod | None = None) -> JSON:
    """One entry of ``{"pods": [...]}`` (the daemon's shape), plus ``uid_derived`` when the pod
    is known: true when podshim made the uid up from namespace/name."""
    from shim.frontends.protocol import pod_result as wire_result

    result = wire_result(outcome)
    if pod is not None:
        result["namespace"] = pod.namespace
        result["uid_derived"] = pod.uid_derived
    return result


def dumps(document: object) -> str:
    """JSON as the CLI prints it: indented, keys in their natural order, a final newline."""
    return json.dumps(document, indent=2) + "\n"


def _numa_text(numa: Sequence[int] | None) -> str:
    return "any" if numa is None else "{" + ",".join(str(n) for n in numa) + "}"


def _hint_text(hint: Mapping[str, Any] | None) -> str:
    if hint is None:
        return "none"
    preferred = "preferred" if hint.get("preferred") else "not preferred"
    return f"NUMA {_numa_text(hint.get('numa'))} ({preferred})"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, indent: str = "") -> list[str]:
    """Left-aligned columns two spaces apart; no trailing blanks."""
    body = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in body) for i in range(len(headers))]
    return [indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in body]


def admit_table(results: Sequence[Mapping[str, Any]]) -> str:
    """The default output of ``podshim admit``: a block per pod."""
    lines: list[str] = []
    for result in results:
        if lines:
            lines.append("")
        name = result.get("name", "")
        namespace = result.get("namespace")
        title = f"pod {namespace}/{name}" if namespace else f"pod {name}"
        uid = f"uid {result.get('uid')}" + (", derived from namespace/name" if result.get("uid_derived") else "")
        if not result.get("admitted"):
            lines.append(f"{title} ({uid}): REJECTED {result.get('reason')}: {result.get('message')}")
            if result.get("hint") is not None:
                lines.append(f"  merged hint: {_hint_text(result.get('hint'))}")
            continue
        lines.append(f"{title} ({uid}): admitted, hint {_hint_text(result.get('hint'))}")
        bubble = result.get("pod")
        if bubble is not None:
            memory = bubble.get("memory")
            held = f"cpus {bubble.get('cpus') or '-'}"
            if memory is not None:
                held += f", memory {format_bytes(int(memory['bytes']))} on NUMA {_numa_text(memory['numa'])}"
            lines.append(f"  pod bubble: {held}")
        rows = [
            (c["name"], c["kind"], c["cpus"], c["mems"], c["isolation"], c["cpu_quota"])
            for c in result.get("containers", [])
        ]
        lines.extend(table(("CONTAINER", "KIND", "CPUS", "MEMS", "ISOLATION", "QUOTA"), rows, indent="  "))
    return "\n".join(lines) + "\n"


# --- node state ----------------------------------------------------------------------------


def _blocks(blocks: Iterable[Any]) -> list[JSON]:
    return [
        {"numa": list(block.numa_affinity or []), "type": block.type, "bytes": block.size} for block in blocks
    ]


def state_result(cpu_state: Any, memory_state: Any, *, reserved_cpus: CPUSet | None, cpu_policy: str,
                 memory_policy: str) -> JSON:
    """The ``podshim state`` document from the two managers' states (shim.cpu.CPUState and
    shim.memory state): per pod its bubble and per container its exclusive CPUs and memory
    blocks; then the free pools (the node's shared cpuset, reserved CPUs, memory per NUMA node
    and resource)."""
    uids = sorted(
        set(cpu_state.assignments) | set(cpu_state.pod_entries)
        | set(memory_state.assignments) | set(memory_state.pod_entries)
    )
    pods: list[JSON] = []
    for uid in uids:
        cpu_containers: Mapping[str, CPUSet] = cpu_state.assignments.get(uid, {})
        memory_containers: Mapping[str, Any] = memory_state.assignments.get(uid, {})
        names = list(dict.fromkeys([*cpu_containers, *memory_containers]))
        bubble_cpus = cpu_state.pod_entries.get(uid)
        bubble_memory = memory_state.pod_entries.get(uid)
        pods.append({
            "uid": uid,
            "pod": None if bubble_cpus is None and bubble_memory is None else {
                "cpus": None if bubble_cpus is None else str(bubble_cpus),
                "memory": None if bubble_memory is None else _blocks(bubble_memory),
            },
            "containers": [
                {
                    "name": name,
                    "cpus": None if name not in cpu_containers else str(cpu_containers[name]),
                    "memory": _blocks(memory_containers.get(name) or []),
                }
                for name in names
            ],
        })
    shared = cpu_state.default_cpuset
    reserved = reserved_cpus if reserved_cpus is not None else CPUSet()
    memory: list[JSON] = []
    for numa in sorted(memory_state.machine_state):
        node = memory_state.machine_state[numa]
        for resource, tab in sorted(node.memory_map.items()):
            memory.append({
                "numa": numa,
                "resource": resource,
                "total": tab.total,
                "system_reserved": tab.system_reserved,
                "allocatable": tab.allocatable,
                "reserved": tab.reserved,
                "free": tab.free,
                "cells": list(node.cells) if node.cells is not None else [numa],
                "assignments": node.number_of_assignments,
            })
    return {
        "policies": {"cpu": cpu_policy, "memory": memory_policy},
        "pods": pods,
        "free": {
            "shared_cpus": str(shared),
            "reserved_cpus": str(reserved),
            "allocatable_cpus": str(shared - reserved),
            "memory": memory,
        },
    }


def state_table(document: Mapping[str, Any]) -> str:
    """The default output of ``podshim state``."""
    lines: list[str] = []
    policies = document.get("policies", {})
    lines.append(f"policies: cpu {policies.get('cpu')}, memory {policies.get('memory')}")
    rows: list[tuple[str, ...]] = []
    for pod in document.get("pods", []):
        # The uid is printed on the pod's first row only.
        owner = pod["uid"]
        bubble = pod.get("pod")
        if bubble is not None:
            rows.append((owner, "(pod)", bubble.get("cpus") or "-", _blocks_text(bubble.get("memory"))))
            owner = ""
        for container in pod.get("containers", []):
            rows.append((owner, container["name"], container.get("cpus") or "shared",
                         _blocks_text(container.get("memory"))))
            owner = ""
    if rows:
        lines.append("")
        lines.extend(table(("POD", "CONTAINER", "CPUS", "MEMORY"), rows))
    else:
        lines.append("no pod holds anything")
    free = document.get("free", {})
    lines.append("")
    lines.append(
        f"cpus: allocatable {free.get('allocatable_cpus') or '-'} "
        f"(shared pool {free.get('shared_cpus') or '-'}, reserved {free.get('reserved_cpus') or '-'})"
    )
    memory = free.get("memory", [])
    if memory:
        lines.append("")
        lines.extend(table(
            ("NUMA", "RESOURCE", "TOTAL", "SYSTEM", "ALLOCATABLE", "IN USE", "FREE"),
            [
                (str(m["numa"]), m["resource"], format_bytes(m["total"]), format_bytes(m["system_reserved"]),
                 format_bytes(m["allocatable"]), format_bytes(m["reserved"]), format_bytes(m["free"]))
                for m in memory
            ],
        ))
    return "\n".join(lines) + "\n"


def _blocks_text(blocks: Sequence[Mapping[str, Any]] | None) -> str:
    if not blocks:
        return "-"
    return ", ".join(f"{b['type']} {format_bytes(int(b['bytes']))} on {_numa_text(b['numa'])}" for b in blocks)
