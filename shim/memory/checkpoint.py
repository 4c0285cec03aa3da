"""The Memory manager's state file (``memory_manager_state``), byte-compatible with the kubelet.

Pure: text in, :class:`MemoryState` out, and back. Reads V3 (1.37+, dual checksum), V2 and V1
files with the 1.37 reader's fallback and checksum rules; writes V3 by default, V2 or V1 on
request (spec/memory-manager.md §9). A ``None`` cells / NUMA affinity list is Go's nil slice and
is written as ``null``; an empty list is ``[]``. File access lives in ``shim.checkpoint.atomic``.
"""

from __future__ import annotations

from typing import Any

from shim.checkpoint import CORRUPTED, CheckpointError
from shim.checkpoint.envelope import data_checksum, fresh, load_enveloped, require_envelope_or_legacy, struct_checksum
from shim.checkpoint.fnv import fnv1a_32_text
from shim.checkpoint.godump import dump_for_hash
from shim.checkpoint.gojson import (
    Encoded,
    Field,
    GoInt,
    GoMap,
    GoPtr,
    GoSlice,
    GoString,
    GoStruct,
    GoUint,
    embedded,
    go_quote,
    marshal,
    unmarshal,
)
from shim.checkpoint.members import MemberCache
from shim.memory.state import Block, MemoryState, MemoryTable, NUMANodeState

__all__ = [
    "DEFAULT_PATH",
    "FORMATS",
    "CheckpointError",
    "EncodeCache",
    "checksum",
    "data_checksum",
    "decode",
    "encode",
    "legacy_checksum",
    "restore",
]

DEFAULT_PATH = "/var/lib/kubelet/memory_manager_state"
FORMATS = ("v3", "v2", "v1")
_LEGACY_NAME = "state.MemoryManagerCheckpoint"
_V1_NAME = "state.MemoryManagerCheckpointV1"

# ---------------------------------------------------------------------------------------------
# Go types of pkg/kubelet/cm/memorymanager/state

_STRING = GoString("string")
_U64 = GoUint("uint64")
_INT = GoInt("int")
_RESOURCE = GoString("v1.ResourceName")
_CHECKSUM = GoUint("checksum.Checksum")
_INTS = GoSlice("[]int", _INT)
_TABLE = GoStruct(
    "state.MemoryTable",
    (
        Field("TotalMemSize", "total", _U64),
        Field("SystemReserved", "systemReserved", _U64),
        Field("Allocatable", "allocatable", _U64),
        Field("Reserved", "reserved", _U64),
        Field("Free", "free", _U64),
    ),
)
_NODE = GoStruct(
    "state.NUMANodeState",
    (
        Field("NumberOfAssignments", "numberOfAssignments", _INT),
        Field(
            "MemoryMap",
            "memoryMap",
            GoMap("map[v1.ResourceName]*state.MemoryTable", _RESOURCE, GoPtr("*state.MemoryTable", _TABLE)),
        ),
        Field("Cells", "cells", _INTS),
    ),
)
_MACHINE = GoMap("state.NUMANodeMap", _INT, GoPtr("*state.NUMANodeState", _NODE))
_BLOCK = GoStruct(
    "state.Block",
    (Field("NUMAAffinity", "numaAffinity", _INTS), Field("Type", "type", _RESOURCE), Field("Size", "size", _U64)),
)
_BLOCKS = GoSlice("[]state.Block", _BLOCK)
_ENTRIES = GoMap("state.ContainerMemoryAssignments", _STRING, GoMap("map[string][]state.Block", _STRING, _BLOCKS))
_POD_ENTRY = GoStruct("state.PodEntry", (Field("MemoryBlocks", "memoryBlocks", _BLOCKS, omitempty=True),))
_POD_ENTRIES = GoMap("state.PodMemoryAssignments", _STRING, _POD_ENTRY)

_POLICY = Field("PolicyName", "policyName", _STRING)
_MACHINE_FIELD = Field("MachineState", "machineState", _MACHINE)
_ENTRIES_FIELD = Field("Entries", "entries", _ENTRIES, omitempty=True)
_POD_ENTRIES_FIELD = Field("PodEntries", "podEntries", _POD_ENTRIES, omitempty=True)
_CHECKSUM_FIELD = Field("Checksum", "checksum", _CHECKSUM)

