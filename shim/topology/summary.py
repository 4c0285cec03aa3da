"""A human-readable summary of a Topology: sockets, NUMA nodes, cores and SMT, L3 groups,
distances, allowed sets and devices. Given a sysfs ``Discovery`` it also shows what discovery
saw but the model leaves out (offline and unmanaged cpus, L3 groups without ids, warnings)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shim.cpuset import CPUSet

if TYPE_CHECKING:
    from shim.topology.model import Topology
    from shim.topology.sysfs import Discovery


def human_bytes(count: int) -> str:
    """1610612736 → "1.5 GiB" (one decimal, dropped when whole)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        indent + "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *rows)
    ]


def summarize(topology: Topology, discovery: Discovery | None = None) -> str:
    """The summary text (ends with a newline)."""
    cpu = topology.cpu
    details = cpu.details
    sockets = sorted({info.socket for info in details.values()})
    cores: dict[int, CPUSet] = {}
    for c, info in details.items():
        cores[info.core] = cores.get(info.core, CPUSet()) | CPUSet.of((c,))
    threads = sorted({len(members) for members in cores.values()})
    smt = "off" if threads == [1] else "on (" + "/".join(str(t) for t in threads) + " threads per core)"
    lines = [
        f"CPUs: {cpu.num_cpus} ({cpu.all_cpus})",
        f"Sockets: {cpu.num_sockets}  Cores: {cpu.num_cores}  SMT: {smt}",
        f"NUMA nodes: {len(topology.numa)} ({cpu.num_numa_nodes} with cpus)  Uncore (L3) groups: "
        f"{cpu.num_uncore_caches}",
        f"Allowed: cpus {topology.allowed_cpus or '-'}  mems {topology.allowed_mems or '-'}",
    ]
    if discovery is not None:
        if discovery.offline_cpus:
            lines.append(f"Offline cpus: {discovery.offline_cpus}")
        if discovery.unplaced_cpus:
            lines.append(f"Online cpus outside the managed topology: {discovery.unplaced_cpus}")
        if discovery.cgroup is not None:
            group = discovery.cgroup
            lines.append(f"Cpuset cgroup: {group.kind} {group.mountpoint} {group.path}")

    lines += ["", "Sockets"]
    rows = []
    for socket in sockets:
        cpus = CPUSet.of(c for c, info in details.items() if info.socket == socket)
        nodes = sorted({info.numa for info in details.values() if info.socket == socket})
        ncores = len({info.core for info in details.values() if info.socket == socket})
        rows.append([str(socket), str(ncores), ",".join(map(str, nodes)), str(cpus)])
    lines += _table(["SOCKET", "CORES", "NUMA", "CPUS"], rows)

    lines += ["", "NUMA nodes"]
    rows = []
    for node in topology.numa:
        pages = ", ".join(f"{size}: {human_bytes(amount)}" for size, amount in node.hugepages.items()) or "-"
        node_sockets = sorted({details[c].socket for c in node.cpus if c in details})
        rows.append([
            str(node.id), human_bytes(node.memory), pages, ",".join(map(str, node_sockets)) or "-",
            str(node.cpus) or "-",
        ])
    lines += _table(["NODE", "MEMORY", "HUGEPAGES", "SOCKETS", "CPUS"], rows)

    lines += ["", "Uncore (L3) groups"]
    if discovery is not None and discovery.l3_groups:
        rows = [
            [
                "-" if group.id is None else str(group.id),
                human_bytes(group.size_kb * 1024) if group.size_kb else "-",
                str(group.cpus),
            ]
            for group in discovery.l3_groups
        ]
        lines += _table(["L3 ID", "SIZE", "CPUS"], rows)
        if any(group.id is None for group in discovery.l3_groups):
            lines.append("  (no cache ids: the kubelet falls back to the socket id as uncore id)")
    else:
        groups: dict[int, CPUSet] = {}
        for c, info in details.items():
            groups[info.uncore] = groups.get(info.uncore, CPUSet()) | CPUSet.of((c,))
        lines += _table(["UNCORE", "CPUS"], [[str(key), str(value)] for key, value in sorted(groups.items())])

    if any(node.distances for node in topology.numa):
        lines += ["", "NUMA distances"]
        header = ["", *(str(node.id) for node in topology.numa)]
        rows = [[str(node.id), *(str(d) for d in node.distances)] for node in topology.numa]
        lines += _table(header, rows)

    if topology.devices:
        lines += ["", "Devices"]
        rows = []
        for device in topology.devices:
            parent = ""
            if discovery is not None and device.kind == "net":
                parent = discovery.net_pci_parents.get(device.name) or ""
            rows.append([
                device.name, device.kind, "-" if device.numa is None else str(device.numa),
                str(device.local_cpus) or "-", device.pci_class or "-", parent or "-",
            ])
        lines += _table(["NAME", "KIND", "NUMA", "LOCAL CPUS", "CLASS", "PCI PARENT"], rows)

    if discovery is not None and discovery.warnings:
        lines += ["", "Warnings"]
        lines += [f"  - {warning}" for warning in discovery.warnings]
    return "\n".join(lines) + "\n"
