"""podshim's topology JSON format (DESIGN.md §4): read, validate, write.

Documented keys: ``{"cpus": [{"id", "socket", "core", "numa", "uncore"}...], "numa": [{"id",
"memory", "hugepages", "distances"}...]}``. Optional keys that make the model round-trip:
``numa[].cpus`` (cpu list text; checked against ``cpus[].numa``), ``counts`` (the CPUTopology
counters; derived from the cpus when absent), ``allowed_cpus``/``allowed_mems`` (cpu list text;
everything when absent), ``devices`` (``{"name", "kind", "numa", "local_cpus", "class"}``).
Without ``numa`` the nodes named by ``cpus[].numa`` exist with no memory. Unknown keys are errors,
so a misspelt key never silently changes a placement.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from shim.cpuset import CPUSet, CPUSetParseError
from shim.topology import TopologyError
from shim.topology.model import CPUInfo, CPUTopology, Device, NUMANode, Topology


class _CPU(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    socket: int
    core: int
    numa: int
    uncore: int


class _Node(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    memory: int = 0
    hugepages: dict[str, int] = {}
    distances: list[int] = []
    cpus: str | None = None


class _Counts(msgspec.Struct, forbid_unknown_fields=True):
    num_cpus: int
    num_cores: int
    num_sockets: int
    num_numa_nodes: int
    num_uncore_caches: int


class _Device(msgspec.Struct, forbid_unknown_fields=True, rename={"pci_class": "class"}):
    name: str
    kind: str
    numa: int | None = None
    local_cpus: str = ""
    pci_class: str | None = None


class _File(msgspec.Struct, forbid_unknown_fields=True):
    cpus: list[_CPU]
    numa: list[_Node] | None = None
    counts: _Counts | None = None
    allowed_cpus: str | None = None
    allowed_mems: str | None = None
    devices: list[_Device] = []


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Read a topology file; errors are TopologyError naming the file and the field."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise TopologyError(f"{path}: cannot read: {error.strerror or error}") from error
    return loads_topology(text, source=str(path))


def loads_topology(text: str | bytes, *, source: str = "<topology>") -> Topology:
    """Parse topology JSON text (``source`` names it in errors)."""
    try:
        data = msgspec.json.decode(text, type=_File)
    except msgspec.DecodeError as error:
        raise TopologyError(f"{source}: {error}") from None
    return _build(data, source)


def _cpuset(text: str, source: str, where: str) -> CPUSet:
    try:
        return CPUSet.parse(text)
    except CPUSetParseError as error:
        raise TopologyError(f"{source}: {where}: invalid cpu list {text!r}: {error}") from None


def _build(data: _File, source: str) -> Topology:
    details: dict[int, CPUInfo] = {}
    for index, cpu in enumerate(data.cpus):
        for name in ("id", "socket", "core", "numa", "uncore"):
            if getattr(cpu, name) < 0:
                raise TopologyError(f"{source}: cpus[{index}].{name}: negative value {getattr(cpu, name)}")
        if cpu.id in details:
            raise TopologyError(f"{source}: cpus[{index}].id: duplicate cpu {cpu.id}")
        details[cpu.id] = CPUInfo(socket=cpu.socket, core=cpu.core, numa=cpu.numa, uncore=cpu.uncore)
    if not details:
        raise TopologyError(f"{source}: cpus: no cpus")

    nodes_in = data.numa
    if nodes_in is None:
        nodes_in = [_Node(id=numa) for numa in sorted({info.numa for info in details.values()})]
    ids = [node.id for node in nodes_in]
    numa: list[NUMANode] = []
    for index, node in enumerate(nodes_in):
        where = f"numa[{index}]"
        if node.id < 0 or ids.count(node.id) > 1:
            raise TopologyError(f"{source}: {where}.id: {'negative' if node.id < 0 else 'duplicate'} node {node.id}")
        if node.memory < 0:
            raise TopologyError(f"{source}: {where}.memory: negative value {node.memory}")
        for size, amount in node.hugepages.items():
            if amount < 0:
                raise TopologyError(f"{source}: {where}.hugepages.{size}: negative value {amount}")
        if node.distances and len(node.distances) != len(nodes_in):
            raise TopologyError(
                f"{source}: {where}.distances: {len(node.distances)} values for {len(nodes_in)} nodes"
            )
        cpus = CPUSet.of(cpu for cpu, info in details.items() if info.numa == node.id)
        if node.cpus is not None and _cpuset(node.cpus, source, f"{where}.cpus") != cpus:
            raise TopologyError(f"{source}: {where}.cpus: {node.cpus!r} disagrees with cpus[].numa ({cpus})")
        numa.append(NUMANode(node.id, cpus, node.memory, dict(node.hugepages), tuple(node.distances)))
    for index, cpu in enumerate(data.cpus):
        if cpu.numa not in ids:
            raise TopologyError(f"{source}: cpus[{index}].numa: {cpu.numa} is not a node of numa[]")
    numa.sort(key=lambda node: node.id)

    if data.counts is None:
        topology = CPUTopology.from_details(details)
    else:
        counts = data.counts
        topology = CPUTopology(
            counts.num_cpus, counts.num_cores, counts.num_sockets, counts.num_numa_nodes,
            counts.num_uncore_caches, details,
        )
    all_cpus = CPUSet.of(details)
    all_nodes = CPUSet.of(ids)
    allowed_cpus = all_cpus if data.allowed_cpus is None else _cpuset(data.allowed_cpus, source, "allowed_cpus")
    allowed_mems = all_nodes if data.allowed_mems is None else _cpuset(data.allowed_mems, source, "allowed_mems")
    devices = tuple(
        Device(
            name=device.name,
            kind=device.kind,
            numa=device.numa,
            local_cpus=_cpuset(device.local_cpus, source, f"devices[{index}].local_cpus"),
            pci_class=device.pci_class,
        )
        for index, device in enumerate(data.devices)
    )
    uncore: dict[int, CPUSet] = {}
    for cpu_id, info in sorted(details.items()):
        uncore[info.uncore] = uncore.get(info.uncore, CPUSet()) | CPUSet.of((cpu_id,))
    return Topology(
        cpu=topology,
        numa=tuple(numa),
        allowed_cpus=allowed_cpus,
        allowed_mems=allowed_mems,
        devices=devices,
        uncore_groups=dict(sorted(uncore.items())),
    )


def to_data(topology: Topology) -> dict[str, Any]:
    """The JSON-ready mapping of a topology (keys in the documented order)."""
    cpu = topology.cpu
    return {
        "cpus": [
            {"id": c, "socket": info.socket, "core": info.core, "numa": info.numa, "uncore": info.uncore}
            for c, info in sorted(cpu.details.items())
        ],
        "numa": [
            {
                "id": node.id,
                "cpus": str(node.cpus),
                "memory": node.memory,
                "hugepages": dict(node.hugepages),
                "distances": list(node.distances),
            }
            for node in topology.numa
        ],
        "counts": {
            "num_cpus": cpu.num_cpus,
            "num_cores": cpu.num_cores,
            "num_sockets": cpu.num_sockets,
            "num_numa_nodes": cpu.num_numa_nodes,
            "num_uncore_caches": cpu.num_uncore_caches,
        },
        "allowed_cpus": str(topology.allowed_cpus),
        "allowed_mems": str(topology.allowed_mems),
        "devices": [
            {
                "name": device.name,
                "kind": device.kind,
                "numa": device.numa,
                "local_cpus": str(device.local_cpus),
                "class": device.pci_class,
            }
            for device in topology.devices
        ],
    }


def dumps_topology(topology: Topology) -> str:
    """Deterministic JSON text: one cpu, node or device per line, so files diff well."""
    import json  # here: the hook reads topologies, and json's import compiles regular expressions

    data = to_data(topology)
    lines = ["{"]
    keys = list(data)
    for number, key in enumerate(keys):
        value = data[key]
        comma = "," if number < len(keys) - 1 else ""
        if isinstance(value, list) and value:
            lines.append(f"  {json.dumps(key)}: [")
            lines.extend(
                f"    {json.dumps(item, separators=(', ', ': '))}{',' if i < len(value) - 1 else ''}"
                for i, item in enumerate(value)
            )
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, separators=(', ', ': '))}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"