_V1_FIELDS = (_POLICY, _MACHINE_FIELD, _ENTRIES_FIELD, _CHECKSUM_FIELD)
_V1 = GoStruct(_V1_NAME, _V1_FIELDS)
_V2 = GoStruct(
    "state.MemoryManagerCheckpointV2", (_POLICY, _MACHINE_FIELD, _ENTRIES_FIELD, _POD_ENTRIES_FIELD, _CHECKSUM_FIELD)
)
_DATA = GoStruct("state.MemoryManagerCheckpointData", (_POLICY, _MACHINE_FIELD, _ENTRIES_FIELD, _POD_ENTRIES_FIELD))
_V3 = GoStruct(
    _LEGACY_NAME,
    (
        *embedded(_V1_FIELDS, "MemoryManagerCheckpointV1"),
        Field("Data", "data", _STRING),
        Field("DataChecksum", "dataChecksum", _CHECKSUM),
    ),
)


# ---------------------------------------------------------------------------------------------
# Checksums


checksum = data_checksum
_legacy_sum = struct_checksum


def legacy_dump(state: MemoryState, policy_name: str, *, format: str = "v1", type_name: str = _LEGACY_NAME) -> str:
    """The text the V1/V2 ``checksum`` hashes for ``state`` (checksum field zeroed)."""
    typ = {"v1": _V1, "v2": _V2}[format]
    value = dict(_go_value(state, policy_name, with_pod_entries=format == "v2"), Checksum=0)
    return dump_for_hash(value, GoStruct(type_name, typ.fields))


def legacy_checksum(state: MemoryState, policy_name: str, *, format: str = "v1", type_name: str = _LEGACY_NAME) -> int:
    """The V1/V2 ``checksum`` of ``state`` (hashed under the legacy struct name by default)."""
    return fnv1a_32_text(legacy_dump(state, policy_name, format=format, type_name=type_name))


# ---------------------------------------------------------------------------------------------
# Reading


def _load_legacy(text: str) -> dict[str, Any]:
    """V2 (strict checksum), falling back to V1; shaped like the V3 data object."""
    value, error = unmarshal(text, _V2, fresh(_V2))
    if error is None and value["Checksum"] == _legacy_sum(value, _V2, _LEGACY_NAME):
        return dict(value)
    value, error = unmarshal(text, _V1, fresh(_V1))
    if error is not None:
        raise CheckpointError(str(error))
    expected = value["Checksum"]
    # 0: "empty checksum for compatibility with the old file backend"; 1.36 hashed V1 under its
    # versioned name, 1.37 under the legacy one.
    if expected not in (0, _legacy_sum(value, _V1, _LEGACY_NAME), _legacy_sum(value, _V1, _V1_NAME)):
        raise CheckpointError(CORRUPTED)
    result: dict[str, Any] = dict(value, PodEntries={})
    return result


def _load(text: str) -> dict[str, Any]:
    top, data, error = load_enveloped(text, _V3, _DATA, "memory manager")
    if data is not None:
        return data
    require_envelope_or_legacy(top, error, "v3")
    return _load_legacy(text)


def _blocks(raw: list[dict[str, Any]] | None) -> list[Block]:
    return [Block(numa_affinity=b["NUMAAffinity"], type=b["Type"], size=b["Size"]) for b in raw or []]


def _node(number: int, raw: dict[str, Any] | None) -> NUMANodeState:
    if raw is None:
        # The kubelet dereferences it and crashes; refuse the file instead.
        raise CheckpointError(f"[memorymanager] machine state of NUMA node {number} is null")
    tables: dict[str, MemoryTable] = {}
    for resource, table in (raw["MemoryMap"] or {}).items():
        if table is None:
            raise CheckpointError(f"[memorymanager] memory table {go_quote(resource)} of NUMA node {number} is null")
        tables[resource] = MemoryTable(
            total=table["TotalMemSize"],
            system_reserved=table["SystemReserved"],
            allocatable=table["Allocatable"],
            reserved=table["Reserved"],
            free=table["Free"],
        )
    return NUMANodeState(number_of_assignments=raw["NumberOfAssignments"], memory_map=tables, cells=raw["Cells"])


