"""Loader for the Memory manager conformance cases (../shared/conformance/memorymanager/*.json):
the flattened pods, machine states, blocks and hints of SCHEMA.md as podshim objects, and back."""

from __future__ import annotations

from collections import Counter
from typing import Any

from shared_paths import CONFORMANCE, case_list

from shim.memory import Block, MachineState, MemoryState, MemoryTable, NodeMemory, NUMANodeState
from shim.memory.machine import hugepage_resource_name
from shim.pod import Pod
from shim.topology_manager import Bitmask, TopologyHint

MEMORY_CASES = CONFORMANCE / "memorymanager"


def cases(file_name: str, *kinds: str) -> list[dict[str, Any]]:
    found = case_list(MEMORY_CASES / file_name)
    return [case for case in found if not kinds or case["kind"] in kinds]


def case_id(case: dict[str, Any]) -> str:
    return str(case["id"])


def pod_from_case(spec: dict[str, Any]) -> Pod:
    """A flattened conformance pod as a Kubernetes Pod (no API defaulting, like the Go tests)."""

    def container(entry: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": entry["name"], "resources": entry.get("resources") or {}}
        if entry.get("restartPolicy"):
            out["restartPolicy"] = entry["restartPolicy"]
        return out

    uid = spec.get("uid") or None
    metadata: dict[str, Any] = {"name": spec.get("name") or uid or "pod"}
    if uid:
        metadata["uid"] = uid
    body: dict[str, Any] = {
        "initContainers": [container(entry) for entry in spec.get("initContainers") or []],
        "containers": [container(entry) for entry in spec.get("containers") or []],
    }
    if spec.get("resources") is not None:
        body["resources"] = spec["resources"]
    return Pod.from_dict({"metadata": metadata, "spec": body}, apply_defaults=False)


def nodes_from_machine_info(entries: list[dict[str, Any]]) -> list[NodeMemory]:
    return [
        NodeMemory(
            id=entry["id"],
            memory=entry["memory"],
            hugepages={
                hugepage_resource_name(page["page_size_kb"] * 1024): page["num_pages"] * page["page_size_kb"] * 1024
                for page in entry.get("hugepages") or []
            },
        )
        for entry in entries
    ]


def system_reserved(raw: dict[str, dict[str, int]]) -> dict[int, dict[str, int]]:
    return {int(node): dict(limits) for node, limits in raw.items()}


def machine_state(raw: dict[str, Any]) -> MachineState:
    return {
        int(node): NUMANodeState(
            number_of_assignments=entry["numberOfAssignments"],
            memory_map={
                name: MemoryTable(t["total"], t["systemReserved"], t["allocatable"], t["reserved"], t["free"])
                for name, t in entry["memoryMap"].items()
            },
            cells=None if entry.get("cells") is None else list(entry["cells"]),
        )
        for node, entry in raw.items()
    }


def machine_state_json(machine: MachineState) -> dict[str, Any]:
    return {
        str(node): {
            "numberOfAssignments": state.number_of_assignments,
            "memoryMap": {
                name: {
                    "total": t.total,
                    "systemReserved": t.system_reserved,
                    "allocatable": t.allocatable,
                    "reserved": t.reserved,
                    "free": t.free,
                }
                for name, t in state.memory_map.items()
            },
            "cells": state.cells,
        }
        for node, state in machine.items()
    }


def blocks(raw: list[dict[str, Any]] | None) -> list[Block]:
    return [Block(entry["numaAffinity"], entry["type"], entry["size"]) for entry in raw or []]


def assignments(raw: dict[str, Any]) -> dict[str, dict[str, list[Block]]]:
    return {pod: {name: blocks(entries) for name, entries in containers.items()} for pod, containers in raw.items()}


def block_json(block: Block) -> dict[str, Any]:
    return {"numaAffinity": block.numa_affinity, "type": block.type, "size": block.size}


def assignments_multiset(raw: dict[str, dict[str, list[Block]]]) -> dict[str, dict[str, Counter[tuple[Any, ...]]]]:
    """Assignments with each container's blocks as a multiset (block order is not significant)."""
    return {
        pod: {
            name: Counter((tuple(b.numa_affinity or ()), b.type, b.size) for b in entries)
            for name, entries in containers.items()
        }
        for pod, containers in raw.items()
    }


def state_from_case(case: dict[str, Any]) -> MemoryState:
    return MemoryState(machine_state=machine_state(case["machine_state"]), assignments=assignments(case["assignments"]))


def hint(raw: dict[str, Any] | None) -> TopologyHint | None:
    if raw is None:
        return None
    numa = raw.get("numa")
    return TopologyHint(None if numa is None else Bitmask.from_bits(numa), bool(raw.get("preferred")))


def hints_json(found: dict[str, list[TopologyHint]] | None) -> dict[str, list[dict[str, Any]]] | None:
    if found is None:
        return None
    return {
        name: [{"numa": h.numa_ids(), "preferred": h.preferred} for h in entries] for name, entries in found.items()
    }


def reusable(raw: dict[str, Any] | None) -> dict[str, dict[int, dict[str, int]]]:
    """``initial_init_containers_reusable_memory``: pod uid -> mask -> resource -> bytes; masks
    as the kubelet's bitmask strings ("01"), lists of NUMA ids, or ints."""

    def mask(key: Any) -> int:
        if isinstance(key, int):
            return key
        if isinstance(key, list):
            return Bitmask.from_bits(key).value
        text = str(key).strip()
        if text.startswith("["):
            return Bitmask.from_bits(int(part) for part in text.strip("[]").replace(",", " ").split()).value
        return int(text, 2)

    return {
        pod: {mask(key): dict(amounts) for key, amounts in per_mask.items()} for pod, per_mask in (raw or {}).items()
    }


def group_view(machine: MachineState) -> dict[int, Any]:
    """The comparison of the kubelet's Start test: sizes, counts, cells as a set, and free/reserved
    summed over each node's cell group."""
    view: dict[int, Any] = {}
    for node, state in machine.items():
        cells = sorted(state.cells or [])
        tables = {}
        for name, t in state.memory_map.items():
            free = sum(machine[c].memory_map[name].free for c in cells if c in machine)
            reserved = sum(machine[c].memory_map[name].reserved for c in cells if c in machine)
            tables[name] = (t.total, t.system_reserved, t.allocatable, free, reserved)
        view[node] = (state.number_of_assignments, cells, tables)
    return view
