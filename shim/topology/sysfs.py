"""Topology discovery from a tree laid out like ``/`` (sysfs, procfs and the cpuset cgroup).

Everything is read through a ``SysfsReader`` (:mod:`shim.topology.reader`), which never lets the
operating system follow a link, so an actor can be given a real directory or an in-memory tree.

The result follows the kubelet's reading of cadvisor (spec/cpu-manager.md §2.2), with the
fixture quirks of ``fixtures/sysfs/README.md`` handled explicitly:

- cores are thread-sibling groups (``core_id`` repeats across dies), core id = lowest thread id;
- socket = ``physical_package_id``, or the index of the ``core_siblings`` group when it is negative;
- uncore = the L3 cache ``id`` when the kernel gives one, else the socket id;
- a CPU listed by several NUMA nodes (broken firmware) belongs to the lowest one; an online CPU
  listed by no online node, or without a ``cpuN`` directory, is left out of the CPU table
  (the kubelet builds its table from node directories and would not see it either);
- no ``node/`` directory at all → one node 0 holding every CPU and ``/proc/meminfo`` memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from shim.cpuset import CPUSet
from shim.quantity import format_bytes
from shim.topology import TopologyError
from shim.topology.model import CPUInfo, CPUTopology, Device, NUMANode, Topology
from shim.topology.reader import (
    CPU_DIR,
    NODE_DIR,
    PCI_ADDRESS,
    DirectoryReader,
    SysfsReader,
    Tree,
    parse_cpulist,
)

# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class CacheGroup:
    """CPUs sharing one cache of a level (``id`` None when the kernel gives no id file)."""

    level: int
    id: int | None
    cpus: CPUSet
    size_kb: int | None = None


@dataclass(frozen=True)
class CgroupInfo:
    """The discovering process's cpuset cgroup: flavour ("cgroup2", "cgroup1", "cpuset"),
    mount point, cgroup path, directory in the tree and the sets it allows (None = unset)."""

    kind: str
    mountpoint: str
    path: str
    directory: str
    cpus: CPUSet | None
    mems: CPUSet | None


@dataclass(frozen=True)
class Discovery:
    """A discovered Topology plus the facts the model does not hold (for summaries and checks)."""

    topology: Topology
    online_cpus: CPUSet
    offline_cpus: CPUSet
    unplaced_cpus: CPUSet
    node_cpulists: dict[int, CPUSet] = field(default_factory=dict)
    l3_groups: tuple[CacheGroup, ...] = ()
    cgroup: CgroupInfo | None = None
    net_pci_parents: dict[str, str | None] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass
class _CPU:
    id: int
    package: int
    siblings: CPUSet
    package_cpus: CPUSet | None


# ---------------------------------------------------------------------------------------------
# discovery


def discover(sysfs_root: str | Path = "/", *, reader: SysfsReader | None = None) -> Topology:
    """The topology of the tree at ``sysfs_root`` (or of ``reader``)."""
    return discover_report(sysfs_root, reader=reader).topology


def discover_report(sysfs_root: str | Path = "/", *, reader: SysfsReader | None = None) -> Discovery:
    """Like ``discover`` with the extra facts and warnings of ``Discovery``."""
    return _Discoverer(Tree(reader if reader is not None else DirectoryReader(sysfs_root))).run()


class _Discoverer:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.warnings: list[str] = []

    def run(self) -> Discovery:
        online, offline = self._online_cpus()
        cpus = self._cpu_facts(online)
        sockets = self._sockets(cpus)
        placed = CPUSet.of(cpus)
        l3_groups, l3_ids = self._l3_caches(placed)
        nodes, node_of, raw_lists = self._numa(placed)
        details: dict[int, CPUInfo] = {}
        for cpu_id, cpu in sorted(cpus.items()):
            numa = node_of.get(cpu_id)
            if numa is None:
                continue
            socket = sockets[cpu_id]
            uncore = l3_ids.get(cpu_id, socket)
            details[cpu_id] = CPUInfo(socket=socket, core=cpu.siblings.min(), numa=numa, uncore=uncore)
        if not details:
            raise TopologyError(f"{self.tree.describe(CPU_DIR)}: could not detect number of cpus")
        unplaced = online - CPUSet.of(details)
        if unplaced:
            self.warnings.append(f"online cpus {unplaced} belong to no online NUMA node and are not managed")
        numa_nodes = tuple(
            NUMANode(
                id=node.id,
                cpus=CPUSet.of(c for c, info in details.items() if info.numa == node.id),
                memory=node.memory,
                hugepages=node.hugepages,
                distances=node.distances,
            )
            for node in nodes
        )
        cgroup = self._cgroup()
        node_ids = CPUSet.of(node.id for node in nodes)
        allowed_cpus = online if cgroup is None or cgroup.cpus is None else online & cgroup.cpus
        allowed_mems = node_ids if cgroup is None or cgroup.mems is None else node_ids & cgroup.mems
        devices, parents = self._devices()
        uncore_groups: dict[int, CPUSet] = {}
        for cpu_id, info in details.items():
            uncore_groups[info.uncore] = uncore_groups.get(info.uncore, CPUSet()) | CPUSet.of((cpu_id,))
        topology = Topology(
            cpu=CPUTopology.from_details(details),
            numa=numa_nodes,
            allowed_cpus=allowed_cpus,
            allowed_mems=allowed_mems,
            devices=devices,
            uncore_groups=dict(sorted(uncore_groups.items())),
        )
        return Discovery(
            topology=topology,
            online_cpus=online,
            offline_cpus=offline,
            unplaced_cpus=unplaced,
            node_cpulists=raw_lists,
            l3_groups=l3_groups,
            cgroup=cgroup,
            net_pci_parents=parents,
            warnings=tuple(self.warnings),
        )

    # cpus ------------------------------------------------------------------------------------
    def _online_cpus(self) -> tuple[CPUSet, CPUSet]:
        tree = self.tree
        entries = tree.listdir(CPU_DIR)
        if entries is None:
            raise TopologyError(f"{tree.describe(CPU_DIR)}: missing")
        dirs = CPUSet.of(int(name[3:]) for name in entries if re.fullmatch(r"cpu\d+", name))
        online_text = tree.text(f"{CPU_DIR}/online")
        if online_text is not None:
            online = parse_cpulist(online_text, tree.describe(f"{CPU_DIR}/online"))
        else:
            # No global list (old kernels): a cpu whose own online file is missing or empty
            # (cpu0 usually cannot be unplugged) counts as online.
            online = CPUSet.of(c for c in dirs if tree.text(f"{CPU_DIR}/cpu{c}/online") in (None, "", "1"))
        if not online:
            raise TopologyError(f"{tree.describe(CPU_DIR)}: could not detect number of cpus")
        missing = online - dirs
        if missing:
            self.warnings.append(f"online cpus {missing} have no cpu directory and are not managed")
        return online, dirs - online

    def _cpu_facts(self, online: CPUSet) -> dict[int, _CPU]:
        tree = self.tree
        cpus: dict[int, _CPU] = {}
        for cpu_id in online:
            base = f"{CPU_DIR}/cpu{cpu_id}"
            if not tree.is_dir(base):
                continue
            topo = f"{base}/topology"
            package = tree.integer(f"{topo}/physical_package_id", required=True)
            assert package is not None
            siblings = tree.cpus(
                topo,
                ("thread_siblings_list", "core_cpus_list"),
                ("thread_siblings", "core_cpus"),
                required=True,
            )
            assert siblings is not None
            package_cpus = tree.cpus(
                topo, ("core_siblings_list", "package_cpus_list"), ("core_siblings", "package_cpus")
            )
            # Group by the online thread siblings: (package, core_id) repeats across dies.
            siblings &= online
            if cpu_id not in siblings:
                siblings = CPUSet.of((cpu_id,))
            cpus[cpu_id] = _CPU(cpu_id, package, siblings, None if package_cpus is None else package_cpus & online)
        return cpus

    def _sockets(self, cpus: dict[int, _CPU]) -> dict[int, int]:
        if all(cpu.package >= 0 for cpu in cpus.values()):
            return {cpu_id: cpu.package for cpu_id, cpu in cpus.items()}
        # s390x reports -1: number the core_siblings groups by their lowest cpu instead.
        groups = sorted(
            {cpu.package_cpus if cpu.package_cpus else CPUSet.of((cpu.id,)) for cpu in cpus.values()},
            key=lambda group: group.min(),
        )
        index = {group: number for number, group in enumerate(groups)}
        self.warnings.append("physical_package_id is negative; sockets numbered by core_siblings groups")
        return {
            cpu_id: index[cpu.package_cpus if cpu.package_cpus else CPUSet.of((cpu_id,))]
            for cpu_id, cpu in cpus.items()
        }

    def _l3_caches(self, placed: CPUSet) -> tuple[tuple[CacheGroup, ...], dict[int, int]]:
        tree = self.tree
        groups: dict[CPUSet, CacheGroup] = {}
        ids: dict[int, int] = {}
        for cpu_id in placed:
            base = f"{CPU_DIR}/cpu{cpu_id}/cache"
            names = tree.listdir(base)
            if not names:
                continue
            for name in sorted((n for n in names if re.fullmatch(r"index\d+", n)), key=lambda n: int(n[5:])):
                index = f"{base}/{name}"
                if tree.integer(f"{index}/level") != 3 or tree.text(f"{index}/type") != "Unified":
                    continue
                shared = tree.cpus(index, ("shared_cpu_list",), ("shared_cpu_map",))
                cache_id = tree.integer(f"{index}/id")
                key = (shared & placed) if shared else CPUSet.of((cpu_id,))
                if key not in groups:
                    groups[key] = CacheGroup(3, cache_id, key, _size_kb(tree.text(f"{index}/size")))
                if cache_id is not None:
                    ids[cpu_id] = cache_id
                break
        return tuple(sorted(groups.values(), key=lambda g: g.cpus.min() if g.cpus else -1)), ids

    # numa ------------------------------------------------------------------------------------
    def _numa(self, placed: CPUSet) -> tuple[list[NUMANode], dict[int, int], dict[int, CPUSet]]:
        tree = self.tree
        entries = tree.listdir(NODE_DIR)
        dirs = sorted(int(n[4:]) for n in entries or () if re.fullmatch(r"node\d+", n))
        if not dirs:
            return self._single_node(placed)
        online_text = tree.text(f"{NODE_DIR}/online")
        node_ids = dirs
        if online_text is not None:
            online_nodes = parse_cpulist(online_text, tree.describe(f"{NODE_DIR}/online"))
            node_ids = [n for n in dirs if n in online_nodes]
        node_of: dict[int, int] = {}
        raw_lists: dict[int, CPUSet] = {}
        built: list[tuple[int, int, dict[str, int]]] = []
        for node in node_ids:
            base = f"{NODE_DIR}/node{node}"
            raw = tree.cpus(base, ("cpulist",), ("cpumap",), required=True)
            assert raw is not None
            raw_lists[node] = raw & placed
            claimed = CPUSet.of(cpu for cpu in raw & placed if cpu in node_of)
            if claimed:
                # Broken firmware can list every cpu in every node: the lowest node keeps it.
                self.warnings.append(f"NUMA node {node} lists cpus {claimed} of a lower node; they stay there")
            for cpu in raw & placed - claimed:
                node_of[cpu] = node
            meminfo_path = f"{base}/meminfo"
            meminfo = tree.text(meminfo_path, required=True) or ""
            memory = _meminfo_kb(meminfo, "MemTotal")
            if memory is None:
                raise TopologyError(f"{tree.describe(meminfo_path)}: no MemTotal")
            built.append((node, memory * 1024, self._node_hugepages(base, meminfo)))
        distances = self._distances(dirs, node_ids)
        nodes = [
            NUMANode(id=node, cpus=CPUSet(), memory=memory, hugepages=hugepages, distances=distances.get(node, ()))
            for node, memory, hugepages in built
        ]
        return nodes, node_of, raw_lists

    def _single_node(self, placed: CPUSet) -> tuple[list[NUMANode], dict[int, int], dict[int, CPUSet]]:
        tree = self.tree
        meminfo = tree.text("proc/meminfo", required=True) or ""
        memory = _meminfo_kb(meminfo, "MemTotal")
        if memory is None:
            raise TopologyError(f"{tree.describe('proc/meminfo')}: no MemTotal")
        hugepages = self._hugepage_dirs("sys/kernel/mm/hugepages") or {}
        self.warnings.append(f"no {NODE_DIR} directory: one NUMA node 0 holding every cpu")
        node = NUMANode(id=0, cpus=CPUSet(), memory=memory * 1024, hugepages=hugepages, distances=(10,))
        return [node], dict.fromkeys(placed, 0), {0: placed}

    def _node_hugepages(self, base: str, meminfo: str) -> dict[str, int]:
        sizes = self._hugepage_dirs(f"{base}/hugepages")
        if sizes is not None:
            return sizes
        # Some kernels have no per-node hugepages/ directory; the default page size's pool
        # still shows in the node's meminfo.
        total = _meminfo_count(meminfo, "HugePages_Total")
        page_kb = _meminfo_kb(self.tree.text("proc/meminfo") or "", "Hugepagesize")
        if total and page_kb:
            return {format_bytes(page_kb * 1024): total * page_kb * 1024}
        return {}

    def _hugepage_dirs(self, base: str) -> dict[str, int] | None:
        names = self.tree.listdir(base)
        if names is None:
            return None
        sizes: list[tuple[int, int]] = []
        for name in names:
            match = re.fullmatch(r"hugepages-(\d+)kB", name)
            if match is None:
                continue
            count = self.tree.integer(f"{base}/{name}/nr_hugepages", required=True)
            assert count is not None
            sizes.append((int(match.group(1)), count))
        return {format_bytes(kb * 1024): kb * 1024 * count for kb, count in sorted(sizes)}

    def _distances(self, dirs: list[int], node_ids: list[int]) -> dict[int, tuple[int, ...]]:
        tree = self.tree
        rows: dict[int, list[int]] = {}
        for node in node_ids:
            path = f"{NODE_DIR}/node{node}/distance"
            text = tree.text(path)
            if text is None:
                self.warnings.append(f"{tree.describe(path)} missing: no NUMA distances")
                return {}
            try:
                rows[node] = [int(value) for value in text.split()]
            except ValueError:
                raise TopologyError(f"{tree.describe(path)}: invalid distances {text!r}") from None
        widths = {len(row) for row in rows.values()}
        columns: list[int] | None = None
        if widths == {len(dirs)}:
            columns = dirs
        else:
            possible = tree.text(f"{NODE_DIR}/possible")
            # With an offline node the rows keep one column per possible node.
            if possible is not None:
                ids = parse_cpulist(possible, tree.describe(f"{NODE_DIR}/possible")).sorted()
                if widths == {len(ids)}:
                    columns = ids
        if columns is None or any(node not in columns for node in node_ids):
            self.warnings.append("NUMA distance rows do not have one column per node: no NUMA distances")
            return {}
        where = [columns.index(node) for node in node_ids]
        return {node: tuple(row[i] for i in where) for node, row in rows.items()}

    # cgroup ----------------------------------------------------------------------------------
    def _cgroup(self) -> CgroupInfo | None:
        tree = self.tree
        found = _cgroup_hierarchy(tree)
        if found is None:
            return None
        kind, mountpoint = found
        path = tree.text("proc/self/cpuset")
        if not path:
            path = _cgroup_path(tree.text("proc/self/cgroup") or "", kind)
        directory = "/".join(p for p in (*mountpoint.split("/"), *path.split("/")) if p)
        files = {
            "cgroup2": (("cpuset.cpus.effective", "cpuset.cpus"), ("cpuset.mems.effective", "cpuset.mems")),
            "cgroup1": (("cpuset.effective_cpus", "cpuset.cpus"), ("cpuset.effective_mems", "cpuset.mems")),
            "cpuset": (("effective_cpus", "cpus"), ("effective_mems", "mems")),
        }[kind]
        top = "/".join(p for p in mountpoint.split("/") if p)
        cpus = self._cgroup_set(directory, top, files[0])
        mems = self._cgroup_set(directory, top, files[1])
        return CgroupInfo(kind, mountpoint, path, directory, cpus, mems)

    def _cgroup_set(self, directory: str, top: str, names: tuple[str, str]) -> CPUSet | None:
        # The effective set wins; an empty or absent file means "inherited" (cgroup v2), so
        # look further up, never above the mount point.
        current = directory
        while True:
            for name in names:
                text = self.tree.text(f"{current}/{name}")
                if text:
                    return parse_cpulist(text, self.tree.describe(f"{current}/{name}"))
            if current == top or "/" not in current or len(current) <= len(top):
                return None
            current = current.rsplit("/", 1)[0]

    # devices ---------------------------------------------------------------------------------
    def _devices(self) -> tuple[tuple[Device, ...], dict[str, str | None]]:
        tree = self.tree
        devices: list[Device] = []
        for name in sorted(tree.listdir("sys/bus/pci/devices") or ()):
            real = tree.follow(f"sys/bus/pci/devices/{name}")
            if real is None:
                continue
            numa, local, pci_class = self._device_locality(real)
            devices.append(Device(name=name, kind="pci", numa=numa, local_cpus=local, pci_class=pci_class))
        parents: dict[str, str | None] = {}
        for name in sorted(tree.listdir("sys/class/net") or ()):
            real = tree.follow(f"sys/class/net/{name}", strict=False)
            parts = real.split("/") if real else []
            pci_dir = None
            for depth in range(len(parts) - 1, -1, -1):
                if PCI_ADDRESS.match(parts[depth]):
                    pci_dir = "/".join(parts[: depth + 1])
                    break
            parents[name] = pci_dir.rsplit("/", 1)[-1] if pci_dir else None
            if pci_dir is None:
                devices.append(Device(name=name, kind="net", numa=None))
                continue
            numa, local, pci_class = self._device_locality(pci_dir)
            devices.append(Device(name=name, kind="net", numa=numa, local_cpus=local, pci_class=pci_class))
        return tuple(devices), parents

    def _device_locality(self, directory: str) -> tuple[int | None, CPUSet, str | None]:
        numa = self.tree.integer(f"{directory}/numa_node")
        local = self.tree.cpus(directory, ("local_cpulist",), ("local_cpus",))
        return (None if numa is None or numa < 0 else numa), local or CPUSet(), self.tree.text(f"{directory}/class")


# ---------------------------------------------------------------------------------------------
# small parsers


def _meminfo_kb(text: str, key: str) -> int | None:
    match = re.search(rf"(?:^|\s){re.escape(key)}:\s+(\d+)\s*kB", text)
    return int(match.group(1)) if match else None


def _meminfo_count(text: str, key: str) -> int | None:
    match = re.search(rf"(?:^|\s){re.escape(key)}:\s+(\d+)", text)
    return int(match.group(1)) if match else None


def _size_kb(text: str | None) -> int | None:
    match = re.fullmatch(r"(\d+)([KMG]?)", text or "")
    if match is None:
        return None
    return int(match.group(1)) * {"": 1, "K": 1, "M": 1024, "G": 1024 * 1024}[match.group(2)]


def _cgroup_hierarchy(tree: Tree) -> tuple[str, str] | None:
    """(flavour, mount point) of the cpuset hierarchy: the standard places first, then mounts."""
    if tree.is_file("sys/fs/cgroup/cpuset.cpus.effective"):
        return "cgroup2", "/sys/fs/cgroup"
    if tree.is_file("sys/fs/cgroup/cpuset/cpuset.cpus"):
        return "cgroup1", "/sys/fs/cgroup/cpuset"
    if tree.is_file("dev/cpuset/cpus"):
        return "cpuset", "/dev/cpuset"
    for line in (tree.text("proc/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mountpoint, fstype, options = fields[1], fields[2], fields[3].split(",")
        if fstype == "cgroup2":
            controllers = (tree.text(f"{mountpoint.strip('/')}/cgroup.controllers") or "").split()
            if "cpuset" in controllers:
                return "cgroup2", mountpoint
        elif fstype == "cpuset":
            return "cpuset", mountpoint
        elif fstype == "cgroup" and "cpuset" in options:
            return ("cpuset" if "noprefix" in options else "cgroup1"), mountpoint
    return None


def _cgroup_path(text: str, kind: str) -> str:
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if "cpuset" in fields[1].split(",") or (fields[1] == "" and kind == "cgroup2"):
            return fields[2]
    return "/"