def decode(text: str, policy_name: str, *, pod_level_gate: bool = True) -> MemoryState:
    """The state a kubelet configured with ``policy_name`` restores from the file ``text``.

    Raises :class:`CheckpointError` with the kubelet's (unwrapped) message; pod entries are kept
    only when ``pod_level_gate`` (``PodLevelResourceManagers``) is on."""
    data = _load(text)
    if data["PolicyName"] != policy_name:
        raise CheckpointError(
            f"[memorymanager] configured policy {go_quote(policy_name)} differs from state checkpoint policy "
            f"{go_quote(data['PolicyName'])}"
        )
    machine = {number: _node(number, node) for number, node in sorted((data["MachineState"] or {}).items())}
    assignments = {
        pod: {name: _blocks(blocks) for name, blocks in (containers or {}).items()}
        for pod, containers in (data["Entries"] or {}).items()
    }
    pod_entries: dict[str, list[Block]] = {}
    if pod_level_gate:
        pod_entries = {pod: _blocks(entry["MemoryBlocks"]) for pod, entry in (data["PodEntries"] or {}).items()}
    return MemoryState(machine_state=machine, assignments=assignments, pod_entries=pod_entries)


def restore(
    text: str | None, policy_name: str, *, pod_level_gate: bool = True, path: str = DEFAULT_PATH
) -> tuple[MemoryState, str | None]:
    """The kubelet's ``restoreState``: ``(state, text to write or None)``.

    No file (``text is None``): a fresh empty state and its checkpoint, to be written. Any error
    is wrapped in the kubelet's "please drain this node" message naming ``path``."""
    if text is None:
        state = MemoryState()
        return state, encode(state, policy_name, pod_level_gate=pod_level_gate)
    try:
        return decode(text, policy_name, pod_level_gate=pod_level_gate), None
    except CheckpointError as error:
        raise CheckpointError(
            f"could not restore state from checkpoint: {error}, please drain this node and delete the memory manager "
            f"checkpoint file {go_quote(path)} before restarting Kubelet"
        ) from error


# ---------------------------------------------------------------------------------------------
# Writing


def _go_blocks(blocks: list[Block]) -> list[dict[str, Any]]:
    return [{"NUMAAffinity": b.numa_affinity, "Type": b.type, "Size": b.size} for b in blocks]


def _go_node(node: NUMANodeState) -> dict[str, Any]:
    return {
        "NumberOfAssignments": node.number_of_assignments,
        "MemoryMap": {
            resource: {
                "TotalMemSize": t.total,
                "SystemReserved": t.system_reserved,
                "Allocatable": t.allocatable,
                "Reserved": t.reserved,
                "Free": t.free,
            }
            for resource, t in node.memory_map.items()
        },
        "Cells": node.cells,
    }


def _go_containers(containers: dict[str, list[Block]]) -> dict[str, Any]:
    return {name: _go_blocks(blocks) for name, blocks in containers.items()}


def _go_pod_entry(blocks: list[Block]) -> dict[str, Any]:
    # An empty pod entry is written as {} and reads back with nil blocks: hash it as nil too, or
    # the V2 checksum of our own file would not verify (the kubelet has that flaw).
    return {"MemoryBlocks": _go_blocks(blocks) or None}


def _blocks_key(blocks: list[Block]) -> tuple[Any, ...]:
    # None (Go's nil slice) and [] are written differently, so they are different keys.
    return tuple([(None if b.numa_affinity is None else tuple(b.numa_affinity), b.type, b.size) for b in blocks])


def _node_key(node: NUMANodeState) -> tuple[Any, ...]:
    tables = tuple(
        (name, t.total, t.system_reserved, t.allocatable, t.reserved, t.free) for name, t in node.memory_map.items()
    )
    return (node.number_of_assignments, tables, None if node.cells is None else tuple(node.cells))


class EncodeCache:
    """What one manager's checkpoint writes can share: the text of each pod's entries and each
    node's state, reused while unchanged (a decision changes one pod and a few nodes; the others,
    tens to hundreds of pods, are copied as text). The output is the same with or without it."""

    __slots__ = ("entries", "nodes", "pod_entries")

    def __init__(self) -> None:
        self.nodes = MemberCache(_MACHINE.elem)
        self.entries = MemberCache(_ENTRIES.elem)
        self.pod_entries = MemberCache(_POD_ENTRIES.elem)


def _cached_value(
    state: MemoryState, policy_name: str, cache: EncodeCache, *, with_pod_entries: bool
) -> dict[str, Any]:
    """:func:`_go_value` with every map element given as its cached encoded text."""
    machine = {
        number: cache.nodes.get(number, _node_key(node), _go_node, node)
        for number, node in state.machine_state.items()
    }
    entries = {
        pod: cache.entries.get(
            pod,
            tuple([(name, _blocks_key(blocks)) for name, blocks in containers.items()]),
            _go_containers,
            containers,
        )
        for pod, containers in state.assignments.items()
    }
    pod_entries = (
        {
            pod: cache.pod_entries.get(pod, _blocks_key(blocks), _go_pod_entry, blocks)
            for pod, blocks in state.pod_entries.items()
        }
        if with_pod_entries
        else {}
    )
    cache.nodes.keep_only(machine)
    cache.entries.keep_only(entries)
    cache.pod_entries.keep_only(pod_entries)
    return {"PolicyName": policy_name, "MachineState": machine, "Entries": entries, "PodEntries": pod_entries}


def _go_value(state: MemoryState, policy_name: str, *, with_pod_entries: bool) -> dict[str, Any]:
    value: dict[str, Any] = {
        "PolicyName": policy_name,
        "MachineState": {number: _go_node(node) for number, node in state.machine_state.items()},
        "Entries": {
pod: _go_containers(containers) for pod, containers in state.assignments.items()},
    }
    value["PodEntries"] = (
        {pod: _go_pod_entry(blocks) for pod, blocks in state.pod_entries.items()} if with_pod_entries else {}
    )
    return value


def encode(
    state: MemoryState,
    policy_name: str,
    *,
    format: str = "v3",
    pod_level_gate: bool = True,
    cache: EncodeCache | None = None,
) -> str:
    """The file the kubelet writes for ``state``: ``v3`` (1.37+, default), ``v2`` (1.36 with the
    gate on) or ``v1``. Pod entries are written only when ``pod_level_gate`` is on (never in v1).
    ``cache`` (one per writer) lets successive writes reuse the text of unchanged members."""
    if format == "v3":
        if cache is None:
            data = _go_value(state, policy_name, with_pod_entries=pod_level_gate)
        else:
            data = _cached_value(state, policy_name, cache, with_pod_entries=pod_level_gate)
        legacy = {"PolicyName": policy_name, "MachineState": data["MachineState"], "Entries": data["Entries"]}
        checksum = _legacy_sum(legacy, _V1, _LEGACY_NAME)
        # The data object and the top level carry the same machine state and entries: encode
        # them once.
        shared = {
            "MachineState": Encoded(marshal(data["MachineState"], _MACHINE), empty=not data["MachineState"]),
            "Entries": Encoded(marshal(data["Entries"], _ENTRIES), empty=not data["Entries"]),
        }
        data_text = marshal(dict(data, **shared), _DATA)
        top = dict(legacy, **shared, Checksum=checksum, Data=data_text, DataChecksum=data_checksum(data_text))
        return marshal(top, _V3)
    if format == "v2":
        value = _go_value(state, policy_name, with_pod_entries=pod_level_gate)
        return marshal(dict(value, Checksum=_legacy_sum(value, _V2, _LEGACY_NAME)), _V2)
    if format == "v1":
        value = _go_value(state, policy_name, with_pod_entries=False)
        del value["PodEntries"]
        return marshal(dict(value, Checksum=_legacy_sum(value, _V1, _LEGACY_NAME)), _V1)
    raise ValueError(f"unknown memory checkpoint format {format!r} (expected one of {', '.join(FORMATS)})")
